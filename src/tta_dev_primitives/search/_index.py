"""The in-process search index: documents by key, a term index and a vector index, fused.

``SearchIndex`` numbers documents in write order and holds what each was indexed with; the
keyword half (``_term_index``: BM25 over postings, scope masks) and the semantic half
(``_vector_index``: embedding blocks, the HNSW graph) score by those numbers, and every answer
is cut by the one top-k (``_topk``): best score first, ties to the higher ``recency`` (the
write order in-process, Redis's write sequence in a replica). Hybrid search fuses the two
rankings (``_fusion``).

An update is a new number; when numbers run far ahead of live documents the index renumbers
itself. Not thread-safe: callers hold a lock or stay on one event loop.
"""

from __future__ import annotations

import contextlib
import gc
from array import array
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, NamedTuple

from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._arrays import gather, numpy
from tta_dev_primitives.search._bm25 import ceiling
from tta_dev_primitives.search._fusion import CANDIDATE_DEPTH, feedback, feedback_matches, fuse
from tta_dev_primitives.search._scope_index import ScopeView
from tta_dev_primitives.search._term_index import MAX_PREFIX_TERMS, TermIndex
from tta_dev_primitives.search._topk import most_recent, top_k
from tta_dev_primitives.search._vector_index import ANN_THRESHOLD, VectorIndex

__all__ = ["ANN_THRESHOLD", "MAX_PREFIX_TERMS", "IndexStats", "SearchIndex"]

# A document: (key, terms, term frequencies, length in terms, recency); see TermIndex.add.
_Doc = tuple[str, tuple[str, ...], bytes | tuple[int, ...], int, int]
_KEY: Final = 0
_TERMS: Final = 1
_LEN: Final = 3
_RECENCY: Final = 4
#: Numbers in use past which, when more than half belong to removed documents, the index
#: renumbers (every structure indexed by number shrinks back).
RENUMBER_FROM: Final = 4096


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection while the body runs (unless it was off already)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class IndexStats(NamedTuple):
    """What an index holds: its size, and whether the graph is built (benchmarks report it)."""

    documents: int
    numbers: int  # document numbers in use, removed documents' included (until renumbering)
    terms: int  # distinct terms of live documents
    postings: int  # postings stored, stale ones not yet compacted included
    vectors: int  # documents with a vector
    graph: int | None  # vectors in the HNSW graph; None while there is no graph


class SearchIndex:
    """Documents by key, with a term index and a vector index over their numbers."""

    __slots__ = ("_by_key", "_docs", "_next", "_ordered", "_recency", "_seq", "_terms", "_vectors")

    def __init__(self, *, ann_threshold: int = ANN_THRESHOLD) -> None:
        """``ann_threshold``: vectors from which semantic search uses the HNSW graph."""
        self._terms = TermIndex()
        self._vectors = VectorIndex(ann_threshold)
        self._reset()

    def _reset(self) -> None:
        self._docs: dict[int, _Doc] = {}
        self._by_key: dict[str, int] = {}
        self._recency = array("q")  # docno -> recency, for ties decided in numpy
        self._next = 0
        self._seq = 0
        self._ordered = True  # documents were added in recency order

    def clear(self, *, keep_dim: bool = False) -> None:
        """Forget everything, embeddings and their dimension (unless ``keep_dim``) included."""
        self._vectors.clear(keep_dim=keep_dim)
        self._terms.clear()
        self._reset()

    def __len__(self) -> int:
        return len(self._docs)

    def stats(self) -> IndexStats:
        """Counts of what the index holds (``IndexStats``)."""
        terms, vectors = self._terms, self._vectors
        return IndexStats(
            len(self._docs), self._next, terms.terms, terms.entries, len(vectors),
            vectors.graph_size,
        )  # fmt: skip

    def scope_keys(self, scope: str) -> list[str]:
        """The keys in ``scope`` (normalized, not empty): those inside it, and one equal to it.
        Read from the scope's bucket, so it costs the scope's size, not the index's."""
        docs = self._docs
        keys = [docs[docno][_KEY] for docno in self._terms.members(scope)]
        if scope in self._by_key:
            keys.append(scope)
        return keys

    def recency(self, key: str) -> int | None:
        """The recency ``key`` was indexed with, or None if it is not indexed."""
        docno = self._by_key.get(key)
        return None if docno is None else self._docs[docno][_RECENCY]

    @property
    def dim(self) -> int | None:
        """The dimension every vector must have: fixed by the first one, None before."""
        return self._vectors.dim

    def vector(self, key: str) -> Any:
        """The (normalised) vector ``key`` was indexed with (its first, if several), or None."""
        rows = self.vectors(key)
        return None if rows is None else rows[0]

    def vectors(self, key: str) -> Any:
        """Every vector of ``key``, one row each (2-D), or None."""
        docno = self._by_key.get(key)
        return None if docno is None else self._vectors.vectors(docno)

    def build_graph(self) -> Any:
        """The HNSW graph holding every vector now, built in one go (benchmarks time a bulk
        build with it; searches never wait for it); None without usearch."""
        return self._vectors.build_graph()

    def add(
        self,
        key: str,
        counts: Mapping[str, int],
        recency: int | None = None,
        vector: Any = None,
    ) -> None:
        """Index ``key`` with these term counts, replacing what was indexed for it before.

        ``recency`` orders ties (higher is newer); by default, the order of ``add`` calls.
        ``vector`` (1-D float32, L2-normalised or normalised here) makes it semantically
        searchable; without one, the document is found by keyword only. A 2-D array gives it
        several vectors (one per field, say), and it scores by the best of them.
        """
        self._add(key, counts, recency, vector, None)

    def _add(
        self,
        key: str,
        counts: Mapping[str, int],
        recency: int | None,
        vector: Any,
        length: int | None,
    ) -> None:
        """``add``; ``length`` is the document's as first indexed, for a re-add (``touch``)."""
        rows = None if vector is None else self._vectors.rows(vector)  # refused: nothing changes
        if key in self._by_key:
            self.remove(key)
        if recency is None:
            recency = self._seq
        if self._docs and recency < self._seq - 1:
            self._ordered = False
        self._seq = max(self._seq, recency + 1)
        docno = self._next
        self._next += 1
        self._recency.append(recency)
        self._vectors.add(docno, rows)
        terms, tfs, length = self._terms.add(docno, key, counts, length)
        self._docs[docno] = (key, terms, tfs, length, recency)
        self._by_key[key] = docno

    def touch(self, key: str) -> bool:
        """Make ``key`` the newest document, holding what it held (a touch counts as a write,
        on every backend: ties and a blank query's newest put it first); False if absent."""
        docno = self._by_key.get(key)
        if docno is None:
            return False
        _, terms, tfs, length, _ = self._docs[docno]
        vectors = self.vectors(key)
        self._add(key, dict(zip(terms, tfs, strict=True)), None, vectors, length)
        return True

    def remove(self, key: str) -> bool:
        """Drop ``key`` from the index; False if it was not indexed."""
        docno = self._by_key.pop(key, None)
        if docno is None:
            return False
        doc = self._docs.pop(docno)
        self._vectors.remove(docno)
        self._terms.remove(docno, key, doc[_TERMS], doc[_LEN])
        if self._next > RENUMBER_FROM and self._next > 2 * len(self._docs):
            self._renumber()
        return True

    def _renumber(self) -> None:
        """Give the live documents dense numbers, in recency order, once most numbers belong to
        the removed: every structure indexed by number is remapped in numpy (re-adding each
        document stalled the event loop for seconds at 100k); the HNSW graph keeps its vectors
        (``VectorIndex.renumber``). Python's garbage collector waits meanwhile: a collection
        it started in the middle walked every document's tuples, 2 of 4.5 s at 1M memories,
        for nothing (what renumbering makes holds no cycle)."""
        with _collector_paused():
            self._remap()

    def _remap(self) -> None:
        np = numpy()
        docs = self._docs
        old = np.fromiter(docs, dtype=np.intp, count=len(docs))  # increasing: dict order
        recency = gather(np, self._recency, np.int64, old)
        order = old if self._ordered else old[np.argsort(recency, kind="stable")]
        new_of = np.full(self._next, -1, dtype=np.int64)
        new_of[order] = np.arange(len(order), dtype=np.int64)
        self._terms.renumber(new_of, len(order))
        self._vectors.renumber(new_of, order)
        self._docs = {new: docs[docno] for new, docno in enumerate(order.tolist())}
        self._by_key = {doc[_KEY]: new for new, doc in self._docs.items()}
        self._recency = array("q", np.sort(recency, kind="stable").astype(np.int64).tobytes())
        self._next = len(order)
        self._ordered = True

    def _terms_of(self, docno: int) -> Sequence[str]:
        """The terms of document ``docno`` (a scope's own words, for ``TermIndex.expand``)."""
        return self._docs[docno][_TERMS]

    def _view(self, scope: str | None) -> ScopeView | None:
        """The scope's live members as a mask over every docno, their count and total length."""
        if scope is None:
            return None
        exact = self._by_key.get(scope)
        exact_len = 0 if exact is None else self._docs[exact][_LEN]
        return self._terms.view(scope, exact, exact_len)

    def _within(
        self, scope: str | None, view: ScopeView | None, wanted: tuple[str, ...]
    ) -> ScopeView | None:
        """The documents a search may return: the scope's (``view``), narrowed to those
        holding every facet ``wanted`` (a filter); its total length is the scope's."""
        if not wanted:
            return view
        exact = None if scope is None else self._by_key.get(scope)
        return self._terms.within(wanted, view, scope, exact)

    def recent(
        self, limit: int, scope: str | None = None, wanted: tuple[str, ...] = ()
    ) -> list[str]:
        """Keys of the ``limit`` most recently written documents (holding the facets
        ``wanted``), newest first."""
        docs = self._docs
        if scope is None and not wanted and self._ordered:
            keys: list[str] = []
            for docno in reversed(docs):
                if len(keys) >= limit:
                    break
                keys.append(docs[docno][_KEY])
            return keys
        np = numpy()
        view = self._within(scope, self._view(scope), wanted)
        # Latest indexed first, so that equal recencies (a replica's partitions may share one)
        # keep the fast path's order: ``most_recent`` keeps the rows' order among equals.
        if view is None:
            rows = np.fromiter(reversed(docs), dtype=np.intp, count=len(docs))
        elif view.rows is not None:  # a small scope's members, not a scan of its mask
            rows = view.rows[::-1]
        else:
            rows = np.flatnonzero(view.mask[: self._next])[::-1]
        return [docs[d][_KEY] for d in most_recent(np, rows, self._recency, limit).tolist()]

    def search(self, query: Query, limit: int, scope: str | None = None) -> list[str]:
        """Keys of the best ``limit`` matches, by the query's mode, ties newest first."""
        if query.mode == "keyword" and query.blank:
            return self.recent(limit, scope, query.filter)
        return [key for key, _ in self.search_scored(query, limit, scope)]

    def search_scored(
        self, query: Query, limit: int, scope: str | None = None
    ) -> list[tuple[str, float]]:
        """``(key, score)`` of the best ``limit`` matches, best first, ties newest first.

        keyword: BM25 (a blank query lists the most recent, scored 0). semantic: cosine
        similarity over documents with vectors. hybrid: the two fused (``_fusion``); weight 0
        and 1 are exactly keyword and semantic. A filter (``query.filter``) narrows the
        candidates before the top ``limit`` is taken; keyword and semantic scores stay as they
        are (BM25 keeps the scope's statistics), hybrid fuses the candidates the filter keeps.
        ``scope`` is normalized already (``check_scope``): it is matched as it is.
        """
        mode, weight = query.mode, query.weight
        if mode == "hybrid" and weight == 0.0:
            mode = "keyword"
        elif mode == "hybrid" and weight == 1.0:
            mode = "semantic"
        if mode == "keyword" and query.blank:
            return [(key, 0.0) for key in self.recent(limit, scope, query.filter)]
        q = None if mode == "keyword" else self._vectors.query(query.vector)
        view = self._view(scope)
        within = self._within(scope, view, query.filter)
        if mode == "keyword":
            scored = self._keyword(query, limit, view, within)[0]
        elif mode == "semantic":
            scored = self._semantic(q, limit, within)
        else:
            depth = max(limit, CANDIDATE_DEPTH)
            keyword: list[tuple[int, float]] = []
            top_of = 0.0
            if not query.blank:
                keyword, top_of = self._keyword(query, depth, view, within)
            best = feedback_matches(keyword, lambda row: self._docs[row[0]][_KEY])
            q = feedback(q, self._first_vectors(best))
            fused = fuse(keyword, self._semantic(q, depth, within), weight, top_of, query.fusion)
            np = numpy()
            rows = np.fromiter(fused.keys(), dtype=np.intp, count=len(fused))
            scored = self._top(rows, np.fromiter(fused.values(), np.float64, len(fused)), limit)
        docs = self._docs
        return [(docs[docno][_KEY], score) for docno, score in scored]

    def keyword_ceiling(self, query: Query, scope: str | None = None) -> float:
        """The BM25 no document reaches for ``query`` here (``_bm25.ceiling``; 0 if nothing
        matches): hybrid's keyword scale, the scope's statistics if scoped."""
        plan = None if query.blank else self._terms.plan(query, self._view(scope), self._terms_of)
        return 0.0 if plan is None else ceiling(plan.idfs)

    def _keyword(
        self, query: Query, limit: int, view: ScopeView | None, within: ScopeView | None
    ) -> tuple[list[tuple[int, float]], float]:
        """BM25 over the query's terms (the scope's statistics, if scoped): the best ``limit``
        of the documents ``within`` (the scope, or those of it a filter keeps), and the
        query's ceiling (``_bm25.ceiling``, hybrid's keyword scale)."""
        if within is not None and not within.members:
            return [], 0.0
        plan = self._terms.plan(query, view, self._terms_of)
        if plan is None:
            return [], 0.0
        rows, scores = self._terms.score(plan)
        if within is not None and within is not view:  # a filter
            kept = within.mask[rows]
            rows, scores = rows[kept], scores[kept]
        return self._top(rows, scores, limit), ceiling(plan.idfs)

    def _first_vectors(self, scored: list[tuple[int, float]]) -> list[Any]:
        """The first vector of each of these documents that has one (keyword feedback)."""
        found = (self._vectors.first(docno) for docno, _ in scored)
        return [row for row in found if row is not None]

    def _semantic(self, q: Any, limit: int, view: ScopeView | None) -> list[tuple[int, float]]:
        """Cosine similarity to the unit query ``q``: the best ``limit``."""
        if not len(self._vectors) or limit <= 0 or (view is not None and not view.members):
            return []
        return self._top(*self._vectors.candidates(q, limit, view), limit)

    def _top(self, rows: Any, scores: Any, limit: int) -> list[tuple[int, float]]:
        """``top_k`` of docnos by score with this index's recency, as ``(docno, score)``."""
        np = numpy()
        rows, scores = top_k(np, rows, scores, self._recency, limit)
        return list(zip(rows.tolist(), scores.astype(np.float64).tolist(), strict=True))
