"""How long one write stalls the event loop when a long-running memory churns, in-process.

Rewriting a memory (an agent updating what it knows, a TTL running out) gives it a new number
in the index; once most numbers belong to the removed, the index renumbers in the write that
tips it over. That write is one synchronous call on the event loop: every other request of the
worker waits for it. Ours remaps every structure in numpy and keeps the HNSW graph's vectors
under their new numbers (``SearchIndex._renumber``); the peer, in the same run, is what every
version before did: re-add each live document, with the graph starting over empty.

The corpus is ``_corpus.load_turns`` (real chitchat turns with the ``bench`` extra), analysed as
``MemoryPrimitive`` does, keyed ``u{u}:s{s}:{n}``, each with a random unit vector of 384
dimensions (MiniLM's; what the vector is does not change what a write costs). Each index is
filled, then random memories are rewritten until it has renumbered twice; reported: the
longest write (the loop's stall), the write p99, and semantic and keyword search p50 right
after the renumbering (natural-language questions, ``_corpus.questions``), where the peer's
graph has to catch up.

    nice -n 5 .venv/bin/python benchmarks/bench_churn.py [--quick] [--size N] [--keyword-only]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import replace
from typing import Any

import numpy as np

from _corpus import load_turns, questions
from _timing import bench_main, percentiles, table
from tta_dev_primitives.search._index import SearchIndex
from tta_dev_primitives.search._indexing import Indexing

DIM = 384


class ReaddIndex(SearchIndex):
    """The peer: renumbering re-adds every live document, the graph starting over empty."""

    def _renumber(self) -> None:
        docs = sorted(self._docs.values(), key=lambda doc: doc[4])
        vectors = [self.vectors(doc[0]) for doc in docs]
        seq = self._seq
        self._vectors.clear(keep_dim=True)
        self._terms.clear()
        self._reset()
        for key, terms, tfs, length, recency in docs:
            self._add(key, dict(zip(terms, tfs, strict=True)), recency, None, length)
        vectors_ = self._vectors
        vectors_._no_usearch = True  # as before: the graph is not fed while re-adding
        for (key, *_), vec in zip(docs, vectors, strict=True):
            if vec is not None:
                vectors_._store_vector(self._by_key[key], vec[0])
        vectors_._no_usearch = False
        self._seq = seq


def measure(
    kind: type[SearchIndex], texts: list[str], counts: list[dict[str, int]], qs: list[str],
    vectors: Any, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """Fill an index of kind ``kind``, churn it through two renumberings, time it."""
    n = len(texts)
    index = kind()
    keys = [f"u{i // 500}:s{(i // 50) % 10}:{i % 50}" for i in range(n)]
    start = time.perf_counter()
    for i in range(n):
        index.add(keys[i], counts[i], vector=None if vectors is None else vectors[i])
    fill_s = time.perf_counter() - start
    rng = random.Random(seed)
    writes: list[float] = []
    renumbered = 0
    while renumbered < 2:
        i = rng.randrange(n)
        before = index._next  # (stats() sums every term's postings: seconds over a run)
        start = time.perf_counter()
        vector = None if vectors is None else vectors[(i + len(writes) + 1) % n]
        index.add(keys[i], counts[i], vector=vector)
        writes.append(time.perf_counter() - start)
        renumbered += index._next < before
    analyse = Indexing()
    queries = [analyse.analyzer.query(q) for q in qs]
    qvecs = np.random.default_rng(seed + 1).standard_normal((len(qs), DIM)).astype(np.float32)
    semantic, keyword = [], []
    for query, qv in zip(queries, qvecs, strict=True):
        if vectors is not None:
            start = time.perf_counter()
            index.search(replace(query, terms=(), vector=qv, mode="semantic"), 10)
            semantic.append(time.perf_counter() - start)
        start = time.perf_counter()
        index.search(query, 10)
        keyword.append(time.perf_counter() - start)
    p50, p99 = percentiles(writes)
    return {
        "fill_s": fill_s,
        "writes": len(writes),
        "longest_write_ms": max(writes) * 1e3,
        "write_p50_ms": p50 * 1e3,
        "write_p99_ms": p99 * 1e3,
        "semantic_p50_ms": statistics.median(semantic) * 1e3 if semantic else float("nan"),
        "keyword_p50_ms": statistics.median(keyword) * 1e3,
        "graph": index.stats().graph,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.size or (6_000 if args.quick else 100_000)
    corpus = load_turns(n)
    texts = corpus.texts[:n]
    analyse = Indexing()
    counts = [analyse.analyzer.term_counts([text]) for text in texts]
    qs = questions(corpus, 50 if args.quick else 200)
    vectors = None
    if not args.keyword_only:
        rng = np.random.default_rng(20261205)
        vectors = rng.standard_normal((n, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    figures: dict[str, Any] = {"memories": n, "source": corpus.source}
    for name, kind in (("ours", SearchIndex), ("re-add (before)", ReaddIndex)):
        figures[name] = measure(kind, texts, counts, qs, vectors, seed=7)
    return figures


def report(figures: dict[str, Any]) -> None:
    print(f"{figures['memories']:,} memories ({figures['source']})")
    ours, peer = figures["ours"], figures["re-add (before)"]
    rows = []
    for what, key in (
        ("longest write (loop stall) ms", "longest_write_ms"),
        ("write p99 ms", "write_p99_ms"),
        ("semantic p50 after, ms", "semantic_p50_ms"),
        ("keyword p50 after, ms", "keyword_p50_ms"),
    ):
        rows.append([what, f"{ours[key]:.2f}", f"{peer[key]:.2f}", f"{ours[key] / peer[key]:.3f}x"])
    rows.append(["graph after (vectors)", str(ours["graph"]), str(peer["graph"]), ""])
    print(table(["", "ours", "re-add (before)", "ours/before"], rows))
    print("churn done")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=0, help="memories (default 100,000)")
    parser.add_argument(
        "--keyword-only", action="store_true", help="no vectors (the renumbering of terms alone)"
    )


if __name__ == "__main__":
    bench_main(__doc__ or "", run, report, add_arguments)
