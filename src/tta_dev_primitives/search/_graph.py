"""The HNSW graph semantic search walks once an index is large (usearch, the ``vectors`` extra):
its parameters, how one is made, and how its keys are renamed when the index renumbers."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["ANN_CONNECTIVITY", "ANN_DTYPE", "ANN_EXPANSION_ADD", "ANN_EXPANSION_SEARCH", "hnsw",
           "rename"]  # fmt: skip

#: HNSW parameters: links per node, and the candidate list a query walks (recall vs. speed).
#: On 100k MiniLM vectors of real chitchat turns (benchmarks/bench_vectors.py) a search list of
#: 128 gave recall@10 0.935, 192 0.957 and 256 0.970 (p50 ~0.75, ~0.95, ~1.2 ms on 2 busy
#: cores); more candidates to rescore did not help: the list is what limits recall.
ANN_CONNECTIVITY: Final = 16
ANN_EXPANSION_ADD: Final = 128
ANN_EXPANSION_SEARCH: Final = 256
#: Storage of the graph's vectors; candidates are rescored from the f32 rows. At 100k x 384:
#: f16 ~1520 B/vector, 13 s build, recall@10 0.999; f32 ~2860 B, 26 s, 1.000; i8 ~850 B, 0.93.
ANN_DTYPE: Final = "f16"
#: Keys a renumbering moves the graph's vectors through (above every docno and further row).
_ASIDE: Final = 1 << 48


def hnsw(dim: int) -> Any:
    """An empty graph of unit vectors of ``dim`` dimensions, or None without usearch."""
    try:
        from usearch.index import Index
    except ImportError:
        return None
    return Index(
        ndim=dim,
        metric="ip",  # rows are unit vectors: inner product is cosine
        dtype=ANN_DTYPE,
        connectivity=ANN_CONNECTIVITY,
        expansion_add=ANN_EXPANSION_ADD,
        expansion_search=ANN_EXPANSION_SEARCH,
    )


def rename(np: Any, graph: Any, old: Any, new: Any) -> None:
    """Graph keys ``old`` become ``new``, through keys no document uses (a new key may still
    be another vector's old one)."""
    if len(old):
        aside = old.astype(np.uint64) + np.uint64(_ASIDE)
        graph.rename(old.astype(np.uint64), aside)
        graph.rename(aside, new.astype(np.uint64))
