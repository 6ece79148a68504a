"""Fusing a keyword and a semantic candidate list into one hybrid ranking.

Both inputs are best-first ``(id, score)`` lists. A document found by one side only gets 0
(or no reciprocal-rank term) from the other, so a pure keyword match and a pure semantic
match both stay in the running.

The weighted fusion puts both sides on a fixed 0..1 scale that no other hit moves: BM25 as a
share of the query's ceiling (``_bm25.ceiling``), cosine similarity as it is (below 0 is 0).
So a hybrid score means the same on every query, and ``min_score`` is a threshold, not a rank.

Before the semantic side is searched, the question's vector takes keyword feedback
(``feedback``): it moves part of the way toward the vectors of its best keyword matches
(Rocchio's relevance feedback, keyword's best taken as relevant). A question's words then
steer the semantic side too, and a question that shares no word with anything is searched as
it is. Measured in ``benchmarks/results/fusion.md`` ("Keyword feedback").
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final, Literal, TypeVar

from tta_dev_primitives.search._arrays import numpy

__all__ = [
    "CANDIDATE_DEPTH",
    "FEEDBACK_DOCS",
    "FEEDBACK_SHARE",
    "RRF_K",
    "feedback",
    "feedback_matches",
    "fuse",
    "rrf",
    "weighted_sum",
]

#: Candidates taken from each side before fusing: ``max(limit, CANDIDATE_DEPTH)``. Deep enough
#: that a document ranked moderately on both sides is not cut before it is summed.
CANDIDATE_DEPTH: Final = 100
#: The reciprocal-rank constant (Cormack et al.): damps the gap between the very first ranks.
RRF_K: Final = 60
#: Keyword feedback: how many of the keyword side's best matches move the question's vector,
#: and how far toward their mean (0: not at all).
FEEDBACK_DOCS: Final = 2
FEEDBACK_SHARE: Final = 0.3

Id = TypeVar("Id", bound=Hashable)


def weighted_sum(
    keyword: Sequence[tuple[Id, float]],
    semantic: Sequence[tuple[Id, float]],
    weight: float,
    ceiling: float,
) -> dict[Id, float]:
    """``(1 - weight) * bm25 / ceiling + weight * max(cosine, 0)``, each side in 0..1; absent
    is 0. ``ceiling`` is the BM25 no document of this query reaches (0: no keyword side)."""
    fused: dict[Id, float] = {}
    if ceiling > 0.0:
        fused = {i: (1.0 - weight) * min(max(s / ceiling, 0.0), 1.0) for i, s in keyword}
    for i, s in semantic:
        fused[i] = fused.get(i, 0.0) + weight * min(max(s, 0.0), 1.0)
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
    ceiling: float,
    method: Literal["weighted", "rrf"] = "weighted",
) -> dict[Id, float]:
    """The fused score of every candidate, by ``method``; the caller orders and breaks ties.

    ``ceiling``: the keyword side's ``_bm25.ceiling`` for this query (the weighted method's
    scale)."""
    if method == "rrf":
        return rrf(keyword, semantic, weight)
    return weighted_sum(keyword, semantic, weight, ceiling)


Ranked = TypeVar("Ranked", bound=tuple[Any, ...])


def feedback_matches(ranked: Sequence[Ranked], key_of: Callable[[Ranked], str]) -> list[Ranked]:
    """The keyword matches ``feedback`` uses: the ``FEEDBACK_DOCS`` best of ``ranked`` (best
    first, each ``(id, score, ...)``), equal scores in key order. The keyword side breaks ties
    newest first, and the order in which Redis applied concurrent adds, or a cluster's
    partitions a replay, is not the caller's: tied matches changed the question's vector, so
    every hybrid score, from one backend or run to the next (review R25)."""
    end = min(FEEDBACK_DOCS, len(ranked))
    while 0 < end < len(ranked) and ranked[end][1] == ranked[end - 1][1]:
        end += 1  # (those tied with the last one taken)
    return sorted(ranked[:end], key=lambda row: (-row[1], key_of(row)))[:FEEDBACK_DOCS]


def feedback(q: Any, matches: Sequence[Any]) -> Any:
    """The unit question vector ``q`` moved ``FEEDBACK_SHARE`` of the way toward the mean of
    ``matches`` (the unit vectors of its best keyword matches, best first; those past
    ``FEEDBACK_DOCS`` are not used), as a unit float32 vector; ``q`` itself if there are none.
    Every backend computes it here, from the same float32 vectors."""
    np = numpy()
    used = matches[:FEEDBACK_DOCS]
    if not len(used):
        return q
    total = used[0].astype(np.float32)  # a copy: the matches are views of the index's rows
    for row in used[1:]:
        total += row
    moved = np.float32(1.0 - FEEDBACK_SHARE) * q + np.float32(FEEDBACK_SHARE / len(used)) * total
    norm = float(np.sqrt(moved @ moved))
    if norm == 0.0:  # a match pointing exactly away: keep the question as it is
        return q
    moved *= np.float32(1.0 / norm)
    return moved
