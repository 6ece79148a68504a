"""The keyword half of an index: term postings, BM25 statistics and scope masks, in numpy.

Postings are one append-only list of 64-bit entries per term (``_postings``), each a
document number, its term frequency and its length (``docno << 32 | tf << 20 | length``), so a
query never looks a document up while scoring: 8 bytes a posting, one append per term of an
add. A query reads the postings of its terms only (stop words never reach it), turns each
into a vector of scores in one numpy expression and adds it into a dense accumulator: cost in
proportion to the postings of the words asked about, never a per-document rescan. A scoped
search filters the same postings through the scope's mask and scores with the scope's own
statistics (see ``_scope_index``).

Document numbers are given by the caller, in increasing order. A removed document's stale
postings are skipped by a liveness mask and compacted once a term has more stale than live.
Ranking (the top ``k`` and its ties) is the caller's: this index scores."""

from __future__ import annotations

import sys
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple

from tta_dev_primitives.search._analyzer import MAX_QUERY_TERMS, STOP_MARK, Query
from tta_dev_primitives.search._arrays import gather, numpy
from tta_dev_primitives.search._bm25 import COMPLETION_TF, bm25, idf, length_b, token_order
from tta_dev_primitives.search._facet_filter import bisecting_pays, having, holding
from tta_dev_primitives.search._facets import FACET_MARK
from tta_dev_primitives.search._postings import (
    LEN_MAX,
    PACK,
    TF_MAX,
    Held,
    Matches,
    Postings,
    count,
    members_of,
    renumbered,
    reorders,
    unpack,
)
from tta_dev_primitives.search._scope_index import ScopeIndex, ScopeView

__all__ = ["LEN_MAX", "MAX_PREFIX_TERMS", "TF_CAP", "TF_MAX", "Plan", "TermIndex"]

#: Terms an unfinished last word may expand to (the first ones in dictionary order).
MAX_PREFIX_TERMS: Final = 256
#: New terms inserted into the sorted vocabulary in place at most (~10 ms at 100k terms).
_MERGE_IN_PLACE: Final = 256
#: A term's frequency counts up to this (BM25 has long saturated): the Query Engine's documents
#: repeat a term at most this often (``documents.MAX_TF``), and both must score alike.
TF_CAP: Final = 255
_NOT_WORDS: Final = (STOP_MARK, FACET_MARK)
#: Matches under 1/this of the index are summed sparsely (``score``): sorting them costs less
#: than arrays the index's size up to about a tenth (1M memories, 2-core machine).
_SPARSE: Final = 16


class Plan(NamedTuple):
    """A query, resolved against the index: what to score and how."""

    expansions: list[list[str]]  # per query term, the indexed terms it matches
    order: list[int]  # the order in which their scores are added (rarest first)
    idfs: list[float]
    avg_len: float
    matches: list[Matches] | None  # postings already read through a scope's mask, or None
    typed: list[str | None]  # per query term, the unfinished word its expansions complete


class TermIndex:
    """Postings per term, BM25 statistics and scope membership, by document number."""

    __slots__ = (
        "_count",
        "_live",
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
        """Forget every document and term."""
        # term -> postings (docno << 32 | tf << 20 | length); df is len - stale[term].
        self._postings: dict[str, Postings] = {}
        self._stale: dict[str, int] = {}
        self._scopes = ScopeIndex()
        self._live = bytearray()  # docno -> 1 while that document is indexed
        self._vocab: list[str] = []
        self._pending: list[str] = []
        self._stale_vocab = 0
        self._total_len = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def terms(self) -> int:
        """Distinct terms held by live documents."""
        return len(self._postings)

    @property
    def entries(self) -> int:
        """Postings stored, stale ones not yet compacted included."""
        return sum(map(count, self._postings.values()))

    def add(
        self, docno: int, key: str, counts: Mapping[str, int], length: int | None = None
    ) -> tuple[tuple[str, ...], bytes | tuple[int, ...], int]:
        """Index document ``docno`` (the next number) of key ``key`` with these term counts.

        Returns what ``remove`` and a re-add need: its terms, their frequencies (capped at
        ``TF_CAP``: ``bytes``, a byte each instead of a pointer) and length. A re-add passes
        that ``length`` back: the capped frequencies no longer add up to it.
        """
        # Interned, every document shares one string per distinct word.
        terms = tuple(map(sys.intern, counts))
        values = tuple(counts.values())
        if length is None:
            length = sum(values)
            # Stop words (indexed for queries made only of them) do not make a memory longer.
            # Nor do facets (``_facets``): they are fields' values, not words.
            length -= sum(v for t, v in zip(terms, values, strict=True) if t.startswith(_NOT_WORDS))
        try:
            tfs: bytes | tuple[int, ...] = bytes(values)
        except ValueError:  # a term occurs more than TF_CAP times
            values = tuple(min(v, TF_CAP) for v in values)
            tfs = bytes(values)
        length = min(length, LEN_MAX)
        self._live.append(1)
        self._count += 1
        self._total_len += length
        postings, get, pack = self._postings, self._postings.get, PACK
        base = docno << 32 | length
        for term, tf in zip(terms, values, strict=True):
            plist = get(term)
            if plist is None:
                postings[term] = Postings(pack(base | tf << 20))
                if not term.startswith(FACET_MARK):  # facets are never a prefix's expansion
                    self._pending.append(term)
            else:
                plist += pack(base | tf << 20)
        self._scopes.add(key, docno, length)
        return terms, tfs, length

    def remove(self, docno: int, key: str, terms: Sequence[str], length: int) -> None:
        """Drop document ``docno``, added with these ``terms`` and ``length``."""
        self._live[docno] = 0
        self._count -= 1
        self._total_len -= length
        postings, stale = self._postings, self._stale
        for term in terms:
            dead = stale.get(term, 0) + 1
            left = count(postings[term]) - dead
            if left == 0:
                del postings[term]
                stale.pop(term, None)
                self._stale_vocab += not term.startswith(FACET_MARK)
            elif dead > left and dead > 8:
                self._compact(term)
            else:
                stale[term] = dead
        self._scopes.remove(key, docno, length, self._live)

    def _compact(self, term: str) -> None:
        live = self._live
        with memoryview(self._postings[term]).cast("Q") as entries:
            kept = Postings().join(PACK(p) for p in entries if live[p >> 32])
        self._postings[term] = kept
        self._stale.pop(term, None)

    def renumber(self, new_of: Any, count: int) -> None:
        """Rename document ``d`` to ``new_of[d]`` everywhere (-1: removed), the live ones now
        ``0..count-1``: stale postings go, statistics stay (``SearchIndex`` renumbering)."""
        np = numpy()
        reordered = reorders(np, new_of)
        self._postings = renumbered(self._postings, new_of, reordered)
        self._stale.clear()
        self._live = bytearray(b"\x01") * count
        self._scopes.renumber(np, new_of, reordered)

    def members(self, scope: str) -> list[int]:
        return self._scopes.members(scope, self._live)  # (``ScopeIndex.members``)

    def view(self, scope: str, exact: int | None, exact_len: int) -> ScopeView:
        """The scope's live members as a mask over every docno, their count and total length
        (``exact``/``exact_len``: the docno and length of a document whose key is the scope)."""
        return self._scopes.view(numpy(), scope, exact, exact_len, self._live)

    def within(
        self, terms: Sequence[str], view: ScopeView | None, scope: str | None, exact: int | None
    ) -> ScopeView:
        """The documents of ``view`` (None: every one) holding every one of ``terms`` (a
        filter's facets): a scope's members looked up in the facets' postings when that costs
        less than marking the postings (``_facet_filter``). ``scope``/``exact``: the view's."""
        np, postings = numpy(), self._postings
        if view is None:
            mask = having(np, postings, self._live, terms)
            return ScopeView(mask, int(mask.sum()), 0)
        rows = view.rows
        if (
            rows is None
            and scope is not None
            and bisecting_pays(view.members, terms, postings, len(self._live))
        ):
            rows = self._scopes.rows(np, scope, exact, self._live)
        if rows is None:
            mask = having(np, postings, self._live, terms)
            mask &= view.mask[: len(mask)]
            return ScopeView(mask, int(mask.sum()), view.total_len)
        rows = holding(np, postings, terms, rows)
        mask = np.zeros(len(view.mask), dtype=np.bool_)
        mask[rows] = True
        return ScopeView(mask, len(rows), view.total_len, rows)

    def _merge_pending(self) -> None:
        """The sorted vocabulary brought up to date: a few new terms inserted in place (a
        rebuild took 35-56 ms at 50k memories), many rebuild it; removed terms wait for that."""
        pending, vocab, live = self._pending, self._vocab, self._postings
        if self._stale_vocab > len(vocab) // 2 or len(pending) > _MERGE_IN_PLACE:
            self._vocab = sorted(t for t in dict.fromkeys(vocab + pending) if t in live)
            self._stale_vocab = 0
        else:
            for term in pending:
                at = bisect_left(vocab, term)
                if term in live and (at == len(vocab) or vocab[at] != term):
                    vocab.insert(at, term)
        pending.clear()

    def expand(
        self,
        token: str,
        mask: Any = None,
        terms_of: Callable[[int], Sequence[str]] | None = None,
        size: int = 0,
    ) -> list[str]:
        """Live terms equal to or starting with ``token`` (held by a member of the scope whose
        ``mask`` is given), the first ``MAX_PREFIX_TERMS`` in order, found by bisecting the
        vocabulary. Scoped, a scope's completions do not depend on other scopes' words (a
        replica of one user holds only that user's): a scope smaller (``size``, its total
        length) than the prefix's range of the vocabulary reads its members' own terms
        (``terms_of``) instead of the range."""
        self._merge_pending()
        vocab, live = self._vocab, self._postings
        start = bisect_left(vocab, token)
        if mask is not None and terms_of is not None:
            last = bisect_left(vocab, token + "\U0010ffff", start)
            if size < last - start:
                # (Another scope's many words of this prefix: 4,096 looked at cost 20 ms.)
                np = numpy()
                own = {
                    t
                    for d in np.flatnonzero(mask).tolist()
                    for t in terms_of(d)
                    if t.startswith(token) and t in live
                }
                return sorted(own)[:MAX_PREFIX_TERMS]
        held = None if mask is None else Held(mask)
        terms: list[str] = []
        for i in range(start, len(vocab)):
            term = vocab[i]
            if not term.startswith(token) or len(terms) == MAX_PREFIX_TERMS:
                break
            plist = live.get(term)
            if plist is not None and (held is None or held.any_of(plist)):
                terms.append(term)
        return terms

    def plan(
        self,
        query: Query,
        view: ScopeView | None,
        terms_of: Callable[[int], Sequence[str]] | None = None,
    ) -> Plan | None:
        """What BM25 scores for ``query``, None if nothing can match (``terms_of``: see
        ``expand``): unscoped with the index's statistics, scoped (``view``) with the scope's
        own (its member count, their average length, each term's document frequency there)."""
        if not self._count or not query.terms:
            return None
        postings = self._postings
        last = len(query.terms) - 1
        expansions: list[list[str]] = []
        typed: list[str | None] = []
        for i, term in enumerate(query.terms):
            completed = query.prefix_last and i == last
            if completed:
                if view is None:
                    terms = self.expand(term)
                else:
                    terms = self.expand(term, view.mask, terms_of, view.total_len)
            else:
                terms = [term] if term in postings else []
            if terms:
                expansions.append(terms)
                typed.append(term if completed else None)
        if not expansions:
            return None
        matches: list[Matches] | None = None
        if view is None:
            n_docs, total_len = self._count, self._total_len
            dfs = [sum(self._df(t) for t in terms) for terms in expansions]
        else:
            n_docs, total_len = view.members, view.total_len
            if not n_docs:
                return None
            # Reading a term's postings through the mask gives its frequency in the scope.
            found = [self._read(t, view, w) for t, w in zip(expansions, typed, strict=True)]
            kept = [i for i, m in enumerate(found) if m.df]
            expansions, typed = [expansions[i] for i in kept], [typed[i] for i in kept]
            matches = [found[i] for i in kept]
            dfs = [m.df for m in matches]
            if not expansions:
                return None
        idfs = [idf(df, n_docs) for df in dfs]
        if len(expansions) > MAX_QUERY_TERMS:
            # The most informative terms of a very long query; the rest would add little.
            cut = sorted(token_order(idfs)[:MAX_QUERY_TERMS])
            expansions = [expansions[i] for i in cut]
            idfs, typed = [idfs[i] for i in cut], [typed[i] for i in cut]
            if matches is not None:
                matches = [matches[i] for i in cut]
        return Plan(expansions, token_order(idfs), idfs, total_len / n_docs, matches, typed)

    def _df(self, term: str) -> int:
        return count(self._postings[term]) - self._stale.get(term, 0)

    def _read(
        self, terms: Sequence[str], view: ScopeView | None, typed: str | None = None
    ) -> Matches:
        """The postings of ``terms`` (a prefix's several are summed per document), only those of
        the scope's members if ``view`` is given: docnos, term frequencies, lengths and the
        document frequency. The completions of an unfinished word ``typed`` count
        ``COMPLETION_TF`` an occurrence."""
        np = numpy()
        parts = [np.frombuffer(self._postings[t], dtype=np.uint64) for t in terms]
        if view is not None:
            parts = [members_of(np, part, view.mask, view.rows) for part in parts]
        p = parts[0].copy() if len(parts) == 1 else np.concatenate(parts)
        weights = None
        if typed is not None:
            each = [1.0 if t == typed else COMPLETION_TF for t in terms]
            weights = np.repeat(np.asarray(each), [len(part) for part in parts])
        d, tf, length = unpack(np, p)
        if weights is not None:
            tf = tf * weights
        df = len(d)
        if len(terms) > 1:
            # A prefix: a document's tf is the sum over the terms it matched, added in the
            # postings' order either way (the same floats), sparsely if they are few.
            size = len(self._live)
            found, at = np.unique(d, return_inverse=True) if df * _SPARSE < size else (None, d)
            slots = size if found is None else len(found)
            length_of = np.zeros(slots, dtype=np.float64)
            length_of[at] = length
            tf = np.bincount(at, weights=tf, minlength=slots)
            kept = np.flatnonzero(tf)
            d, tf, length = kept if found is None else found[kept], tf[kept], length_of[kept]
        return Matches(d, tf, length, df)

    def score(self, plan: Plan) -> tuple[Any, Any]:
        """Every live document ``plan`` matches, and its BM25 score: two numpy arrays.

        Vectorised: each term's postings become a score vector added into an accumulator.
        """
        expansions, order, idfs, avg_len, matches, typed = plan
        np = numpy()
        size = len(self._live)
        b = length_b(avg_len)
        read = [self._read(expansions[i], None, typed[i]) if matches is None else matches[i]
                for i in order]  # fmt: skip
        parts = [
            bm25(m.tf, m.length, avg_len, idfs[i], b) for i, m in zip(order, read, strict=True)
        ]
        if sum(len(m.d) for m in read) * _SPARSE < size:
            # Few matches (a scope, rare words): summed per document without an accumulator
            # the index's size (8 MB a search at 1M memories). bincount adds each document's
            # terms in this order, as the dense sum does: the same floats either way.
            found, at = np.unique(np.concatenate([m.d for m in read]), return_inverse=True)
            acc = np.bincount(at, weights=np.concatenate(parts), minlength=len(found))
        else:
            dense = np.zeros(size, dtype=np.float64)
            touched = np.zeros(size, dtype=np.bool_)  # a byte a document: 8x cheaper to scan
            for m, part in zip(read, parts, strict=True):
                dense[m.d] += part
                touched[m.d] = True
            found = np.flatnonzero(touched)
            acc = dense[found]
        if matches is None:  # read whole: drop the stale postings' documents
            live = gather(np, self._live, np.bool_, found)
            found, acc = found[live], acc[live]
        return found, acc
