"""What Python's garbage collector must scan grows with the code, not with the memories held.

A full collection visits every object the collector tracks, and a search waits it out: an index
that kept a tracked object per word (an ``array`` per term's postings) made a worker holding
100,000 memories pause 150-750 ms a collection. These count objects, not time, and only what
indexing more memories adds: what the first ones bring (imports, caches, a replica's own
structures) is made before counting. Each count runs in a fresh interpreter, so nothing left
by another test (a task, a thread, a cache filling) is counted.
"""

from __future__ import annotations

import pytest

from conftest import run_python
from redis_server import RedisServer

#: Tracked objects a memory may add, on average: a scope's members (a session's) and the
#: in-process copy's bookkeeping, not one per word. (Before: 3-4 per memory.)
PER_MEMORY = 0.25

_COMMON = """
import asyncio, gc
from tta_dev_primitives import MemoryPrimitive

# (Enough memories that a few hundred objects the run makes once, on a busy machine, stay
# well under the bound: 600 a user left a margin of 360 objects, and one run on a busy
# machine counted 0.31 a memory.)
USERS, PER_USER = 6, 1500

def turn(i):
    # Every memory brings words no other holds: each would be a new postings list.
    return (f"u{i % USERS}:s{i % 7}:{i}",
            {"role": "user", "content": f"the trip to w{i}a and w{i}b with w{i}c, then w{i}d"})

def tracked():
    gc.collect()
    return len(gc.get_objects())
"""


def test_in_process_index_adds_no_tracked_object_per_word() -> None:
    per_memory = float(
        run_python(
            _COMMON
            + """
async def main():
    memory = MemoryPrimitive(max_size=2 * USERS * PER_USER)
    for i in range(USERS * PER_USER):
        await memory.add(*turn(i))
    assert await memory.search("trip with w17c", limit=1, scope="u5")
    before = tracked()
    for i in range(USERS * PER_USER, 2 * USERS * PER_USER):
        await memory.add(*turn(i))
    assert await memory.search("trip with w9005c", limit=1, scope="u5")
    print((tracked() - before) / (USERS * PER_USER))
    await memory.aclose()

asyncio.run(main())
"""
        )
    )
    assert per_memory < PER_MEMORY, f"{per_memory:.2f} tracked objects per memory"


@pytest.mark.redis
def test_per_user_replicas_add_no_tracked_object_per_word(redis_server: RedisServer) -> None:
    per_memory = float(
        run_python(
            _COMMON
            + f"""
from uuid import uuid4

async def main():
    ns = f"test:gc:{{uuid4().hex[:8]}}"
    url = {redis_server.url!r}
    # (A busy machine's slow reply must not be an outage: what it leaves is not the index's.)
    writer = MemoryPrimitive(url, namespace=ns, search_engine="replica", redis_timeout=10.0)
    reader = MemoryPrimitive(url, namespace=ns, search_engine="replica", redis_timeout=10.0)
    for i in range(USERS * PER_USER):
        await writer.add(*turn(i))
    for user in range(2):  # (the first replicas' searches also fill typing caches)
        assert await reader.search(f"trip with w{{user}}c", limit=1, scope=f"u{{user}}")
    before = tracked()
    for user in range(2, USERS):  # a replica of each other user's memories
        found = await reader.search(f"trip with w{{user}}c", limit=1, scope=f"u{{user}}")
        assert found == [turn(user)[1]], found
    print((tracked() - before) / ((USERS - 2) * PER_USER))
    assert not reader.get_backend_info()["degraded"]
    await writer.clear()
    await reader.aclose()
    await writer.aclose()

asyncio.run(main())
"""
        )
    )
    assert per_memory < PER_MEMORY, f"{per_memory:.2f} tracked objects per memory"
