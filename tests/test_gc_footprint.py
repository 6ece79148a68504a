"""What Python's garbage collector must scan grows with the code, not with the memories held.

A full collection visits every object the collector tracks, and a search waits it out: an index
that kept a tracked object per word (an ``array`` per term's postings) made a worker holding
100,000 memories pause 150-750 ms a collection. These count objects, not time.
"""

from __future__ import annotations

import gc
from uuid import uuid4

import pytest

from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive

MEMORIES = 3_000
#: Tracked objects a memory may add, on average: the index's per-scope structures (a user's or
#: a session's members) and the in-process copy's bookkeeping, not one per word.
PER_MEMORY = 0.25


def _turn(i: int) -> tuple[str, dict[str, str]]:
    # Every memory brings words no other holds: each would be a new postings list.
    return (
        f"u{i % 30}:s{i % 7}:{i}",
        {"role": "user", "content": f"the trip to w{i}a and w{i}b with w{i}c, then w{i}d"},
    )


def _tracked() -> int:
    gc.collect()
    return len(gc.get_objects())


async def test_in_process_index_adds_no_tracked_object_per_word() -> None:
    memory = MemoryPrimitive(max_size=MEMORIES)
    await memory.search("warm up", limit=1)  # imports and first-use caches, before counting
    before = _tracked()
    for i in range(MEMORIES):
        await memory.add(*_turn(i))
    assert await memory.search("trip with w17c", limit=1, scope="u17")
    grown = _tracked() - before
    assert grown < PER_MEMORY * MEMORIES, f"{grown / MEMORIES:.2f} tracked objects per memory"
    await memory.aclose()


@pytest.mark.redis
async def test_per_user_replicas_add_no_tracked_object_per_word(
    redis_server: RedisServer,
) -> None:
    ns = f"test:gc:{uuid4().hex[:8]}"
    writer = MemoryPrimitive(redis_server.url, namespace=ns, search_engine="replica")
    for i in range(MEMORIES):
        await writer.add(*_turn(i))
    reader = MemoryPrimitive(redis_server.url, namespace=ns, search_engine="replica")
    assert await reader.search("warm up", limit=1, scope="u0") is not None
    before = _tracked()
    for user in range(1, 30):  # a replica of each user's memories
        assert await reader.search(f"trip with w{user}c", limit=1, scope=f"u{user}")
    grown = _tracked() - before
    assert grown < PER_MEMORY * MEMORIES, f"{grown / MEMORIES:.2f} tracked objects per memory"
    await writer.clear()
    await reader.aclose()
    await writer.aclose()
