"""The one order every search answers in: best score first, an equal score to the newest.

Keyword, semantic and hybrid search, in-process, in a replica and on the Redis Query Engine,
all cut their answers here, so two documents with equal scores rank alike on every backend.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any, TypeVar

from tta_dev_primitives.search._arrays import gather, numpy

__all__ = ["most_recent", "top_items", "top_k"]

Id = TypeVar("Id", bound=Hashable)


def top_k(np: Any, rows: Any, scores: Any, recency: Any, limit: int) -> tuple[Any, Any]:
    """The best ``limit`` of ``rows`` (numpy ints) by ``scores``, ties to the higher
    ``recency[row]`` (an int64 buffer): ``(rows, scores)``, best first, in one numpy sort."""
    if limit <= 0 or not len(rows):
        return rows[:0], scores[:0]
    if len(rows) > limit:
        cut = np.partition(scores, len(scores) - limit)[len(scores) - limit]
        keep = scores >= cut
        rows, scores = rows[keep], scores[keep]
    order = np.lexsort((-gather(np, recency, np.int64, rows), -scores))[:limit]
    return rows[order], scores[order]


def most_recent(np: Any, rows: Any, recency: Any, limit: int) -> Any:
    """The ``limit`` of ``rows`` with the highest ``recency[row]``, newest first (equal
    recencies in the order of ``rows``)."""
    if limit <= 0 or not len(rows):
        return rows[:0]
    seen = gather(np, recency, np.int64, rows)
    if len(rows) > limit:
        keep = seen >= np.partition(seen, len(rows) - limit)[len(rows) - limit]
        rows, seen = rows[keep], seen[keep]
    return rows[np.argsort(-seen, kind="stable")[:limit]]


def top_items(found: Iterable[tuple[Id, float, int]], limit: int) -> list[tuple[Id, float, int]]:
    """``(id, score, recency)`` items cut by ``top_k``: the same order for ranked lists."""
    items = list(found)
    np = numpy()
    scores = np.fromiter((score for _, score, _ in items), np.float64, len(items))
    recency = np.fromiter((seen for _, _, seen in items), np.int64, len(items))
    at, _ = top_k(np, np.arange(len(items)), scores, recency, limit)
    return [items[i] for i in at.tolist()]
