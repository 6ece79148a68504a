"""Scope membership for an index: each scope's document numbers, their lengths, and numpy masks.

A scoped search scores with the scope's own BM25 statistics (its member count, its members'
total length, each term's document frequency among them): a speaker's name, present in most
of that speaker's turns, is common within the speaker's scope even when it is rare in the
namespace, so it no longer crowds out the words that tell turns apart.

A scope's members are an append-only ``array`` of document numbers, ascending because numbers
are given in increasing order: 8 bytes a member, read by numpy without a copy (a ``set`` of
ints cost ~50 bytes a member, and reading a user's 2,000 scattered ints took 0.3 ms of a
search that asks about a user not searched lately). A removed member stays until the scope
holds more removed than live (liveness is the index's), as a term's postings do.

A search reads a scope as a boolean mask over document numbers, so postings are filtered in
one numpy expression whatever the scope's size. Masks of recently searched large scopes are
cached (``MAX_MASKS``) and kept current as documents come and go (members numbered since a
mask was made join it at the next search); a small scope's mask is built afresh, which costs
less than keeping it.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import Any, Final, NamedTuple

from tta_dev_primitives.search._arrays import gather
from tta_dev_primitives.search._postings import split
from tta_dev_primitives.search._scopes import scope_prefixes

__all__ = ["CACHED_SCOPE", "COMPACT_FROM", "MAX_MASKS", "ScopeIndex", "ScopeView"]

#: Scope masks kept at once (a byte per document each: 100 KB at 100k documents).
MAX_MASKS: Final = 32
#: Scopes with fewer members get a fresh mask at each search (~20 us for 1,000 members).
CACHED_SCOPE: Final = 1024
#: Removed members a scope may hold beyond its live ones before it drops them.
COMPACT_FROM: Final = 8


class ScopeView(NamedTuple):
    """A scope as a search sees it: its live members as a mask, their count and total length."""

    mask: Any  # numpy bool array; True at the docnos of live members, at least ``size`` long
    members: int
    total_len: int
    #: A small scope's member docnos, ascending (None for a large one): a semantic search or a
    #: newest-first listing reads them instead of scanning a mask the index's size.
    rows: Any = None


class _Mask:
    """A cached mask, holding every member numbered below ``seen``."""

    __slots__ = ("bits", "seen")

    def __init__(self, bits: Any, seen: int) -> None:
        self.bits = bits
        self.seen = seen


class ScopeIndex:
    """Which documents each scope holds (every prefix of a key ending before a ``:``).

    A scope asked about is normalized already (``check_scope``) and looked up as it is.
    """

    __slots__ = ("_buckets", "_counts", "_lengths", "_masks")

    def __init__(self) -> None:
        # scope -> its members' docnos, ascending, removed ones included until compacted
        self._buckets: dict[str, array[int]] = {}
        self._counts: dict[str, int] = {}  # scope -> live members
        self._lengths: dict[str, int] = {}  # scope -> live members' total length
        self._masks: dict[str, _Mask] = {}

    def add(self, key: str, docno: int, length: int) -> None:
        """``docno`` (key ``key``, ``length`` terms; above every docno so far) joins the scopes
        of its key."""
        buckets, counts, lengths = self._buckets, self._counts, self._lengths
        for prefix in scope_prefixes(key):
            bucket = buckets.get(prefix)
            if bucket is None:
                buckets[prefix] = array("q", (docno,))
                counts[prefix] = 1
                lengths[prefix] = length
            else:
                bucket.append(docno)
                counts[prefix] += 1
                lengths[prefix] += length

    def remove(self, key: str, docno: int, length: int, live: bytearray) -> None:
        """``docno`` leaves the scopes of its key (``live``: the index's liveness, by docno,
        ``docno`` already 0 there)."""
        buckets, counts, lengths, masks = self._buckets, self._counts, self._lengths, self._masks
        for prefix in scope_prefixes(key):
            left = counts[prefix] - 1
            if not left:
                del buckets[prefix], counts[prefix], lengths[prefix]
                continue
            counts[prefix] = left
            lengths[prefix] -= length
            bucket = buckets[prefix]
            if len(bucket) > 2 * left + COMPACT_FROM:  # more removed than live: drop them
                buckets[prefix] = array("q", [d for d in bucket if live[d]])
        if masks:
            for scope in (*scope_prefixes(key), key):
                cached = masks.get(scope)
                if cached is not None and docno < len(cached.bits):
                    cached.bits[docno] = False

    def renumber(self, np: Any, new_of: Any, reordered: bool) -> None:
        """Rename member ``d`` to ``new_of[d]`` in every scope (dropped where it is -1); the
        cached masks are dropped (the next search of a scope builds its mask again).

        One numpy pass over every scope's members at once, sorted again by (scope, new docno)
        if the new numbers are ``reordered`` (not increasing with the old)."""
        self._masks.clear()
        scopes = list(self._buckets)
        if not scopes:
            return
        buckets = list(self._buckets.values())
        sizes = np.fromiter(map(len, buckets), dtype=np.int64, count=len(buckets))
        new = new_of[np.frombuffer(b"".join(buckets), dtype=np.int64)]
        owner = np.repeat(np.arange(len(buckets), dtype=np.int64), sizes)
        kept = new >= 0
        ordered = owner[kept] << 32 | new[kept]
        if reordered:
            ordered.sort()
        ends = np.cumsum(np.bincount(owner[kept], minlength=len(buckets))).tolist()
        self._buckets = dict(zip(scopes, split(ordered & 0xFFFFFFFF, ends, "q"), strict=True))

    def members(self, scope: str, live: bytearray) -> list[int]:
        """The docnos of ``scope``'s live members (keys inside it, not a key equal to it)."""
        return [d for d in self._buckets.get(scope, ()) if live[d]]

    def view(
        self, np: Any, scope: str, exact: int | None, exact_len: int, live: bytearray
    ) -> ScopeView:
        """The scope's mask (over every docno of ``live``), member count and total length.

        ``exact``/``exact_len``: the docno and length of a key equal to the scope, if any.
        """
        bucket = self._buckets.get(scope)
        size = len(live)
        inside = self._counts.get(scope, 0)  # members inside it; a key equal to it is not
        count = inside + (exact is not None)
        total = self._lengths.get(scope, 0) + (exact_len if exact is not None else 0)
        masks = self._masks
        cached = masks.pop(scope, None)
        if cached is None or count < CACHED_SCOPE:  # (a large scope that shrank: no longer kept)
            rows = self._rows(np, scope, exact, live)
            bits = np.zeros(size, dtype=np.bool_)
            bits[rows] = True
            if count < CACHED_SCOPE:
                return ScopeView(bits, count, total, rows)
            cached = _Mask(bits, size)
            while len(masks) >= MAX_MASKS:
                del masks[next(iter(masks))]  # the least recently searched
        else:
            bits = cached.bits
            if len(bits) < size:  # with room to spare: growing copies the mask
                grown = np.zeros(max(size, len(bits) + len(bits) // 4), dtype=np.bool_)
                grown[: len(bits)] = bits
                cached.bits = bits = grown
            if bucket is not None and cached.seen < size:
                start = bisect_left(bucket, cached.seen)
                bits[self._live_rows(np, bucket, start, live, False)] = True
            cached.seen = size
            if exact is not None:
                bits[exact] = True
        masks[scope] = cached  # most recently searched last
        return ScopeView(cached.bits, count, total)

    def rows(self, np: Any, scope: str, exact: int | None, live: bytearray) -> Any:
        """The docnos of ``scope``'s live members and of a key equal to it (``exact``), ascending:
        a new array."""
        return self._rows(np, scope, exact, live)

    def _rows(self, np: Any, scope: str, exact: int | None, live: bytearray) -> Any:
        bucket = self._buckets.get(scope)
        every = len(bucket or ()) == self._counts.get(scope, 0)  # none removed since compacted
        rows = self._live_rows(np, bucket, 0, live, every)
        if exact is not None:
            rows = np.insert(rows, np.searchsorted(rows, exact), exact)
        return rows

    @staticmethod
    def _live_rows(
        np: Any, bucket: array[int] | None, start: int, live: bytearray, all_live: bool
    ) -> Any:
        """The live docnos of ``bucket[start:]`` (``all_live``: known to be), ascending: a new
        array (a view kept would stop the bucket from growing)."""
        if bucket is None or start >= len(bucket):
            return np.zeros(0, dtype=np.intp)
        rows = gather(np, bucket, np.int64, slice(start, None)).astype(np.intp)
        if all_live:
            return rows
        kept = gather(np, live, np.bool_, rows)
        return rows if kept.all() else rows[kept]

    def clear(self) -> None:
        """Forget every scope."""
        self._buckets.clear()
        self._counts.clear()
        self._lengths.clear()
        self._masks.clear()
