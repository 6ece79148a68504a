"""The keys a store has a write of on its way (to the remote, or into its journal).

While a write is on its way, the in-process copy of its key holds this process's own newer
value: a read or a copy check that meets Redis's older value must leave it, and a write that
fails must drop the copy only if no later write of the key has put its own value there since.
A forget waits for the writes of its scope called before it (``older``): they land before it
marks the scope, so it removes and counts them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tta_dev_primitives._blocked import fork_safe

__all__ = ["InFlight"]


class InFlight:
    """Per key: the versions of the writes on their way, and the newest version sent while
    any was (thread-safe: a store may serve two event loops' threads)."""

    __slots__ = ("_keys", "_lock")

    def __init__(self) -> None:
        self._keys: dict[str, tuple[list[str], str]] = {}
        self._lock = fork_safe(threading.Lock())

    @contextmanager
    def sending(self, key: str, version: str) -> Iterator[None]:
        """``key``'s write of ``version`` is on its way for the ``with`` block."""
        with self._lock:
            versions, newest = self._keys.get(key, ([], version))
            versions.append(version)
            # The newest by version, not the last sent: a forget's delete carries the version
            # it was called with, older than a write of the key made after that call.
            self._keys[key] = (versions, max(newest, version))
        try:
            yield
        finally:
            with self._lock:
                versions, _ = self._keys.get(key, ([version], version))
                if version in versions:
                    versions.remove(version)
                if not versions:
                    self._keys.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def newest(self, key: str) -> str | None:
        """The version of the newest write of ``key`` sent while one is on its way, if any."""
        with self._lock:
            entry = self._keys.get(key)
        return None if entry is None else entry[1]

    def older(self, matches: Callable[[str], bool], version: str) -> bool:
        """True while a write older than ``version`` of a key that ``matches`` is on its way."""
        with self._lock:
            return any(
                matches(key) and min(versions) < version
                for key, (versions, _) in self._keys.items()
            )

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._keys)
