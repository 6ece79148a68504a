"""Semantic search in SearchIndex: exact numpy vs the usearch HNSW graph, at 384 dimensions.

Random-but-clustered unit vectors (1000 centres plus noise; queries drawn near the same
centres, as questions land near stored memories). Reports exact latency by size (to choose
``ANN_THRESHOLD``), then at the full size: exact and ANN p50/p99, recall@10 of ANN vs exact
(unscoped and in a 10% scope), graph build time and bytes per vector. Then memories of three
vectors each (one per field, as LangGraph indexes) against one each, unscoped and in a scope of
1/200 of them, beside the previous way of scoring further vectors (a pass over all of them in
every search, ``PassVectors``), in the same run. Prints; asserts nothing.

    .venv/bin/python benchmarks/bench_vectors_index.py [--n 100000] [--quick]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._arrays import dots
from tta_dev_primitives.search._index import SearchIndex
from tta_dev_primitives.search._vector_index import VectorIndex


class PassVectors(VectorIndex):
    """The previous way: every search read all further vectors' owners in one numpy pass, and
    scored them with ``dots`` (einsum), as it now does only for the near-best rows."""

    def _best(self, np: Any, q: Any, rows: Any, sims: Any, *, settled: bool = False) -> Any:
        if not self._xrows:
            return sims
        count = len(self._xdoc)
        xdoc = self._xdoc_array(np)
        pos = np.full(len(self._has_vec), -1, dtype=np.intp)
        pos[rows] = np.arange(len(rows))
        live = xdoc >= 0
        at = np.full(count, -1, dtype=np.intp)
        at[live] = pos[xdoc[live]]
        mine = at >= 0
        if not mine.any():
            return sims
        best = sims.astype(np.float32, copy=True)
        np.maximum.at(best, at[mine], dots(np, self._xvecs[:count][mine], q))
        return best


def several(x: Any, more: Any, queries: Any, per: int, before: bool) -> dict[str, Any]:
    """Semantic p50 (ms) of an index of ``per`` vectors a memory, unscoped and in ``u3``."""
    index = SearchIndex()
    if before:
        index._vectors = PassVectors()
    for i in range(len(x)):
        rows = x[i] if per == 1 else np.vstack([x[i], *more[: per - 1, i]])
        index.add(f"u{i % 200}:{i}", {}, i, rows)
    timed(index, queries[:5], None)  # the graph catches up, as in a long-running memory
    return {scope: float(np.median(timed(index, queries, scope)[1])) for scope in (None, "u3")}


def clustered(n: int, dim: int, seed: int, centres: Any) -> Any:
    """``n`` unit vectors, each a random centre plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def timed(index: SearchIndex, queries: Any, scope: str | None) -> tuple[list[list[str]], Any]:
    """Results and per-query milliseconds."""
    results, ms = [], []
    for q in queries:
        query = Query((), vector=q, mode="semantic")
        start = time.perf_counter()
        results.append(index.search(query, 10, scope))
        ms.append((time.perf_counter() - start) * 1e3)
    return results, np.array(ms)


def fill(index: SearchIndex, x: Any) -> float:
    """Seconds to add every vector (keys ``u{i % 10}:{i}``, so ``u3`` is a 10% scope)."""
    start = time.perf_counter()
    for i in range(len(x)):
        index.add(f"u{i % 10}:{i}", {}, i, x[i])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="10k vectors, 50 queries")
    args = parser.parse_args()
    n, dim, nq = (10_000, args.dim, 50) if args.quick else (args.n, args.dim, args.queries)
    centres = np.random.default_rng(0).standard_normal((1000, dim)).astype(np.float32)
    x = clustered(n, dim, 1, centres)
    queries = clustered(nq, dim, 2, centres)

    print(f"exact semantic search by size ({dim} dims, limit 10):")
    for size in sorted({s for s in (5_000, 10_000, 20_000, 30_000, 50_000, n) if s <= n}):
        small = SearchIndex(ann_threshold=10**12)
        fill(small, x[:size])
        _, ms = timed(small, queries, None)
        print(f"  {size:>7} vectors: p50 {np.median(ms):6.2f} ms  p99 {np.percentile(ms, 99):6.2f}")

    exact = SearchIndex(ann_threshold=10**12)
    fill(exact, x)
    ann = SearchIndex(ann_threshold=1)  # always the graph, to compare it with exact
    add_s = fill(ann, x)
    start = time.perf_counter()
    graph = ann.build_graph()  # built lazily at the first large search; time it on its own
    build_s = time.perf_counter() - start
    if graph is None:
        print("usearch is not installed (pip install 'tta-dev-primitives[vectors]'): exact only")
        return
    print(f"\n{n} vectors: adds {add_s:.2f} s, graph build {build_s:.2f} s")
    print(
        f"bytes/vector: f32 rows {dim * 4}, graph {graph.memory_usage / n:.0f} "
        f"(dtype {graph.dtype}, connectivity {graph.connectivity}, "
        f"expansion_search {graph.expansion_search})"
    )
    for scope in (None, "u3"):
        want, ms_exact = timed(exact, queries, scope)
        got, ms_ann = timed(ann, queries, scope)
        pairs = zip(want, got, strict=True)
        recall = np.mean([len(set(a) & set(b)) / max(1, len(a)) for a, b in pairs])
        label = "all" if scope is None else f"scope {scope}"
        print(
            f"  {label:>9}: exact p50 {np.median(ms_exact):6.2f} ms p99 "
            f"{np.percentile(ms_exact, 99):6.2f} | ann p50 {np.median(ms_ann):6.2f} ms p99 "
            f"{np.percentile(ms_ann, 99):6.2f} | recall@10 {recall:.3f}"
        )
    for i in range(0, n, 10):  # a removal reaches the graph in step
        ann.remove(f"u{i % 10}:{i}")
    start = time.perf_counter()
    for i in range(0, n, 10):
        ann.add(f"u{i % 10}:{i}", {}, n + i, x[i])
    print(f"  re-adding {n // 10} vectors into the live graph: {time.perf_counter() - start:.2f} s")

    more = np.stack([clustered(n, dim, 3, centres), clustered(n, dim, 4, centres)])
    one = several(x, more, queries, 1, before=False)
    three = several(x, more, queries, 3, before=False)
    three_before = several(x, more, queries, 3, before=True)
    print(f"\nthree vectors a memory (one per field), {n} memories, semantic p50 ms:")
    for scope, label in ((None, "all"), ("u3", f"scope of {n // 200}")):
        print(
            f"  {label:>13}: one vector {one[scope]:6.2f} | three {three[scope]:6.2f} "
            f"({three[scope] / one[scope]:.1f}x) | three, before {three_before[scope]:6.2f} "
            f"(now {three[scope] / three_before[scope]:.2f}x of it)"
        )
    print("vectors index done")


if __name__ == "__main__":
    main()
