"""What Python's garbage collector must scan grows with the code, not with the memories held.

A full collection visits every object the collector tracks, and a search waits it out: an index
that kept a tracked object per word (an ``array`` per term's postings) made a worker holding
100,000 memories pause 150-750 ms a collection. These count objects, not time, and only what
indexing more memories adds: what the first ones bring (imports, caches, a replica's own
structures) is made before counting.
"""

from __future__ import annotations

import gc
from uuid import uuid4

import pytest

from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive

USERS = 6
PER_USER = 600
#: Tracked objects a memory may add, on average: a scope's members (a session's) and the
#: in-process copy's bookkeeping, not one per word. (Before: 3-4 per memory.)
PER_MEMORY = 0.25


def _turn(i: int) -> tuple[str, dict[str, str]]:
    # Every memory brings words no other holds: each would be a new postings list.
    return (
        f"u{i % USERS}:s{i % 7}:{i}",
        {"role": "user", "content": f"the trip to w{i}a and w{i}b with w{i}c, then w{i}d"},
    )


def _tracked() -> int:
    gc.collect()
    return len(gc.get_objects())


async def test_in_process_index_adds_no_tracked_object_per_word() -> None:
    memory = MemoryPrimitive(max_size=USERS * PER_USER * 2)
    try:
        for i in range(USERS * PER_USER):
            await memory.add(*_turn(i))
        assert await memory.search("trip with w17c", limit=1, scope="u2")
        before = _tracked()
        for i in range(USERS * PER_USER, 2 * USERS * PER_USER):
            await memory.add(*_turn(i))
        assert await memory.search("trip with w3017c", limit=1, scope="u2")
        grown = _tracked() - before
        per_memory = grown / (USERS * PER_USER)
        assert per_memory < PER_MEMORY, f"{per_memory:.2f} tracked objects per memory"
    finally:
        await memory.aclose()


@pytest.mark.redis
async def test_per_user_replicas_add_no_tracked_object_per_word(
    redis_server: RedisServer,
) -> None:
    ns = f"test:gc:{uuid4().hex[:8]}"
    writer = MemoryPrimitive(redis_server.url, namespace=ns, search_engine="replica")
    reader = MemoryPrimitive(redis_server.url, namespace=ns, search_engine="replica")
    try:
        for i in range(USERS * PER_USER):
            await writer.add(*_turn(i))
        for user in range(2):  # (the first replicas' searches also fill typing caches)
            assert await reader.search(f"trip with w{user}c", limit=1, scope=f"u{user}")
        before = _tracked()
        for user in range(2, USERS):  # a replica of each other user's memories
            found = await reader.search(f"trip with w{user}c", limit=1, scope=f"u{user}")
            assert found == [_turn(user)[1]]
        grown = _tracked() - before
        per_memory = grown / ((USERS - 2) * PER_USER)
        assert per_memory < PER_MEMORY, f"{per_memory:.2f} tracked objects per memory"
    finally:
        await writer.clear()
        await reader.aclose()
        await writer.aclose()
