"""Field filters: a memory's scalar fields as facets, indexed beside its terms.

``search(..., filter={"role": "user"})`` keeps memories whose value holds ``"user"`` in its
top-level field ``role``, or in a list there (tags). A dotted name reaches one level into an
object field (``"meta.lang"``). Values are compared with their type: ``1``, ``True`` and ``"1"``
are three values (``1`` and ``1.0`` are one number, as in JSON).

Only values a filter would name are indexed: strings up to ``MAX_FACET_CHARS`` characters and
lists of up to ``MAX_FACET_ITEMS`` items (a whole text, or a list of numbers such as a vector,
would cost a posting per memory and is never filtered on; ``check_filter`` refuses such a
value rather than find nothing). Each ``(field, value)`` a memory holds becomes one facet:
``FACET_MARK`` and 16 hex digits of a hash of the field and the typed value. Facets travel
with a memory's term counts (count 1, never part of its length, never matched by a query's
words: the analyzer makes no term with the mark), so every index that holds terms (in-process,
the Redis replica, the journal) holds them too, and
the Query Engine writes them as TAGs beside the scope tags. A hash collision could let a memory
through: the caller checks its results with ``matches``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = [
    "FACET_MARK",
    "MAX_FACET_CHARS",
    "MAX_FACET_ITEMS",
    "Scalar",
    "facet",
    "facets",
    "filter_facets",
    "is_facet",
    "matches",
]

#: Starts every facet term (a control character: no analysed word begins with it).
FACET_MARK: Final = "\x1f"

#: The longest string a filter can match (a longer one is text, searched by its words).
MAX_FACET_CHARS: Final = 64
#: The most items of a list field whose items a filter can match (tags, not vectors).
MAX_FACET_ITEMS: Final = 64

Scalar = str | int | float | bool | None


def _typed(value: Any) -> str | None:
    """The value with its type, or None for one a filter cannot name (nested, NaN)."""
    if value is None:
        return "z"
    if isinstance(value, bool):
        return "b1" if value else "b0"
    # (Spelled by int's and float's own methods: a subclass's repr is not the number's, e.g.
    # numpy's float64 is a float whose repr is "np.float64(1.5)", and JSON stores 1.5.)
    if isinstance(value, int):
        return "n" + int.__repr__(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return "n" + (int.__repr__(int(value)) if value.is_integer() else float.__repr__(value))
    if isinstance(value, str):
        return "s" + value if len(value) <= MAX_FACET_CHARS else None
    return None


def facet(field: str, value: Any) -> str | None:
    """The facet term of ``field`` holding ``value``; None if ``value`` is not a scalar."""
    typed = _typed(value)
    if typed is None:
        return None
    data = f"{len(field)}:{field}{typed}".encode("utf-8", "surrogatepass")
    return FACET_MARK + hashlib.blake2b(data, digest_size=8, person=b"tta-facet").hexdigest()


def is_facet(term: str) -> bool:
    """True for a facet term (not a word)."""
    return term.startswith(FACET_MARK)


def _add(out: dict[str, None], field: str, value: Any) -> None:
    items: Iterable[Any] = value if isinstance(value, list | tuple) else (value,)
    if isinstance(value, list | tuple) and len(value) > MAX_FACET_ITEMS:
        return
    for item in items:
        term = facet(field, item)
        if term is not None:
            out[term] = None


def facets(value: Any) -> list[str]:
    """Every facet of a (decoded) memory value: its top-level fields' scalars and lists of
    scalars, and those of its object fields' own fields, as ``outer.inner``."""
    out: dict[str, None] = {}
    if not isinstance(value, dict):
        return []
    for name, field in value.items():
        if not isinstance(name, str):
            continue
        if isinstance(field, dict):
            for inner, item in field.items():
                if isinstance(inner, str):
                    _add(out, f"{name}.{inner}", item)
        else:
            _add(out, name, field)
    return list(out)


def filter_facets(pairs: Mapping[str, Scalar]) -> tuple[str, ...]:
    """The facets a (checked) filter asks for, each once, in a stable order."""
    return tuple(sorted({t for k, v in pairs.items() if (t := facet(k, v)) is not None}))


def matches(value: Any, wanted: tuple[str, ...]) -> bool:
    """True if the value holds every facet in ``wanted``."""
    return not wanted or set(wanted).issubset(facets(value))
