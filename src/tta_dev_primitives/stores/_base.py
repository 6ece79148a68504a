"""The storage seam: a narrow key/value interface, and search as a separate capability.

Everything that is not storage (validation, encoding, copies, TTL rules, fallback and recovery,
telemetry) lives above this seam, once. ``CachePrimitive`` needs only ``StorageBackend``;
``MemoryPrimitive`` needs a ``SearchableBackend``, which also indexes what it stores. A backend
that talks to a server raises ``BackendUnavailableError`` when the server cannot serve,
translating its client's own errors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self

from tta_dev_primitives.exceptions import BackendUnavailableError, StaleWriteError
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.stores._versions import VersionClock

__all__ = [
    "ApplyProgress",
    "Clear",
    "Delete",
    "Document",
    "NotServedNow",
    "PartitionsUnavailableError",
    "Put",
    "SearchableBackend",
    "StorageBackend",
    "Write",
    "applied_prefix",
    "report_outcomes",
    "send",
]


#: ``apply``'s report of how far it got: ``(sent, applied)``, the first ``sent`` of its writes
#: handed to the server (or about to be), the first ``applied`` of them confirmed by its reply.
#: A caller cancelled (or failed) in between knows which writes' fate is unknown. A report
#: whose ``sent`` is lower than the one before, just before a refusal is raised, says the
#: writes past it were answered with a refusal that left nothing behind (Redis full).
ApplyProgress = Callable[[int, int], None]


def report_outcomes(progress: ApplyProgress, start: int, outcomes: Sequence[bool | None]) -> None:
    """Tell ``progress``, before a failure is raised, the fate of each write from ``start`` on:
    True applied, False refused with nothing left behind (or never sent), None unknown. A
    progress with a ``settle(start, outcomes)`` method (the journal's replay) hears them all:
    on a cluster, or when Redis refused one write of a pipeline and applied the next, they are
    no prefix. Any other hears what ``(sent, applied)`` can say: the applied prefix, and sent
    up to the last write that may be stored."""
    settle = getattr(progress, "settle", None)
    if callable(settle):
        settle(start, outcomes)
        return
    applied = applied_prefix(outcomes)
    sent = max((i + 1 for i, o in enumerate(outcomes) if o is not False), default=0)
    progress(start + max(sent, applied), start + applied)


def applied_prefix(outcomes: Sequence[bool | None]) -> int:
    """How many of ``outcomes`` (``report_outcomes``) are applied before the first that is not."""
    return next((i for i, o in enumerate(outcomes) if o is not True), len(outcomes))


class NotServedNow(BackendUnavailableError):
    """The remote is up but cannot answer this one read now (its search engine is being set
    up again on a cluster's new layout): the read is served in-process, and the store stays
    on the remote, its other operations too. Not an outage."""


class PartitionsUnavailableError(BackendUnavailableError):
    """``apply`` could not reach the server of some of its writes' partitions
    (``StorageBackend.partition_of``): those of ``partitions`` failed (their fate reported to
    ``progress``) and the later writes of those partitions were not sent. Each write of any
    other partition was applied (reported as such), or not sent because ``apply`` stopped.

    A replay goes on with the other partitions' writes (``_recovery.Replay``): on a Redis
    Cluster with one master stalled, those of the masters that answer still land."""

    def __init__(self, message: str, *, partitions: frozenset[Hashable]) -> None:
        super().__init__(message)
        self.partitions = partitions


@dataclass(frozen=True, slots=True)
class Document:
    """What search indexes of a memory: its term counts, and its embedding if it has one.

    ``vector`` is a unit-length 1-D float32 numpy array (``embeddings``), or None: found by
    keyword only.
    """

    terms: Mapping[str, int]
    vector: Any = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Put:
    """Store ``payload`` under ``key``; ``ttl`` in seconds; ``document`` for search, if indexed.

    ``version`` (from ``stores._versions``) orders writes across processes: a backend that
    keeps versions ignores a write older than what it holds for the key. ``""``: unversioned.
    """

    key: str
    payload: Any
    ttl: float | None = None
    document: Document | None = field(default=None, compare=False)
    version: str = ""


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove ``key`` (unless it holds a newer version)."""

    key: str
    version: str = ""


@dataclass(frozen=True, slots=True)
class Clear:
    """Remove everything in the backend's namespace older than ``version``."""

    version: str = ""


Write = Put | Delete | Clear


class StorageBackend(ABC):
    """An async key/payload store with TTLs, under one namespace: what a cache needs."""

    #: Which backend served an operation, as reported to spans (``memory.backend``).
    kind: ClassVar[str]
    #: True if payloads must be ``str`` (it crosses a process boundary).
    serializes: ClassVar[bool] = False

    @abstractmethod
    async def put(
        self, key: str, payload: Any, ttl: float | None = None, *, version: str = ""
    ) -> None:
        """Store ``payload`` under ``key``, replacing any previous payload and its TTL."""

    @abstractmethod
    async def get(self, key: str) -> Any | None:
        """The payload under ``key``, or None."""

    @abstractmethod
    async def delete(self, key: str, *, version: str = "") -> bool:
        """Remove ``key``; True if it was there."""

    @abstractmethod
    async def clear(self, *, version: str = "") -> None:
        """Remove everything in this backend's namespace, and nothing else."""

    @abstractmethod
    async def size(self) -> int:
        """How many live payloads this backend's namespace holds."""

    @abstractmethod
    def items(self) -> AsyncIterator[tuple[str, Any, float | None]]:
        """Every live ``(key, payload, seconds left or None)``, in no particular order."""

    def write_mark(self) -> int:
        """A mark of the writes applied so far, for ``delete_older`` (an in-process backend,
        where one process's calls are the order; a server's writes carry versions instead)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no write marks")

    async def delete_older(self, key: str, mark: int) -> bool:
        """Remove ``key`` if its value was written before ``mark`` (``write_mark``) was taken;
        True if it was removed (a forget's delete: a value written after the forget stays)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no write marks")

    async def touch(self, key: str, ttl: float | None, *, version: str = "") -> bool:
        """Restart ``key``'s clock: it expires ``ttl`` seconds from now (None: never); False
        if there is no such key. The payload is unchanged."""
        raise NotImplementedError(f"{type(self).__name__} cannot refresh a TTL")

    async def scope_page(
        self, scope: str | None, after: tuple[int, str] | None, limit: int
    ) -> tuple[list[tuple[str, Any, int]], tuple[int, str] | None]:
        """Up to ``limit`` live ``(key, payload, sequence)`` of ``scope`` (None: all), newest
        write first, strictly after the position ``after`` (``(sequence, key)``); and the
        position to go on from, None when done. A page may be short and still go on."""
        raise NotImplementedError(f"{type(self).__name__} cannot list memories by scope")

    async def key_slice(self, start: int, count: int) -> list[str]:
        """Up to ``count`` of this backend's keys from position ``start`` in an order of its own
        (an in-process copy walked in turns by the hybrid's check); none for a server."""
        return []

    async def current_versions(self, keys: Sequence[str]) -> list[str | None] | None:
        """The version each of ``keys`` holds now (a deleted key's, while its tombstone lasts;
        None if none), or None if this backend keeps no versions (in-process ones)."""
        return None

    async def apply(
        self, writes: Sequence[Write], *, progress: ApplyProgress | None = None
    ) -> None:
        """Apply writes in order (a server backend batches them into few round trips), telling
        ``progress`` what it sends and what the server confirmed, as it goes."""
        for done, write in enumerate(writes):
            if progress is not None:
                progress(done + 1, done)
            await send(self, write)
            if progress is not None:
                progress(done + 1, done + 1)

    def partition_of(self, key: str) -> Hashable | None:
        """The partition of ``key``'s writes, for a replay: writes of different partitions are
        independent (a server of one failing says nothing of another's, and only the order of
        one partition's writes matters), and ``apply`` raises ``PartitionsUnavailableError``
        naming the ones that failed. None (the default: one server, or the user's own backend):
        every write depends on all the others, and a failure stops the replay."""
        return None

    def bind(  # noqa: B027 (optional hook: in-process backends keep no versions)
        self,
        versions: VersionClock,
        on_stale: Callable[[StaleWriteError, str | None], None],
        on_changed: Callable[[str, Any], None],
    ) -> None:
        """A hybrid shares its version clock (to observe the server's time and versions), and
        asks to hear of replayed writes rejected as stale (by key; None for a clear) and of keys
        whose payload changed (the new payload, None if deleted) as the server's feed shows
        them, so that its in-process copy never serves the past."""

    async def forget_mark(self, scope: str, version: str) -> None:  # noqa: B027 (optional hook)
        """Before a forget of ``scope``: make writes in it older than ``version`` stale (a
        server backend, where other processes may replay older writes); in-process, nothing."""

    async def probe(self) -> None:  # noqa: B027 (optional hook: in-process needs no check)
        """Check that the backend can serve (a server backend sends PING); raise if not."""

    def describe(self) -> dict[str, Any]:
        """Facts for ``get_backend_info()``; never a secret."""
        return {}

    async def aclose(self) -> None:  # noqa: B027 (optional hook: nothing to release)
        """Release connections; a no-op for in-process backends."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class SearchableBackend(StorageBackend):
    """A backend that also indexes each payload's ``Document`` and searches it."""

    @abstractmethod
    async def put(
        self,
        key: str,
        payload: Any,
        ttl: float | None = None,
        *,
        version: str = "",
        document: Document | None = None,
    ) -> None:
        """Store ``payload`` under ``key`` and index ``document`` (None: found by no query)."""

    @abstractmethod
    async def search(
        self, query: Query, limit: int, scope: str | None
    ) -> list[tuple[str, Any, float]]:
        """``(key, payload, score)`` of the best matches, best first (``search._index``)."""

    async def catch_up(self) -> None:
        """Bring any local view of the backend (a search replica) up to date, off the hot path."""


async def send(backend: StorageBackend, write: Write) -> bool | None:
    """Apply one write; a delete reports whether the key was there."""
    if isinstance(write, Put):
        if isinstance(backend, SearchableBackend):
            await backend.put(
                write.key, write.payload, write.ttl, version=write.version, document=write.document
            )
        else:
            await backend.put(write.key, write.payload, write.ttl, version=write.version)
        return None
    if isinstance(write, Delete):
        return await backend.delete(write.key, version=write.version)
    await backend.clear(version=write.version)
    return None
