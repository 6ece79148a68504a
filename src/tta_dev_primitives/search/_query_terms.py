"""How far a long question is read: its terms are looked up (their document frequencies read,
to choose the rarest it is scored on) only as far as its beginning holds ``MAX_QUERY_LOOKUPS``
distinct ones, the same on every backend (review R28: a pasted Chinese page sent one engine
query per term, 18,089 of them)."""

from __future__ import annotations

from typing import Final

from tta_dev_primitives.search._tokens import gram_units

__all__ = ["MAX_QUERY_LOOKUPS", "beginning", "fits"]

#: Distinct terms of a query that are looked up at all (each one's document frequency read, to
#: choose the ``MAX_QUERY_TERMS`` rarest): those of its beginning, read as far as it holds no
#: more. On the Query Engine each is one count query per server, so the cut comes before any
#: counting, the same on every backend.
MAX_QUERY_LOOKUPS: Final = 512


def beginning(
    kind: int, token: str, own: tuple[str, ...], terms: dict[str, None], *, runs: bool
) -> tuple[str, ...]:
    """The terms of ``token`` (``own``) that its beginning adds to ``terms`` before they
    hold ``MAX_QUERY_LOOKUPS``: a run of grams read a character (or cluster) at a time,
    each with the pair it ends, and kept in ``grams``' order (characters, then pairs); a
    word's terms (whole first, then its parts) in their order."""
    room = MAX_QUERY_LOOKUPS - len(terms)
    if kind == 0 or kind == 2 or runs:
        return tuple(t for t in own if t not in terms)[: max(room, 0)]
    units = gram_units(token, clusters=kind == 3)
    new: set[str] = set()
    n = 0
    for j, unit in enumerate(units):
        added = {unit, units[j - 1] + unit} if j else {unit}
        added.difference_update(terms, new)
        if len(new) + len(added) > room:
            break
        new |= added
        n = j + 1
    head = units[:n]
    return (*head, *map(str.__add__, head, head[1:]))


def fits(terms: dict[str, None], own: tuple[str, ...]) -> bool:
    """Whether ``own``'s terms not yet in ``terms`` leave them at ``MAX_QUERY_LOOKUPS`` at most."""
    return len(terms) + len(set(own).difference(terms)) <= MAX_QUERY_LOOKUPS
