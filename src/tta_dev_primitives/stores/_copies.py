"""Checking the in-process copy against the server's versions, so that an outage never serves a
memory another process has since overwritten or deleted.

A search replica that follows the whole namespace hears of such changes from the feed; nothing
else does (the Query Engine, a replica of one user, a cache, a process that only writes). So,
at most every ``CHECK_INTERVAL`` seconds, the call Redis answered that finds a check due then
reads the version Redis holds for the next ``CHECK_PAGE`` keys of the in-process copy (one
``HMGET`` per partition). A key whose version there is not one this process issued was
changed elsewhere: its copy is dropped. Keys written by this process while the check runs, or
still on their way to Redis, are left alone (their newer value is this process's own).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from tta_dev_primitives.stores._base import StorageBackend

__all__ = [
    "CHECK_INTERVAL", "CHECK_PAGE", "DROP_SLICE", "VOUCHED_FOR", "CopyCheck", "Outdated", "same",
]  # fmt: skip

#: Seconds between checks (each one page of the in-process copy).
CHECK_INTERVAL = 1.0
#: Keys checked per call: a copy of up to this many is checked whole every interval.
CHECK_PAGE = 2000
#: Seconds after its last check that the copy is still vouched for when an outage begins;
#: past it (an idle worker, a serverless instance between requests) it is not served.
VOUCHED_FOR = 3 * CHECK_INTERVAL


class CopyCheck:
    """When the next check is due, where the last one stopped, and the keys written meanwhile."""

    __slots__ = (
        "_clock", "_next", "_start", "checked", "checked_at", "dropped", "enabled", "touched",
    )  # fmt: skip

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next = 0.0
        self._start = 0  # where in the copy the next page starts
        self.enabled = True  # False once the remote says it keeps no versions
        self.touched: set[str] | None = None  # while a check runs: keys this process wrote
        self.checked = 0  # keys checked, since creation
        self.dropped = 0  # copies dropped as changed elsewhere, since creation
        #: When Redis's versions were last read for a page of the copy (at first: when the
        #: copy, then empty, was made).
        self.checked_at = clock()

    def due(self) -> bool:
        return self.enabled and self.touched is None and self._clock() >= self._next

    def vouched(self) -> bool:
        """True if the copy may be served in an outage beginning now: checked within
        ``VOUCHED_FOR`` seconds (or never checkable: a remote that keeps no versions)."""
        return not self.enabled or self._clock() - self.checked_at <= VOUCHED_FOR

    def wrote(self, key: str) -> None:
        """This process is writing ``key``: a running check must not judge its copy."""
        if self.touched is not None:
            self.touched.add(key)

    async def outdated(
        self,
        local: StorageBackend,
        remote: StorageBackend,
        ours: Callable[[str], bool],
        in_flight: Iterable[str],
    ) -> list[str]:
        """The keys of the next page of ``local`` whose version in ``remote`` is not ``ours``
        (None: the key is gone there, or was cleared)."""
        self.touched = set(in_flight)
        try:
            read_at = self._clock()
            keys = await local.key_slice(self._start, CHECK_PAGE)
            if not keys:
                self._start = 0
                self.checked_at = read_at
                return []
            found: list[Any] | None = await remote.current_versions(keys)
            if found is None:
                self.enabled = False
                return []
            self.checked_at = read_at
            # The next page, once this one is read (a failed read checks it again).
            self._start = 0 if len(keys) < CHECK_PAGE else self._start + len(keys)
            self.checked += len(keys)
            touched = self.touched
            return [key for key, version in zip(keys, found, strict=True)
                    if key not in touched and (version is None or not ours(version))]  # fmt: skip
        finally:
            self.touched = None
            self._next = self._clock() + CHECK_INTERVAL


#: Marked copies ``Outdated.drop`` judges per turn of the event loop.
DROP_SLICE = 512
_ANY = object()  # in ``Outdated``: drop the in-process copy whatever it holds


class Outdated:
    """Keys whose in-process copy may be older than what Redis holds (a stale replayed write,
    another process's change seen in the feed or by a read), dropped before the next
    operation ends."""

    __slots__ = ("_changes",)

    def __init__(self) -> None:
        # key -> Redis's payload, None, or _ANY. One mark a key: marks of a key kept while its
        # writes are on its way (``drop``'s ``later``) do not pile up, however many are seen.
        self._changes: dict[str, Any] = {}

    def __bool__(self) -> bool:
        return bool(self._changes)

    def mark(self, key: str, payload: Any = _ANY) -> None:
        """Redis holds ``payload`` for ``key`` (None: deleted; left out: something else)."""
        if key in self._changes:
            before = self._changes[key]
            if before is _ANY or payload is _ANY or not _equal(before, payload):
                payload = _ANY  # two different answers: no copy equals both, it goes either way
        self._changes[key] = payload

    def take(self, key: str) -> list[tuple[str, Any]]:
        """Remove and return the marks of ``key`` (``put_back`` restores them)."""
        if key not in self._changes:
            return []
        return [(key, self._changes.pop(key))]

    def put_back(self, changes: list[tuple[str, Any]]) -> None:
        for key, payload in changes:
            self.mark(key, payload)

    async def drop(
        self,
        local: StorageBackend,
        keep: Callable[[str], bool],
        later: Callable[[str], bool] = lambda key: False,
    ) -> None:
        """Drop the marked copies that differ from Redis's. A key ``keep`` names stays (this
        process's newer write is journalled); one ``later`` names stays marked until the write
        of it on its way lands (which of the two is newer is known only then)."""
        changes, self._changes = self._changes, {}
        for done, (key, payload) in enumerate(changes.items(), 1):
            if done % DROP_SLICE == 0:
                # A replica's first load marks every memory of the namespace: judging 50,000
                # in one step held the loop 340 ms. (A copy dropped meanwhile is only a miss.)
                await asyncio.sleep(0)
            if keep(key):
                continue
            if later(key):
                self.mark(key, payload)
                continue
            if payload is _ANY or payload is None:
                await local.delete(key)
                continue
            mine = await local.get(key)
            if mine is not None and not same(mine, payload):
                await local.delete(key)


def _equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return same(a, b) or same(b, a)


def same(mine: Any, theirs: Any) -> bool:
    """True if an in-process payload equals the remote's (text in one, bytes in the other)."""
    if isinstance(mine, str) and isinstance(theirs, bytes):
        return mine.encode() == theirs
    return bool(mine == theirs)
