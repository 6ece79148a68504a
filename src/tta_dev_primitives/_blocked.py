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
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeGuard, TypeVar

T = TypeVar("T")

__all__ = [
    "LoopLock",
    "alive",
    "blocked_loop",
    "finished_elsewhere",
    "heavy_in_own_thread",
    "in_own_thread",
    "on_portal",
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


def alive(task: asyncio.Task[T] | None) -> TypeGuard[asyncio.Task[T]]:
    """True if ``task`` runs, or will: not done, and its loop not closed (a loop closed with it
    pending never finishes it)."""
    return task is not None and not task.done() and not task.get_loop().is_closed()


def stranded(loop: asyncio.AbstractEventLoop) -> bool:
    """True if a task of ``loop``, another thread's, will not finish while this call waits for
    it: the loop is closed or stopped, or it is the loop this very sync call blocks. Such a task
    is taken over (run anew on the caller's loop), not waited for."""
    return loop is blocked_loop.get() or loop.is_closed() or not loop.is_running()


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
            if loop.is_closed() or not loop.is_running():
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


if sys.platform != "win32":  # (a loop forked mid-run keeps no turns its parent's threads held)
    os.register_at_fork(after_in_child=_turns.clear)
