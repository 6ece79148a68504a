"""A large memory is analysed on a worker thread wherever it is analysed: when added, when a
replica reads it back, when the Query Engine's backfill indexes it. An 8 MiB memory is 0.6-2 s
of Python; on the event loop it would stall every other request the worker serves."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import pytest

from conftest import namespace
from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import InvalidMemoryValueError
from tta_dev_primitives.memory._values import MAX_VALUE_BYTES
from tta_dev_primitives.search import Analyzer

SMALL = {"content": "a short note about the garden"}
# 60,000 characters of Chinese (180 KB): past what is analysed on the loop, and a page of its own.
LARGE = {"content": "我们在花园里种了番茄和罗勒" * 5000 + " garden"}


class Recording(Analyzer):
    """The default analyzer, noting for each memory it analyses whether the loop's thread did."""

    def __init__(self, loop_thread: int) -> None:
        super().__init__()
        self.loop_thread = loop_thread
        self.seen: list[tuple[int, bool]] = []  # (characters, analysed on the loop's thread)

    def term_counts(self, strings: Iterable[str]) -> dict[str, int]:
        strings = list(strings)
        on_loop = threading.get_ident() == self.loop_thread
        self.seen.append((sum(map(len, strings)), on_loop))
        return super().term_counts(strings)

    def large(self) -> list[bool]:
        """For each large memory analysed, whether it was on the loop's thread."""
        return [on_loop for size, on_loop in self.seen if size > 10_000]


async def test_an_added_memory_is_analysed_off_the_loop_when_large() -> None:
    """A short turn stays on the loop (a thread's hop would cost more than its analysis)."""
    analyzer = Recording(threading.get_ident())
    memory = MemoryPrimitive(analyzer=analyzer)
    await memory.add("u:s:small", SMALL)
    await memory.add("u:s:large", LARGE)
    assert analyzer.seen[0] == (len(SMALL["content"]), True)
    assert analyzer.large() == [False]
    found = await memory.search("garden", limit=5)
    assert len(found) == 2
    assert LARGE in found
    assert SMALL in found
    assert await memory.search("番茄") == [LARGE]
    # Many small parts (a tool's JSON result) are as costly to walk: off the loop too.
    parts = {"items": [{"id": i, "name": f"part {i}"} for i in range(300)]}
    await memory.add("u:s:parts", parts)
    assert analyzer.seen[-1][1] is False
    assert await memory.search("part 299") == [parts]


async def test_a_large_value_that_cannot_be_stored_is_refused_and_nothing_is_stored() -> None:
    """Checked on the worker thread, it fails as a small one does: a typed error naming where."""
    memory = MemoryPrimitive()
    bad = {"items": [{"id": i, "name": f"part {i}"} for i in range(300)]}
    bad["items"][299]["score"] = float("nan")
    with pytest.raises(InvalidMemoryValueError, match=r"value\['items'\]\[299\]\['score'\]"):
        await memory.add("u:s:bad", bad)
    too_big = {"content": "番茄" * (MAX_VALUE_BYTES // 6 + 1)}
    with pytest.raises(InvalidMemoryValueError, match="MAX_VALUE_BYTES"):
        await memory.add("u:s:big", too_big)
    assert await memory.size() == 0


async def test_a_replica_analyses_another_process_s_large_memory_off_the_loop(
    redis_server: RedisServer,
) -> None:
    ns = namespace()
    writer = MemoryPrimitive(redis_server.url, namespace=ns, search_engine="replica")
    analyzer = Recording(threading.get_ident())
    reader = MemoryPrimitive(
        redis_server.url, namespace=ns, search_engine="replica", analyzer=analyzer
    )
    await writer.add("u:s:large", LARGE)
    await writer.add("u:s:small", SMALL)
    assert await reader.search("番茄") == [LARGE]
    assert analyzer.large() == [False]
    await writer.clear()
    for memory in (writer, reader):
        await memory.aclose()


async def test_the_engine_s_backfill_analyses_a_large_memory_off_the_loop(
    redis_query_engine: RedisServer,
) -> None:
    """A namespace written without the engine: the process that asks for it reads the large
    memory twice, once into its replica (searching meanwhile), once into the engine's index."""
    ns, url = namespace(), redis_query_engine.url
    old = MemoryPrimitive(url, namespace=ns, search_engine="replica", redis_timeout=10.0)
    await old.add("u:s:large", LARGE)
    analyzer = Recording(threading.get_ident())
    new = MemoryPrimitive(
        url, namespace=ns, search_engine="redis", redis_timeout=10.0, analyzer=analyzer
    )
    assert await new.search("番茄") == [LARGE]
    await new._store.remote.index.engine.wait_backfill()  # type: ignore[union-attr]
    assert new.get_backend_info()["search_engine"] == "redis"
    assert await new.search("番茄") == [LARGE]
    assert analyzer.large() == [False]
    await old.clear()
    for memory in (old, new):
        await memory.aclose()
