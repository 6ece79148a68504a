"""Scoped keyword search against unscoped, in-process, at 100k memories: no cliff at any size.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_scopes.py`` (``--quick``: 20k memories,
``--json PATH`` to save the figures).

The 100k turns of ``_corpus.load_turns`` (real chitchat turns with the ``bench`` extra) are
keyed so that scopes of three sizes exist: ``o{o}:u{u}:s{s}:{n}``, two orgs of 50,000, ten
users of 5,000 in each org, ten sessions of 500 in each user. Each of ~200 natural-language
questions (``_corpus.questions``) is asked unscoped and in one scope of each size (the scopes
taken in turn), one after the other, so the four share the machine's noise; the figure is each
scope's p50 as a ratio of the unscoped p50 measured in the same run. Search goes through
``MemoryPrimitive.search`` (analysis included), limit 10.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from _corpus import load_turns, questions
from _timing import bench_main, table
from tta_dev_primitives import MemoryPrimitive

SIZES = {"unscoped": 0, "session (500)": 500, "user (5,000)": 5_000, "org (50,000)": 50_000}


def key_of(i: int, n: int) -> str:
    """The key of turn ``i`` of ``n``: org, user and session scopes of n/2, n/20, n/200."""
    org, user, session = n // 2, n // 20, n // 200
    return f"o{i // org}:u{(i // user) % 10}:s{(i // session) % 10}:{i % session}"


def scope_for(size: int, q: int, n: int) -> str | None:
    """The ``q``-th question's scope of about ``size`` members (scaled to ``n`` memories)."""
    if size == 0:
        return None
    if size == 50_000:
        return f"o{q % 2}"
    if size == 5_000:
        return f"o{q % 2}:u{(q // 2) % 10}"
    return f"o{q % 2}:u{(q // 2) % 10}:s{(q // 20) % 10}"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n = 20_000 if args.quick else 100_000
    corpus = load_turns(n)
    qs = questions(corpus, 200)
    memory = MemoryPrimitive(max_size=n, namespace="bench:scopes")
    for i, (_, value) in enumerate(corpus.turns):
        await memory.add(key_of(i, n), value)
    samples: dict[str, list[float]] = {name: [] for name in SIZES}
    hits: dict[str, int] = dict.fromkeys(SIZES, 0)
    for round_ in range(args.rounds):
        for q, text in enumerate(qs):
            for name, size in SIZES.items():
                scope = scope_for(size, q, n)
                start = time.perf_counter()
                found = await memory.search(text, limit=10, scope=scope)
                elapsed = (time.perf_counter() - start) * 1e3
                if round_ or args.rounds == 1:  # the first round warms caches (scope masks)
                    samples[name].append(elapsed)
                    hits[name] += len(found)
    base = statistics.median(samples["unscoped"])
    rows = []
    for name, values in samples.items():
        ordered = sorted(values)
        p50 = statistics.median(ordered)
        p95 = ordered[round(0.95 * (len(ordered) - 1))]
        rows.append({"scope": name, "p50_ms": p50, "p95_ms": p95, "vs_unscoped": p50 / base,
                     "mean_hits": hits[name] / len(values)})  # fmt: skip
    return {"memories": n, "questions": len(qs), "source": corpus.source, "rows": rows}


def report(figures: dict[str, Any]) -> None:
    print(f"{figures['memories']:,} memories, {figures['questions']} questions; "
          f"{figures['source']}")  # fmt: skip
    headers = ["scope", "p50 ms", "p95 ms", "p50 / unscoped", "hits"]
    cells = [[r["scope"], r["p50_ms"], r["p95_ms"], r["vs_unscoped"], r["mean_hits"]]
             for r in figures["rows"]]  # fmt: skip
    print(table(headers, cells))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rounds", type=int, default=4, help="rounds; the first only warms, unless alone"
    )


if __name__ == "__main__":
    bench_main(__doc__ or "", run, report, add_arguments)
