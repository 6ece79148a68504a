"""Which strings of a memory are searched.

By default every string in the value is searched except metadata: the values of fields named
``role``, ``type``, ``kind``, ``id``, ``status`` or ``timestamp``, or ending in ``_id`` or
``_at``, at any depth. So in ``{"role": "assistant", "content": "..."}`` only the content
counts, and a question's "a" never matches "assistant". ``text_fields=("content", "title")``
searches only those top-level fields (every string inside them). Field names are never searched.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tta_dev_primitives.exceptions import InvalidArgumentError, InvalidArgumentTypeError

__all__ = ["METADATA_FIELDS", "check_text_fields", "is_metadata", "searchable_strings"]

METADATA_FIELDS = frozenset({"role", "type", "kind", "id", "status", "timestamp"})


def is_metadata(field: str) -> bool:
    """True for a field whose strings are labels, not text to search (the default rule)."""
    return field in METADATA_FIELDS or field.endswith(("_id", "_at"))


def check_text_fields(fields: Any) -> tuple[str, ...] | None:
    """``None`` (the default rule) or a non-empty sequence of field names."""
    if fields is None:
        return None
    if isinstance(fields, str):
        raise InvalidArgumentTypeError(
            f"text_fields must be a sequence of field names, not the str {fields!r}"
        )
    if not isinstance(fields, Iterable):
        raise InvalidArgumentTypeError(
            f"text_fields must be a sequence of field names, got {fields!r}"
        )
    names = tuple(fields)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise InvalidArgumentError(f"text_fields must be non-empty field names, got {names!r}")
    return names


def searchable_strings(value: Any, fields: tuple[str, ...] | None) -> list[str]:
    """The strings of a (decoded) memory value that search reads, in document order."""
    out: list[str] = []
    if not isinstance(value, dict):
        return out
    if fields is None:
        _collect(value, out, skip_metadata=True)
    else:
        for name in fields:
            if name in value:
                _collect(value[name], out, skip_metadata=False)
    return out


def _collect(obj: Any, out: list[str], *, skip_metadata: bool) -> None:
    if isinstance(obj, str):
        out.append(obj)
    elif isinstance(obj, dict):
        for key, item in obj.items():
            if not (skip_metadata and isinstance(key, str) and is_metadata(key)):
                _collect(item, out, skip_metadata=skip_metadata)
    elif isinstance(obj, list | tuple):
        for item in obj:
            _collect(item, out, skip_metadata=skip_metadata)
