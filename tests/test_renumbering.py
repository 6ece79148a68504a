"""An index that renumbers (updates and removals left most numbers dead) answers exactly as one
built afresh from its live documents: keyword, prefix, scoped, filtered, semantic, hybrid and
most-recent searches, with several vectors a document and writes out of recency order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tta_dev_primitives.search import _blocks, _index
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._facets import FACET_MARK
from tta_dev_primitives.search._index import SearchIndex

np = pytest.importorskip("numpy")

WORDS = ["alpha", "alps", "beta", "gamma", "delta", FACET_MARK + "x", FACET_MARK + "y"]
KEYS = [f"u{u}:s{s}:{i}" for u in (1, 2) for s in (1, 2) for i in range(2)]
DIM = 4

_vector = st.lists(st.integers(-3, 3), min_size=DIM, max_size=DIM).filter(any)
_write = st.tuples(
    st.just("add"),
    st.sampled_from(KEYS),
    st.dictionaries(st.sampled_from(WORDS), st.integers(1, 3), min_size=1, max_size=4),
    st.lists(_vector, max_size=3),  # none, one, or several vectors
    st.booleans(),  # an explicit recency out of write order
)
_other = st.tuples(st.sampled_from(["remove", "touch"]), st.sampled_from(KEYS))
_ops = st.lists(st.one_of(_write, _write, _other), min_size=20, max_size=120)


@contextmanager
def _small_numbers() -> Iterator[None]:
    """Renumber from 4 numbers on, and store vectors in blocks of 8 rows, so that a short run
    renumbers many times and spans blocks."""
    with (
        mock.patch.object(_index, "RENUMBER_FROM", 4),
        mock.patch.object(_blocks, "VECTOR_BLOCK_BITS", 3),
        mock.patch.object(_blocks, "VECTOR_BLOCK", 8),
    ):
        yield


_Live = dict[str, tuple[dict[str, int], Any]]


def _apply(index: SearchIndex, ops: list[tuple[Any, ...]]) -> _Live:
    """Run ``ops`` on ``index``; the live documents' term counts and vectors, as written."""
    live: _Live = {}
    clock = 1000
    for op in ops:
        if op[0] == "add":
            _, key, counts, vectors, early = op
            clock += 2
            vector = np.asarray(vectors, dtype=np.float32) if vectors else None
            index.add(key, counts, clock - 3 if early else clock, vector)
            live[key] = (counts, vector)
        elif op[0] == "remove":
            index.remove(str(op[1]))
            live.pop(str(op[1]), None)
        else:
            index.touch(str(op[1]))
    return live


def _afresh(index: SearchIndex, live: _Live) -> SearchIndex:
    """A new index of the live documents as written, with ``index``'s recencies, in their order."""
    fresh = SearchIndex()
    by_recency = sorted(live, key=lambda key: (index.recency(key), key))
    for key in by_recency:
        fresh.add(key, live[key][0], index.recency(key), live[key][1])
    return fresh


def _queries() -> Iterator[Query]:
    q = np.asarray([1.0, -1.0, 0.5, 2.0], dtype=np.float32)
    for terms, prefix in ((("alpha",), False), (("al",), True), (("beta", "gamma"), False)):
        yield Query(terms, prefix_last=prefix)
        yield Query(terms, prefix_last=prefix, vector=q, mode="hybrid", weight=0.4)
    yield Query(("delta",), filter=(FACET_MARK + "x",))
    yield Query((), blank=True)
    yield Query((), blank=True, filter=(FACET_MARK + "y",))
    yield Query((), vector=q, mode="semantic")
    yield Query((), vector=q, mode="semantic", filter=(FACET_MARK + "x",))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ops, st.sampled_from([20_000, 2]))
def test_a_renumbered_index_answers_as_one_built_afresh(
    ops: list[tuple[Any, ...]], threshold: int
) -> None:
    """``threshold`` 2 starts the HNSW graph at once: further vectors join it as written and
    are renamed at each renumbering (documents' first vectors wait for a batch of 32, which a
    short run seldom fills: ``test_renumbering_an_index_keeps_or_restarts_the_hnsw_graph``
    covers their renaming). The vectors are compared with those written, not with the index's
    own, so a row moved to the wrong place shows."""
    pytest.importorskip("usearch")
    with _small_numbers():
        index = SearchIndex(ann_threshold=threshold)
        live = _apply(index, ops)
        # Equal recencies (a touch and a write given the same) tie by write order, which an
        # index built afresh cannot know.
        assume(len({index.recency(key) for key in live}) == len(live))
        fresh = _afresh(index, live)
        assert len(index) == len(live)
        assert index.stats().numbers <= 3 * len(KEYS) + 4  # it renumbers, however many writes
        for key in live:
            got, want = index.vectors(key), fresh.vectors(key)
            assert (got is None) == (want is None)
            if got is not None:
                assert np.array_equal(got, want), key
        for scope in (None, "u1", "u1:s2", "u2:s1"):
            for query in _queries():
                if query.mode != "keyword" and fresh.dim is None:
                    continue
                got_scored = index.search_scored(query, 20, scope)
                want_scored = fresh.search_scored(query, 20, scope)
                assert [k for k, _ in got_scored] == [k for k, _ in want_scored], (query, scope)
                assert [s for _, s in got_scored] == pytest.approx([s for _, s in want_scored])
            assert sorted(index.scope_keys(scope or "u1")) == sorted(
                fresh.scope_keys(scope or "u1")
            )


@pytest.mark.parametrize("enabled", [True, False])
def test_renumbering_leaves_the_garbage_collector_as_it_found_it(enabled: bool) -> None:
    """Renumbering pauses the collector (a collection midway walked every document's tuples:
    2 of 4.5 s at 1M memories, ``bench_churn.py --keyword-only``); after it, the collector is
    on again, or still off if it was off. Through the public methods: ``stats()`` shows the
    numbers falling back, so the index did renumber."""
    import gc

    index = SearchIndex()
    was = gc.isenabled()
    renumbered = False
    try:
        (gc.enable if enabled else gc.disable)()
        with _small_numbers():
            for i in range(20):
                before = index.stats().numbers
                index.add("k", {"alpha": 1 + i % 2})
                renumbered |= index.stats().numbers < before
                assert gc.isenabled() is enabled
        assert renumbered
        assert index.search(Query(("alpha",)), 5) == ["k"]
    finally:
        (gc.enable if was else gc.disable)()
