"""A memory kept at module level and used by one ``asyncio.run`` after another: the pattern of
a serverless handler or a script, each invocation its own event loop, with calls at once
inside each. Nothing the memory keeps to order its own calls may belong to the first loop: an
``asyncio.Lock`` that two calls waited on is bound to their loop and raises on any other."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import fast_recovery, namespace, replayed
from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive


async def _invocation(memory: MemoryPrimitive, number: int) -> list[int]:
    """One handler's work: four turns written and four questions asked at once, then a clear
    (after which the engine's facts are checked again, under its lock)."""
    await asyncio.gather(
        *(memory.add(f"u1:s{number}:{i}", {"text": f"turn {i} about hiking"}) for i in range(4))
    )
    found = await asyncio.gather(
        *(memory.search(f"what did turn {i} say about hiking", limit=3) for i in range(4))
    )
    await memory.clear()
    return [len(hits) for hits in found]


def _serve_three_invocations(memory: MemoryPrimitive) -> None:
    try:
        for number in range(3):
            assert asyncio.run(_invocation(memory, number)) == [3, 3, 3, 3]
    finally:
        asyncio.run(memory.aclose())


def test_in_process_memory_serves_one_event_loop_after_another() -> None:
    _serve_three_invocations(MemoryPrimitive())


@pytest.mark.redis
def test_redis_memory_serves_one_event_loop_after_another(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    _serve_three_invocations(
        MemoryPrimitive(
            redis_server.url,
            namespace=namespace(),
            search_engine="replica",
            journal_path=tmp_path / "journal",
        )
    )


@pytest.mark.redis
def test_engine_memory_serves_one_event_loop_after_another(
    redis_query_engine: RedisServer, tmp_path: Path
) -> None:
    _serve_three_invocations(
        MemoryPrimitive(
            redis_query_engine.url,
            namespace=namespace(),
            search_engine="redis",
            journal_path=tmp_path / "journal",
        )
    )


@pytest.mark.redis
def test_an_outage_in_one_invocation_is_replayed_in_a_later_one(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """Writes journalled while Redis is away, in one ``asyncio.run``, reach Redis in a later
    one: its loop is gone with the first recovery's timer, so the next invocation replays."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url, journal_path=tmp_path / "journal")

    async def write(number: int) -> None:
        await asyncio.gather(
            *(memory.add(f"u1:s{number}:{i}", {"text": f"turn {i} about hiking"}) for i in range(4))
        )

    async def stored() -> int:
        await replayed(memory)
        reader = fast_recovery(server.url, memory.namespace)
        try:
            return await reader.size()
        finally:
            await reader.aclose()

    try:
        asyncio.run(write(0))
        server.kill()
        asyncio.run(write(1))  # journalled: Redis is away
        assert memory.get_backend_info()["journal_size"] == 4
        server.start()
        asyncio.run(write(2))
        assert asyncio.run(stored()) == 12
    finally:
        asyncio.run(memory.aclose())
