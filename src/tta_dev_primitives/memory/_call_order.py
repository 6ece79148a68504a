"""A memory's changes of the same keys take effect in the order they were called.

``add`` reads its value (a large one on a worker thread) and embeds its text before it reaches
the store, where its write gets its version. A ``delete``, ``touch``, ``forget``, ``clear`` or
second ``add`` of its key called meanwhile would otherwise overtake it: ``gather(add(k, v),
forget(scope))`` left the memory behind and counted 0. So each change holds a ticket from its
call to its return, and goes to the store only once the changes called before it that touch
the same keys have returned (usually there are none: one dictionary lookup). Changes of other
keys, and reads, never wait: a read beside a write may see either.

Pending changes are filed by key (a ``forget``'s scope or a ``clear`` apart, as there are few),
so checking costs the same with 8,000 writes in flight as with one; a change that waits is
woken when the one ahead of it returns, on its own event loop, not by polling. A change never
waits for one of the event loop that a sync call is blocking (``_blocked.blocked_loop``): that
loop can only go on once the sync call returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from typing import Final, NamedTuple

from tta_dev_primitives._blocked import blocked_loop, reset_at_fork, stranded
from tta_dev_primitives.search._scopes import in_scope

__all__ = ["SETTLE", "CallOrder"]

#: Seconds a change waits at most for those called before it: a change of an event loop that
#: stopped mid-call never returns (the wait then lets this one go on, ordered by versions).
SETTLE: Final = 10.0
#: A waiting change looks again this often even if nobody woke it (a loop that stopped).
_RECHECK: Final = 0.25


class _Change(NamedTuple):
    """What a change touches (one key, a scope's keys, or every key: ``name`` None) and the
    event loop it runs on."""

    name: str | None
    scope: bool
    loop: asyncio.AbstractEventLoop | None


def _overlap(a: _Change, b: _Change) -> bool:
    if a.name is None or b.name is None:
        return True
    if a.scope and b.scope:
        return in_scope(a.name, b.name) or in_scope(b.name, a.name)
    if a.scope:
        return in_scope(b.name, a.name)
    if b.scope:
        return in_scope(a.name, b.name)
    return a.name == b.name


def _can_wait_for(change: _Change) -> bool:
    """False for a change of a loop that cannot go on while this one waits (a sync call of
    this thread blocks it, or no thread runs it any more)."""
    loop = change.loop
    return loop is None or (loop is not blocked_loop.get() and not stranded(loop))


class CallOrder:
    """The changes of one memory that were called and have not returned (thread-safe: a
    memory may serve several event loops' threads)."""

    __slots__ = ("__weakref__", "_by_key", "_lock", "_pending", "_tickets", "_waiting", "_wide")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets = itertools.count()
        self._reset()
        reset_at_fork(self)

    def _reset(self) -> None:
        self._pending: dict[int, _Change] = {}
        self._by_key: dict[str, list[int]] = {}  # a key's pending changes' tickets, ascending
        self._wide: dict[int, _Change] = {}  # pending forgets and clears
        self._waiting: dict[int, asyncio.Future[None]] = {}

    def _forked(self) -> None:
        """A forked child runs none of its parent's calls: none can hold it up."""
        self._lock = threading.Lock()
        self._reset()

    @property
    def busy(self) -> bool:
        """Whether any change is pending (an add that awaits nothing before the store need
        not take a ticket when none is: nothing can overtake it, and it waits for nothing)."""
        return bool(self._pending)

    def change(self, name: str | None, *, scope: bool = False) -> _Held:
        """A change of key ``name`` (``scope``: of the keys in scope ``name``; None: of every
        key), running for a ``with`` block that starts at its call and gives its ticket."""
        entry = _Change(name, scope or name is None, asyncio._get_running_loop())
        with self._lock:
            ticket = next(self._tickets)
            self._pending[ticket] = entry
            if entry.scope:
                self._wide[ticket] = entry
            else:
                keyed = self._by_key.get(name)  # type: ignore[arg-type]
                if keyed is None:
                    self._by_key[name] = [ticket]  # type: ignore[index]
                else:
                    keyed.append(ticket)
        return _Held(self, ticket, entry)

    def _done(self, ticket: int, entry: _Change) -> None:
        with self._lock:
            if self._pending.pop(ticket, None) is None:
                return  # (forgotten since it began: a forked child's copy of a parent's call)
            if not self._waiting:  # (the usual case: nobody to wake)
                if entry.scope:
                    del self._wide[ticket]
                else:
                    tickets = self._by_key[entry.name]  # type: ignore[index]
                    if len(tickets) == 1:
                        del self._by_key[entry.name]  # type: ignore[arg-type]
                    else:
                        tickets.remove(ticket)
                return
            self._waiting.pop(ticket, None)
            if entry.scope:
                self._wide.pop(ticket, None)
                wake = list(self._waiting)  # (rare: every waiting change looks again)
            else:
                assert entry.name is not None
                tickets = self._by_key.get(entry.name, [])
                with contextlib.suppress(ValueError):
                    tickets.remove(ticket)
                if not tickets:
                    self._by_key.pop(entry.name, None)
                # The key's next change, now first, and the waiting forgets and clears of it.
                wake = [t for t in tickets[:1] if t in self._waiting]
                wake += [
                    t for t, c in self._wide.items() if t in self._waiting and _overlap(c, entry)
                ]
            futures = [self._waiting[t] for t in wake]
        for future in futures:
            _wake(future)

    def _ahead(self, ticket: int) -> bool:
        """Whether a change called before ``ticket``'s, of some of its keys, is running (and
        can go on while this one waits). Holds the lock."""
        mine = self._pending.get(ticket)
        if mine is None:
            return False
        if mine.scope:  # every earlier change, oldest first (tickets are filed in order)
            earlier = itertools.takewhile(lambda c: c[0] < ticket, self._pending.items())
            return any(_overlap(c, mine) and _can_wait_for(c) for _, c in earlier)
        assert mine.name is not None
        same = itertools.takewhile(lambda t: t < ticket, self._by_key.get(mine.name, ()))
        if any(_can_wait_for(self._pending[t]) for t in same):
            return True
        return any(
            t < ticket and _overlap(c, mine) and _can_wait_for(c) for t, c in self._wide.items()
        )

    async def turn(self, ticket: int) -> None:
        """Return once the changes called before ``ticket``'s, of some of its keys, have
        returned (at most ``SETTLE`` seconds)."""
        if len(self._pending) < 2:
            return
        deadline = time.monotonic() + SETTLE
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if not self._ahead(ticket):
                    self._waiting.pop(ticket, None)
                    return
                future = self._waiting[ticket] = loop.create_future()
            left = deadline - time.monotonic()
            if left <= 0:
                with self._lock:
                    self._waiting.pop(ticket, None)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(future), min(left, _RECHECK))


class _Held:
    """A change for its ``with`` block (a class, not a generator: an add pays for it)."""

    __slots__ = ("entry", "order", "ticket")

    def __init__(self, order: CallOrder, ticket: int, entry: _Change) -> None:
        self.order, self.ticket, self.entry = order, ticket, entry

    def __enter__(self) -> int:
        return self.ticket

    def __exit__(self, *exc: object) -> None:
        self.order._done(self.ticket, self.entry)


def _wake(future: asyncio.Future[None]) -> None:
    """Wake a waiting change on its own event loop (another thread's, perhaps)."""

    def done() -> None:
        if not future.done():
            future.set_result(None)

    with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
        future.get_loop().call_soon_threadsafe(done)
