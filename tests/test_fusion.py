"""Fusion of keyword and semantic rankings: normalisation, absence counts as zero, ranks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tta_dev_primitives.search._fusion import RRF_K, fuse, min_max, rrf, weighted_sum

scored = st.dictionaries(st.integers(0, 30), st.floats(-5, 5, allow_nan=False), max_size=20).map(
    lambda d: sorted(d.items(), key=lambda kv: -kv[1])
)


@given(scored)
def test_min_max_is_within_unit_interval(s: list[tuple[int, float]]) -> None:
    normal = min_max(s)
    assert set(normal) == {i for i, _ in s}
    assert all(0.0 <= v <= 1.0 for v in normal.values())
    if s:
        assert max(normal.values()) == 1.0


@given(scored, scored, st.floats(0, 1))
def test_every_candidate_is_scored_and_absence_is_zero(
    kw: list[tuple[int, float]], sem: list[tuple[int, float]], w: float
) -> None:
    for method in ("weighted", "rrf"):
        fused = fuse(kw, sem, w, method)  # type: ignore[arg-type]
        assert set(fused) == {i for i, _ in kw} | {i for i, _ in sem}
    only_kw = weighted_sum(kw, [], w)
    assert only_kw == {i: (1 - w) * v for i, v in min_max(kw).items()}


@given(scored, scored)
def test_weight_ends_preserve_one_side_order(
    kw: list[tuple[int, float]], sem: list[tuple[int, float]]
) -> None:
    left = weighted_sum(kw, sem, 0.0)
    assert [left[i] for i, _ in kw] == sorted((left[i] for i, _ in kw), reverse=True)
    right = rrf(kw, sem, 1.0)
    assert [right[i] for i, _ in sem] == [1.0 / (RRF_K + r) for r in range(1, len(sem) + 1)]


def test_rrf_rewards_agreement() -> None:
    fused = rrf([(1, 9.0), (2, 8.0)], [(2, 0.9), (3, 0.8)], 0.5)
    assert max(fused, key=fused.__getitem__) == 2
