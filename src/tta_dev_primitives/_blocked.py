"""Event loops of other threads: the one a sync call blocks, tasks left on a closed one, and
waiting for a task of another.

``blocked_loop`` is set (in the work's context) by ``integrations._portal.run_sync`` when called
inside a running loop: closing a connection there must not wait for that loop to close its own
client, which it can only do once the sync call returns. For the same reason ``finished_elsewhere``
never waits for a task of that loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import os
import sys
import threading
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Protocol, TypeGuard, TypeVar

T = TypeVar("T")
L = TypeVar("L", threading.Lock, threading.RLock)

__all__ = [
    "LoopLock",
    "alive",
    "blocked_loop",
    "call_on_its_loop",
    "cancel_on_its_loop",
    "finished_elsewhere",
    "fork_safe",
    "heavy_in_own_thread",
    "in_own_thread",
    "on_portal",
    "reset_at_fork",
    "running_loop",
    "stranded",
]

blocked_loop: ContextVar[asyncio.AbstractEventLoop | None] = ContextVar(
    "tta_blocked_loop", default=None
)

#: True in work that a sync call runs on the library's own event loop (``_portal``): a sync
#: step there runs in a worker thread, since that loop serves every thread's sync calls.
on_portal: ContextVar[bool] = ContextVar("tta_on_portal", default=False)

_own_threads: concurrent.futures.Executor | None = None  # ``in_own_thread``'s daemon threads
#: Large memories analysed at once on a loop (``heavy_in_own_thread``): each holds up to a few
#: hundred MB while it runs, and the GIL runs one at a time anyway.
_HEAVY = 2
_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)

_CHECK = 0.05  # seconds between checks that the task's loop still runs
#: The process each loop whose tasks other threads may wait for ran in (``running_loop``). A
#: process forked while another thread ran such a loop has a copy of it that looks running (not
#: closed, and it says it runs), but no thread of the child runs it: only the forking thread's
#: own loop goes on there. (In one process a stopped loop may run again, on any thread.)
_homes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


def running_loop() -> asyncio.AbstractEventLoop:
    """``asyncio.get_running_loop()``, noting the process it runs in: for a task that another
    thread's loop may wait for (``finished_elsewhere``), so that a forked child never does."""
    loop = asyncio.get_running_loop()
    _homes[loop] = os.getpid()
    return loop


def _orphaned(loop: asyncio.AbstractEventLoop) -> bool:
    """True if ``loop`` is a forked child's copy of a loop its parent ran on another thread."""
    home = _homes.get(loop)
    return home is not None and home != os.getpid() and loop is not asyncio._get_running_loop()


def alive(task: asyncio.Task[T] | None) -> TypeGuard[asyncio.Task[T]]:
    """True if ``task`` runs, or will: not done, and its loop not closed (a loop closed with it
    pending never finishes it) nor one no thread of this process runs (a forked child's copy)."""
    if task is None or task.done():
        return False
    loop = task.get_loop()
    return not loop.is_closed() and not _orphaned(loop)


def call_on_its_loop(loop: asyncio.AbstractEventLoop, callback: Callable[[], Any]) -> bool:
    """Run ``callback`` on ``loop``: at once if that is the running one (True), else through
    that loop's thread (a loop closed meanwhile has no one left to run it for)."""
    if loop is asyncio._get_running_loop():
        callback()
        return True
    with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
        loop.call_soon_threadsafe(callback)
    return False


def cancel_on_its_loop(task: asyncio.Task[Any]) -> bool:
    """Cancel ``task`` on its own loop (``call_on_its_loop``; True: the caller may await its
    end)."""
    return call_on_its_loop(task.get_loop(), task.cancel)


def stranded(loop: asyncio.AbstractEventLoop) -> bool:
    """True if a task of ``loop``, another thread's, will not finish while this call waits for
    it: the loop is closed or stopped, no thread of this process runs it (a forked child's copy
    of its parent's), or it is the loop this very sync call blocks. Such a task is taken over
    (run anew on the caller's loop), not waited for."""
    return (
        loop is blocked_loop.get() or loop.is_closed() or not loop.is_running() or _orphaned(loop)
    )


async def finished_elsewhere(task: asyncio.Task[Any]) -> bool:
    """Wait for ``task``, which belongs to another thread's running loop; True once it is done.
    False at once if that loop is closed or blocked waiting for this very call, and as soon as
    it stops running: it would never finish the task then."""
    loop = task.get_loop()
    if stranded(loop):
        return False  # (a stopped loop would also pile up the requests sent to it)
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    def finished(_: object) -> None:
        with contextlib.suppress(concurrent.futures.InvalidStateError):  # given up on
            done.set_result(None)

    try:
        loop.call_soon_threadsafe(task.add_done_callback, finished)  # on its own thread
    except RuntimeError:  # closed meanwhile
        return False
    waiting = asyncio.wrap_future(done)
    try:
        while True:
            finished_now, _ = await asyncio.wait([waiting], timeout=_CHECK)
            if finished_now:
                return True
            if stranded(loop):
                with contextlib.suppress(RuntimeError):  # closed meanwhile
                    loop.call_soon_threadsafe(task.remove_done_callback, finished)
                return False
    finally:
        waiting.cancel()


def _threads() -> concurrent.futures.Executor:
    """``in_own_thread``'s daemon threads (``embeddings._threads.DaemonExecutor``, unbounded)."""
    global _own_threads
    if _own_threads is None:  # imported at the first such call, not with the package
        from tta_dev_primitives.embeddings._threads import DaemonExecutor

        _own_threads = DaemonExecutor("tta-sync-step", max_busy=sys.maxsize)
    return _own_threads


async def in_own_thread(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` on a daemon thread, in a copy of this context: an idle one or a new one,
    never one a busy call holds (``embeddings._threads.DaemonExecutor``, unbounded here). Not
    the loop's default pool: work the call waits for (a nested sync call, a DNS lookup on that
    pool) may need a thread of it, which calls holding them all would never free; and a call
    that never returns does not keep the process from exiting."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(_threads(), context.run, func, *args)


async def heavy_in_own_thread(func: Callable[..., T], *args: Any) -> T:
    """``in_own_thread`` for work that holds much memory while it runs (analysing an 8 MiB
    memory): at most ``_HEAVY`` at once on an event loop, so a burst of them does not hold it
    all together. The others wait their turn on the loop, holding no thread (a burst of 60
    held 60), and one whose caller was cancelled meanwhile (a request that timed out) never
    runs. A turn ends when the work does, even if its caller stopped waiting."""
    loop = asyncio.get_running_loop()
    turns = _turns.get(loop)
    if turns is None:
        turns = _turns[loop] = asyncio.Semaphore(_HEAVY)
    await turns.acquire()

    def done(_: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(turns.release)

    try:
        work = _threads().submit(contextvars.copy_context().run, func, *args)
    except BaseException:
        turns.release()
        raise
    work.add_done_callback(done)
    return await asyncio.wrap_future(work)


class LoopLock:
    """An ``asyncio.Lock`` for each event loop that uses it. A plain lock that two calls
    waited on belongs to their loop and raises on any other: an object kept across loops (a
    module-level memory used by one ``asyncio.run`` after another, as a serverless handler
    does, or by a sync call's portal loop) takes its lock from here: ``async with lock():``."""

    __slots__ = ("_locks",)

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock


#: Thread locks made free again in a forked child (``fork_safe``).
_fork_safe: weakref.WeakSet[Any] = weakref.WeakSet()


def fork_safe(lock: L) -> L:
    """``lock``, made free again in a process forked while another thread held it (a search
    ranking, a page being applied): no thread of the child would ever release it, and the
    child's first call taking it would wait forever. For locks never held across a call that
    could fork."""
    _fork_safe.add(lock)
    return lock


class _Forkable(Protocol):
    def _forked(self) -> None: ...


_F = TypeVar("_F", bound=_Forkable)
_reset: weakref.WeakSet[Any] = weakref.WeakSet()


def reset_at_fork(instance: _F) -> _F:
    """``instance``, whose ``_forked()`` runs in a forked child (a new process: its own tag,
    no parent's pending call, no parent's idle thread), for as long as it lives."""
    _reset.add(instance)
    return instance


def _forked() -> None:
    _turns.clear()  # (a loop forked mid-run keeps no turns its parent's threads held)
    for lock in list(_fork_safe):
        lock._at_fork_reinit()  # (as the standard library's own locks are, in a child)
    for instance in list(_reset):
        instance._forked()


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_forked)
