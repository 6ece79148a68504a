"""Packed postings: a document number, term frequency and length in one 64-bit entry.

A term's postings are an append-only ``bytearray`` of native uint64 entries, each
``docno << 32 | tf << 20 | length``, so scoring never looks a document up. A ``bytearray``, not
an ``array("Q")``: the garbage collector tracks every ``array`` and none of the bytearrays, and
an index holds about three lists a memory (1M of them made each full collection 112 ms longer).
This module makes and reads them, asks a scope's mask about them, and renumbers every term's
postings at once when the index renumbers.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from tta_dev_primitives.search._arrays import numpy

__all__ = [
    "LEN_MAX",
    "PACK",
    "TF_MAX",
    "Held",
    "Matches",
    "Postings",
    "bisects",
    "count",
    "docnos",
    "lookup",
    "members_of",
    "renumbered",
    "reorders",
    "split",
    "unpack",
]

#: A term's postings: native uint64 entries, 8 bytes each.
Postings = bytearray
#: One entry's 8 bytes, to append to a term's postings (``plist += PACK(entry)``).
PACK: Final[Callable[[int], bytes]] = struct.Struct("=Q").pack
_ENTRIES: Final = 8


def count(plist: Postings) -> int:
    """How many entries ``plist`` holds."""
    return len(plist) // _ENTRIES


#: Packed postings keep the document number in the high 32 bits of each uint64: on a
#: little-endian machine, the second uint32 of the eight bytes (``_high``).
_LITTLE_ENDIAN: Final = sys.byteorder == "little"

# A term frequency is packed in 12 bits and a document length in 20: both saturate there (BM25
# barely moves past a few occurrences; a million-word memory is normalised as one).
TF_MAX: Final = (1 << 12) - 1
LEN_MAX: Final = (1 << 20) - 1
#: Postings read (or marked) in the time one member is bisected in them: at 1M documents a
#: scope of 50,000 bisected in a facet of 500,000 postings took as long as marking it.
_BISECT_COST: Final = 24


class Matches(NamedTuple):
    """A query term's postings as numpy arrays, and how many documents hold it."""

    d: Any  # docnos
    tf: Any  # term frequencies, as floats
    length: Any  # document lengths, as floats
    df: int


def docnos(np: Any, p: Any) -> Any:
    """The document numbers of packed postings (a uint64 array)."""
    return (p >> np.uint64(32)).astype(np.intp)


def _high(np: Any, p: Any) -> Any:
    """The document numbers of packed postings as a view of their high halves (no copy), or,
    on a big-endian machine, ``docnos``."""
    if _LITTLE_ENDIAN:
        return p.view(np.uint32)[1::2]
    return docnos(np, p)  # pragma: no cover


def unpack(np: Any, p: Any) -> tuple[Any, Any, Any]:
    """Document numbers, term frequencies and lengths (as floats) of packed postings."""
    d = docnos(np, p)
    tf = ((p >> np.uint64(20)) & np.uint64(TF_MAX)).astype(np.float64)
    length = (p & np.uint64(LEN_MAX)).astype(np.float64)
    return d, tf, length


class Held:
    """A scope's mask, asked whether a member holds a term's postings: most terms of a large
    vocabulary have a few postings, read one by one from the mask's bytes (a numpy call per
    term cost 5 us: a scoped 3-letter prefix looked at thousands of terms, 20 ms a search)."""

    __slots__ = ("_bytes", "_mask")

    #: Postings up to this many are read one by one; longer ones with numpy.
    SHORT: Final = 32

    def __init__(self, mask: Any) -> None:
        self._mask = mask
        self._bytes: bytes | None = None

    def any_of(self, plist: Postings) -> bool:
        """True if a member of the scope holds one of these postings."""
        n = count(plist)
        if n <= self.SHORT:
            held = self._bytes
            if held is None:
                held = self._bytes = bytes(self._mask.tobytes())
            if n == 1:  # (most: a word one memory holds)
                return bool(held[int.from_bytes(plist, sys.byteorder) >> 32])
            with memoryview(plist).cast("Q") as entries:  # (released: the list may grow)
                return any(held[p >> 32] for p in entries)
        np = numpy()
        docs = docnos(np, np.frombuffer(plist, dtype=np.uint64))
        return bool(self._mask[docs].any())


def bisects(members: int, postings: int) -> bool:
    """Whether looking ``members`` up in ``postings`` by bisection (``lookup``) costs less
    than reading or marking every posting."""
    return members * _BISECT_COST < postings


def members_of(np: Any, p: Any, mask: Any, rows: Any) -> Any:
    """The packed postings ``p`` of a scope's members (``mask`` over every docno; ``rows``: a
    small scope's, ascending, or None), in the same order either way: few members bisected
    in many postings, else every posting read through the mask."""
    if rows is not None and bisects(len(rows), len(p)):
        found, held = lookup(np, p, rows)
        return found[held]
    return p[mask[docnos(np, p)]]


def lookup(np: Any, p: Any, rows: Any) -> tuple[Any, Any]:
    """Each of ``rows`` (docnos) looked up in the packed postings ``p`` (not empty, in docno
    order) by bisection: the posting at or after it, and whether that posting is its own."""
    at = np.searchsorted(p, rows.astype(np.uint64) << np.uint64(32))
    found = p[np.minimum(at, len(p) - 1)]
    return found, docnos(np, found) == rows


def reorders(np: Any, new_of: Any) -> bool:
    """Whether renaming document ``d`` to ``new_of[d]`` (-1: dropped) changes their order."""
    moved = new_of[new_of >= 0]
    return len(moved) > 1 and not bool((moved[1:] > moved[:-1]).all())


def renumbered(postings: dict[str, Postings], new_of: Any, reordered: bool) -> dict[str, Postings]:
    """Every term's postings with document ``d`` renamed ``new_of[d]`` (dropped where it is
    -1), and terms left with none dropped. A list stays in increasing docno order (a filter
    bisects it: ``_facet_filter.holding``): sorted again if the new numbers are ``reordered``.

    One numpy pass over all the postings at once: a term at a time cost a numpy call each
    (5 us: half a second for a large vocabulary), and re-adding every document cost 20-35 us a
    document, seconds of a stalled event loop at 100k memories. The document numbers are read
    and written in place, as the high halves of the packed postings (``_high``): shifting and
    masking copies of them cost 0.6 s more at 1M memories.
    """
    np = numpy()
    terms = list(postings)
    lists = list(postings.values())
    sizes = np.fromiter(map(count, lists), dtype=np.intp, count=len(lists))
    packed = np.frombuffer(b"".join(lists), dtype=np.uint64)
    d = new_of[_high(np, packed)]
    kept = d >= 0
    packed = packed[kept]  # a copy: the postings of live documents, under their old numbers
    if _LITTLE_ENDIAN:
        packed.view(np.uint32)[1::2] = d[kept]
    else:  # pragma: no cover (no big-endian CI)
        packed = (d[kept].astype(np.uint64) << np.uint64(32)) | (packed & np.uint64(0xFFFFFFFF))
    starts = np.cumsum(sizes) - sizes  # every term has a posting: no empty range
    counts = np.add.reduceat(kept, starts, dtype=np.intp) if len(lists) else sizes
    ends = np.cumsum(counts).tolist()
    if reordered:  # (documents written out of recency order: a replica's partitions)
        owner = np.repeat(np.arange(len(lists), dtype=np.int64), counts)
        packed = packed[np.argsort(owner << 32 | (packed >> np.uint64(32)).astype(np.int64))]
    return {term: plist for term, plist in zip(terms, split(packed, ends), strict=True) if plist}


def split(values: Any, ends: list[int], typecode: str | None = None) -> list[Any]:
    """``values`` (a numpy array of 8-byte ints) cut before each of ``ends``: what a
    renumbering's one numpy pass gives back, list by list, as ``Postings`` or, given a
    ``typecode``, as ``array``s of it."""
    data = memoryview(values.tobytes())
    out: list[Any] = []
    start = 0
    for end in ends:
        chunk = data[_ENTRIES * start : _ENTRIES * end]
        if typecode is None:
            out.append(Postings(chunk))
        else:
            part = array(typecode)
            part.frombytes(chunk)
            out.append(part)
        start = end
    return out
