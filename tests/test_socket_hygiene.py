"""No socket outlives its client: calls cut off by the timeout, mid-connect or mid-close, on one
server or a cluster, leave no unclosed connection, transport or cluster client behind."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis import exceptions as rexc

from conftest import fast_recovery
from redis_server import LocalCluster, RedisServer
from tta_dev_primitives.exceptions import BackendUnavailableError, UnsentWritesError
from tta_dev_primitives.stores._base import Put
from tta_dev_primitives.stores._redis.connection import Connection

pytestmark = pytest.mark.redis


@contextlib.contextmanager
def _resource_warnings() -> Iterator[list[str]]:
    """The ResourceWarnings raised in the block, and by what a collection at its end finds
    still open (their messages, cut to 120 characters), filled in once the block ends."""
    leaked: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield leaked
        gc.collect()
    leaked += [str(w.message)[:120] for w in caught if issubclass(w.category, ResourceWarning)]


async def _timed_out_rounds(url: str) -> list[str]:
    """Calls whose timeout (2 ms) cuts off connects, cluster discovery and closes; the
    ResourceWarnings raised once the memory is closed and collected."""
    memory = fast_recovery(url, redis_timeout=0.002, recovery_interval=0.01)
    with _resource_warnings() as leaked:
        for round_ in range(12):
            await asyncio.gather(
                *(memory.add(f"u{i}:s1:{round_}", {"content": f"note {i}"}) for i in range(40))
            )
            await memory.get("u1:s1:0")
            await asyncio.sleep(0.02)  # a recovery probe reconnects, and is cut off again
        with contextlib.suppress(UnsentWritesError):  # whatever the outage left unsent
            await memory.aclose()
        del memory
        await asyncio.sleep(0.05)  # aborted transports finish closing on the loop's next turns
    return leaked


async def test_timed_out_calls_leave_no_socket_on_one_server(redis_server: RedisServer) -> None:
    assert await _timed_out_rounds(redis_server.url) == []


async def test_timed_out_calls_leave_no_socket_on_a_cluster(redis_cluster: LocalCluster) -> None:
    assert await _timed_out_rounds(redis_cluster.url) == []


async def test_a_call_still_running_on_a_dropped_cluster_client_leaves_no_socket(
    redis_cluster: LocalCluster,
) -> None:
    """A failed call drops the cluster client while another still runs on it; what that call
    opens after the drop (redis-py rediscovers a closed cluster client) is closed when it ends.
    Under load this raced in the timed-out rounds above; here the order is fixed."""
    connection = Connection(
        redis_cluster.url, 5, scripts={}, own_keys=dict, on_cluster=lambda: None
    )
    await connection.ready()
    started, dropped = asyncio.Event(), asyncio.Event()

    async def still_running(client: Any) -> Any:
        started.set()
        await dropped.wait()
        return await client.ping(target_nodes=client.get_primaries())  # reconnects every master

    async def failing(client: Any) -> None:
        raise rexc.ConnectionError("the master went away")

    with _resource_warnings() as leaked:
        running = asyncio.create_task(connection.call(still_running))
        await started.wait()
        with pytest.raises(BackendUnavailableError):
            await connection.call(failing)
        dropped.set()
        assert await running
        await connection.aclose()
        del running, connection
        await asyncio.sleep(0.05)
    assert leaked == []


@pytest.mark.parametrize("server", ["redis_server", "redis_cluster"])
async def test_a_call_still_running_when_the_memory_closes_leaves_no_socket(
    request: pytest.FixtureRequest, server: str
) -> None:
    """``aclose()`` while a call is still running: what that call opens afterwards is closed
    when it ends, on one server and on a cluster."""
    url = request.getfixturevalue(server).url
    connection = Connection(url, 5, scripts={}, own_keys=dict, on_cluster=lambda: None)
    await connection.ready()
    started, closed = asyncio.Event(), asyncio.Event()

    async def still_running(client: Any) -> Any:
        started.set()
        await closed.wait()
        return await client.ping()  # a new connection: the close took the old ones

    with _resource_warnings() as leaked:
        running = asyncio.create_task(connection.call(still_running))
        await started.wait()
        await connection.aclose()
        closed.set()
        assert await running
        del running, connection
        await asyncio.sleep(0.05)
    assert leaked == []


def test_a_new_client_searches_the_engine_on_a_cluster_through_its_own_nodes(
    redis_query_engine_cluster: LocalCluster,
) -> None:
    """Each master's index is remembered across calls; a later client (another event loop, or
    one made after an outage) must reach the masters through its own connections, not those of
    the client that found the index, which nothing would close."""
    from tta_dev_primitives import MemoryPrimitive

    held = [MemoryPrimitive(
        redis_query_engine_cluster.url, namespace="hygiene:engine", search_engine="redis",
        redis_timeout=10,
    )]  # fmt: skip

    async def first() -> None:
        memory = held[0]
        await memory.clear()
        await memory.add("u1:s1:1", {"content": "the lighthouse keeper paints the door"})
        assert [hit.key for hit in await memory.search_scored("lighthouse door")] == ["u1:s1:1"]

    async def second() -> list[str]:
        memory = held[0]
        found = [hit.key for hit in await memory.search_scored("lighthouse door")]
        await memory.clear()
        await memory.aclose()
        await asyncio.sleep(0.05)
        return found

    asyncio.run(first())  # its loop closes with its client's sockets still open
    with _resource_warnings() as leaked:
        assert asyncio.run(second()) == ["u1:s1:1"]
        held.clear()  # what is left of the memory is collected: a ResourceWarning if open
    assert leaked == []


async def test_aclose_while_a_call_is_connecting_leaves_no_socket(
    redis_server: RedisServer,
) -> None:
    """aclose() while the first call is still connecting: the client that connect makes is
    closed by that call when it ends (it had been left on a dropped state, open)."""
    connection = Connection(redis_server.url, 5, scripts={}, own_keys=dict, on_cluster=lambda: None)

    async def work(client: Any) -> Any:
        return await client.ping()

    with _resource_warnings() as leaked:
        running = asyncio.create_task(connection.call(work))
        await asyncio.sleep(0)  # the call is inside _connect (INFO cluster)
        await connection.aclose()
        assert await running
        del running, connection
        await asyncio.sleep(0.05)
    assert leaked == []


async def test_aclose_from_another_loop_while_a_call_runs_there_leaves_no_socket(
    redis_server: RedisServer,
) -> None:
    """A sync adapter's portal loop runs a call while aclose() runs on the main loop: that loop
    closes its own clients, and what the running call reopens is closed when it ends."""
    connection = Connection(redis_server.url, 5, scripts={}, own_keys=dict, on_cluster=lambda: None)
    portal = asyncio.new_event_loop()
    thread = threading.Thread(target=portal.run_forever, daemon=True)
    thread.start()
    started, closed = threading.Event(), threading.Event()

    async def still_running(client: Any) -> Any:
        started.set()
        await asyncio.to_thread(closed.wait, 5)
        return await client.ping()  # a new connection: the close took the old ones

    with _resource_warnings() as leaked:
        asyncio.run_coroutine_threadsafe(connection.ready(), portal).result(5)
        running = asyncio.run_coroutine_threadsafe(connection.call(still_running), portal)
        await asyncio.to_thread(started.wait, 5)
        await connection.aclose()
        closed.set()
        assert await asyncio.wrap_future(running)
        portal.call_soon_threadsafe(portal.stop)
        await asyncio.to_thread(thread.join, 5)
        portal.close()
        del running, connection
        await asyncio.sleep(0.05)
    assert leaked == []


async def test_a_replay_cut_off_checking_its_scripts_returns_its_connection(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """A replayed chunk is one pipeline of PUT scripts; redis-py checks the scripts
    (``SCRIPT EXISTS``) on the pipeline's connection before its ``execute`` would reset it
    however it ends. Cut off there by the timeout (a stalled server), the pipeline kept that
    connection: never back in the pool, closed only when collected (a ResourceWarning, seen
    under load in the timed-out rounds above), and counted in use for good: after
    ``MAX_CONNECTIONS`` such cut-offs a call that needed a new connection was refused."""
    server = redis_server_factory()
    memory = fast_recovery(server.url, redis_timeout=0.3)
    await memory.add("warm", {"v": 0})  # a pooled connection, connected: the cut-off is later
    backend = memory._store.remote  # type: ignore[attr-defined]
    client = backend.connection._state().client
    with _resource_warnings() as leaked:
        with server.stalled():
            for i in range(3):
                with pytest.raises(BackendUnavailableError):
                    await backend.apply([Put(f"k{i}", '{"v": 1}')])
        assert list(client.connection_pool._in_use_connections) == []
        await memory.aclose()
        del memory, backend, client
        await asyncio.sleep(0.05)
    assert leaked == []
