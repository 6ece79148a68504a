"""An in-process inverted index with BM25 ranking, prefix matching and scope buckets.

Documents get increasing numbers in write order (an update is a new number), so postings lists
are append-only and sorted by recency. Postings are ``array``s and documents are tuples of
atoms: neither is walked by the cyclic garbage collector, which otherwise doubles an add's cost.
Deleted documents leave stale postings that are skipped and compacted once they outnumber the
live ones. Prefix lookups bisect a sorted vocabulary; new terms are merged into it lazily, at
the next search. Multi-token queries use MaxScore pruning: once the k-th best partial score
beats what the remaining tokens could add, documents only in those tokens' postings are never
visited.
"""

from __future__ import annotations

import heapq
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Final

from tta_dev_primitives.stores._text import (
    bm25,
    idf,
    normalize_scope,
    scope_prefixes,
    token_order,
    token_upper_bound,
)

__all__ = ["SearchIndex"]


# A document: (key, terms, term frequencies, length in tokens). Frequencies are ``bytes`` when
# all are below 256 (nearly always): 1 byte each instead of an 8-byte pointer.
_Doc = tuple[str, tuple[str, ...], bytes | tuple[int, ...], int]
_KEY: Final = 0
_TERMS: Final = 1
_TFS: Final = 2
_LEN: Final = 3


def _tf(doc: _Doc, token: str) -> int:
    """Occurrences in ``doc`` of terms that ``token`` matches (equal or prefix)."""
    pairs = zip(doc[_TERMS], doc[_TFS], strict=True)
    return sum(tf for term, tf in pairs if term.startswith(token))


class SearchIndex:
    """Term postings, document stats and scope buckets for one store. Not thread-safe."""

    __slots__ = (
        "_by_key",
        "_docs",
        "_next",
        "_pending",
        "_postings",
        "_scopes",
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
        # term -> (docnos, tfs); a term's document frequency is len(docnos) - stale[term].
        self._postings: dict[str, tuple[array[int], array[int]]] = {}
        self._stale: dict[str, int] = {}
        self._scopes: dict[str, set[int]] = {}
        self._vocab: list[str] = []
        self._pending: list[str] = []
        self._stale_vocab = 0
        self._total_len = 0
        self._next = 0

    def __len__(self) -> int:
        return len(self._docs)

    def add(self, key: str, counts: Mapping[str, int]) -> None:
        """Index ``key`` with these term counts, replacing what was indexed for it before."""
        if key in self._by_key:
            self.remove(key)
        docno = self._next
        self._next += 1
        # Interned, every document shares one string per distinct word (over 1 KB per memory).
        terms = tuple(map(sys.intern, counts))
        values = tuple(counts.values())
        length = sum(values)
        tfs = bytes(values) if length < 256 or max(values) < 256 else values
        self._docs[docno] = (key, terms, tfs, length)
        self._by_key[key] = docno
        self._total_len += length
        postings = self._postings
        for term, tf in zip(terms, values, strict=True):
            plist = postings.get(term)
            if plist is None:
                postings[term] = (array("q", (docno,)), array("I", (tf,)))
                self._pending.append(term)
            else:
                plist[0].append(docno)
                plist[1].append(tf)
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
        self._total_len -= doc[_LEN]
        postings, stale = self._postings, self._stale
        for term in doc[_TERMS]:
            dead = stale.get(term, 0) + 1
            left = len(postings[term][0]) - dead
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
        return True

    def _compact(self, term: str) -> None:
        docs = self._docs
        docnos, tfs = self._postings[term]
        keep = [i for i, d in enumerate(docnos) if d in docs]
        self._postings[term] = (
            array("q", [docnos[i] for i in keep]),
            array("I", [tfs[i] for i in keep]),
        )
        self._stale.pop(term, None)

    def _df(self, term: str) -> int:
        return len(self._postings[term][0]) - self._stale.get(term, 0)

    def _expand(self, token: str) -> list[str]:
        """Live terms equal to or starting with ``token``, found by bisecting the vocabulary."""
        if self._pending or self._stale_vocab > len(self._vocab) // 2:
            live = self._postings
            self._vocab = sorted(t for t in dict.fromkeys(self._vocab + self._pending) if t in live)
            self._pending.clear()
            self._stale_vocab = 0
        vocab, live = self._vocab, self._postings
        terms = []
        for i in range(bisect_left(vocab, token), len(vocab)):
            term = vocab[i]
            if not term.startswith(token):
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
        if scope is None:
            keys = []
            for docno in reversed(self._docs):
                keys.append(self._docs[docno][_KEY])
                if len(keys) == limit:
                    break
            return keys
        return [self._docs[d][_KEY] for d in heapq.nlargest(limit, self._members(scope))]

    def search(self, tokens: Iterable[str], limit: int, scope: str | None = None) -> list[str]:
        """Keys of the best ``limit`` matches, by BM25 score, ties newest first."""
        tokens = list(tokens)
        if not tokens:
            return self.recent(limit, scope)
        docs = self._docs
        if not docs:
            return []
        n_docs = len(docs)
        avg_len = self._total_len / n_docs
        expansions = [self._expand(token) for token in tokens]
        kept = [i for i, terms in enumerate(expansions) if terms]
        if not kept:
            return []
        tokens = [tokens[i] for i in kept]
        expansions = [expansions[i] for i in kept]
        idfs = [idf(sum(self._df(t) for t in terms), n_docs) for terms in expansions]
        bounds = [token_upper_bound(x) for x in idfs]
        order = token_order(bounds)
        members = None if scope is None else self._members(scope)

        if members is not None:
            cost = sum(len(self._postings[t][0]) for terms in expansions for t in terms)
            if len(members) <= cost:
                return self._score_members(members, tokens, order, idfs, avg_len, limit)

        acc: dict[int, float] = {}
        tail = [sum(bounds[j] for j in order[pos:]) for pos in range(len(order))]
        for pos, i in enumerate(order):
            if pos and len(acc) >= limit and heapq.nlargest(limit, acc.values())[-1] > tail[pos]:
                # No document outside acc can reach the top: finish acc's scores directly.
                for j in order[pos:]:
                    for docno in acc:
                        doc = docs[docno]
                        tf = _tf(doc, tokens[j])
                        if tf:
                            acc[docno] += bm25(tf, doc[_LEN], avg_len, idfs[j])
                break
            token_idf = idfs[i]
            get_doc, get_acc = docs.get, acc.get
            if len(expansions[i]) == 1 and members is None:
                # The common case (one whole word, unscoped), kept to one lookup per posting.
                docnos, tfs = self._postings[expansions[i][0]]
                for docno, tf in zip(docnos, tfs, strict=True):
                    live = get_doc(docno)
                    if live is not None:
                        score = bm25(tf, live[_LEN], avg_len, token_idf)
                        acc[docno] = get_acc(docno, 0.0) + score
                continue
            tf_sum: dict[int, int] = {}
            for term in expansions[i]:
                docnos, tfs = self._postings[term]
                for docno, tf in zip(docnos, tfs, strict=True):
                    if docno in docs and (members is None or docno in members):
                        tf_sum[docno] = tf_sum.get(docno, 0) + tf
            for docno, tf in tf_sum.items():
                score = bm25(tf, docs[docno][_LEN], avg_len, token_idf)
                acc[docno] = get_acc(docno, 0.0) + score
        return self._top(acc, limit)

    def _score_members(
        self,
        members: Iterable[int],
        tokens: list[str],
        order: list[int],
        idfs: list[float],
        avg_len: float,
        limit: int,
    ) -> list[str]:
        """Score a small scope by reading its documents' own terms, not the global postings."""
        docs = self._docs
        acc: dict[int, float] = {}
        for docno in members:
            doc = docs[docno]
            score, matched = 0.0, False
            for i in order:
                tf = _tf(doc, tokens[i])
                if tf:
                    score += bm25(tf, doc[_LEN], avg_len, idfs[i])
                    matched = True
            if matched:
                acc[docno] = score
        return self._top(acc, limit)

    def _top(self, acc: dict[int, float], limit: int) -> list[str]:
        # (score, docno) pairs compare natively: best score first, then the newest document.
        best = heapq.nlargest(limit, zip(acc.values(), acc.keys(), strict=True))
        return [self._docs[docno][_KEY] for _, docno in best]
