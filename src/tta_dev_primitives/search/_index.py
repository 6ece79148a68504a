"""An in-process inverted index: BM25 over term postings, scored with numpy, plus scope buckets.

Postings are one append-only ``array`` of 64-bit entries per term, each a document number,
its term frequency and its length (``docno << 32 | tf << 20 | length``), so a query never looks
a document up while scoring: 8 bytes a posting, one append per term of an add. A query reads
the postings of its terms only (stop words never reach it), turns each into a vector of scores
in one numpy expression and adds it into a dense accumulator: cost in proportion to the
postings of the words asked about, never a per-document rescan. A scoped
search over a small scope instead scores the scope's own documents from their term tuples.

Documents are numbered in write order; an update is a new number and leaves stale postings
behind, skipped by a liveness mask and compacted once a term has more stale than live entries.
When numbers run far ahead of live documents the index renumbers itself. Ties rank the document
with the higher ``recency`` first (the write order in-process, Redis's write sequence in a
replica). Not thread-safe: callers hold a lock or stay on one event loop.
"""

from __future__ import annotations

import heapq
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Any, Final, NamedTuple

from tta_dev_primitives.search._analyzer import MAX_QUERY_TERMS, Query
from tta_dev_primitives.search._bm25 import bm25, idf, token_order
from tta_dev_primitives.search._scopes import normalize_scope, scope_prefixes

__all__ = ["MAX_PREFIX_TERMS", "SearchIndex"]

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

_np: Any = None


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


class SearchIndex:
    """Term postings, document stats and scope buckets for one store."""

    __slots__ = (
        "_by_key",
        "_docs",
        "_live",
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
        "_vocab",
    )

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget everything."""
        self._docs: dict[int, _Doc] = {}
        self._by_key: dict[str, int] = {}
        # term -> postings (docno << 32 | tf << 20 | length); df is len - stale[term].
        self._postings: dict[str, array[int]] = {}
        self._stale: dict[str, int] = {}
        self._scopes: dict[str, set[int]] = {}
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

    def add(self, key: str, counts: Mapping[str, int], recency: int | None = None) -> None:
        """Index ``key`` with these term counts, replacing what was indexed for it before.

        ``recency`` orders ties (higher is newer); by default, the order of ``add`` calls.
        """
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
        # Interned, every document shares one string per distinct word.
        terms = tuple(map(sys.intern, counts))
        values = tuple(counts.values())
        length = sum(values)
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
        for prefix in scope_prefixes(key):
            bucket = self._scopes.get(prefix)
            if bucket is None:
                self._scopes[prefix] = {docno}
            else:
                bucket.add(docno)

    def remove(self, key: str) -> bool:
        """Drop ``key`` from the index; False if it was not indexed."""
        docno = self._by_key.pop(key, None)
        if docno is None:
            return False
        doc = self._docs.pop(docno)
        self._live[docno] = 0
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
        for prefix in scope_prefixes(key):
            bucket = self._scopes[prefix]
            bucket.discard(docno)
            if not bucket:
                del self._scopes[prefix]
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
        seq = self._seq
        self.clear()
        for key, terms, tfs, _, recency in docs:
            self.add(key, dict(zip(terms, tfs, strict=True)), recency)
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

    def _members(self, scope: str) -> set[int]:
        scope = normalize_scope(scope)
        members = self._scopes.get(scope, set())
        exact = self._by_key.get(scope)
        return members if exact is None else members | {exact}

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
        pool: Iterable[int] = docs if scope is None else self._members(scope)
        best = heapq.nlargest(limit, pool, key=lambda d: docs[d][_RECENCY])
        return [docs[d][_KEY] for d in best]

    def search(self, query: Query, limit: int, scope: str | None = None) -> list[str]:
        """Keys of the best ``limit`` matches, by BM25 score, ties newest first."""
        if query.blank:
            return self.recent(limit, scope)
        docs = self._docs
        if not docs or not query.terms:
            return []
        n_docs = len(docs)
        avg_len = self._total_len / n_docs
        postings = self._postings
        last = len(query.terms) - 1
        expansions: list[list[str]] = []
        idfs: list[float] = []
        for i, term in enumerate(query.terms):
            if query.prefix_last and i == last:
                terms = self._expand(term)
            else:
                terms = [term] if term in postings else []
            if terms:
                expansions.append(terms)
                idfs.append(idf(sum(self._df(t) for t in terms), n_docs))
        if not expansions:
            return []
        if len(expansions) > MAX_QUERY_TERMS:
            # The most informative terms of a very long query; the rest would add little.
            kept = sorted(token_order(idfs)[:MAX_QUERY_TERMS])
            expansions = [expansions[i] for i in kept]
            idfs = [idfs[i] for i in kept]
        plan = _Plan(expansions, token_order(idfs), idfs, avg_len)
        members = None if scope is None else self._members(scope)
        if members is not None:
            if not members:
                return []
            cost = sum(len(postings[t]) for terms in expansions for t in terms)
            if len(members) <= cost:
                return self._score_members(plan, members, limit)
        return self._score_postings(plan, members, limit)

    def _score_postings(self, plan: _Plan, members: set[int] | None, limit: int) -> list[str]:
        """Vectorised: each term's postings become a score vector added into an accumulator."""
        expansions, order, idfs, avg_len = plan
        np = _numpy()
        size = self._next
        acc = np.zeros(size, dtype=np.float64)
        touched = np.zeros(size, dtype=np.bool_)  # a byte a document: 8x cheaper to scan than acc
        for i in order:
            terms = expansions[i]
            if len(terms) == 1:
                p = np.frombuffer(self._postings[terms[0]], dtype=np.uint64).copy()
                d, tf, length = _unpack(np, p)
            else:
                # A prefix: a document's tf is the sum over the terms it matched.
                p = np.concatenate(
                    [np.frombuffer(self._postings[t], dtype=np.uint64) for t in terms]
                )
                d_all, tf_all, len_all = _unpack(np, p)
                tf_dense = np.bincount(d_all, weights=tf_all, minlength=size)
                len_dense = np.zeros(size, dtype=np.float64)
                len_dense[d_all] = len_all
                d = np.flatnonzero(tf_dense)
                tf, length = tf_dense[d], len_dense[d]
            acc[d] += bm25(tf, length, avg_len, idfs[i])
            touched[d] = True
        candidates = np.flatnonzero(touched)
        candidates = candidates[_gather(np, self._live, np.bool_, candidates)]
        if members is not None:
            inside = np.zeros(size, dtype=np.bool_)
            inside[np.fromiter(members, dtype=np.int64, count=len(members))] = True
            candidates = candidates[inside[candidates]]
        scores = acc[candidates]
        if len(candidates) > limit:
            cut = np.partition(scores, len(scores) - limit)[len(scores) - limit]
            keep = scores >= cut
            candidates, scores = candidates[keep], scores[keep]
        # Best score first, then the newest: one sort in numpy, however many scores tie.
        recency = _gather(np, self._recency, np.int64, candidates)
        best = candidates[np.lexsort((-recency, -scores))[:limit]]
        docs = self._docs
        return [docs[docno][_KEY] for docno in best.tolist()]

    def _score_members(self, plan: _Plan, members: Iterable[int], limit: int) -> list[str]:
        """A small scope: score its documents from their own terms, not the global postings."""
        expansions, order, idfs, avg_len = plan
        docs = self._docs
        # A term may serve two query tokens (a word, and the unfinished last word's prefix).
        tokens_of: dict[str, list[int]] = {}
        for i, expansion in enumerate(expansions):
            for term in expansion:
                tokens_of.setdefault(term, []).append(i)
        disjoint, common = tokens_of.keys().isdisjoint, tokens_of.keys().__and__
        scored = []
        for docno in members:
            doc = docs[docno]
            terms = doc[_TERMS]
            if disjoint(terms):  # most of a scope misses a question's words: one C call each
                continue
            tfs = doc[_TFS]
            per_token: dict[int, int] = {}
            for term in common(terms):
                tf = tfs[terms.index(term)]
                for i in tokens_of[term]:
                    per_token[i] = per_token.get(i, 0) + tf
            score = 0.0
            for i in order:
                count = per_token.get(i)
                if count:
                    score += bm25(float(count), float(doc[_LEN]), avg_len, idfs[i])
            scored.append((score, docno))
        return self._top(scored, limit)

    def _top(self, scored: Iterable[tuple[float, int]], limit: int) -> list[str]:
        """Best score first, then the newest document."""
        docs = self._docs
        best = heapq.nlargest(limit, scored, key=lambda sd: (sd[0], docs[sd[1]][_RECENCY]))
        return [docs[docno][_KEY] for _, docno in best]
