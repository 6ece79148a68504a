"""Versions that order writes across processes: a hybrid logical clock per process.

A version is the writer's wall clock in microseconds, bumped to stay above every version this
process issued or saw from Redis, then a random tag for the process, as 24 lowercase hex digits:
strings compare in time order, in Python and in Lua alike, and two processes never tie. Redis
keeps each key's version (and each clear's), and applies a write only if it is newer, so a write
journalled during an outage and replayed later never overwrites what another process wrote
after it. Clocks of different machines are as far apart as NTP leaves them: writes to one key
from two machines within that skew are ordered by their clocks, not by arrival.
"""

from __future__ import annotations

import secrets
import threading
import time

__all__ = ["VersionClock"]


class VersionClock:
    """Issues strictly increasing versions for this process (thread-safe)."""

    __slots__ = ("_last", "_lock", "_tag")

    def __init__(self) -> None:
        self._last = 0
        self._tag = f"{secrets.randbits(32):08x}"
        self._lock = threading.Lock()

    def next(self) -> str:
        """A version newer than any this clock issued or observed."""
        with self._lock:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            return f"{self._last:016x}{self._tag}"

    def observe(self, micros: int) -> None:
        """Redis has seen time ``micros``: later versions from here must be newer than it."""
        with self._lock:
            self._last = max(self._last, micros)
