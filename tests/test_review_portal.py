"""A sync close from inside the event loop that also used the cache asynchronously."""

from __future__ import annotations

import asyncio
import threading
from uuid import uuid4

import pytest

from redis_server import RedisServer

pytest.importorskip("langchain_core")

from tta_dev_primitives.integrations.langchain_cache import LLMCache

pytestmark = pytest.mark.redis


def test_sync_close_inside_the_loop_does_not_wait_on_the_loop_it_blocks(
    redis_server: RedisServer,
) -> None:
    """``close()`` called inside a running loop blocks that loop while aclose() runs on the
    portal. aclose must not wait for that blocked loop to close its own client (it cannot until
    close() returns): it waited ``redis_timeout + 1`` with the caller's whole loop frozen. Here
    that is 61 s; the 30 s below is a hang guard only, the close itself takes no time."""
    outcome: list[object] = []

    async def scenario() -> None:
        cache = LLMCache(redis_server.url, namespace=f"review:{uuid4().hex}", redis_timeout=60)
        assert await cache.alookup("prompt", "model") is None  # this loop's client
        connection = cache._store.remote.connection  # type: ignore[union-attr]
        pool = connection._loops[asyncio.get_running_loop()].client.connection_pool
        connections = [*pool._available_connections]
        cache.close()  # sync, in the loop: aclose runs on the portal while this loop waits
        for _ in range(100):  # this loop closes its client in its next turns
            if not any(c.is_connected for c in connections):
                break
            await asyncio.sleep(0.01)
        outcome.append(bool(connections) and not any(c.is_connected for c in connections))

    thread = threading.Thread(target=lambda: asyncio.run(scenario()), daemon=True)
    thread.start()
    thread.join(30)  # hang guard only
    assert not thread.is_alive(), "close() from inside the loop waited on that blocked loop"
    assert outcome == [True]  # and this loop's client was closed once close() returned
