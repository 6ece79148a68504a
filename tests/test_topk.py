"""The one top-k every search shares: best score first, ties to the newest, like a full sort."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tta_dev_primitives.search._topk import most_recent, top_items, top_k

# Few distinct scores, so ties are common; recencies distinct, as write sequences are.
# (Equal recencies are possible when callers pass them: ``most_recent`` is tested with them.)
items = st.lists(
    st.tuples(st.sampled_from([-1.5, 0.0, 0.25, 0.5, 2.0]), st.integers(0, 10**6)),
    unique_by=lambda item: item[1],
    max_size=60,
)
limits = st.integers(0, 70)


@settings(deadline=None)
@given(found=items, limit=limits)
def test_top_items_equal_a_full_sort(found: list[tuple[float, int]], limit: int) -> None:
    """Cutting ranked items gives exactly a full sort by score, then recency, descending."""
    rows = [(f"k{seq}", score, seq) for score, seq in found]
    want = sorted(rows, key=lambda row: (-row[1], -row[2]))[: max(limit, 0)]
    assert top_items(rows, limit) == want


@settings(deadline=None)
@given(found=items, limit=limits, size=st.integers(0, 10))
def test_top_k_reads_recency_by_row(found: list[tuple[float, int]], limit: int, size: int) -> None:
    """Rows are looked up in the recency buffer: the answer is the full sort of (score, recency)."""
    recency = np.array([seq for _, seq in found] + [0] * size, dtype=np.int64)
    rows = np.arange(len(found), dtype=np.intp)[::-1].copy()  # not in recency-buffer order
    scores = np.array([found[r][0] for r in rows], dtype=np.float64)
    got_rows, got_scores = top_k(np, rows, scores, recency, limit)
    want = sorted(rows.tolist(), key=lambda r: (-found[r][0], -found[r][1]))[:limit]
    assert got_rows.tolist() == want
    assert got_scores.tolist() == [found[r][0] for r in want]


@settings(deadline=None)
@given(found=items, limit=limits)
def test_most_recent_is_newest_first(found: list[tuple[float, int]], limit: int) -> None:
    """By recency alone: the ``limit`` highest, highest first."""
    recency = np.array([seq for _, seq in found], dtype=np.int64)
    rows = np.arange(len(found), dtype=np.intp)
    want = sorted(rows.tolist(), key=lambda r: -found[r][1])[:limit]
    assert most_recent(np, rows, recency, limit).tolist() == want


@settings(deadline=None)
@given(seen=st.lists(st.integers(0, 5), max_size=40), limit=limits)
def test_equal_recencies_keep_the_rows_order(seen: list[int], limit: int) -> None:
    """Among equal recencies, the earlier row comes first, exactly as a stable sort."""
    recency = np.array(seen, dtype=np.int64)
    rows = np.arange(len(seen), dtype=np.intp)
    want = sorted(range(len(seen)), key=lambda r: -seen[r])[:limit]
    assert most_recent(np, rows, recency, limit).tolist() == want
