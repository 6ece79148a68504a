"""The exceptions this library raises, under one root so callers can catch them all.

    TTAError
    ├── RouteNotFoundError (also ValueError)      router returned a name with no route
    ├── CacheKeyError (also TypeError)            a cache key function raised or returned a non-str
    ├── InvalidMemoryKeyError (also ValueError)   an empty key, or an id that would collide
    ├── InvalidMemoryValueError (also TypeError)  a value that is not a JSON-compatible dict
    └── BackendError                              a storage backend failed (translated at the seam)
        ├── BackendUnavailableError               it could not be reached, timed out or refused us
        └── IncompleteOperationError              a bulk operation (clear, export) stopped part-way

Errors that a caller would reasonably catch as a built-in also subclass that built-in, so
``except ValueError`` keeps working. Messages never contain a password from a URL.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "CacheKeyError",
    "IncompleteOperationError",
    "InvalidMemoryKeyError",
    "InvalidMemoryValueError",
    "RouteNotFoundError",
    "TTAError",
]


class TTAError(Exception):
    """Root of every exception raised by tta-dev-primitives."""


class RouteNotFoundError(TTAError, ValueError):
    """A router function chose a route that does not exist and there is no default."""

    def __init__(self, route: object, known: Iterable[str]) -> None:
        self.route = route
        self.known = sorted(known)
        super().__init__(f"no route named {route!r}; known routes: {', '.join(self.known)}")


class CacheKeyError(TTAError, TypeError):
    """A ``cache_key_fn`` raised, or returned something other than a non-empty ``str``."""


class InvalidMemoryKeyError(TTAError, ValueError):
    """A memory key (or an id used to build one) is empty or would collide with other keys."""


class InvalidMemoryValueError(TTAError, TypeError):
    """A memory value is not a JSON-compatible ``dict[str, Any]``."""


class BackendError(TTAError):
    """A storage backend failed; the original exception is chained as ``__cause__``."""


class BackendUnavailableError(BackendError):
    """A backend could not be reached, timed out, or refused the connection or credentials."""


class IncompleteOperationError(BackendError):
    """A bulk operation (``clear``, ``items``/export) failed part-way through.

    The message says how much was done; ``done`` holds the count. It is not a
    ``BackendUnavailableError``: nothing falls back or is journalled, because part of the
    operation already happened. The backend's error is chained as ``__cause__``.
    """

    def __init__(self, message: str, *, done: int) -> None:
        super().__init__(message)
        self.done = done
