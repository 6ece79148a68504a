"""What the hybrid store reports: which backend served each operation (``Served``), and the
events its owner turns into spans, counters and logs (``StoreEvents``)."""

from __future__ import annotations

from typing import Generic, NamedTuple, Protocol, TypeVar

__all__ = ["NoEvents", "Served", "StoreEvents"]

R = TypeVar("R")


class Served(NamedTuple, Generic[R]):
    """An operation's result, and the ``kind`` of the backend that served it."""

    value: R
    backend: str
    fallback: bool = False  # True: the remote failed or is recovering; served in-process


class StoreEvents(Protocol):
    """What the hybrid tells its owner about itself, for spans, counters and logs."""

    def fallback(self, error: BaseException) -> None:
        """The remote failed; operations are now served in-process."""

    def journal_dropped(self, dropped: int) -> None:
        """A full journal dropped its ``dropped`` oldest writes (or the store closed during an
        outage with them never sent)."""

    def journal_unconfirmed(self, count: int) -> None:
        """The store closed during an outage with ``count`` journalled writes that a replay had
        sent with no reply seen: Redis may or may not hold them."""

    def dead_letters(self, count: int) -> None:
        """The remote refused ``count`` replayed writes for their data."""

    def stale(self, count: int) -> None:
        """The remote rejected ``count`` writes as stale: a newer change of the key stood."""

    def recovery_started(self) -> object:
        """A background recovery begins; the token returned is passed to ``recovery_ended``."""

    def recovery_ended(
        self, token: object, served: Served[int], error: BaseException | None = None
    ) -> None:
        """It ended: ``served.value`` writes replayed to ``served.backend`` (also when it
        stopped part-way), and ``error`` why it stopped (the remote still down, a cancellation),
        or None if the remote serves again."""


class NoEvents:
    """A listener that ignores everything."""

    def fallback(self, error: BaseException) -> None:
        pass

    def journal_dropped(self, dropped: int) -> None:
        pass

    def journal_unconfirmed(self, count: int) -> None:
        pass

    def dead_letters(self, count: int) -> None:
        pass

    def stale(self, count: int) -> None:
        pass

    def recovery_started(self) -> object:
        return None

    def recovery_ended(
        self, token: object, served: Served[int], error: BaseException | None = None
    ) -> None:
        pass
