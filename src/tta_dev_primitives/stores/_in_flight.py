"""The keys a store has a write of on its way (to the remote, or into its journal).

While a write is on its way, the in-process copy of its key holds this process's own newer
value: a read or a copy check that meets Redis's older value must leave it, and a write that
fails must drop the copy only if no later write of the key has put its own value there since.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tta_dev_primitives._blocked import fork_safe

__all__ = ["InFlight"]


class InFlight:
    """Per key: how many writes are on their way, and the newest one's version (thread-safe: a
    store may serve two event loops' threads)."""

    __slots__ = ("_keys", "_lock")

    def __init__(self) -> None:
        self._keys: dict[str, tuple[int, str]] = {}
        self._lock = fork_safe(threading.Lock())

    @contextmanager
    def sending(self, key: str, version: str) -> Iterator[None]:
        """``key``'s write of ``version`` is on its way for the ``with`` block."""
        with self._lock:
            count, _ = self._keys.get(key, (0, version))
            self._keys[key] = (count + 1, version)
        try:
            yield
        finally:
            with self._lock:
                count, newest = self._keys.pop(key, (1, version))
                if count > 1:
                    self._keys[key] = (count - 1, newest)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def newest(self, key: str) -> str | None:
        """The version of the newest write of ``key`` on its way, if any."""
        with self._lock:
            entry = self._keys.get(key)
        return None if entry is None else entry[1]

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._keys)
