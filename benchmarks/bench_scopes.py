"""Scoped keyword search against unscoped, in-process, at 100k memories: no cliff at any size.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_scopes.py`` (``--quick``: 20k memories,
``--size N``: N memories, scopes scaled alike; ``--json PATH`` to save the figures).

The 100k turns of ``_corpus.load_turns`` (real chitchat turns with the ``bench`` extra) are
keyed so that scopes of three sizes exist: ``o{o}:u{u}:s{s}:{n}``, two orgs of 50,000, ten
users of 5,000 in each org, ten sessions of 500 in each user. Each of ~200 natural-language
questions (``_corpus.questions``) is asked unscoped and in one scope of each size (the scopes
taken in turn), one after the other, so the four share the machine's noise; the figure is each
scope's p50 as a ratio of the unscoped p50 measured in the same run. Search goes through
``MemoryPrimitive.search`` (analysis included), limit 10.

Then the index alone (``SearchIndex``, the same turns, analysed alike), unscoped and in the user
scope, each question asked twice in turn: as now, and summing every match into arrays the
index's size, as every version before did (``DenseTerms``); their answers are checked equal.

Last, many users: the same turns in users of 2,000 (at least 33 users), each question asked
unscoped, in the user searched just before (its mask cached) and in the next user in turn (a
user not searched since more than ``MAX_MASKS`` others were: its members read afresh), as a
process serving many users searches them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from _corpus import load_turns, questions
from _timing import bench_main, table
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.search._arrays import gather, numpy
from tta_dev_primitives.search._bm25 import bm25, length_b
from tta_dev_primitives.search._index import SearchIndex
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.search._scope_index import MAX_MASKS
from tta_dev_primitives.search._term_index import Plan, TermIndex


class DenseTerms(TermIndex):
    """The previous scoring: every search summed its matches into a float array and a byte
    mask the index's size, however few they were."""

    __slots__ = ()

    def score(self, plan: Plan) -> tuple[Any, Any]:
        expansions, order, idfs, avg_len, matches, typed = plan
        np = numpy()
        size = len(self._live)
        acc = np.zeros(size, dtype=np.float64)
        touched = np.zeros(size, dtype=np.bool_)
        b = length_b(avg_len)
        for i in order:
            m = self._read(expansions[i], None, typed[i]) if matches is None else matches[i]
            acc[m.d] += bm25(m.tf, m.length, avg_len, idfs[i], b)
            touched[m.d] = True
        candidates = np.flatnonzero(touched)
        if matches is None:
            candidates = candidates[gather(np, self._live, np.bool_, candidates)]
        return candidates, acc[candidates]


def dense_against_sparse(turns: list[Any], qs: list[str], n: int, rounds: int) -> list[Any]:
    """p50 ms of the index alone, as now and as before (``DenseTerms``), interleaved."""
    analyse = Indexing()
    index = SearchIndex()
    for i, (_, value) in enumerate(turns):
        index.add(key_of(i, n), analyse.analyzer.term_counts([value["content"]]))
    queries = [analyse.analyzer.query(text) for text in qs]
    terms = index._terms
    rows = []
    for level in (0, 2):
        times: dict[type, list[float]] = {TermIndex: [], DenseTerms: []}
        for round_ in range(rounds):
            for q, query in enumerate(queries):
                scope = scope_for(level, q)
                answers = []
                for kind in (TermIndex, DenseTerms) if q % 2 else (DenseTerms, TermIndex):
                    terms.__class__ = kind
                    start = time.perf_counter()
                    answers.append(index.search_scored(query, 10, scope))
                    if round_ or rounds == 1:
                        times[kind].append((time.perf_counter() - start) * 1e3)
                assert answers[0] == answers[1], query
        terms.__class__ = TermIndex
        now, before = (statistics.median(times[kind]) for kind in (TermIndex, DenseTerms))
        rows.append(["unscoped" if not level else f"user ({n // 20:,})", before, now, now / before])
    return rows


def many_users(turns: list[Any], qs: list[str], rounds: int) -> dict[str, Any]:
    """p50 ms of the index alone, unscoped, in the user searched last and in a user not
    searched lately, the three asked in turn question by question."""
    users = max(MAX_MASKS + 1, len(turns) // 2000)
    analyse = Indexing()
    index = SearchIndex()
    for i, (_, value) in enumerate(turns):
        index.add(f"m{i % users}:s{i % 7}:{i}", analyse.analyzer.term_counts([value["content"]]))
    queries = [analyse.analyzer.query(text) for text in qs]
    times: dict[str, list[float]] = {"unscoped": [], "lately": [], "not lately": []}
    turn = 0
    for round_ in range(rounds):
        for query in queries:
            turn += 1
            for name, scope in (("unscoped", None), ("not lately", f"m{turn % users}"),
                                ("lately", f"m{turn % users}")):  # fmt: skip
                start = time.perf_counter()
                index.search_scored(query, 10, scope)
                if round_ or rounds == 1:
                    times[name].append((time.perf_counter() - start) * 1e3)
    p50 = {name: statistics.median(values) for name, values in times.items()}
    return {"users": users, "members": len(turns) // users, "p50": p50}


#: Each scope by its level in the key (0: unscoped), and its share of the memories.
LEVELS = {"unscoped": (0, 1), "session": (3, 200), "user": (2, 20), "org": (1, 2)}


def key_of(i: int, n: int) -> str:
    """The key of turn ``i`` of ``n``: org, user and session scopes of n/2, n/20, n/200."""
    org, user, session = n // 2, n // 20, n // 200
    return f"o{i // org}:u{(i // user) % 10}:s{(i // session) % 10}:{i % session}"


def scope_for(level: int, q: int) -> str | None:
    """The ``q``-th question's scope at ``level`` (1 org, 2 user, 3 session; 0 unscoped)."""
    parts = [f"o{q % 2}", f"u{(q // 2) % 10}", f"s{(q // 20) % 10}"][:level]
    return ":".join(parts) or None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.size or (20_000 if args.quick else 100_000)
    names = {name: name if level == 0 else f"{name} ({n // share:,})"
             for name, (level, share) in LEVELS.items()}  # fmt: skip
    corpus = load_turns(n)
    qs = questions(corpus, 200)
    memory = MemoryPrimitive(max_size=n, namespace="bench:scopes")
    for i, (_, value) in enumerate(corpus.turns):
        await memory.add(key_of(i, n), value)
    samples: dict[str, list[float]] = {name: [] for name in names.values()}
    hits: dict[str, int] = dict.fromkeys(names.values(), 0)
    for round_ in range(args.rounds):
        for q, text in enumerate(qs):
            for level_name, (level, _) in LEVELS.items():
                name, scope = names[level_name], scope_for(level, q)
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
    dense = dense_against_sparse(corpus.turns, qs, n, args.rounds)
    users = many_users(corpus.turns, qs, args.rounds)
    return {"memories": n, "questions": len(qs), "source": corpus.source, "rows": rows,
            "index_alone": dense, "many_users": users}  # fmt: skip


def report(figures: dict[str, Any]) -> None:
    print(f"{figures['memories']:,} memories, {figures['questions']} questions; "
          f"{figures['source']}")  # fmt: skip
    headers = ["scope", "p50 ms", "p95 ms", "p50 / unscoped", "hits"]
    cells = [[r["scope"], r["p50_ms"], r["p95_ms"], r["vs_unscoped"], r["mean_hits"]]
             for r in figures["rows"]]  # fmt: skip
    print(table(headers, cells))
    print("\nthe index alone, p50 ms: summing into arrays the index's size (before) and now")
    print(table(["scope", "before", "now", "now / before"], figures["index_alone"]))
    many = figures["many_users"]
    p50 = many["p50"]
    print(f"\nthe index alone, {many['users']} users of {many['members']:,}, p50 ms: a user "
          "searched just before, and one not searched lately (read afresh)")  # fmt: skip
    cells = [[name, value, value / p50["unscoped"]] for name, value in p50.items()]
    print(table(["search", "p50 ms", "p50 / unscoped"], cells))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rounds", type=int, default=4, help="rounds; the first only warms, unless alone"
    )
    parser.add_argument("--size", type=int, default=0, help="memories (default 100,000)")


if __name__ == "__main__":
    bench_main(__doc__ or "", run, report, add_arguments)
