"""Field filters in-process (issue 20): ``search(..., filter=...)`` against post-filtering.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_filter.py`` (``--size``, default 100,000;
``--quick``: 2,000). Memories are chat turns ``{"role", "content", "topic", "user_id",
"timestamp"}``; ``topic`` is one of 1,000 labels, so a topic filter keeps 0.1% of them.

In one run, on one index, for the same keyword query and ``limit=10``:

- *filter*: ``search(query, 10, filter={"topic": t})``: the index narrows before its top-k.
- *post-filter*: what a caller without it does (the LangGraph adapter did): ask for 40, keep the
  matches, ask for 4x more until 10 are kept or the matches run out.
- *unfiltered*: ``search(query, 10)``, the cost a filter adds to.
- *scoped*: in one user's memories (one of 500 users), with ``filter={"role": "user"}``
  (half of every user's turns: the agent recall that leaves out its own replies) and without.

Reported: p50 per search and the ratios post-filter / filter and filter / unfiltered; and the
bytes per memory with facets indexed against the same memories without them (tracemalloc).
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc
from typing import Any
from unittest import mock

from _timing import bench_main, table
from tta_dev_primitives import MemoryPrimitive

WORDS = ["garden", "tea", "train", "paris", "dog", "piano", "storm", "bread", "chess", "river",
         "window", "coffee", "mountain", "letter", "summer", "market"]  # fmt: skip
TOPICS = 1_000


def turns(size: int) -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(20261204)
    out = []
    for i in range(size):
        words = " ".join(rng.choice(WORDS) for _ in range(8))
        value = {
            "role": "user" if i % 2 else "assistant", "content": f"about the {words}",
            "topic": f"t{rng.randrange(TOPICS)}", "user_id": f"u{i % 500}", "timestamp": i + 0.5,
        }  # fmt: skip
        out.append((f"u{i % 500}:s{i % 7}:{i}", value))
    return out


async def filled(rows: list[tuple[str, dict[str, Any]]]) -> tuple[MemoryPrimitive, int]:
    """A memory holding ``rows``, and the bytes it took to add them."""
    gc.collect()
    tracemalloc.start()
    memory = MemoryPrimitive(max_size=len(rows))
    for key, value in rows:
        await memory.add(key, value)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return memory, used


def no_facets(value: Any) -> list[str]:
    """Indexing as before filters: no facets (a plain function: a mock would keep every value)."""
    return []


async def post_filtered(memory: MemoryPrimitive, query: str, topic: str) -> list[Any]:
    fetch = 40
    while True:
        found = await memory.search(query, fetch)
        kept = [v for v in found if v["topic"] == topic]
        if len(kept) >= 10 or len(found) < fetch:
            return kept[:10]
        fetch *= 4


async def p50_ms(call: Any, args: list[tuple[str, str]]) -> float:
    times = []
    for query, topic in args:
        start = time.perf_counter()
        await call(query, topic)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    size = 2_000 if args.quick else args.size
    rows = turns(size)
    warm, _ = await filled(rows[:1_000])  # one-time costs (imports, the analyzer's cache) first
    await warm.aclose()
    with mock.patch("tta_dev_primitives.search._indexing.facets", no_facets):
        bare, bare_bytes = await filled(rows)
    await bare.aclose()
    del bare
    memory, bytes_used = await filled(rows)
    rng = random.Random(7)
    asks = [(" ".join(rng.sample(WORDS, 2)), f"t{rng.randrange(TOPICS)}") for _ in range(60)]

    async def with_filter(query: str, topic: str) -> Any:
        return await memory.search(query, 10, filter={"topic": topic})

    async def without(query: str, topic: str) -> Any:
        return await memory.search(query, 10)

    async def post(query: str, topic: str) -> Any:
        return await post_filtered(memory, query, topic)

    for query, topic in asks[:5]:  # the same answers either way
        assert await with_filter(query, topic) == await post(query, topic)
    filtered, posted, plain = [await p50_ms(f, asks) for f in (with_filter, post, without)]
    users = [(query, f"u{i % 500}") for i, (query, _) in enumerate(asks)]

    async def scoped_role(query: str, user: str) -> Any:
        return await memory.search(query, 10, scope=user, filter={"role": "user"})

    async def scoped(query: str, user: str) -> Any:
        return await memory.search(query, 10, scope=user)

    scoped_filtered, scoped_plain = [await p50_ms(f, users) for f in (scoped_role, scoped)]
    await memory.aclose()
    return {
        "memories": size, "filter_ms": filtered, "post_filter_ms": posted, "unfiltered_ms": plain,
        "bytes_per_memory": bytes_used / size, "bytes_per_memory_without_facets": bare_bytes / size,
        "scoped_filter_ms": scoped_filtered, "scoped_ms": scoped_plain,
    }  # fmt: skip


def report(r: dict[str, Any]) -> None:
    print(f"{r['memories']:,} memories, keyword query, limit=10, a filter keeping 0.1%")
    print(table(
        ["filter p50 ms", "post-filter p50 ms", "unfiltered p50 ms", "post / filter",
         "filter / unfiltered"],
        [[r["filter_ms"], r["post_filter_ms"], r["unfiltered_ms"],
          f"{r['post_filter_ms'] / r['filter_ms']:.1f}x",
          f"{r['filter_ms'] / r['unfiltered_ms']:.2f}x"]],
    ))  # fmt: skip
    print(f"in one user's {r['memories'] // 500:,} memories: role filter p50 "
          f"{r['scoped_filter_ms']:.3f} ms, unfiltered {r['scoped_ms']:.3f} ms "
          f"({r['scoped_filter_ms'] / r['scoped_ms']:.2f}x)")  # fmt: skip
    print(f"bytes per memory: {r['bytes_per_memory']:,.0f} with facets, "
          f"{r['bytes_per_memory_without_facets']:,.0f} without")  # fmt: skip
    print("filter benchmark done")


def main() -> None:
    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--size", type=int, default=100_000, help="memories")

    bench_main(__doc__ or "", run, report, arguments)


if __name__ == "__main__":
    main()
