"""What a memory value may be, and its JSON codec (the other argument checks are in ``_checks``).

Values are ``dict[str, Any]`` of JSON types: str, int, float (finite), bool, None, lists and
dicts with str keys (tuples are accepted and come back as lists). Everything is checked before
anything is stored, and errors name the offending path, e.g. ``value['tags'][2]``. Strings
(keys, values and field names) must be encodable as UTF-8: a lone surrogate such as ``"\ud800"``
is refused, since Redis could never store it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tta_dev_primitives._checks import MAX_INT_DIGITS, is_huge_int, is_unencodable
from tta_dev_primitives.exceptions import InvalidMemoryValueError

__all__ = [
    "MAX_VALUE_BYTES",
    "decode_value",
    "encode_value",
]

_MAX_DEPTH = 64
#: The largest memory, as JSON: 8 MiB. Every process that searches Redis reads and analyses each
#: memory, so a bigger one would stall them all (and Redis, sending it), for little to find.
MAX_VALUE_BYTES = 8 * 1024 * 1024
# Built once: json.dumps with non-default options builds a new encoder on every call. Values
# are validated (finite floats, depth-limited, so not circular) before they reach it.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), check_circular=False, allow_nan=False
)


class _Bad(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.path: list[str] = []


def _walk(obj: Any, depth: int) -> None:
    if obj is None or isinstance(obj, str | bool):
        return
    if isinstance(obj, int):
        if is_huge_int(obj):
            raise _Bad(
                f"is an int of more than {MAX_INT_DIGITS:,} digits, which JSON readers refuse"
            )
    elif isinstance(obj, float):
        if not math.isfinite(obj):
            raise _Bad(f"is {obj!r}, which JSON cannot represent")
    elif depth >= _MAX_DEPTH:
        raise _Bad(f"is nested more than {_MAX_DEPTH} levels deep (or is circular)")
    elif isinstance(obj, dict):
        for key, item in obj.items():
            if not isinstance(key, str):
                raise _Bad(f"has a key of type {_type(key)}, {key!r:.80}; JSON keys must be str")
            try:
                _walk(item, depth + 1)
            except _Bad as bad:
                bad.path.append(f"[{key!r}]")
                raise
    elif isinstance(obj, list | tuple):
        for i, item in enumerate(obj):
            try:
                _walk(item, depth + 1)
            except _Bad as bad:
                bad.path.append(f"[{i}]")
                raise
    else:
        raise _Bad(f"is of type {_type(obj)}, which is not JSON-compatible")


def _type(obj: Any) -> str:
    """``obj``'s type as a reader finds it: ``set``, ``numpy.bool`` (whose bare name, ``bool``,
    read as if a plain bool were refused: review R18)."""
    kind = type(obj)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def encode_value(value: Any) -> str:
    """Validate a memory value; return its JSON text."""
    if not isinstance(value, dict):
        raise InvalidMemoryValueError(
            f"memory values must be dict[str, Any], got {type(value).__name__}"
        )
    try:
        _walk(value, 0)
    except _Bad as bad:
        where = "value" + "".join(reversed(bad.path))
        raise InvalidMemoryValueError(f"{where} {bad.reason}") from None
    text = _ENCODER.encode(value)
    size = len(text)
    if not text.isascii():
        try:
            size = len(text.encode())
        except UnicodeEncodeError:
            where, reason = _find_unencodable(value)
            raise InvalidMemoryValueError(f"{where} {reason}") from None
    if size > MAX_VALUE_BYTES:
        raise InvalidMemoryValueError(
            f"value is {size:,} bytes as JSON; a memory holds at most {MAX_VALUE_BYTES:,} "
            "(MAX_VALUE_BYTES): store a summary, or split it"
        )
    return text


def _find_unencodable(obj: Any, where: str = "value") -> tuple[str, str]:
    """The path of the first str that UTF-8 cannot encode (a lone surrogate), and why."""
    reason = "contains a lone surrogate, which UTF-8 (and so Redis) cannot store"
    if isinstance(obj, str):
        return (where, reason) if is_unencodable(obj) else ("", "")
    items: Any = ()
    if isinstance(obj, dict):
        for key in obj:
            if is_unencodable(key):
                return f"{where} key {key!r}", reason
        items = ((f"{where}[{k!r}]", v) for k, v in obj.items())
    elif isinstance(obj, list | tuple):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(obj))
    for path, item in items:
        found = _find_unencodable(item, path)
        if found[0]:
            return found
    return "", ""


def decode_value(payload: str | bytes) -> dict[str, Any] | None:
    """Parse stored JSON; None if it is not a JSON object (corrupt or foreign data)."""
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None
