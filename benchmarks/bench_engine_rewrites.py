"""The Query Engine's keyword rankings after rewrites, against in-process, in one user's namespace.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_engine_rewrites.py`` (``--size``, default
20,000 memories; ``--quick``: 2,000). Needs a Redis with the Query Engine from PyPI wheels
(``_redis_stack.py``).

The workload is the one that broke the engine's candidates: one user's memories in their own
namespace (so the user's scope is the whole namespace), 5 of them written twice (RediSearch
counts a rewritten document's old copy until its garbage collector runs, after 100), and
questions of two rare words, ``limit=10``, unscoped and scoped to the user. Two vocabularies:
``plain`` (words drawn from 3,000), and ``name`` (the same, plus "alice" in every memory and
in every question: a word in all memories, as a user's name is). Reported per vocabulary and
scope: the share of questions whose engine top 10 equals in-process's (keys and order) and the
engine's search p50 (one process, one search at a time). Seen at 20,000 memories (unscoped /
user):

| | plain, before | plain, after | name, before | name, after |
|---|---|---|---|---|
| identical | 1.00 / 0.75 | 1.00 / 1.00 | 0.51 / 0.24 | 1.00 / 1.00 |
| p50 ms | 3.83 / 4.71 | 3.83 / 4.59 | 27.2 / 27.9 | 28.9 / 35.3 |

"before" is ``0bcb227``, before the fixes of 2026-12-05; "after" is with them. With the name,
the second ask that a word in every memory brings costs 1.7 ms unscoped and 7.4 ms in the
scope, where each word also scores as an optional clause.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any
from uuid import uuid4

from _timing import bench_main
from tta_dev_primitives import MemoryPrimitive

VOCABULARY = [f"w{i}" for i in range(3000)]
LENGTHS = (3, 8, 15, 30)
REWRITES = 5
QUESTIONS = 100
SEED = 5


def memories(size: int, name: bool) -> list[tuple[str, str]]:
    rng = random.Random(SEED)
    out = []
    for i in range(size):
        words = rng.choices(VOCABULARY, k=rng.choice(LENGTHS))
        out.append((f"u1:s{i % 50}:{i}", " ".join(["alice", *words] if name else words)))
    return out


def questions(name: bool) -> list[str]:
    rng = random.Random(SEED + 1)
    who = "alice" if name else "she"
    return [
        f"what did {who} say about {rng.choice(VOCABULARY)} and {rng.choice(VOCABULARY)}?"
        for _ in range(QUESTIONS)
    ]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from _redis_stack import start_redis_stack

    size = 2_000 if args.quick else args.size
    started = start_redis_stack()
    if isinstance(started, str):
        raise SystemExit(started)
    server, described = started
    out: dict[str, Any] = {"size": size, "server": described, "sets": {}}
    try:
        for vocabulary in ("plain", "name"):
            name = vocabulary == "name"
            docs = memories(size, name)
            engine = MemoryPrimitive(
                server.url, namespace=f"rewrites:{uuid4().hex[:8]}", search_engine="redis",
                redis_timeout=30, max_size=1000,
            )  # fmt: skip
            local = MemoryPrimitive(max_size=size + 1)
            for key, text in docs + docs[:REWRITES]:
                await engine.add(key, {"content": text})
                await local.add(key, {"content": text})
            row: dict[str, Any] = {}
            for scope in (None, "u1"):
                took, identical = [], 0
                for question in questions(name):
                    start = time.perf_counter()
                    got = await engine.search_scored(question, 10, scope=scope, mode="keyword")
                    took.append(time.perf_counter() - start)
                    want = await local.search_scored(question, 10, scope=scope, mode="keyword")
                    identical += [h.key for h in got] == [h.key for h in want]
                row["unscoped" if scope is None else "user"] = {
                    "identical": identical / QUESTIONS,
                    "p50_ms": round(statistics.median(took) * 1000, 2),
                }
            out["sets"][vocabulary] = row
            await engine.clear()
            await engine.aclose()
            await local.aclose()
    finally:
        server.stop()
    return out


def report(f: dict[str, Any]) -> None:
    print(f"{f['size']:,} memories of one user, {REWRITES} written twice; {f['server']}")
    print("| words | unscoped identical | p50 ms | user identical | p50 ms |")
    print("|---|---|---|---|---|")
    for vocabulary, row in f["sets"].items():
        u, s = row["unscoped"], row["user"]
        print(f"| {vocabulary} | {u['identical']:.2f} | {u['p50_ms']:.2f} | "
              f"{s['identical']:.2f} | {s['p50_ms']:.2f} |")  # fmt: skip


def main() -> None:
    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--size", type=int, default=20_000)

    bench_main(__doc__ or "", run, report, arguments)


if __name__ == "__main__":
    main()
