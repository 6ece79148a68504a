"""production.md, "Ordering": "A clear removes what is older than itself, in pages of 500 keys
(each page one call under redis_timeout); memories written while it runs, by any process,
stay." Another process writes while a clear of 3,000 memories pages through them."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from conftest import eventually, namespace
from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive

pytestmark = pytest.mark.redis

WRITER = """
import asyncio, json, sys
from tta_dev_primitives import MemoryPrimitive

async def main():
    memory = MemoryPrimitive({url!r}, namespace={ns!r}, redis_timeout=10)
    await memory.size()  # connected
    print("ready", flush=True)
    sys.stdin.readline()  # the clear has started
    written = []
    for i in range(300):
        await memory.add(f"u2:s1:{{i}}", {{"content": f"written during the clear {{i}}"}})
        written.append(i)
    print(json.dumps(written), flush=True)
    await memory.aclose()

asyncio.run(main())
"""


@pytest.mark.parametrize("engine", ["replica", "redis"])
async def test_writes_made_while_a_clear_runs_stay(
    request: pytest.FixtureRequest, engine: str
) -> None:
    server: RedisServer = request.getfixturevalue(
        "redis_server" if engine == "replica" else "redis_query_engine"
    )
    ns = namespace()
    memory = MemoryPrimitive(server.url, namespace=ns, redis_timeout=10, search_engine=engine)
    for i in range(3000):
        await memory.add(f"u1:s1:{i}", {"content": f"old {i}"})
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        WRITER.format(url=server.url, ns=ns),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert writer.stdin is not None
    assert writer.stdout is not None
    assert (await writer.stdout.readline()).strip() == b"ready"
    watcher = MemoryPrimitive(server.url, namespace=ns, redis_timeout=10, search_engine=engine)
    clearing = asyncio.create_task(memory.clear())

    async def begun() -> bool:  # the clear has removed its first page
        return await watcher.size() < 3000

    await eventually(begun, within=30)
    writer.stdin.write(b"go\n")
    await writer.stdin.drain()
    written = json.loads(await writer.stdout.readline())
    await clearing
    assert await writer.wait() == 0
    assert len(written) == 300

    reader = MemoryPrimitive(server.url, namespace=ns, redis_timeout=10, search_engine=engine)
    assert await reader.size() == 300  # none of the old, all of the new
    assert await reader.get("u2:s1:0") is not None
    assert await reader.get("u1:s1:0") is None
    assert len(await reader.search("written during the clear", limit=1000)) == 300
    assert await reader.search("old", scope="u1") == []
    await reader.clear()
    await reader.aclose()
    await watcher.aclose()
    await memory.aclose()
