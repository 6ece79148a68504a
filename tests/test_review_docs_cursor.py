"""memory.md: on Redis "a cursor works in any process", and "a cursor from Redis is refused
while the memory is served in-process, rather than continue a listing from another source"."""

from __future__ import annotations

import json

import pytest

from conftest import Factory, eventually, fast_recovery, run_python
from tta_dev_primitives.exceptions import InvalidArgumentError


@pytest.mark.redis
async def test_a_cursor_continues_in_another_process_and_is_refused_in_process(
    redis_server_factory: Factory,
) -> None:
    server = redis_server_factory()
    memory = fast_recovery(server.url)
    keys = [f"u1:s1:t{i:02}" for i in range(12)]
    for key in keys:
        await memory.add(key, {"content": key})
    first = await memory.list_memories("u1", limit=5)
    assert [k for k, _ in first.items] == keys[:-6:-1]
    assert first.cursor is not None

    # Another process picks the listing up where this one left it.
    rest = run_python(
        f"""
import asyncio, json
from tta_dev_primitives import MemoryPrimitive

async def main():
    memory = MemoryPrimitive({server.url!r}, namespace={memory.namespace!r})
    keys, cursor = [], {first.cursor!r}
    while cursor is not None:
        page = await memory.list_memories("u1", limit=5, cursor=cursor)
        keys += [k for k, _ in page.items]
        cursor = page.cursor
    print(json.dumps(keys))
    await memory.aclose()

asyncio.run(main())
"""
    )
    assert json.loads(rest.splitlines()[-1]) == keys[-6::-1]

    # Redis gone: this memory is served in-process, and the Redis cursor is refused.
    server.kill()
    # Three: the copies of the memories above may not be served (on a busy machine the other
    # process took long enough that they are older than an outage read vouches for).
    for i in range(3):
        await memory.add(f"u1:s1:outage{i}", {"content": "written in-process"})
    assert not memory.using_redis
    with pytest.raises(InvalidArgumentError, match="list again from the start"):
        await memory.list_memories("u1", limit=5, cursor=first.cursor)
    # A listing begun in-process pages on in-process.
    local = await memory.list_memories("u1", limit=2)
    assert local.items[0][0] == "u1:s1:outage2"
    assert local.cursor is not None
    server.start()

    async def back() -> bool:
        return await memory.flush() and memory.using_redis

    await eventually(back, within=15)
    with pytest.raises(InvalidArgumentError, match="list again from the start"):
        await memory.list_memories("u1", limit=2, cursor=local.cursor)
    await memory.aclose()
