"""An in-process inverted index: BM25 over term postings, scored with numpy, plus scope buckets.

Postings are one append-only ``array`` of 64-bit entries per term, each a document number,
its term frequency and its length (``docno << 32 | tf << 20 | length``), so a query never looks
a document up while scoring: 8 bytes a posting, one append per term of an add. A query reads
the postings of its terms only (stop words never reach it), turns each into a vector of scores
in one numpy expression and adds it into a dense accumulator: cost in proportion to the
postings of the words asked about, never a per-document rescan. A scoped search filters the
same postings through the scope's mask and scores with the scope's own statistics (see
``_scope_index``).

Documents are numbered in write order; an update is a new number and leaves stale postings
behind, skipped by a liveness mask and compacted once a term has more stale than live entries.
When numbers run far ahead of live documents the index renumbers itself. Ties rank the document
with the higher ``recency`` first (the write order in-process, Redis's write sequence in a
replica). Not thread-safe: callers hold a lock or stay on one event loop.

Documents may also carry an embedding: rows of one float32 matrix indexed by document number,
L2-normalised, so cosine similarity is one matrix-vector product. Semantic search is exact
(numpy) until the index holds ``ann_threshold`` vectors and usearch is installed (the
``vectors`` extra); from then on an HNSW graph proposes candidates that are rescored exactly.
The graph is never built in one go (20k vectors took seconds, all of it one event-loop
pause): it starts empty at a quarter of the threshold and takes the rows it lacks in batches
of ``ANN_BATCH``, two rows for every vector added, so it has caught up long before the
threshold; rows not yet in it are scanned exactly beside its candidates. Hybrid search fuses
both rankings (see ``_fusion``).
"""

from __future__ import annotations

import heapq
import sys
from array import array
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

from tta_dev_primitives.exceptions import InvalidArgumentError
from tta_dev_primitives.search._analyzer import MAX_QUERY_TERMS, STOP_MARK, Query
from tta_dev_primitives.search._bm25 import bm25, idf, token_order
from tta_dev_primitives.search._fusion import CANDIDATE_DEPTH, fuse
from tta_dev_primitives.search._scope_index import ScopeIndex, ScopeView
from tta_dev_primitives.search._scopes import normalize_scope

__all__ = ["ANN_THRESHOLD", "MAX_PREFIX_TERMS", "SearchIndex"]

#: Terms an unfinished last word may expand to (the first ones in dictionary order).
MAX_PREFIX_TERMS: Final = 256

# A document: (key, terms, term frequencies, length in terms, recency). Frequencies are
# ``bytes`` when all are below 256 (nearly always): a byte each instead of a pointer.
_Doc = tuple[str, tuple[str, ...], bytes | tuple[int, ...], int, int]
_KEY: Final = 0
_TERMS: Final = 1
_TFS: Final = 2
_LEN: Final = 3
_RECENCY: Final = 4
# Postings pack a term frequency in 12 bits and a document length in 20: both saturate there
# (BM25 barely moves past a few occurrences; a million-word memory is normalised as one).
TF_MAX: Final = (1 << 12) - 1
LEN_MAX: Final = (1 << 20) - 1

#: Vectors from which semantic search goes approximate (HNSW via usearch), when installed.
#: Measured on a shared 2-core machine at 384 dims (benchmarks/bench_vectors_index.py): exact
#: numpy p50 is ~0.4 ms at 10k, ~1 ms at 20k-30k, ~1.8 ms at 50k, ~5.5 ms at 100k; 20k keeps
#: headroom under 2 ms for tail latency and a busy machine. The graph answers 100k in ~0.4 ms.
ANN_THRESHOLD: Final = 20_000
#: A scope with at most this many members (or ``ann_threshold``, if lower) is searched
#: exactly, never through the graph: over-fetching for it would cost more than the scan.
SMALL_SCOPE: Final = 4096
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
#: Graph keys from here on are rows of documents' further vectors, not document numbers.
EXTRA_KEY: Final = 1 << 40
#: Rows handed to the graph at once (usearch inserts a batch on all cores): the longest pause
#: the graph adds to an ``add`` is one batch: ~10-40 ms at 384 dims on 2 busy shared cores.
ANN_BATCH: Final = 64
#: Vectors live in blocks of this many rows (a power of two): growing the store allocates a
#: block and never copies the rows before it (doubling one matrix copied 800 MB in one ~2 s
#: ``add`` at 512k vectors). The first block alone grows by doubling, up to this size.
VECTOR_BLOCK_BITS: Final = 14
VECTOR_BLOCK: Final = 1 << VECTOR_BLOCK_BITS
#: Graph rows earned per vector added: the backlog of rows it starts without shrinks by
#: ``ANN_CATCH_UP - 1`` a vector, so starting at a quarter of the threshold it is whole by half.
ANN_CATCH_UP: Final = 2

_np: Any = None
_usearch: Any = None


class _Matches(NamedTuple):
    """A query term's postings as numpy arrays, and how many documents hold it."""

    d: Any  # docnos
    tf: Any  # term frequencies, as floats
    length: Any  # document lengths, as floats
    df: int


class _Plan(NamedTuple):
    """A query, resolved against the index: what to score and how."""

    expansions: list[list[str]]  # per query term, the indexed terms it matches
    order: list[int]  # the order in which their scores are added (rarest first)
    idfs: list[float]
    avg_len: float


def _gather(np: Any, buffer: Any, dtype: Any, at: Any) -> Any:
    """``buffer[at]`` as a new numpy array, through a view released at once.

    A live view would stop the ``array``/``bytearray`` from growing (BufferError on append).
    """
    view = np.frombuffer(buffer, dtype=dtype)
    try:
        return view[at]
    finally:
        del view


def _unpack(np: Any, p: Any) -> tuple[Any, Any, Any]:
    """Document numbers, term frequencies and lengths (as floats) of packed postings."""
    d = (p >> np.uint64(32)).astype(np.intp)
    tf = ((p >> np.uint64(20)) & np.uint64(TF_MAX)).astype(np.float64)
    length = (p & np.uint64(LEN_MAX)).astype(np.float64)
    return d, tf, length


def _numpy() -> Any:
    """numpy, imported at the first scored search (it is not needed to import the library)."""
    global _np
    if _np is None:
        import numpy

        _np = numpy
    return _np


def _usearch_index() -> Any:
    """``usearch.index``, imported at the first large semantic search; None if not installed."""
    global _usearch
    if _usearch is None:
        try:
            from usearch import index
        except ImportError:
            _usearch = False
        else:
            _usearch = index
    return _usearch or None


def as_unit_vector(vector: Any, what: str = "vector") -> Any:
    """``vector`` as a 1-D float32 numpy array of length 1; zero, NaN or infinity are refused."""
    np = _numpy()
    v = np.asarray(vector, dtype=np.float32)
    if v.ndim != 1 or v.size == 0:
        raise InvalidArgumentError(f"{what} must be a non-empty 1-D array, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise InvalidArgumentError(f"{what} holds NaN or infinity")
    norm = float(np.linalg.norm(v))
    if norm == 0.0 or not np.isfinite(norm):
        raise InvalidArgumentError(f"{what} is a zero vector: it has no direction to compare")
    if abs(norm - 1.0) > 1e-4:
        v = v / np.float32(norm)
    return np.ascontiguousarray(v, dtype=np.float32)


class SearchIndex:
    """Term postings, document stats, scope buckets and optional embeddings for one store."""

    __slots__ = (
        "_ann",
        "_ann_credit",
        "_ann_cursor",
        "_ann_threshold",
        "_by_key",
        "_dim",
        "_docs",
        "_has_vec",
        "_live",
        "_n_vecs",
        "_next",
        "_ordered",
        "_pending",
        "_postings",
        "_recency",
        "_scopes",
        "_seq",
        "_stale",
        "_stale_vocab",
        "_total_len",
        "_vecs",
        "_vocab",
        "_xdoc",
        "_xrows",
        "_xvecs",
    )

    def __init__(self, *, ann_threshold: int = ANN_THRESHOLD) -> None:
        """``ann_threshold``: vectors from which semantic search uses the HNSW graph."""
        self._ann_threshold = ann_threshold
        self.clear()

    def clear(self) -> None:
        """Forget everything, embeddings and their dimension included."""
        self._clear_vectors()
        self._dim: int | None = None
        self._clear_terms()

    def _clear_vectors(self) -> None:
        self._vecs: list[Any] = []  # float32 blocks of VECTOR_BLOCK rows: docno -> a row
        self._has_vec = bytearray()  # docno -> 1 while that document has a vector
        self._n_vecs = 0
        self._ann: Any = None  # the HNSW graph (keys are docnos), grown in batches
        self._ann_cursor = 0  # docnos below this were offered to the graph; the rest are not
        self._ann_credit = 0  # rows the graph may take now (ANN_CATCH_UP per vector added)
        # A document's further vectors (one per field, as LangGraph indexes): rows of a second
        # matrix, each naming its docno (-1 once removed); the graph holds them under
        # EXTRA_KEY + row. A document scores by its best vector.
        self._xvecs: Any = None
        self._xdoc = array("q")
        self._xrows: dict[int, list[int]] = {}

    def _clear_terms(self) -> None:
        self._docs: dict[int, _Doc] = {}
        self._by_key: dict[str, int] = {}
        # term -> postings (docno << 32 | tf << 20 | length); df is len - stale[term].
        self._postings: dict[str, array[int]] = {}
        self._stale: dict[str, int] = {}
        self._scopes = ScopeIndex()
        self._live = bytearray()  # docno -> 1 while that document is indexed
        self._recency = array("q")  # docno -> recency, for ties decided in numpy
        self._vocab: list[str] = []
        self._pending: list[str] = []
        self._stale_vocab = 0
        self._total_len = 0
        self._next = 0
        self._seq = 0
        self._ordered = True  # documents were added in recency order

    def __len__(self) -> int:
        return len(self._docs)

    def recency(self, key: str) -> int | None:
        """The recency ``key`` was indexed with, or None if it is not indexed."""
        docno = self._by_key.get(key)
        return None if docno is None else self._docs[docno][_RECENCY]

    @property
    def dim(self) -> int | None:
        """The dimension every vector must have: fixed by the first one, None before."""
        return self._dim

    def vector(self, key: str) -> Any:
        """The (normalised) vector ``key`` was indexed with (its first, if several), or None."""
        docno = self._by_key.get(key)
        if docno is None or not self._has_vec[docno]:
            return None
        return self._vecs[docno >> VECTOR_BLOCK_BITS][docno & (VECTOR_BLOCK - 1)].copy()

    def vectors(self, key: str) -> Any:
        """Every vector of ``key``, one row each (2-D), or None."""
        first = self.vector(key)
        if first is None:
            return None
        np = _numpy()
        rows = self._xrows.get(self._by_key[key], [])
        return np.vstack([first[None, :], *(self._xvecs[r][None, :] for r in rows)])

    def _check_dim(self, v: Any, what: str) -> None:
        if self._dim is not None and v.shape[0] != self._dim:
            raise InvalidArgumentError(
                f"{what} has {v.shape[0]} dimensions but the index holds {self._dim}-dimensional"
                " vectors"
            )

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
        vec = None
        extra: list[Any] = []
        if vector is not None:
            np = _numpy()
            array_ = np.asarray(vector, dtype=np.float32)
            if array_.ndim == 2 and array_.shape[0] >= 1:
                vec = as_unit_vector(array_[0])
                extra = [as_unit_vector(row) for row in array_[1:]]
            else:
                vec = as_unit_vector(vector)
            self._check_dim(vec, "vector")
        if key in self._by_key:
            self.remove(key)
        if recency is None:
            recency = self._seq
        if self._docs and recency < self._seq - 1:
            self._ordered = False
        self._seq = max(self._seq, recency + 1)
        docno = self._next
        self._next += 1
        self._live.append(1)
        self._recency.append(recency)
        self._has_vec.append(0)
        if vec is not None:
            self._store_vector(docno, vec)
            for row in extra:
                self._store_extra(docno, row)
        # Interned, every document shares one string per distinct word.
        terms = tuple(map(sys.intern, counts))
        values = tuple(counts.values())
        length = sum(values)
        # Stop words (indexed for queries made only of them) do not make a memory longer.
        length -= sum(v for t, v in zip(terms, values, strict=True) if t.startswith(STOP_MARK))
        try:
            tfs: bytes | tuple[int, ...] = bytes(values)
        except ValueError:  # a term occurs 256 times or more
            values = tuple(min(v, TF_MAX) for v in values)
            tfs = values
        if length > LEN_MAX:
            length = LEN_MAX
        self._docs[docno] = (key, terms, tfs, length, recency)
        self._by_key[key] = docno
        self._total_len += length
        postings, get = self._postings, self._postings.get
        base = docno << 32 | length
        for term, tf in zip(terms, values, strict=True):
            plist = get(term)
            if plist is None:
                postings[term] = array("Q", (base | tf << 20,))
                self._pending.append(term)
            else:
                plist.append(base | tf << 20)
        self._scopes.add(key, docno, length)

    def _store_vector(self, docno: int, vec: Any) -> None:
        """Put ``vec`` in row ``docno`` (a new block if need be), and give the graph its share."""
        np = _numpy()
        if self._dim is None:
            self._dim = int(vec.shape[0])
        blocks, block, row = self._vecs, docno >> VECTOR_BLOCK_BITS, docno & (VECTOR_BLOCK - 1)
        if blocks and blocks[0].shape[0] < VECTOR_BLOCK and (block > 0 or row >= len(blocks[0])):
            # The first block doubles (full-size once another block follows it): at most one
            # block's rows are ever copied.
            size = (
                VECTOR_BLOCK if block > 0 else min(VECTOR_BLOCK, max(row + 1, 2 * len(blocks[0])))
            )
            grown = np.zeros((size, self._dim), dtype=np.float32)
            grown[: len(blocks[0])] = blocks[0]
            blocks[0] = grown
        while len(blocks) <= block:
            size = VECTOR_BLOCK if blocks or block > 0 else min(VECTOR_BLOCK, max(1024, row + 1))
            blocks.append(np.zeros((size, self._dim), dtype=np.float32))
        blocks[block][row] = vec
        self._has_vec[docno] = 1
        self._n_vecs += 1
        self._ann_step()

    def _ann_step(self) -> None:
        """After a vector is added: start the graph, or give it its next batch of rows."""
        if self._ann is None and (
            4 * self._n_vecs < self._ann_threshold or self._new_graph() is None
        ):
            return
        self._ann_credit = min(self._ann_credit + ANN_CATCH_UP, 2 * ANN_BATCH)
        if self._next - self._ann_cursor >= ANN_BATCH and self._ann_credit >= ANN_BATCH:
            self._ann_credit -= ANN_BATCH
            self._ann_extend(self._ann_cursor + ANN_BATCH)

    def _ann_extend(self, stop: int) -> None:
        """Hand the graph the vectors of docnos ``[cursor, stop)`` in one batch."""
        np = _numpy()
        start, stop = self._ann_cursor, min(stop, self._next)
        if stop <= start:
            return
        has_vec = _gather(np, self._has_vec, np.bool_, slice(start, stop)).copy()
        rows = np.flatnonzero(has_vec) + start
        if len(rows):
            self._ann.add(rows.astype(np.uint64), self._rows(np, rows), threads=1)
        self._ann_cursor = stop

    def _store_extra(self, docno: int, vec: Any) -> None:
        """A further vector of ``docno``: a row of the second matrix, and in the graph."""
        np = _numpy()
        row = len(self._xdoc)
        if self._xvecs is None or row >= self._xvecs.shape[0]:
            capacity = max(64, 0 if self._xvecs is None else 2 * self._xvecs.shape[0])
            grown = np.zeros((capacity, self._dim), dtype=np.float32)
            if self._xvecs is not None:
                grown[: self._xvecs.shape[0]] = self._xvecs
            self._xvecs = grown
        self._xvecs[row] = vec
        self._xdoc.append(docno)
        self._xrows.setdefault(docno, []).append(row)
        if self._ann is not None:
            self._ann.add(EXTRA_KEY + row, vec)

    def remove(self, key: str) -> bool:
        """Drop ``key`` from the index; False if it was not indexed."""
        docno = self._by_key.pop(key, None)
        if docno is None:
            return False
        doc = self._docs.pop(docno)
        self._live[docno] = 0
        if self._has_vec[docno]:
            self._has_vec[docno] = 0
            self._n_vecs -= 1
            if self._ann is not None and docno < self._ann_cursor:
                self._ann.remove(docno)
        for row in self._xrows.pop(docno, ()):
            self._xdoc[row] = -1
            if self._ann is not None:
                self._ann.remove(EXTRA_KEY + row)
        self._total_len -= doc[_LEN]
        postings, stale = self._postings, self._stale
        for term in doc[_TERMS]:
            dead = stale.get(term, 0) + 1
            left = len(postings[term]) - dead
            if left == 0:
                del postings[term]
                stale.pop(term, None)
                self._stale_vocab += 1
            elif dead > left and dead > 8:
                self._compact(term)
            else:
                stale[term] = dead
        self._scopes.remove(key, docno, doc[_LEN])
        if self._next > 4096 and self._next > 2 * len(self._docs):
            self._renumber()
        return True

    def _compact(self, term: str) -> None:
        live = self._live
        self._postings[term] = array("Q", [p for p in self._postings[term] if live[p >> 32]])
        self._stale.pop(term, None)

    def _renumber(self) -> None:
        """Rebuild with dense numbers, in recency order, once most numbers belong to the dead."""
        docs = sorted(self._docs.values(), key=lambda doc: doc[_RECENCY])
        vectors = [self.vectors(doc[_KEY]) for doc in docs]
        seq, dim = self._seq, self._dim
        self._clear_vectors()  # the graph's keys are docnos: it is rebuilt when next needed
        self._clear_terms()
        self._dim = dim
        for (key, terms, tfs, _, recency), vec in zip(docs, vectors, strict=True):
            self.add(key, dict(zip(terms, tfs, strict=True)), recency, vec)
        self._seq = seq

    def _df(self, term: str) -> int:
        return len(self._postings[term]) - self._stale.get(term, 0)

    def _expand(self, token: str) -> list[str]:
        """Live terms equal to or starting with ``token``, found by bisecting the vocabulary."""
        if self._pending or self._stale_vocab > len(self._vocab) // 2:
            live = self._postings
            self._vocab = sorted(t for t in dict.fromkeys(self._vocab + self._pending) if t in live)
            self._pending.clear()
            self._stale_vocab = 0
        vocab, live = self._vocab, self._postings
        terms: list[str] = []
        for i in range(bisect_left(vocab, token), len(vocab)):
            term = vocab[i]
            if not term.startswith(token) or len(terms) == MAX_PREFIX_TERMS:
                break
            if term in live:
                terms.append(term)
        return terms

    def _scope_view(self, np: Any, scope: str) -> ScopeView:
        """The scope's live members as a mask over every docno, their count and total length."""
        exact = self._by_key.get(normalize_scope(scope))
        exact_len = 0 if exact is None else self._docs[exact][_LEN]
        return self._scopes.view(np, scope, exact, exact_len, self._next)

    def recent(self, limit: int, scope: str | None = None) -> list[str]:
        """Keys of the ``limit`` most recently written documents, newest first."""
        docs = self._docs
        if scope is None and self._ordered:
            keys = []
            for docno in reversed(docs):
                keys.append(docs[docno][_KEY])
                if len(keys) == limit:
                    break
            return keys
        if scope is None:
            best = heapq.nlargest(limit, docs, key=lambda d: docs[d][_RECENCY])
            return [docs[d][_KEY] for d in best]
        np = _numpy()
        rows = np.flatnonzero(self._scope_view(np, scope).mask[: self._next])
        if limit <= 0 or not len(rows):
            return []
        recency = _gather(np, self._recency, np.int64, rows)
        if len(rows) > limit:
            top = np.argpartition(recency, len(rows) - limit)[len(rows) - limit :]
            rows, recency = rows[top], recency[top]
        return [docs[d][_KEY] for d in rows[np.argsort(-recency, kind="stable")].tolist()]

    def search(self, query: Query, limit: int, scope: str | None = None) -> list[str]:
        """Keys of the best ``limit`` matches, by the query's mode, ties newest first."""
        if query.mode == "keyword" and query.blank:
            return self.recent(limit, scope)
        return [key for key, _ in self.search_scored(query, limit, scope)]

    def search_scored(
        self, query: Query, limit: int, scope: str | None = None
    ) -> list[tuple[str, float]]:
        """``(key, score)`` of the best ``limit`` matches, best first, ties newest first.

        keyword: BM25 (a blank query lists the most recent, scored 0). semantic: cosine
        similarity over documents with vectors. hybrid: the two fused (``_fusion``); weight 0
        and 1 are exactly keyword and semantic.
        """
        mode, weight = query.mode, query.weight
        if mode == "hybrid" and weight == 0.0:
            mode = "keyword"
        elif mode == "hybrid" and weight == 1.0:
            mode = "semantic"
        if mode == "keyword":
            if query.blank:
                return [(key, 0.0) for key in self.recent(limit, scope)]
            scored = self._keyword(query, limit, scope)
        elif mode == "semantic":
            scored = self._semantic(query.vector, limit, scope)
        else:
            scored = self._hybrid(query, limit, scope)
        docs = self._docs
        return [(docs[docno][_KEY], score) for docno, score in scored]

    def _hybrid(self, query: Query, limit: int, scope: str | None) -> list[tuple[int, float]]:
        """Both rankings, ``max(limit, CANDIDATE_DEPTH)`` deep, fused and cut to ``limit``."""
        depth = max(limit, CANDIDATE_DEPTH)
        keyword = [] if query.blank else self._keyword(query, depth, scope)
        semantic = self._semantic(query.vector, depth, scope)
        fused = fuse(keyword, semantic, query.weight, query.fusion)
        np = _numpy()
        rows = np.fromiter(fused.keys(), dtype=np.intp, count=len(fused))
        return self._top(np, rows, np.fromiter(fused.values(), np.float64, len(fused)), limit)

    def _semantic(self, vector: Any, limit: int, scope: str | None) -> list[tuple[int, float]]:
        """Cosine similarity: exact for small sets and scopes, through the graph for large."""
        q = as_unit_vector(vector, "query vector")
        self._check_dim(q, "query vector")
        if not self._n_vecs or limit <= 0:
            return []
        np = _numpy()
        view = None if scope is None else self._scope_view(np, scope)
        if view is not None and not view.members:
            return []
        small = min(SMALL_SCOPE, self._ann_threshold)
        if self._n_vecs >= self._ann_threshold and (view is None or view.members > small):
            found = self._ann_search(q, limit, view)
            if found is not None:
                return found
        return self._exact(q, limit, view)

    def _top(self, np: Any, rows: Any, scores: Any, limit: int) -> list[tuple[int, float]]:
        """The best ``limit`` of docnos ``rows`` by ``scores``, ties newest first: the one
        ordering every mode shares (keyword, semantic and their fusion)."""
        if limit <= 0 or not len(rows):
            return []
        if len(rows) > limit:
            cut = np.partition(scores, len(scores) - limit)[len(scores) - limit]
            keep = scores >= cut
            rows, scores = rows[keep], scores[keep]
        # Best score first, then the newest: one sort in numpy, however many scores tie.
        recency = _gather(np, self._recency, np.int64, rows)
        order = np.lexsort((-recency, -scores))[:limit]
        best = scores[order].astype(np.float64)
        return list(zip(rows[order].tolist(), best.tolist(), strict=True))

    def _exact(self, q: Any, limit: int, view: ScopeView | None) -> list[tuple[int, float]]:
        """Brute force: one matrix-vector product over all rows, or over the scope's rows."""
        np = _numpy()
        size = self._next
        has_vec = _gather(np, self._has_vec, np.bool_, slice(0, size)).copy()
        if view is None:
            rows = np.flatnonzero(has_vec)
            # Mostly live rows: multiply them all, then pick (no copy of the rows first).
            dense = len(rows) * 2 >= size
            sims = self._sims_below(np, q, size)[rows] if dense else self._rows(np, rows) @ q
        else:
            rows = np.flatnonzero(view.mask[:size] & has_vec)
            sims = self._rows(np, rows) @ q
        return self._top(np, rows, self._best(np, q, rows, sims), limit)

    def _xdoc_array(self, np: Any) -> Any:
        """A copy of the further vectors' docnos (-1: removed), as int64."""
        return np.frombuffer(memoryview(self._xdoc), dtype=np.int64, count=len(self._xdoc)).copy()

    def _best(self, np: Any, q: Any, rows: Any, sims: Any) -> Any:
        """``sims`` of ``rows`` raised to each document's best further vector, if it has any."""
        if not self._xrows:
            return sims
        count = len(self._xdoc)
        xdoc = self._xdoc_array(np)
        pos = np.full(self._next, -1, dtype=np.intp)
        pos[rows] = np.arange(len(rows))
        live = xdoc >= 0
        at = np.full(count, -1, dtype=np.intp)
        at[live] = pos[xdoc[live]]
        mine = at >= 0
        if not mine.any():
            return sims
        best = sims.astype(np.float32, copy=True)
        np.maximum.at(best, at[mine], self._xvecs[:count][mine] @ q)
        return best

    def _ann_search(
        self, q: Any, limit: int, view: ScopeView | None
    ) -> list[tuple[int, float]] | None:
        """Graph candidates, rescored exactly; None (go exact) without usearch or if too few.

        Rows the graph has not taken yet (at most a batch or two) join the candidates as they
        are: they are rescored with the rest, so the answer never waits for the graph.
        """
        graph = self._ann
        if graph is None:
            graph = self._new_graph()
            if graph is None:
                return None
        np = _numpy()
        n = self._n_vecs
        want = 2 * limit  # extra candidates, reranked by exact f32 cosine
        if view is not None:
            want = int(want * n / view.members * 2) + limit  # over-fetch, then filter
        want = min(n, max(want, 32))
        has_vec = _gather(np, self._has_vec, np.bool_, slice(0, self._next)).copy()
        rows = np.empty(0, dtype=np.intp)
        if self._ann_cursor > 0 and len(graph):
            keys = np.asarray(graph.search(q, want, exact=False).keys, dtype=np.int64)
            extra = keys >= EXTRA_KEY  # a further vector's key names its row, not a docno
            rows = keys[~extra & (keys < self._ann_cursor)]
            if extra.any():
                xdoc = self._xdoc_array(np)
                more = xdoc[keys[extra] - EXTRA_KEY]
                rows = np.concatenate((rows, more[more >= 0]))
            rows = rows.astype(np.intp)
        pending = np.arange(self._ann_cursor, self._next, dtype=np.intp)
        rows = np.concatenate((rows, pending))
        if self._xrows:  # a document found by two of its vectors counts once
            _, first = np.unique(rows, return_index=True)
            rows = rows[np.sort(first)]
        rows = rows[has_vec[rows]]
        if view is not None:
            rows = rows[view.mask[rows]]
            if len(rows) < min(limit, view.members):
                return None
        elif len(rows) < min(limit, n):
            return None
        return self._top(np, rows, self._best(np, q, rows, self._rows(np, rows) @ q), limit)

    def _rows(self, np: Any, rows: Any) -> Any:
        """The vectors of docnos ``rows`` (each must have one), in that order."""
        blocks = self._vecs
        if len(blocks) == 1:
            return blocks[0][rows]
        out = np.empty((len(rows), self._dim), dtype=np.float32)
        which = rows >> VECTOR_BLOCK_BITS
        for block in np.unique(which).tolist():
            at = which == block
            out[at] = blocks[block][rows[at] & (VECTOR_BLOCK - 1)]
        return out

    def _sims_below(self, np: Any, q: Any, size: int) -> Any:
        """Similarity of ``q`` to every stored row below docno ``size``, by docno."""
        parts = []
        for block, matrix in enumerate(self._vecs):
            start = block << VECTOR_BLOCK_BITS
            if start >= size:
                break
            parts.append(matrix[: size - start] @ q)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _new_graph(self) -> Any:
        """An empty HNSW graph (rows come in batches, ``_ann_step``); None without usearch."""
        index = _usearch_index()
        if index is None or self._dim is None:
            return None
        self._ann = index.Index(
            ndim=self._dim,
            metric="ip",  # rows are unit vectors: inner product is cosine
            dtype=ANN_DTYPE,
            connectivity=ANN_CONNECTIVITY,
            expansion_add=ANN_EXPANSION_ADD,
            expansion_search=ANN_EXPANSION_SEARCH,
        )
        self._ann_cursor = 0
        self._ann_credit = 0
        if self._xrows:  # further vectors join at once: they are few beside the documents
            np = _numpy()
            xdoc = self._xdoc_array(np)
            xrows = np.flatnonzero(xdoc >= 0)
            if len(xrows):
                self._ann.add((xrows + EXTRA_KEY).astype(np.uint64), self._xvecs[xrows])
        return self._ann

    def _graph(self) -> Any:
        """The graph holding every vector now, in one go (benchmarks time a bulk build with
        it; searches never wait for it); None without usearch."""
        if self._ann is None and self._new_graph() is None:
            return None
        self._ann_extend(self._next)
        return self._ann

    def _keyword(self, query: Query, limit: int, scope: str | None) -> list[tuple[int, float]]:
        """BM25 over the query's terms: docnos and scores, best first.

        Unscoped, with the namespace's statistics; scoped, with the scope's own (its member
        count, their average length, each term's document frequency among them).
        """
        docs = self._docs
        if not docs or not query.terms:
            return []
        postings = self._postings
        last = len(query.terms) - 1
        expansions: list[list[str]] = []
        for i, term in enumerate(query.terms):
            if query.prefix_last and i == last:
                terms = self._expand(term)
            else:
                terms = [term] if term in postings else []
            if terms:
                expansions.append(terms)
        if not expansions:
            return []
        np = _numpy()
        view = None if scope is None else self._scope_view(np, scope)
        matches: list[_Matches] | None = None
        if view is None:
            n_docs, total_len = len(docs), self._total_len
            dfs = [sum(self._df(t) for t in terms) for terms in expansions]
        else:
            n_docs, total_len = view.members, view.total_len
            if not n_docs:
                return []
            # Reading a term's postings through the mask gives its frequency in the scope.
            found = [self._read(np, terms, view.mask) for terms in expansions]
            kept = [i for i, m in enumerate(found) if m.df]
            expansions = [expansions[i] for i in kept]
            matches = [found[i] for i in kept]
            dfs = [m.df for m in matches]
            if not expansions:
                return []
        idfs = [idf(df, n_docs) for df in dfs]
        if len(expansions) > MAX_QUERY_TERMS:
            # The most informative terms of a very long query; the rest would add little.
            cut = sorted(token_order(idfs)[:MAX_QUERY_TERMS])
            expansions = [expansions[i] for i in cut]
            idfs = [idfs[i] for i in cut]
            if matches is not None:
                matches = [matches[i] for i in cut]
        plan = _Plan(expansions, token_order(idfs), idfs, total_len / n_docs)
        return self._score_postings(plan, matches, limit)

    def _read(self, np: Any, terms: Sequence[str], mask: Any) -> _Matches:
        """The postings of ``terms`` (a prefix's several are summed per document), through
        ``mask`` if given: docnos, term frequencies, lengths and the document frequency."""
        if len(terms) == 1:
            p = np.frombuffer(self._postings[terms[0]], dtype=np.uint64).copy()
        else:
            p = np.concatenate([np.frombuffer(self._postings[t], dtype=np.uint64) for t in terms])
        if mask is not None:
            p = p[mask[(p >> np.uint64(32)).astype(np.intp)]]
        d, tf, length = _unpack(np, p)
        df = len(d)
        if len(terms) > 1:
            # A prefix: a document's tf is the sum over the terms it matched.
            size = self._next
            tf_dense = np.bincount(d, weights=tf, minlength=size)
            len_dense = np.zeros(size, dtype=np.float64)
            len_dense[d] = length
            d = np.flatnonzero(tf_dense)
            tf, length = tf_dense[d], len_dense[d]
        return _Matches(d, tf, length, df)

    def _score_postings(
        self, plan: _Plan, matches: list[_Matches] | None, limit: int
    ) -> list[tuple[int, float]]:
        """Vectorised: each term's postings become a score vector added into an accumulator.

        ``matches``: the terms' postings already read through a scope's mask (all live), or
        None to read them whole here (then stale postings are dropped at the end).
        """
        expansions, order, idfs, avg_len = plan
        np = _numpy()
        size = self._next
        acc = np.zeros(size, dtype=np.float64)
        touched = np.zeros(size, dtype=np.bool_)  # a byte a document: 8x cheaper to scan than acc
        for i in order:
            m = self._read(np, expansions[i], None) if matches is None else matches[i]
            acc[m.d] += bm25(m.tf, m.length, avg_len, idfs[i])
            touched[m.d] = True
        candidates = np.flatnonzero(touched)
        if matches is None:
            candidates = candidates[_gather(np, self._live, np.bool_, candidates)]
        return self._top(np, candidates, acc[candidates], limit)
