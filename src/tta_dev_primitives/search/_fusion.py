"""Fusing a keyword and a semantic candidate list into one hybrid ranking.

Both inputs are best-first ``(id, score)`` lists. A document found by one side only gets 0
(or no reciprocal-rank term) from the other, so a pure keyword match and a pure semantic
match both stay in the running.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Final, Literal, TypeVar

__all__ = ["CANDIDATE_DEPTH", "RRF_K", "fuse", "min_max", "rrf", "weighted_sum"]

#: Candidates taken from each side before fusing: ``max(limit, CANDIDATE_DEPTH)``. Deep enough
#: that a document ranked moderately on both sides is not cut before it is summed.
CANDIDATE_DEPTH: Final = 100
#: The reciprocal-rank constant (Cormack et al.): damps the gap between the very first ranks.
RRF_K: Final = 60

Id = TypeVar("Id", bound=Hashable)


def min_max(scored: Sequence[tuple[Id, float]]) -> dict[Id, float]:
    """Scores rescaled to 0..1 (all 1.0 when they are equal), so two scales can be added."""
    if not scored:
        return {}
    values = [s for _, s in scored]
    low, high = min(values), max(values)
    if high <= low:
        return {i: 1.0 for i, _ in scored}
    span = high - low
    return {i: (s - low) / span for i, s in scored}


def weighted_sum(
    keyword: Sequence[tuple[Id, float]], semantic: Sequence[tuple[Id, float]], weight: float
) -> dict[Id, float]:
    """``(1 - weight) * keyword + weight * semantic``, each min-max normalised; absent is 0."""
    kw, sem = min_max(keyword), min_max(semantic)
    fused = {i: (1.0 - weight) * s for i, s in kw.items()}
    for i, s in sem.items():
        fused[i] = fused.get(i, 0.0) + weight * s
    return fused


def rrf(
    keyword: Sequence[tuple[Id, float]],
    semantic: Sequence[tuple[Id, float]],
    weight: float,
    k: int = RRF_K,
) -> dict[Id, float]:
    """Weighted reciprocal-rank fusion: ranks only, so no score scale matters."""
    fused: dict[Id, float] = {}
    for rank, (i, _) in enumerate(keyword, 1):
        fused[i] = (1.0 - weight) / (k + rank)
    for rank, (i, _) in enumerate(semantic, 1):
        fused[i] = fused.get(i, 0.0) + weight / (k + rank)
    return fused


def fuse(
    keyword: Sequence[tuple[Id, float]],
    semantic: Sequence[tuple[Id, float]],
    weight: float,
    method: Literal["weighted", "rrf"] = "weighted",
) -> dict[Id, float]:
    """The fused score of every candidate, by ``method``; the caller orders and breaks ties."""
    if method == "rrf":
        return rrf(keyword, semantic, weight)
    return weighted_sum(keyword, semantic, weight)
