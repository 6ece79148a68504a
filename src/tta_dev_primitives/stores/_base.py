"""The storage seam: the few async methods a backend implements, and nothing else.

Everything that is not storage (validation, encoding, copies, TTL rules, telemetry, fallback and
recovery) lives above this seam, once. ``MemoryPrimitive`` and ``CachePrimitive`` both sit on it.
A backend that talks to a server raises ``BackendUnavailableError`` when the server cannot
serve, translating its client's own errors with ``raise ... from exc``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self

from tta_dev_primitives.search._analyzer import Query

__all__ = ["Clear", "Delete", "Put", "StorageBackend", "Write", "send"]


@dataclass(frozen=True, slots=True)
class Put:
    """Store ``payload`` under ``key``; ``ttl`` in seconds; ``terms`` for search, if indexed.

    ``version`` (from ``stores._versions``) orders writes across processes: a backend that
    keeps versions ignores a write older than what it holds for the key. ``""``: unversioned.
    """

    key: str
    payload: Any
    ttl: float | None = None
    terms: Mapping[str, int] | None = field(default=None, compare=False)
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
    """An async key/payload store with TTLs and, optionally, search over indexed terms."""

    #: The ``memory.backend`` span attribute for operations this backend serves.
    kind: ClassVar[str]
    #: True if payloads must be ``str`` (it crosses a process boundary).
    serializes: ClassVar[bool] = False

    @abstractmethod
    async def put(
        self,
        key: str,
        payload: Any,
        ttl: float | None = None,
        terms: Mapping[str, int] | None = None,
        version: str = "",
    ) -> None:
        """Store ``payload`` under ``key``, replacing any previous payload and its TTL."""

    @abstractmethod
    async def get(self, key: str) -> Any | None:
        """The payload under ``key``, or None."""

    @abstractmethod
    async def delete(self, key: str, version: str = "") -> bool:
        """Remove ``key``; True if it was there."""

    @abstractmethod
    async def search(self, query: Query, limit: int, scope: str | None) -> list[tuple[str, Any]]:
        """``(key, payload)`` of the best matches (``search._index``); blank: most recent."""

    @abstractmethod
    async def clear(self, version: str = "") -> None:
        """Remove everything in this backend's namespace, and nothing else."""

    @abstractmethod
    async def size(self) -> int:
        """How many live payloads this backend's namespace holds."""

    @abstractmethod
    def items(self) -> AsyncIterator[tuple[str, Any, float | None]]:
        """Every live ``(key, payload, seconds left or None)``, in no particular order."""

    async def apply(self, writes: Sequence[Write]) -> None:
        """Apply writes in order (a server backend batches them into few round trips)."""
        for write in writes:
            await send(self, write)

    async def probe(self) -> None:  # noqa: B027 (optional hook: in-process needs no check)
        """Check that the backend can serve (a server backend sends PING); raise if not."""

    async def catch_up(self) -> None:  # noqa: B027 (optional hook: nothing to catch up)
        """Bring any local view of the backend (a search replica) up to date, off the hot path."""

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


async def send(backend: StorageBackend, write: Write) -> bool | None:
    """Apply one write; a delete reports whether the key was there."""
    if isinstance(write, Put):
        await backend.put(write.key, write.payload, write.ttl, write.terms, write.version)
        return None
    if isinstance(write, Delete):
        return await backend.delete(write.key, write.version)
    await backend.clear(write.version)
    return None
