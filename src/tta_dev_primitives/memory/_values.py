"""What a memory may be: validation of keys, values, TTLs and limits, and the JSON codec.

Values are ``dict[str, Any]`` of JSON types: str, int, float (finite), bool, None, lists and
dicts with str keys (tuples are accepted and come back as lists). Everything is checked before
anything is stored, and errors name the offending path, e.g. ``value['tags'][2]``. Strings
(keys, values and field names) must be encodable as UTF-8: a lone surrogate such as ``"\ud800"``
is refused, since Redis could never store it. A TTL is at most ``MAX_TTL`` (100 years).
"""

from __future__ import annotations

import json
import math
from typing import Any

from tta_dev_primitives.exceptions import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidMemoryKeyError,
    InvalidMemoryValueError,
)

__all__ = [
    "MAX_TTL",
    "MAX_VALUE_BYTES",
    "check_key",
    "check_limit",
    "check_max_size",
    "check_query",
    "check_scope",
    "check_ttl",
    "decode_value",
    "encode_value",
]

_MAX_DEPTH = 64
# 100 years in seconds: far beyond any sensible memory, far below what Redis refuses as an
# expiry (its millisecond deadlines overflow near 1e14 s), so a write is never half-applied.
MAX_TTL = 100 * 365 * 24 * 3600
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
    if obj is None or isinstance(obj, str | bool | int):
        return
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise _Bad(f"is {obj!r}, which JSON cannot represent")
    elif depth >= _MAX_DEPTH:
        raise _Bad(f"is nested more than {_MAX_DEPTH} levels deep (or is circular)")
    elif isinstance(obj, dict):
        for key, item in obj.items():
            if not isinstance(key, str):
                raise _Bad(f"has a {type(key).__name__} key {key!r}; JSON keys must be str")
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
        raise _Bad(f"is a {type(obj).__name__}, which is not JSON-compatible")


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


def _unencodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _find_unencodable(obj: Any, where: str = "value") -> tuple[str, str]:
    """The path of the first str that UTF-8 cannot encode (a lone surrogate), and why."""
    reason = "contains a lone surrogate, which UTF-8 (and so Redis) cannot store"
    if isinstance(obj, str):
        return (where, reason) if _unencodable(obj) else ("", "")
    items: Any = ()
    if isinstance(obj, dict):
        for key in obj:
            if _unencodable(key):
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


def check_key(key: Any) -> str:
    """A memory key must be a non-empty str."""
    if not isinstance(key, str):
        raise InvalidArgumentTypeError(f"memory keys must be str, got {type(key).__name__}")
    if not key:
        raise InvalidMemoryKeyError("memory keys must not be empty")
    if not key.isascii() and _unencodable(key):
        raise InvalidMemoryKeyError(
            f"memory key {key!r} contains a lone surrogate, which UTF-8 (and so Redis) cannot store"
        )
    return key


def check_ttl(ttl: Any) -> float | None:
    """A TTL is None or a positive number of seconds up to ``MAX_TTL`` (not a bool)."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise InvalidArgumentError(f"ttl must be a positive number of seconds or None, got {ttl!r}")
    try:
        seconds = float(ttl)
    except OverflowError:  # an int beyond any float: a clear error, not a traceback
        digits = len(str(abs(ttl)))
        raise InvalidArgumentError(
            f"ttl must be a positive number of seconds or None, got a {digits}-digit number"
        ) from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidArgumentError(f"ttl must be a positive number of seconds or None, got {ttl!r}")
    if seconds > MAX_TTL:
        raise InvalidArgumentError(
            f"ttl must be at most {MAX_TTL} seconds (100 years), got {ttl!r}"
        )
    return seconds


def check_limit(limit: Any) -> int:
    """A search limit is an int of at least 1."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidArgumentTypeError(f"limit must be an int, got {type(limit).__name__}")
    if limit < 1:
        raise InvalidArgumentError(f"limit must be at least 1, got {limit}")
    return limit


def check_max_size(max_size: Any) -> int:
    """``max_size`` is an int of at least 1."""
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
        raise InvalidArgumentError(f"max_size must be an int of at least 1, got {max_size!r}")
    return max_size


def check_query(query: Any) -> str:
    """A query is a str (a blank one asks for the most recent memories)."""
    if not isinstance(query, str):
        raise InvalidArgumentTypeError(f"query must be str, got {type(query).__name__}")
    return query


def check_scope(scope: Any) -> str | None:
    """A scope is None or a non-empty key prefix, matched at ``:`` boundaries."""
    if scope is None:
        return None
    if not isinstance(scope, str):
        raise InvalidArgumentTypeError(f"scope must be str or None, got {type(scope).__name__}")
    if not scope.strip(":"):
        raise InvalidArgumentError(
            "scope must be a non-empty key prefix such as 'user_id:session_id'"
        )
    return scope
