"""Connection's table of per-loop clients used from several threads at once."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from redis_server import RedisServer
from tta_dev_primitives.stores._redis.connection import Connection

pytestmark = pytest.mark.redis


def test_two_threads_first_use_while_a_closed_loop_is_pruned(redis_server: RedisServer) -> None:
    """A loop that used the connection has closed; two threads, each with its own loop, then
    use it for the first time at once. Both prune the closed loop's state from the table: each
    must still get its client (neither may fail on the other's change to the table)."""
    connection = Connection(redis_server.url, 5, scripts={}, own_keys=dict, on_cluster=lambda: None)
    old = asyncio.new_event_loop()
    old.run_until_complete(connection.ready())
    old.close()  # its client's sockets are left for the next first use to drop

    first_looking, second_done = threading.Event(), threading.Event()
    looked = 0

    def is_closed() -> bool:
        # The first thread to look is held mid-prune until the second has finished its own.
        nonlocal looked
        looked += 1
        if looked == 1:
            first_looking.set()
            second_done.wait(30)  # hang guard only
        return True

    old.is_closed = is_closed  # type: ignore[method-assign]
    outcome: dict[str, Any] = {}

    def use(name: str) -> None:
        try:
            asyncio.run(connection.ready())
            outcome[name] = "ok"
        except Exception as exc:  # the outcome is what the test reports
            outcome[name] = f"{type(exc).__name__}: {exc}"

    first = threading.Thread(target=use, args=("first",))
    first.start()
    assert first_looking.wait(30)
    use("second")
    second_done.set()
    first.join(30)
    assert outcome == {"first": "ok", "second": "ok"}
    asyncio.run(connection.aclose())


async def test_aclose_while_another_loop_stops_and_closes_leaves_no_socket(
    redis_server: RedisServer,
) -> None:
    """aclose() asks another thread's running loop to close its client, but that loop stops and
    closes before it runs the request (its thread was ending): nothing else will ever close
    those sockets, so aclose must close them itself once it sees the loop closed."""
    connection = Connection(
        redis_server.url, 0.05, scripts={}, own_keys=dict, on_cluster=lambda: None
    )
    other = asyncio.new_event_loop()
    blocked, release = threading.Event(), threading.Event()

    def block_then_stop() -> None:
        blocked.set()
        release.wait(30)  # hang guard only
        other.stop()  # the thread's last turn: what came in meanwhile never runs

    def run() -> None:
        other.run_forever()
        other.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(connection.ready(), other).result(30)
        client = connection._loops[other].client
        connections = [*client.connection_pool._available_connections]
        assert connections
        assert all(c.is_connected for c in connections)
        other.call_soon_threadsafe(block_then_stop)
        assert await asyncio.to_thread(blocked.wait, 30)
        closing = asyncio.create_task(connection.aclose())
        await asyncio.sleep(0)  # aclose has asked the (still running) other loop to close
        release.set()
        await asyncio.to_thread(thread.join, 30)
        assert other.is_closed()
        await closing
        assert not any(c.is_connected for c in connections)
    finally:
        release.set()
        if not other.is_closed():
            other.call_soon_threadsafe(other.stop)
        await asyncio.to_thread(thread.join, 30)
