"""Review of the off-loop analysis of large memories: what still ran a large value through
Python on the event loop."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import Iterable
from typing import Any, ClassVar

import pytest

from conftest import eventually
from tta_dev_primitives import MemoryPrimitive, _blocked
from tta_dev_primitives.search import Analyzer


class Probe(dict[str, Any]):
    """A field of a value that notes each thread that walks its items (a check or encoding)."""

    walked: ClassVar[list[int]] = []

    def items(self) -> Any:
        Probe.walked.append(threading.get_ident())
        return super().items()


LARGE_TEXT = "the garden grows tomatoes and basil " * 500  # 18,000 characters


async def test_the_langgraph_store_checks_a_large_value_off_the_loop() -> None:
    """``aput`` checked the whole value (a walk and a JSON encoding: 0.36 s for 150,000 small
    objects) on the event loop before ``add`` did it again on a worker thread."""
    pytest.importorskip("langgraph.store.base")
    from tta_dev_primitives.integrations.langgraph import MemoryPrimitiveStore

    store = MemoryPrimitiveStore(MemoryPrimitive())
    Probe.walked.clear()
    value = {"content": LARGE_TEXT, "meta": Probe(lang="en")}
    await store.aput(("docs",), "large", value)
    assert Probe.walked, "the value was never checked"
    assert threading.get_ident() not in Probe.walked
    item = await store.aget(("docs",), "large")
    assert item is not None
    assert item.value == {"content": LARGE_TEXT, "meta": {"lang": "en"}}
    # A small value is still checked at once, on the loop, as before.
    Probe.walked.clear()
    await store.aput(("docs",), "small", {"content": "a note", "meta": Probe(lang="en")})
    assert threading.get_ident() in Probe.walked


class Gate(Analyzer):
    """The default analyzer, holding each large memory's analysis until ``opened`` is set, and
    noting the first character of each one it analysed."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = threading.Event()
        self.started: list[str] = []

    def term_counts(self, strings: Iterable[str]) -> dict[str, int]:
        strings = list(strings)
        if sum(map(len, strings)) > 10_000:
            self.started.append(strings[0][:1])
            self.opened.wait(60)
        return super().term_counts(strings)


async def test_a_large_add_cancelled_while_it_waits_for_its_turn_is_never_analysed() -> None:
    """Two large memories are analysed at a time; the others wait their turn on the loop,
    holding no thread (a burst of 60 held 60 threads, and a container's thread limit would
    fail the adds). One cancelled meanwhile (a request timed out) is never analysed: its
    analysis ran later, CPU and GIL under the very load that makes requests time out."""
    analyzer = Gate()
    memory = MemoryPrimitive(analyzer=analyzer)
    running = [asyncio.create_task(memory.add(f"u:s:{c}", {"content": c * 20_000})) for c in "ab"]
    await eventually(lambda: len(analyzer.started) == 2)  # both turns taken
    waiting = [asyncio.create_task(memory.add(f"u:s:{c}", {"content": c * 20_000}))
               for c in "cdefgh"]  # fmt: skip
    for _ in range(5):
        await asyncio.sleep(0)  # each reaches its wait for a turn
    threads = _blocked._own_threads
    assert threads is not None
    assert threads.busy == 2  # (DaemonExecutor) only the two analyses hold threads
    waiting[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting[0]
    analyzer.opened.set()
    await asyncio.gather(*running, *waiting[1:])
    await eventually(lambda: threads.busy == 0)  # every thread has finished its call
    assert sorted(analyzer.started) == list("abdefgh")
    assert await memory.get("u:s:c") is None
    assert await memory.size() == 7


async def test_a_large_memory_is_decoded_off_the_loop_when_read() -> None:
    """get, search, list_memories and items decoded a large memory's JSON on the event loop:
    0.2 s for 150,000 small objects, as long as the analysis this week moved off it."""
    memory = MemoryPrimitive()
    value = {"content": "garden", "items": [{"id": i, "name": f"part {i}"} for i in range(4000)]}
    await memory.add("u:s:large", value)
    await memory.add("u:s:small", {"content": "a small garden"})
    loads = json.loads.__code__
    on_loop: list[int] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is loads and len(frame.f_locals["s"]) > 100_000:
            on_loop.append(len(frame.f_locals["s"]))

    sys.setprofile(profile)  # (this thread only: the loop's)
    try:
        got = await memory.get("u:s:large")
        found = await memory.search("garden", limit=5)
        page = await memory.list_memories(limit=10)
        every = [(key, item) async for key, item, _ in memory.items()]
    finally:
        sys.setprofile(None)
    assert on_loop == []
    assert got == value
    assert value in found
    assert {"content": "a small garden"} in found
    assert dict(page.items) == {"u:s:large": value, "u:s:small": {"content": "a small garden"}}
    assert dict(every) == dict(page.items)
