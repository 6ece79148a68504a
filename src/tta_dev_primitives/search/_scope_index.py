"""Scope membership for an index: buckets of document numbers, their lengths, and numpy masks.

A scoped search scores with the scope's own BM25 statistics (its member count, its members'
total length, each term's document frequency among them): a speaker's name, present in most
of that speaker's turns, is common within the speaker's scope even when it is rare in the
namespace, so it no longer crowds out the words that tell turns apart.

A search reads a scope as a boolean mask over document numbers, so postings are filtered in
one numpy expression whatever the scope's size. Masks of recently searched large scopes are
cached (``MAX_MASKS``) and kept current as documents come and go (a new member waits in a small
set until the next search); a small scope's mask is built afresh, which costs less than
keeping it.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from tta_dev_primitives.search._scopes import normalize_scope, scope_prefixes

__all__ = ["CACHED_SCOPE", "MAX_MASKS", "ScopeIndex", "ScopeView"]

#: Scope masks kept at once (a byte per document each: 100 KB at 100k documents).
MAX_MASKS: Final = 32
#: Scopes with fewer members get a fresh mask at each search (~20 us for 1,000 members).
CACHED_SCOPE: Final = 1024


class ScopeView(NamedTuple):
    """A scope as a search sees it: its live members as a mask, their count and total length."""

    mask: Any  # numpy bool array; True at the docnos of live members, at least ``size`` long
    members: int
    total_len: int
    #: A small scope's member docnos, ascending (None for a large one): a semantic search or a
    #: newest-first listing reads them instead of scanning a mask the index's size.
    rows: Any = None


class _Mask:
    """A cached mask and the members added since it last grew."""

    __slots__ = ("bits", "pending")

    def __init__(self, bits: Any) -> None:
        self.bits = bits
        self.pending: set[int] = set()


class ScopeIndex:
    """Which documents each scope holds (every prefix of a key ending before a ``:``)."""

    __slots__ = ("_buckets", "_lengths", "_masks")

    def __init__(self) -> None:
        self._buckets: dict[str, set[int]] = {}
        self._lengths: dict[str, int] = {}
        self._masks: dict[str, _Mask] = {}

    def add(self, key: str, docno: int, length: int) -> None:
        """``docno`` (key ``key``, ``length`` terms) joins the scopes of its key."""
        buckets, lengths = self._buckets, self._lengths
        for prefix in scope_prefixes(key):
            bucket = buckets.get(prefix)
            if bucket is None:
                buckets[prefix] = {docno}
                lengths[prefix] = length
            else:
                bucket.add(docno)
                lengths[prefix] += length
        if self._masks:
            for scope in (*scope_prefixes(key), key):
                cached = self._masks.get(scope)
                if cached is not None:
                    cached.pending.add(docno)

    def remove(self, key: str, docno: int, length: int) -> None:
        """``docno`` leaves the scopes of its key."""
        buckets, lengths = self._buckets, self._lengths
        for prefix in scope_prefixes(key):
            bucket = buckets[prefix]
            bucket.discard(docno)
            if bucket:
                lengths[prefix] -= length
            else:
                del buckets[prefix]
                del lengths[prefix]
        if self._masks:
            for scope in (*scope_prefixes(key), key):
                cached = self._masks.get(scope)
                if cached is not None:
                    cached.pending.discard(docno)
                    if docno < len(cached.bits):
                        cached.bits[docno] = False

    def renumber(self, np: Any, new_of: Any) -> None:
        """Rename member ``d`` to ``new_of[d]`` in every scope (each member must be live); the
        cached masks are dropped (the next search of a scope builds its mask again)."""
        for scope, bucket in self._buckets.items():
            old = np.fromiter(bucket, dtype=np.intp, count=len(bucket))
            self._buckets[scope] = set(new_of[old].tolist())
        self._masks.clear()

    def members(self, scope: str) -> list[int]:
        """The docnos of ``scope``'s members (keys inside it, not a key equal to it)."""
        return list(self._buckets.get(normalize_scope(scope), ()))

    def view(self, np: Any, scope: str, exact: int | None, exact_len: int, size: int) -> ScopeView:
        """The scope's mask (docnos below ``size``), member count and total length.

        ``exact``/``exact_len``: the docno and length of a key equal to the scope, if any.
        """
        scope = normalize_scope(scope)
        bucket = self._buckets.get(scope)
        count = (len(bucket) if bucket else 0) + (exact is not None)
        total = self._lengths.get(scope, 0) + (exact_len if exact is not None else 0)
        masks = self._masks
        cached = masks.pop(scope, None)
        if cached is None:
            bits = np.zeros(size, dtype=np.bool_)
            rows = np.fromiter(bucket or (), dtype=np.intp, count=len(bucket or ()))
            if exact is not None:
                rows = np.append(rows, exact)
            bits[rows] = True
            if count < CACHED_SCOPE:
                return ScopeView(bits, count, total, np.sort(rows))
            cached = _Mask(bits)
            while len(masks) >= MAX_MASKS:
                del masks[next(iter(masks))]  # the least recently searched
        else:
            bits = cached.bits
            if len(bits) < size:  # with room to spare: growing copies the mask
                grown = np.zeros(max(size, len(bits) + len(bits) // 4), dtype=np.bool_)
                grown[: len(bits)] = bits
                cached.bits = bits = grown
            pending = cached.pending
            if pending:
                bits[np.fromiter(pending, dtype=np.intp, count=len(pending))] = True
                pending.clear()
        masks[scope] = cached  # most recently searched last
        return ScopeView(cached.bits, count, total)

    def clear(self) -> None:
        """Forget every scope."""
        self._buckets.clear()
        self._lengths.clear()
        self._masks.clear()
