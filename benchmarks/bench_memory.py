"""MemoryPrimitive in-process: search against a linear scan, add/get rates, bytes per memory.

Run: ``.venv/bin/python benchmarks/bench_memory.py`` (``--quick`` for a smoke run, ``--json PATH``
to save the figures). Both sides search the same synthetic conversation memories in one run:

- *index*: ``MemoryPrimitive.search`` (inverted index, BM25, prefixes, scopes).
- *scan*: the design document's original approach, a linear scan of each item's JSON text for
  the query's words, over every item (needed to rank or to pick the newest matches).
- *scan-first-k*: the same scan stopping at the first ``limit`` matches (unranked, oldest first);
  reported for completeness, since a common word is found after a few items.

*Questions* (``--question-sizes``, default 100000,1000000; ``--quick``: 2000): real conversation
turns (``_corpus.py``: the chitchat-dataset corpus, or a labelled synthetic fallback) and ~200
natural-language questions of 8-12 words (``--questions``). p50/p95/p99 of
``MemoryPrimitive.search(question, limit=10)`` in-process, unscoped and scoped to one user
(~500 memories), next to tantivy and SQLite FTS5 in RAM on the same texts and questions
(``_peers.py``), with ratios ours/peer; the add rate; and one ~1 MB query of random words
against the 100k size (``--long-query-bytes``; 0 skips it). ``--sizes ''`` skips the
synthetic sections above.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from _corpus import load_turns, long_query, questions
from _peers import Fts5Peer, TantivyPeer
from _timing import bench_main, table
from tta_dev_primitives import (
    CachePrimitive,
    LambdaPrimitive,
    MemoryPrimitive,
    WorkflowContext,
    create_memory_key,
)

SEED = 20261124


def make_vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    """Pronounceable pseudo-words, so prefixes behave like natural language."""
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    words: set[str] = set()
    while len(words) < size:
        syllables = rng.choice((2, 2, 3, 3, 4))
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables)))
    return sorted(words)


def make_memories(n: int, rng: random.Random) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """``n`` conversation turns: 12-30 Zipf-distributed words, keys per user and session."""
    vocab = make_vocabulary(rng)
    # Cumulative weights, summed once: ``choices(weights=...)`` sums all 20,000 on every call
    # (the same words come out either way).
    cum_weights = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(vocab))))
    items = []
    for i in range(n):
        words = rng.choices(vocab, cum_weights=cum_weights, k=rng.randint(12, 30))
        user, session = f"u{i % 1000}", f"s{(i // 1000) % 5}"
        key = create_memory_key(user, session, {"turn": i})
        items.append(
            (
                key,
                {
                    "role": "user" if i % 2 == 0 else "assistant",
                    "content": " ".join(words).capitalize() + ".",
                    "timestamp": f"2026-11-24T10:{(i // 60) % 60:02d}:{i % 60:02d}Z",
                },
            )
        )
    return items, vocab


def doc_frequencies(items: list[tuple[str, dict[str, Any]]]) -> dict[str, int]:
    df: dict[str, int] = {}
    for _, value in items:
        for word in set(value["content"].lower().rstrip(".").split()):
            df[word] = df.get(word, 0) + 1
    return df


def pick_queries(
    items: list[tuple[str, dict[str, Any]]], rng: random.Random, count: int
) -> dict[str, list[str]]:
    """Query sets: rare (df 1-5), common (top 5 words), two-word (rare + common), prefix."""
    df = doc_frequencies(items)
    by_df = sorted(df, key=lambda w: -df[w])
    common = by_df[:5]
    rare = [w for w in df if 1 <= df[w] <= 5]
    mid = [w for w in by_df[50:2000] if len(w) >= 5]
    return {
        "rare-term": rng.sample(rare, min(count, len(rare))),
        "common-term": [common[i % len(common)] for i in range(count)],
        "two-word": [f"{rng.choice(rare)} {rng.choice(common)}" for _ in range(count)],
        "prefix": [w[:4] for w in rng.sample(mid, min(count, len(mid)))],
    }


class Scan:
    """The seed's approach: values as they were added, matched by substring in their JSON."""

    def __init__(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        self.items = dict(items)

    def search(self, query: str, limit: int, scope: str | None, first_k: bool) -> list[Any]:
        words = query.lower().split()
        found = []
        for key, value in self.items.items():
            if scope is not None and not key.startswith(scope + ":"):
                continue
            text = json.dumps(value).lower()
            if any(word in text for word in words):
                found.append(value)
                if first_k and len(found) == limit:
                    break
        return found[-limit:] if not first_k else found


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    return statistics.median(samples), p99


async def time_async(call: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        out.append((time.perf_counter() - start) * 1e3)
    return out


def time_sync(call: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1e3)
    return out


async def bench_size(n: int, quick: bool) -> dict[str, Any]:
    rng = random.Random(SEED + n)
    items, _ = make_memories(n, rng)
    memory = MemoryPrimitive(max_size=n)
    start = time.perf_counter()
    for key, value in items:
        await memory.add(key, value)
    add_seconds = time.perf_counter() - start

    # Memory per stored memory, in a pass of its own: tracemalloc slows allocation severalfold.
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    measured = MemoryPrimitive(max_size=n)
    for key, value in items:
        await measured.add(key, value)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del measured
    gc.collect()

    json_bytes = sum(len(json.dumps(v, ensure_ascii=False)) for _, v in items) / n

    keys = [k for k, _ in rng.sample(items, min(20_000, n))]
    start = time.perf_counter()
    for key in keys:
        await memory.get(key)
    get_rate = len(keys) / (time.perf_counter() - start)

    scan = Scan(items)
    queries = pick_queries(items, rng, 30 if quick else 200)
    scan_runs = 2 if quick else (5 if n > 50_000 else 15)
    scopes = {"global": None, "scoped": "u17:s0"}
    rows = []
    for qtype, qs in queries.items():
        for scope_name, scope in scopes.items():
            index_ms = []
            for q in qs:
                index_ms += await time_async(lambda q=q, s=scope: memory.search(q, 5, scope=s), 1)
            scan_ms, first_ms = [], []
            for q in qs[:scan_runs]:
                scan_ms += time_sync(lambda q=q, s=scope: scan.search(q, 5, s, False), 1)
                first_ms += time_sync(lambda q=q, s=scope: scan.search(q, 5, s, True), 1)
            p50, p99 = percentiles(index_ms)
            s50, _ = percentiles(scan_ms)
            f50, _ = percentiles(first_ms)
            row = {"query": qtype, "scope": scope_name, "index_p50_ms": p50, "index_p99_ms": p99,
                   "scan_p50_ms": s50, "scan_first_k_p50_ms": f50, "speedup": s50 / p50,
                   "speedup_vs_first_k": f50 / p50}  # fmt: skip
            rows.append(row)
    return {
        "memories": n,
        "adds_per_s": n / add_seconds,
        "gets_per_s": get_rate,
        "bytes_per_memory": used / n,
        "json_bytes_per_memory": json_bytes,
        "search": rows,
    }


async def bench_cache(quick: bool) -> dict[str, float]:
    async def wrapped(x: int, ctx: WorkflowContext) -> dict[str, int]:
        return {"x": x}

    step = LambdaPrimitive(wrapped)
    cache = CachePrimitive(step, lambda x, ctx: "k")
    ctx = WorkflowContext()
    await cache.execute(1, ctx)
    n = 20_000 if quick else 200_000
    start = time.perf_counter()
    for _ in range(n):
        await cache.execute(1, ctx)
    hit_us = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for _ in range(n):
        await step.execute(1, ctx)
    bare_us = (time.perf_counter() - start) / n * 1e6
    return {"cache_hit_us": hit_us, "wrapped_call_us": bare_us}


def report(results: list[dict[str, Any]], cache: dict[str, float]) -> None:
    for r in results:
        print(f"\n== {r['memories']:,} memories ==")
        print(f"add: {r['adds_per_s']:,.0f}/s   get: {r['gets_per_s']:,.0f}/s   "
              f"memory: {r['bytes_per_memory']:,.0f} B per memory "
              f"(its JSON: {r['json_bytes_per_memory']:,.0f} B)")  # fmt: skip
        print(f"{'query':<12} {'scope':<7} {'p50 ms':>9} {'p99 ms':>9} {'scan ms':>10} "
              f"{'x faster':>9} {'first-k ms':>11} {'x':>7}")  # fmt: skip
        for row in r["search"]:
            print(f"{row['query']:<12} {row['scope']:<7} {row['index_p50_ms']:>9.3f} "
                  f"{row['index_p99_ms']:>9.3f} {row['scan_p50_ms']:>10.2f} "
                  f"{row['speedup']:>9.0f} {row['scan_first_k_p50_ms']:>11.3f} "
                  f"{row['speedup_vs_first_k']:>7.1f}")  # fmt: skip
    print(f"\nCachePrimitive hit: {cache['cache_hit_us']:.2f} us   "
          f"wrapped primitive call: {cache['wrapped_call_us']:.2f} us")  # fmt: skip


def pct(samples: list[float]) -> dict[str, float]:
    """p50, p95 and p99 (nearest rank) of the samples."""
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50": statistics.median(ordered), "p95": at(0.95), "p99": at(0.99)}


async def bench_questions(n: int, count: int, long_bytes: int) -> dict[str, Any]:
    """Natural-language questions over ``n`` real turns: ours against tantivy and FTS5."""
    corpus = load_turns(n)
    qs = questions(corpus, count)
    # One user's scope per question, spread over the users (each ~500 memories).
    users = [f"u{(i * 37) % corpus.users}" for i in range(len(qs))]
    memory = MemoryPrimitive(max_size=n, namespace="bench:questions")
    start = time.perf_counter()
    for key, value in corpus.turns:
        await memory.add(key, value)
    add_s = time.perf_counter() - start
    builds: dict[str, float] = {}
    peers: list[Any] = []
    start = time.perf_counter()
    tantivy_peer = TantivyPeer.create(corpus.turns)
    if tantivy_peer is not None:
        builds[tantivy_peer.name] = time.perf_counter() - start
        peers.append(tantivy_peer)
    start = time.perf_counter()
    fts = Fts5Peer(corpus.turns)
    builds[fts.name] = time.perf_counter() - start
    peers.append(fts)

    rows = []
    for scope_name in ("unscoped", "user"):
        samples: dict[str, list[float]] = {"ours": [], **{p.name: [] for p in peers}}
        hits: dict[str, int] = dict.fromkeys(samples, 0)
        # Each engine answers every question in a row, as a service would, so no engine's
        # caches are evicted by another's between two of its questions.
        for q, user in zip(qs, users, strict=True):
            scope = user if scope_name == "user" else None
            start = time.perf_counter()
            found = await memory.search(q, limit=10, scope=scope)
            samples["ours"].append((time.perf_counter() - start) * 1e3)
            hits["ours"] += len(found)
        for peer in peers:
            for q, user in zip(qs, users, strict=True):
                scope = user if scope_name == "user" else None
                start = time.perf_counter()
                got = peer.search(q, 10, scope)
                samples[peer.name].append((time.perf_counter() - start) * 1e3)
                hits[peer.name] += len(got)
        ours = pct(samples["ours"])
        for engine, values in samples.items():
            p = pct(values)
            rows.append({
                "scope": scope_name, "engine": engine, "p50_ms": p["p50"], "p95_ms": p["p95"],
                "p99_ms": p["p99"], "mean_hits": hits[engine] / len(qs),
                "ours_over_peer_p50": ours["p50"] / p["p50"] if p["p50"] else None,
                "ours_over_peer_p99": ours["p99"] / p["p99"] if p["p99"] else None,
            })  # fmt: skip
    result: dict[str, Any] = {
        "memories": n, "corpus": corpus.source, "real_corpus": corpus.real,
        "corpus_notes": corpus.notes, "users": corpus.users, "questions": len(qs),
        "question_examples": qs[:3], "adds_per_s": n / add_s, "peer_build_s": builds,
        "peers_missing": [] if tantivy_peer is not None else ["tantivy (not installed)"],
        "search": rows,
    }  # fmt: skip
    if long_bytes:
        text = long_query(corpus, long_bytes)
        calls = []
        for _ in range(5):  # the first call, then four more (one call's figure varied 2x)
            start = time.perf_counter()
            await memory.search(text, limit=10)
            calls.append((time.perf_counter() - start) * 1e3)
        result["long_query"] = {"bytes": len(text.encode()), "words": text.count(" ") + 1,
                                "ours_ms": calls[0],
                                "ours_p50_ms": statistics.median(calls)}  # fmt: skip
    await memory.clear()
    return result


def report_questions(results: list[dict[str, Any]]) -> None:
    for r in results:
        print(f"\n== questions: {r['questions']} natural-language questions over "
              f"{r['memories']:,} conversation turns, in-process, limit=10 ==")  # fmt: skip
        print(f"corpus: {r['corpus']}; {'; '.join(r['corpus_notes'])}; {r['users']:,} users")
        print(f"e.g. {r['question_examples'][0]!r}")
        builds = ", ".join(f"{k} {v:.1f} s" for k, v in r["peer_build_s"].items())
        print(f"add: {r['adds_per_s']:,.0f}/s in-process   (peers' index builds: {builds})")
        for missing in r["peers_missing"]:
            print(f"peer skipped: {missing}")
        print(table(
            ["scope", "engine", "p50 ms", "p95 ms", "p99 ms", "hits", "ours/peer p50",
             "ours/peer p99"],
            [[x["scope"], x["engine"], x["p50_ms"], x["p95_ms"], x["p99_ms"], x["mean_hits"],
              "" if x["engine"] == "ours" else x["ours_over_peer_p50"],
              "" if x["engine"] == "ours" else x["ours_over_peer_p99"]]
             for x in r["search"]],
        ))  # fmt: skip
        if "long_query" in r:
            lq = r["long_query"]
            print(f"one {lq['bytes']:,}-byte query ({lq['words']:,} random words) against "
                  f"{r['memories']:,}: ours {lq['ours_ms']:,.1f} ms the first call, "
                  f"p50 of five {lq['ours_p50_ms']:,.1f} ms")  # fmt: skip


async def main_async(
    sizes: list[int], quick: bool, question_sizes: list[int], count: int, long_bytes: int
) -> dict[str, Any]:
    results = [await bench_size(n, quick) for n in sizes]
    cache = await bench_cache(quick)
    asked = []
    for n in question_sizes:
        # The long query runs once: against 100k, or the first size if 100k is not asked for.
        long_n = 100_000 if 100_000 in question_sizes else question_sizes[0]
        asked.append(await bench_questions(n, count, long_bytes if n == long_n else 0))
    return {"memory": results, "cache": cache, "questions": asked}


def main() -> None:
    def sizes(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--sizes", default="10000,100000", help="comma-separated counts")
        parser.add_argument("--question-sizes", default=None,
                            help="comma-separated turn counts for the questions section "
                                 "(default 100000,1000000; --quick: 2000; '' skips)")  # fmt: skip
        parser.add_argument("--questions", type=int, default=None,
                            help="how many questions (default 200; --quick: 30)")  # fmt: skip
        parser.add_argument("--long-query-bytes", type=int, default=1_000_000,
                            help="size of the one long query (0 skips it)")  # fmt: skip

    def counts(text: str) -> list[int]:
        return [int(n) for n in text.split(",") if n.strip()]

    def run(args: argparse.Namespace) -> Any:
        default_q = "2000" if args.quick else "100000,1000000"
        q_sizes = counts(default_q if args.question_sizes is None else args.question_sizes)
        count = args.questions or (30 if args.quick else 200)
        return main_async(counts(args.sizes), args.quick, q_sizes, count, args.long_query_bytes)

    bench_main(__doc__ or "", run, report_figures, sizes)


def report_figures(figures: dict[str, Any]) -> None:
    report(figures["memory"], figures["cache"])
    report_questions(figures["questions"])


if __name__ == "__main__":
    main()
