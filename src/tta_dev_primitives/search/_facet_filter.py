"""A filter's facets, read from their postings: every document holding them as a mask, or a
scope's members looked up in them.

Marking every document that holds a facet costs its postings and the index's size (``role``
of a chat turn: half the index, 1.2 ms at 1M documents). Looking a scope's members up costs
the members: each is bisected in the postings, which are in docno order (appended so,
compacted so, and sorted again by a renumbering that reorders documents). ``bisecting_pays``
says which is cheaper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tta_dev_primitives.search._arrays import gather
from tta_dev_primitives.search._postings import Postings, bisects, count, docnos, lookup

__all__ = ["bisecting_pays", "having", "holding"]


def bisecting_pays(
    members: int, terms: Sequence[str], postings: Mapping[str, Postings], size: int
) -> bool:
    """Whether looking ``members`` up in the postings of ``terms`` costs less than marking
    those postings in a mask of ``size`` documents."""
    marked = size + sum(count(postings.get(term, Postings())) for term in terms)
    return bisects(members * len(terms), marked)


def having(np: Any, postings: Mapping[str, Postings], live: bytearray, terms: Sequence[str]) -> Any:
    """A mask over every docno: True where a live document holds every one of ``terms``."""
    size = len(live)
    mask = gather(np, live, np.bool_, slice(0, size)).copy()
    for term in sorted(terms, key=lambda t: len(postings.get(t, b""))):  # rarest first
        plist = postings.get(term)
        if plist is None:
            mask[:] = False
            break
        held = np.zeros(size, dtype=np.bool_)
        held[docnos(np, np.frombuffer(plist, dtype=np.uint64))] = True
        mask &= held
    return mask


def holding(np: Any, postings: Mapping[str, Postings], terms: Sequence[str], rows: Any) -> Any:
    """Those of ``rows`` (live docnos, ascending) holding every one of ``terms``."""
    for term in terms:
        plist = postings.get(term)
        if plist is None or not len(rows):
            return rows[:0]
        p = np.frombuffer(plist, dtype=np.uint64)
        try:
            rows = rows[lookup(np, p, rows)[1]]
        finally:
            del p  # (a view kept would stop the postings from growing)
    return rows
