"""comparison.md: "Each message is one memory under {session_id}:messages:...". Two processes
answering one session at once (a double submit, two workers) keep both messages, even where
the clock is coarse and both read the same tick (Windows' 15.6 ms, a VM's jiffies clock)."""

from __future__ import annotations

import pytest

from conftest import namespace, run_python
from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.integrations.langchain import MemoryChatMessageHistory

WORKER = """
import asyncio, time
time.time_ns = lambda: 1_700_000_000_000_000_000  # a coarse clock: both processes, one tick
from langchain_core.messages import HumanMessage
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.integrations.langchain import MemoryChatMessageHistory

async def main():
    async with MemoryPrimitive({url!r}, namespace={ns!r}) as memory:
        history = MemoryChatMessageHistory(memory, "u1:s1")
        await history.aadd_messages([HumanMessage({text!r})])

asyncio.run(main())
"""


@pytest.mark.redis
async def test_two_processes_in_one_clock_tick_keep_both_messages(
    redis_server: RedisServer,
) -> None:
    ns = namespace()
    for text in ("from worker one", "from worker two"):
        run_python(WORKER.format(url=redis_server.url, ns=ns, text=text))
    async with MemoryPrimitive(redis_server.url, namespace=ns) as memory:
        history = MemoryChatMessageHistory(memory, "u1:s1")
        said = [m.content for m in await history.aget_messages()]
        assert sorted(said) == ["from worker one", "from worker two"], said
        assert await memory.size() == 2
        await memory.clear()
