"""The exceptions this library raises, under one root so callers can catch them all.

    TTAError
    ├── InvalidArgumentError (also ValueError)      an argument with a bad value (ttl, URL...)
    │   ├── RouteNotFoundError                      router returned a name with no route
    │   └── InvalidMemoryKeyError                   an empty key, or an id that would collide
    ├── InvalidArgumentTypeError (also TypeError)   an argument of the wrong type
    │   ├── CacheKeyError                           a cache key function failed or gave a non-str
    │   └── InvalidMemoryValueError                 a value that is not a JSON-compatible dict
    ├── UsageError (also RuntimeError)              called where it cannot work (e.g. a sync call
    │                                               inside a running event loop)
    ├── EmbeddingError (also RuntimeError)          an embedder raised, could not be loaded, or
    │                                               returned unusable vectors (count, dims, NaN, 0)
    └── BackendError                                a storage backend failed (translated at seams)
        ├── BackendUnavailableError                 it could not be reached, timed out or refused us
        │   └── SearchNotReadyError                 a search's index load stopped part-way: no
        │                                           page within its load budget
        ├── IncompleteOperationError                a bulk clear or export stopped part-way
        ├── BackendRefusedError                     it answered, and refused: ACL, OOM, WRONGTYPE
        │   └── EmbedderMismatchError               the namespace's vectors are another
        │                                           embedder's (model or dims)
        ├── JournalError                            the durable outage journal (journal_path) is
        │                                           locked by another process, unwritable (disk
        │                                           full) or not a journal this version reads
        ├── StaleWriteError                         a newer write by another process stands
        └── UnsentWritesError                       closed during an outage with writes still
                                                    journalled and no journal_path: they are lost

The rule:

- Every error the library raises on purpose is a ``TTAError``. Each also subclasses the built-in
  a caller would reasonably catch (``ValueError``, ``TypeError``, ``RuntimeError``), so
  ``except ValueError`` keeps working. The exceptions to "on purpose": ``WorkflowContext``
  raises ``pydantic.ValidationError`` for a field of the wrong type (pydantic's contract), and
  errors raised by your own code (steps, router and key functions, LLM calls) pass through
  unchanged.
- An error translated from another library chains the original as ``__cause__`` (``raise ...
  from exc``), except where the original's text could hold a password: errors from the Redis
  client and from URL parsing are re-raised with their message scrubbed of the URL's password
  and ``from None``, so that no traceback or ``exc_info`` log can show the unscrubbed text.
- Messages never contain any part of a password from a URL.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "BackendError",
    "BackendRefusedError",
    "BackendUnavailableError",
    "CacheKeyError",
    "EmbedderMismatchError",
    "EmbeddingError",
    "IncompleteOperationError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "InvalidMemoryKeyError",
    "InvalidMemoryValueError",
    "JournalError",
    "RouteNotFoundError",
    "SearchNotReadyError",
    "StaleWriteError",
    "TTAError",
    "UnsentWritesError",
    "UsageError",
]


class TTAError(Exception):
    """Root of every exception raised by tta-dev-primitives."""


class InvalidArgumentError(TTAError, ValueError):
    """An argument has a value the library cannot use; the message names it and why."""


class InvalidArgumentTypeError(TTAError, TypeError):
    """An argument has a type the library cannot use; the message names it."""


class UsageError(TTAError, RuntimeError):
    """A call made where it cannot work, such as a blocking call inside a running event loop."""


class EmbeddingError(TTAError, RuntimeError):
    """An embedding model failed: it raised (chained as ``__cause__``), could not be loaded, or
    returned vectors that cannot be used (wrong count or dims, NaN or infinity, a zero vector,
    not numbers). A ``RuntimeError``, not a ``ValueError``: the caller's texts were fine."""


class RouteNotFoundError(InvalidArgumentError):
    """A router function chose a route that does not exist and there is no default."""

    def __init__(self, route: object, known: Iterable[str]) -> None:
        self.route = route
        self.known = sorted(known)
        super().__init__(f"no route named {route!r}; known routes: {', '.join(self.known)}")


class CacheKeyError(InvalidArgumentTypeError):
    """A ``cache_key_fn`` raised, or returned something other than a non-empty ``str``."""


class InvalidMemoryKeyError(InvalidArgumentError):
    """A memory key (or an id used to build one) is empty or would collide with other keys."""


class InvalidMemoryValueError(InvalidArgumentTypeError):
    """A memory value is not a JSON-compatible ``dict[str, Any]``."""


class BackendError(TTAError):
    """A storage backend failed. The message is the backend's, scrubbed of passwords; for
    Redis the client's exception is not chained (see the module docstring)."""


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


class SearchNotReadyError(BackendUnavailableError):
    """A search on Redis could not bring its replica of the index up to date in time.

    Raised by a Redis search backend when a page of the replica's load said more was to come
    but no next one arrived within the load budget (``load_timeout``, reset by every page that
    arrives): rather than rank over part of the namespace, the search stops. What was read is
    kept, so the next search resumes where this one stopped. An outage, like any other call of
    a search (the first page of each partition included) that Redis does not answer within
    ``redis_timeout``: ``MemoryPrimitive`` serves the search in-process and degrades.
    """


class BackendRefusedError(BackendError):
    """The backend answered and refused the operation, which retrying will not change until an
    operator acts: an ACL denial (``NOPERM``: a command, a key pattern, ``SELECT`` of a database),
    ``OOM`` under ``maxmemory``, or ``WRONGTYPE`` (a key of the namespace holds another type).

    It is not a ``BackendUnavailableError``: nothing falls back or is journalled, and the
    in-process copy drops what the write changed, so nothing is kept that the backend lacks.
    """


class EmbedderMismatchError(BackendRefusedError):
    """The Redis namespace's vectors were made by another embedder (another ``model_id``, or
    another size) than this process's: scoring this process's vectors against them would rank
    by nonsense, so a write with a vector and a semantic or hybrid search refuse, and nothing
    is stored. Keyword search, ``get``, ``delete`` and listing keep working.

    Each namespace records the embedder of the first process that wrote a memory with a vector
    in it (``get_backend_info()["embedder"]["recorded"]``). The remedies: the same embedder in
    every process of a namespace; a new namespace for a new model; or ``clear()`` the namespace,
    which forgets the record (see "Changing the model" in docs/semantic-memory.md).
    ``namespace``, ``recorded`` and ``mine`` hold the namespace and the two ``(model_id, dims)``.
    """

    def __init__(
        self, message: str, *, namespace: str, recorded: tuple[str, int], mine: tuple[str, int]
    ) -> None:
        super().__init__(message)
        self.namespace = namespace
        self.recorded = recorded
        self.mine = mine


class JournalError(BackendError):
    """The durable outage journal (``journal_path=``) cannot be used: another live process holds
    its lock, an append failed (a full disk: that write was not acknowledged and not journalled;
    one sent to Redis before a timeout may still be applied there, as any write whose reply was
    lost), or the file is not a journal this version can read (it is left untouched).
    """


class StaleWriteError(BackendError):
    """A write (or delete or clear) the backend rejected because a newer version of the key, or
    a newer clear, stands there: another process's change won (see "Ordering" in
    docs/production.md). A live write is retried once with a version past the one it lost to
    before this is raised; nothing was changed by the rejected write. ``newer`` holds the version
    that stands, as far as the backend said.
    """

    def __init__(self, message: str, *, newer: str = "") -> None:
        super().__init__(message)
        self.newer = newer


class UnsentWritesError(BackendError):
    """``aclose()`` ran during an outage with writes still journalled, and no ``journal_path``
    to keep them: those writes never reached the backend and are lost with the process.

    Raised after everything is closed (nothing leaks); ``unsent`` holds the count, which is also
    added to ``journal_dropped``. ``unconfirmed`` counts the writes still journalled that a
    replay had already sent, with no reply seen (it was cancelled, or Redis failed as it
    answered): Redis may or may not hold them (also added to ``journal_unconfirmed``). With
    ``journal_path=`` they stay in the file instead and ``aclose()`` does not raise. Leaving
    ``async with`` because of another exception does not replace that exception: this one is
    then only logged.
    """

    def __init__(self, message: str, *, unsent: int, unconfirmed: int = 0) -> None:
        super().__init__(message)
        self.unsent = unsent
        self.unconfirmed = unconfirmed
