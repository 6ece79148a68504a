"""Every argument check, in one place, so each bad argument gets the same typed error everywhere.

Each check returns the argument (normalised where that helps) or raises under the rule stated in
``exceptions``: a bad value is an ``InvalidArgumentError`` (a ``ValueError``), a wrong type an
``InvalidArgumentTypeError`` (a ``TypeError``); both name the argument and what was given.
Memory *values* are checked where they are encoded (``memory._values``), in the same pass.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from typing import Any, Literal

from tta_dev_primitives.exceptions import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidMemoryKeyError,
)
from tta_dev_primitives.search._facets import MAX_FACET_CHARS, facet, filter_facets
from tta_dev_primitives.search._scopes import normalize_scope

__all__ = [
    "DEFAULT_EMBED_TIMEOUT",
    "MAX_KEY_BYTES",
    "MAX_TTL",
    "SEARCH_ENGINES",
    "SEARCH_MODES",
    "as_float",
    "check_count",
    "check_filter",
    "check_forget_scope",
    "check_fraction",
    "check_key",
    "check_limit",
    "check_max_size",
    "check_min_score",
    "check_mode",
    "check_namespace",
    "check_new_key",
    "check_optional_url",
    "check_query",
    "check_scope",
    "check_search_engine",
    "check_seconds",
    "check_ttl",
    "is_huge_int",
    "is_unencodable",
    "shown",
]

# 100 years in seconds: far beyond any sensible memory, far below what Redis refuses as an
# expiry (its millisecond deadlines overflow near 1e14 s), so a write is never half-applied.
MAX_TTL = 100 * 365 * 24 * 3600

#: Seconds one embedding model call may take (``embed_timeout``); here, so that ``memory``
#: can name the default without importing ``embeddings`` (and numpy).
DEFAULT_EMBED_TIMEOUT = 30.0

#: The longest memory key, in bytes of UTF-8: every search and feed page on Redis carries keys,
#: so a megabyte key would make each of them slow for every process sharing the namespace.
MAX_KEY_BYTES = 1024


#: The most digits an int in a memory or a filter may have: what Python reads by default
#: (``sys.int_info.default_max_str_digits``). Past it, ``str()`` and ``json`` raise a bare
#: ValueError, and a value written by a process that raised its own limit is unreadable (so
#: lost) in every process that did not.
MAX_INT_DIGITS = 4300
_HUGE = 10**MAX_INT_DIGITS


def is_huge_int(value: int) -> bool:
    """True if ``value`` has more than ``MAX_INT_DIGITS`` digits."""
    return value.bit_length() > 14_000 and abs(value) >= _HUGE  # (10**4300 has 14,285 bits)


def is_unencodable(text: str) -> bool:
    """True if ``text`` holds a lone surrogate, which UTF-8 (and so Redis) cannot store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_key(key: Any) -> str:
    """A memory key must be a non-empty str that UTF-8 can encode."""
    if not isinstance(key, str):
        raise InvalidArgumentTypeError(f"memory keys must be str, got {type(key).__name__}")
    if not key:
        raise InvalidMemoryKeyError("memory keys must not be empty")
    if not key.isascii() and is_unencodable(key):
        raise InvalidMemoryKeyError(
            f"memory key {key!r} contains a lone surrogate, which UTF-8 (and so Redis) cannot store"
        )
    return key


def check_new_key(key: object) -> str:
    """A key to write: ``check_key``, and at most ``MAX_KEY_BYTES`` of UTF-8.

    Reads and deletes take any key, so a longer one stored before the limit stays reachable.
    """
    key = check_key(key)
    size = len(key) if key.isascii() else len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise InvalidMemoryKeyError(
            f"memory keys are at most {MAX_KEY_BYTES:,} bytes of UTF-8 (MAX_KEY_BYTES), got one "
            f"of {size:,} bytes starting {key[:40]!r}; keep bulky data in the value"
        )
    return key


def is_real(value: Any) -> bool:
    """A real number, not a bool: ``int``, ``float`` or a numpy scalar (``np.float32(0.5)``)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    """An integer, not a bool: ``int`` or a numpy one (``np.int64(3)``, a computed limit)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def as_float(value: Any) -> float:
    """``float(value)`` of an ``is_real`` number; ``inf`` or ``-inf`` for one past the largest
    float (``10**400``, ``Fraction(10**400)``), where ``float()`` raises OverflowError: every
    range check below then refuses it with its own typed error."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def shown(value: Any) -> str:
    """``repr(value)`` for a message, at most about 80 characters: ``repr`` of an int past
    ``MAX_INT_DIGITS`` digits raises ValueError, and a 400-digit one helps no reader."""
    try:
        text = repr(value)
    except ValueError:
        return f"a number of more than {MAX_INT_DIGITS:,} digits"
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text):,} characters)"


def check_ttl(ttl: Any) -> float | None:
    """A TTL is None or a positive number of seconds up to ``MAX_TTL`` (not a bool), in whole
    milliseconds, at least one: Redis keeps a TTL in milliseconds, so both backends expire
    alike (a ttl of 1e-9 s was gone at once in-process and lived 1 ms on Redis)."""
    if ttl is None:
        return None
    seconds = as_float(ttl) if is_real(ttl) else math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidArgumentError(
            f"ttl must be a positive number of seconds or None, got {shown(ttl)}"
        )
    if seconds > MAX_TTL:
        raise InvalidArgumentError(
            f"ttl must be at most {MAX_TTL} seconds (100 years), got {shown(ttl)}"
        )
    return max(1, round(seconds * 1000)) / 1000


def check_seconds(name: str, value: Any) -> float:
    """A duration such as ``redis_timeout``: a positive, finite number of seconds."""
    seconds = as_float(value) if is_real(value) else math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidArgumentError(
            f"{name} must be a positive number of seconds, got {shown(value)}"
        )
    return seconds


def check_fraction(name: str, value: Any) -> float:
    """A share such as ``hybrid_weight``: a number from 0 to 1."""
    share = as_float(value) if is_real(value) else math.nan
    if not 0.0 <= share <= 1.0:
        raise InvalidArgumentError(f"{name} must be a number from 0 to 1, got {shown(value)}")
    return share


def check_min_score(value: Any) -> float | None:
    """A search's ``min_score``: None or a finite number."""
    if value is None:
        return None
    floor = as_float(value) if is_real(value) else math.nan
    if not math.isfinite(floor):
        raise InvalidArgumentError(f"min_score must be a finite number or None, got {shown(value)}")
    return floor


SEARCH_MODES = ("keyword", "semantic", "hybrid")
SEARCH_ENGINES = ("auto", "redis", "replica")


def check_search_engine(engine: Any) -> Literal["auto", "redis", "replica"]:
    """Where a Redis namespace is searched: "auto", "redis" (Query Engine) or "replica"."""
    if engine not in SEARCH_ENGINES:
        raise InvalidArgumentError(
            f"search_engine must be 'auto', 'redis' or 'replica', got {shown(engine)}"
        )
    return engine  # type: ignore[no-any-return]


def check_mode(mode: Any) -> str | None:
    """A search mode: None (the memory's default), "keyword", "semantic" or "hybrid"."""
    if mode is not None and mode not in SEARCH_MODES:
        raise InvalidArgumentError(
            f"mode must be None, 'keyword', 'semantic' or 'hybrid', got {shown(mode)}"
        )
    return mode  # type: ignore[no-any-return]


def check_count(name: str, value: Any) -> int:
    """A size or cap such as ``max_journal``: an int (not a bool) of at least 1."""
    if not is_integer(value) or value < 1:
        raise InvalidArgumentError(f"{name} must be an int of at least 1, got {shown(value)}")
    return int(value)


def check_max_size(max_size: Any) -> int:
    """``max_size`` is an int of at least 1."""
    return check_count("max_size", max_size)


def check_limit(limit: Any) -> int:
    """A search limit is an int of at least 1."""
    if not is_integer(limit):
        raise InvalidArgumentTypeError(f"limit must be an int, got {type(limit).__name__}")
    if limit < 1:
        raise InvalidArgumentError(f"limit must be at least 1, got {shown(limit)}")
    return int(limit)


def check_query(query: Any) -> str:
    """A query is a str (a blank one asks for the most recent memories)."""
    if not isinstance(query, str):
        raise InvalidArgumentTypeError(f"query must be str, got {type(query).__name__}")
    return query


def check_scope(scope: Any) -> str | None:
    """A scope is None or a non-empty key prefix, matched at ``:`` boundaries; returned
    normalized (``normalize_scope``: ``"u1:s1:"`` is ``"u1:s1"``, ``"u1::"`` is ``"u1:"``).

    Every public method that takes a scope passes it through here once, and hands the result
    down as it is: nothing below normalizes it again (that would widen ``"u1::"`` to ``"u1"``).
    A scope of nothing but ``:`` (or empty) names no key prefix and is refused by name.
    """
    if scope is None:
        return None
    if not isinstance(scope, str):
        raise InvalidArgumentTypeError(f"scope must be str or None, got {type(scope).__name__}")
    if not scope.strip(":"):
        raise InvalidArgumentError(
            f"scope {scope[:80]!r} is not a key prefix: a scope must hold more than ':', "
            "such as 'user_id' or 'user_id:session_id'"
        )
    if not scope.isascii() and is_unencodable(scope):
        # No key holds one (``check_key``), and Redis could not be sent it.
        raise InvalidArgumentError(
            f"scope {scope[:80]!r} contains a lone surrogate, which UTF-8 (and so Redis) cannot "
            "store"
        )
    return normalize_scope(scope)


def check_forget_scope(scope: Any) -> str:
    """``forget``'s scope: ``check_scope``'s, and at most ``MAX_KEY_BYTES`` of UTF-8.

    No key written can be longer, and a forget stores its scope in every partition on Redis,
    even at ``maxmemory`` (it is for freeing), for the newest 100,000 forgets: an unbounded one
    (a user id taken from a request) would let a caller fill Redis past its limit.
    """
    checked = check_scope(scope)
    if checked is None:
        raise InvalidArgumentError("forget needs a scope; clear() removes every memory")
    size = len(checked) if checked.isascii() else len(checked.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise InvalidArgumentError(
            f"forget's scope is {size:,} bytes of UTF-8; no key is longer than {MAX_KEY_BYTES:,} "
            f"(MAX_KEY_BYTES), so none is in it (starting {checked[:40]!r}); delete() removes "
            "one key stored before that limit"
        )
    return checked


def check_filter(pairs: Any) -> tuple[str, ...]:
    """A search filter is None or a mapping of field names to scalars (str, int, float, bool,
    None); it comes back as the facets it asks for (``search._facets``), none for no filter."""
    if pairs is None:
        return ()
    if not isinstance(pairs, Mapping):
        raise InvalidArgumentTypeError(
            f"filter must be a mapping of field names to values, got {type(pairs).__name__}"
        )
    for name, value in pairs.items():
        if not isinstance(name, str):
            raise InvalidArgumentTypeError(f"filter field names must be str, got {name!r:.80}")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgumentError(f"filter[{name!r}] must be a finite number, got {value!r}")
        if isinstance(value, int) and is_huge_int(value):
            raise InvalidArgumentError(
                f"filter[{name!r}] is an int of more than {MAX_INT_DIGITS:,} digits, which no "
                "memory holds"
            )
        if isinstance(value, str) and len(value) > MAX_FACET_CHARS:
            raise InvalidArgumentError(
                f"filter[{name!r}] is a string of {len(value):,} characters; filters match "
                f"values of up to {MAX_FACET_CHARS} (search a longer text by its words)"
            )
        if facet(name, value) is None:
            raise InvalidArgumentTypeError(
                f"filter[{name!r}] must be a str, int, float, bool or None, got "
                f"{type(value).__name__} (a filter compares one value; a list field matches "
                "each of its items)"
            )
    return filter_facets(pairs)


def check_namespace(namespace: Any) -> str:
    """A namespace is a non-empty str without braces (Redis Cluster hash tags use them)."""
    if not isinstance(namespace, str) or not namespace or "{" in namespace or "}" in namespace:
        raise InvalidArgumentError(
            f"namespace must be a non-empty str without braces, got {shown(namespace)}"
        )
    if "\x00" in namespace:
        # RediSearch reads index names and prefixes as C strings: "a\x00b" would name the
        # index of every key starting "a" (and could find or drop another namespace's index).
        raise InvalidArgumentError(
            f"namespace {namespace[:80]!r} contains NUL, which the Redis Query Engine cuts "
            "index names at"
        )
    if not namespace.isascii() and is_unencodable(namespace):
        # (Every Redis key starts with it: each operation would be refused.)
        raise InvalidArgumentError(
            f"namespace {namespace[:80]!r} contains a lone surrogate, which UTF-8 (and so "
            "Redis) cannot store"
        )
    return namespace


def check_optional_url(name: str, url: Any) -> str | None:
    """A backend URL argument is a str or None (its shape is checked by the backend's parser)."""
    if url is not None and not isinstance(url, str):
        raise InvalidArgumentTypeError(f"{name} must be str or None, got {type(url).__name__}")
    return url


def check_journal_path(path: Any, redis_url: str | None) -> str | os.PathLike[str] | None:
    """``journal_path``: a non-empty str or path, and only beside a ``redis_url`` (it keeps the
    outage journal of a Redis-backed memory)."""
    if path is None:
        return None
    if not isinstance(path, str | os.PathLike):
        raise InvalidArgumentTypeError(
            f"journal_path must be a str or a path, got {type(path).__name__}"
        )
    if not os.fspath(path):
        raise InvalidArgumentError("journal_path must not be empty")
    if redis_url is None:
        raise InvalidArgumentError(
            "journal_path keeps the outage journal of a Redis-backed memory: pass redis_url with it"
        )
    return path
