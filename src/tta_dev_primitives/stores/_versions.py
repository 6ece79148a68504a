"""Versions that order writes across processes: a hybrid logical clock per process.

A version is the writer's wall clock in microseconds, bumped to stay above every version this
process issued or observed from Redis, then a random tag for the process, as 24 lowercase hex
digits: strings compare in time order, in Python and in Lua alike, and two processes never tie.
Redis keeps each key's version (and each clear's), and applies a write only if it is newer, so
a write journalled during an outage and replayed later never overwrites what another process
wrote after it.

Clocks of different machines disagree, so no machine's clock is trusted alone. Every write
Redis applies returns Redis's own time (its sequence), which the writer observes: while
online, a process's versions are never behind Redis's clock. A live write that Redis rejects
because a newer version stands (a writer whose clock runs ahead) observes that version and is
retried once with a newer one (``stores._hybrid``), so among live writes the one Redis
acknowledges last wins, whatever the clocks say. Only writes journalled during an outage and
replayed later are ordered by the version they were given when called.
"""

from __future__ import annotations

import secrets
import threading
import time

from tta_dev_primitives._blocked import reset_at_fork

__all__ = ["VersionClock", "micros_of"]

#: The wall clock versions start from (a test moves one process's clock by patching this).
wall_ns = time.time_ns


class VersionClock:
    """Issues strictly increasing versions for this process (thread-safe)."""

    __slots__ = ("__weakref__", "_last", "_lock", "_tag")

    def __init__(self) -> None:
        self._last = 0
        self._tag = f"{secrets.randbits(32):08x}"
        self._lock = threading.Lock()
        reset_at_fork(self)

    def _forked(self) -> None:
        """A forked child is another process: its own tag, so that its versions never tie with
        its siblings' and theirs are never taken for its own (a memory made before the workers
        fork, as with ``gunicorn --preload``)."""
        self._tag = f"{secrets.randbits(32):08x}"
        self._lock = threading.Lock()

    def next(self) -> str:
        """A version newer than any this clock issued or observed."""
        with self._lock:
            self._last = max(wall_ns() // 1000, self._last + 1)
            return f"{self._last:016x}{self._tag}"

    def observe(self, micros: int) -> None:
        """Redis has seen time ``micros``: later versions from here must be newer than it."""
        with self._lock:
            self._last = max(self._last, micros)

    def issued(self, version: str) -> bool:
        """True if ``version`` came from this clock (this process's own later change)."""
        return len(version) == 24 and version.endswith(self._tag)

    def observe_version(self, version: str) -> None:
        """A version seen in Redis (another process's): later versions from here are newer."""
        micros = micros_of(version)
        if micros is not None:
            self.observe(micros)


def micros_of(version: str) -> int | None:
    """The time part of a version (microseconds), or None if it is not one of ours."""
    try:
        return int(version[:16], 16)
    except ValueError:
        return None
