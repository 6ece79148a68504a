"""A memory's changes of the same keys take effect in the order they were called.

``add`` reads its value (a large one on a worker thread) and embeds its text before it reaches
the store, where its write gets its version. A ``delete``, ``touch``, ``forget``, ``clear`` or
second ``add`` of its key called meanwhile would otherwise overtake it: ``gather(add(k, v),
forget(scope))`` left the memory behind and counted 0. So each change holds a ticket from its
call to its return, and goes to the store only once the changes called before it that touch
the same keys have returned (usually there are none: one check). Changes of other keys, and
reads, never wait: a read beside a write may see either.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final, NamedTuple

from tta_dev_primitives.search._scopes import in_scope

__all__ = ["SETTLE", "CallOrder"]

#: Seconds a change waits at most for those called before it: a change of an event loop that
#: stopped mid-call never returns (the wait then lets this one go on, ordered by versions).
SETTLE: Final = 10.0
_FIRST_POLL: Final = 0.0005
_LAST_POLL: Final = 0.01


class _Target(NamedTuple):
    """What a change touches: one key, a scope's keys, or (``name`` None) every key."""

    name: str | None
    scope: bool


def _overlap(a: _Target, b: _Target) -> bool:
    if a.name is None or b.name is None:
        return True
    if a.scope and b.scope:
        return in_scope(a.name, b.name) or in_scope(b.name, a.name)
    if a.scope:
        return in_scope(b.name, a.name)
    if b.scope:
        return in_scope(a.name, b.name)
    return a.name == b.name


class CallOrder:
    """The changes of one memory that were called and have not returned (thread-safe: a
    memory may serve several event loops' threads)."""

    __slots__ = ("__weakref__", "_lock", "_pending", "_tickets")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, _Target] = {}
        self._tickets = itertools.count()
        _orders.add(self)

    def _forked(self) -> None:
        """A forked child runs none of its parent's calls: none can hold it up."""
        self._lock = threading.Lock()
        self._pending = {}

    @contextmanager
    def change(self, name: str | None, *, scope: bool = False) -> Iterator[int]:
        """A change of key ``name`` (``scope``: of the keys in scope ``name``; None: of every
        key) runs for the ``with`` block, which starts at its call: its ticket."""
        with self._lock:
            ticket = next(self._tickets)
            self._pending[ticket] = _Target(name, scope)
        try:
            yield ticket
        finally:
            with self._lock:
                self._pending.pop(ticket, None)

    def _behind(self, ticket: int) -> bool:
        """Whether a change called before ``ticket``'s, of some of its keys, is running."""
        with self._lock:
            mine = self._pending.get(ticket)
            return mine is not None and any(
                earlier < ticket and _overlap(target, mine)
                for earlier, target in self._pending.items()
            )

    async def turn(self, ticket: int) -> None:
        """Return once the changes called before ``ticket``'s, of some of its keys, have
        returned (at most ``SETTLE`` seconds)."""
        if len(self._pending) < 2 or not self._behind(ticket):
            return
        deadline = time.monotonic() + SETTLE
        delay = _FIRST_POLL
        while self._behind(ticket) and time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LAST_POLL)


_orders: weakref.WeakSet[CallOrder] = weakref.WeakSet()


def _forked() -> None:
    for order in list(_orders):
        order._forked()


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_forked)
