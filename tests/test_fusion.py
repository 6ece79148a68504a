"""Fusion of keyword and semantic rankings: a fixed scale, absence counts as zero, ranks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tta_dev_primitives.search._fusion import RRF_K, fuse, rrf, weighted_sum

scored = st.dictionaries(st.integers(0, 30), st.floats(-5, 5, allow_nan=False), max_size=20).map(
    lambda d: sorted(d.items(), key=lambda kv: -kv[1])
)


ceilings = st.floats(0.0, 20.0, allow_nan=False)


@given(scored, scored, st.floats(0, 1), ceilings)
def test_every_candidate_is_scored_and_absence_is_zero(
    kw: list[tuple[int, float]], sem: list[tuple[int, float]], w: float, top: float
) -> None:
    """Both methods score the union of the candidates; a side that did not propose one adds 0."""
    for method in ("weighted", "rrf"):
        fused = fuse(kw, sem, w, top, method)  # type: ignore[arg-type]
        assert set(fused) == {i for i, _ in kw} | {i for i, _ in sem} or (
            method == "weighted" and top == 0.0 and set(fused) == {i for i, _ in sem}
        )
    only_kw = weighted_sum(kw, [], w, 10.0)
    assert only_kw == {i: (1 - w) * min(max(v / 10.0, 0.0), 1.0) for i, v in kw}


@given(scored, scored, st.floats(0, 1), ceilings)
def test_weighted_scores_stay_in_the_unit_interval(
    kw: list[tuple[int, float]], sem: list[tuple[int, float]], w: float, top: float
) -> None:
    """Whatever the inputs, a weighted hybrid score is between 0 and 1."""
    assert all(0.0 <= v <= 1.0 + 1e-12 for v in weighted_sum(kw, sem, w, top).values())


@given(scored, scored, scored, st.floats(0, 1), st.floats(0.1, 20.0))
def test_a_weighted_score_does_not_depend_on_the_other_hits(
    kw: list[tuple[int, float]],
    sem: list[tuple[int, float]],
    other: list[tuple[int, float]],
    w: float,
    top: float,
) -> None:
    """Adding or removing other candidates never changes a candidate's fused score."""
    alone = weighted_sum(kw, sem, w, top)
    extra = [(i + 100, s) for i, s in other]  # other documents, on both sides
    crowded = weighted_sum(kw + extra, sem + extra, w, top)
    assert {i: crowded[i] for i in alone} == alone


def test_a_perfect_match_scores_one_and_nothing_scores_zero() -> None:
    """At the ceiling with cosine 1 the score is 1; a negative cosine counts as 0."""
    fused = weighted_sum([(1, 8.0), (2, 2.0)], [(1, 1.0), (3, -0.4)], 0.5, 8.0)
    assert fused == {1: 1.0, 2: 0.125, 3: 0.0}


@given(scored, scored)
def test_weight_ends_preserve_one_side_order(
    kw: list[tuple[int, float]], sem: list[tuple[int, float]]
) -> None:
    """Weight 0 keeps keyword order among keyword candidates; rrf at 1 is semantic rank."""
    left = weighted_sum(kw, sem, 0.0, 10.0)
    assert [left[i] for i, _ in kw] == sorted((left[i] for i, _ in kw), reverse=True)
    right = rrf(kw, sem, 1.0)
    assert [right[i] for i, _ in sem] == [1.0 / (RRF_K + r) for r in range(1, len(sem) + 1)]


def test_rrf_rewards_agreement() -> None:
    """A document both sides propose beats one proposed by a single side."""
    fused = rrf([(1, 9.0), (2, 8.0)], [(2, 0.9), (3, 0.8)], 0.5)
    assert max(fused, key=fused.__getitem__) == 2
