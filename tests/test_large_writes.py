"""A large memory is stored over a slow link, or the caller is told; it never holds the process's
later writes back.

A write is given a second more per MiB it sends (``stores._redis.sizes``). One whose connection
Redis closes twice while it takes other writes (a ``client-query-buffer-limit`` below its size;
so does a proxy's limit) raises ``BackendError`` and nothing is stored; journalled during an
outage, it becomes a dead letter on replay and the rest of the journal lands. Before this, such
a write was journalled as an outage, failed on every replay, and every later write of the
process stayed in-process behind it (found by reproduction, 2026-12-06). A stall, a pause, a
dead server or a connection closed while idle stays what it was: the write is journalled and
replayed, or sent again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import redis as redis_sync
from redis import exceptions as rexc

from conftest import Factory, fast_recovery, replayed, tcp_relay
from redis_server import LocalCluster
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import BackendError, BackendUnavailableError
from tta_dev_primitives.stores._redis.sizes import budget, closed_by_server, size_of

pytestmark = pytest.mark.redis

MIB = 1 << 20
#: A server that closes the connection of any request over 1 MiB (the least
#: client-query-buffer-limit Redis takes), as a proxy's request limit would.
LIMITED = ("--client-query-buffer-limit", "1mb")


def big(mib: float, tag: str = "") -> dict[str, str]:
    """A memory of about ``mib`` MiB of JSON, of words a search can find."""
    return {"content": f"{tag} " + "lorem ipsum " * int(mib * MIB / 12)}


async def test_a_large_memory_crosses_a_slow_link_and_is_stored(
    redis_server_factory: Factory,
) -> None:
    """2.5 MiB at 2 MiB/s takes 1.25 s, past the 0.5 s timeout: it is given the time, stored in
    Redis, and nothing falls back."""
    server = redis_server_factory()
    async with tcp_relay(lambda: server.port, rate=2 * MIB) as url:
        memory = fast_recovery(url)
        await memory.add("small", {"content": "hello"})
        value = big(2.5, "slow")
        await memory.add("big", value)
        assert memory.using_redis
        info = memory.get_backend_info()
        assert (info["degraded"], info["last_error"]) == (False, None)
        direct = MemoryPrimitive(server.url, namespace=memory.namespace)
        assert await direct.get("big") == value
        await direct.aclose()
        await memory.aclose()


async def test_a_write_over_the_servers_request_limit_is_refused_and_later_ones_land(
    redis_server_factory: Factory,
) -> None:
    """Redis closes the connection on a request past its query buffer limit: the write raises
    ``BackendError`` naming the limit, the key keeps what it held, and the next writes reach
    Redis, where another process reads them."""
    server = redis_server_factory(extra=LIMITED)
    memory = fast_recovery(server.url)
    other = MemoryPrimitive(server.url, namespace=memory.namespace)
    await memory.add("k", {"content": "before"})
    with pytest.raises(BackendError, match="client-query-buffer-limit") as info:
        await memory.add("k", big(2))
    assert not isinstance(info.value, BackendUnavailableError)
    assert "not stored" in str(info.value)
    assert await memory.get("k") == {"content": "before"}
    await memory.add("after", {"content": "later write"})
    assert memory.using_redis
    assert await other.get("after") == {"content": "later write"}
    assert await other.get("k") == {"content": "before"}
    assert await other.search("later write") == [{"content": "later write"}]
    await other.aclose()
    await memory.clear()
    await memory.aclose()


@contextlib.contextmanager
def limited(cluster: LocalCluster) -> Iterator[None]:
    """The cluster's masters refuse requests over 1 MiB while this lasts."""
    masters = [redis_sync.Redis(port=node.port) for node in cluster.master_nodes()]
    before = [client.config_get("client-query-buffer-limit") for client in masters]
    try:
        for client in masters:
            client.config_set("client-query-buffer-limit", "1mb")
        yield
    finally:
        for client, was in zip(masters, before, strict=True):
            client.config_set("client-query-buffer-limit", was["client-query-buffer-limit"])
            client.close()


async def test_on_a_cluster_a_write_over_the_limit_is_refused_and_later_ones_land(
    redis_cluster: LocalCluster,
) -> None:
    """The same on a cluster, where the PING asks every node."""
    memory = fast_recovery(redis_cluster.url)
    with limited(redis_cluster):
        await memory.add("k", {"content": "before"})
        with pytest.raises(BackendError, match="not stored") as info:
            await memory.add("k", big(2))
        assert not isinstance(info.value, BackendUnavailableError)
        await memory.add("after", {"content": "later write"})
        assert memory.using_redis
    other = MemoryPrimitive(redis_cluster.url, namespace=memory.namespace)
    assert await other.get("after") == {"content": "later write"}
    assert await other.get("k") == {"content": "before"}
    await other.aclose()
    await memory.clear()
    await memory.aclose()


async def test_on_a_cluster_large_writes_on_connections_killed_while_idle_are_stored(
    redis_cluster: LocalCluster,
) -> None:
    """``CLIENT KILL`` (or Redis's idle ``timeout``, or a load balancer) closes the pooled
    connections before each large write, which finds its connection closed while the master
    takes writes. That is no refusal: sent again, it is stored (a review found a quarter of
    them lost before the second send)."""
    memory = fast_recovery(redis_cluster.url)
    for i in range(12):  # a pooled connection to every master
        await memory.add(f"warm{i}", {"content": "x"})
    values = {f"big{i}": big(1.5, str(i)) for i in range(12)}
    for key, value in values.items():
        for node in redis_cluster.master_nodes():
            with redis_sync.Redis(port=node.port) as admin:
                admin.client_kill_filter(_type="normal", skipme=True)
        await memory.add(key, value)  # never "not stored"
    await replayed(memory, within=30)
    other = MemoryPrimitive(redis_cluster.url, namespace=memory.namespace)
    for key, value in values.items():
        assert await other.get(key) == value, key
    await other.aclose()
    await memory.clear()
    await memory.aclose()


async def test_a_journalled_write_over_the_limit_is_a_dead_letter_and_the_rest_lands(
    redis_server_factory: Factory,
) -> None:
    """Writes journalled in an outage, one of them over the server's request limit: the replay
    keeps that one as a dead letter and lands the others, so the process is back on Redis."""
    server = redis_server_factory(extra=LIMITED)
    down = [False]
    async with tcp_relay(lambda: server.port, down=lambda: down[0]) as url:
        memory = fast_recovery(url)
        await memory.add("first", {"content": "before the outage"})
        down[0] = True
        await memory.add("a", {"content": "journalled before"})
        await memory.add("big", big(2))
        await memory.add("b", {"content": "journalled after"})
        assert not memory.using_redis
        assert memory.get_backend_info()["journal_size"] == 3
        down[0] = False
        await replayed(memory, within=30)
        info = memory.get_backend_info()
        assert info["dead_letters"] == 1
        assert [letter["key"] for letter in info["dead_letter_log"]] == ["big"]
        other = MemoryPrimitive(server.url, namespace=memory.namespace)
        assert await other.get("a") == {"content": "journalled before"}
        assert await other.get("b") == {"content": "journalled after"}
        assert await other.get("big") is None
        await other.aclose()
        await memory.clear()
        await memory.aclose()


async def test_a_paused_server_is_an_outage_even_when_it_closes_the_connection(
    redis_server_factory: Factory,
) -> None:
    """Under ``CLIENT PAUSE WRITE`` (a failover's switch) Redis still closes the connection on
    a request over its limit, and still answers a PING, but runs no write: the large write is
    journalled as in any outage, not refused, and the replay after the pause finds it over
    the limit (a dead letter)."""
    server = redis_server_factory(extra=LIMITED)
    memory = fast_recovery(server.url)
    await memory.add("warm", {"content": "x"})
    admin = redis_sync.Redis(port=server.port)
    admin.execute_command("CLIENT", "PAUSE", "1500", "WRITE")
    await memory.add("big", big(2))  # returns: journalled
    assert not memory.using_redis
    await replayed(memory, within=30)
    assert memory.get_backend_info()["dead_letters"] == 1
    admin.close()
    await memory.clear()
    await memory.aclose()


async def test_a_large_write_to_a_stalled_server_is_an_outage_not_a_refusal(
    redis_server_factory: Factory,
) -> None:
    """The PING that tells a refusal apart gets no answer from a stalled server either: the
    large write is journalled like any other, and replayed once the server is back."""
    server = redis_server_factory()
    memory = fast_recovery(server.url, redis_timeout=0.3)
    await memory.add("warm", {"content": "x"})
    value = big(1.5, "stalled")
    with server.stalled():
        await memory.add("big", value)  # returns: journalled
        assert not memory.using_redis
    await replayed(memory, within=30)
    other = MemoryPrimitive(server.url, namespace=memory.namespace)
    assert await other.get("big") == value
    await other.aclose()
    await memory.clear()
    await memory.aclose()


def test_only_a_connection_closed_under_the_write_is_checked() -> None:
    """A reset or a closed connection may be the write's size; a timeout never is (a stalled
    server may still run a request it received whole), nor a login or a server or pool full."""
    assert closed_by_server(rexc.ConnectionError("Connection closed by server."))
    assert closed_by_server(ConnectionResetError())
    assert closed_by_server(BrokenPipeError())
    assert not closed_by_server(rexc.TimeoutError("timed out"))
    assert not closed_by_server(TimeoutError("no reply within 0.5s"))
    assert not closed_by_server(rexc.AuthenticationError("invalid password"))
    assert not closed_by_server(rexc.BusyLoadingError("loading"))
    assert not closed_by_server(rexc.MaxConnectionsError("too many"))
    assert not closed_by_server(rexc.MaxClientsReachedError("max number of clients reached"))
    assert not closed_by_server(rexc.ResponseError("ERR"))


def test_a_write_is_given_a_second_more_per_mib() -> None:
    """``budget``: the timeout plus a second per MiB of string arguments."""
    assert budget(1.0, 0) == 1.0
    assert budget(0.5, 8 * MIB) == 8.5
    assert size_of(["base", b"x" * MIB, 12, None]) == MIB + 4
