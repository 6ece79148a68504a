"""Run this library's coroutines from synchronous framework methods (LangChain's ``invoke``).

The coroutine runs on one private event loop in a daemon thread (the portal), so a memory used only
through sync calls keeps one Redis connection pool instead of one per call. Every thread's sync
calls share that loop, so a sync step run there (``as_runnable(...).invoke``) runs on a daemon
thread no other call holds (``LambdaPrimitive``, ``_blocked.in_own_thread``; not a bounded pool,
which steps could fill while the work they wait for needs a thread of it): a slow one never
holds up another thread's
calls, sync steps of a ``batch`` overlap, and one that makes a sync call of its own (a LangChain
model reading ``LLMCache``) finds the portal free rather than waiting for itself.

Called from inside a running event loop, a sync method would block that loop. By default that
raises, naming the async method to await. With ``in_loop=True`` (LangGraph's store: its own
tests call ``put``/``get``/``batch`` from async tests, and its ``InMemoryStore`` allows it) the
call runs on the portal instead: the calling loop waits until it returns, as it would for any
blocking call, but nothing deadlocks, since the work happens on another loop. Awaiting the async
method is still better there: it blocks nothing, and a memory on Redis keeps one connection pool
per event loop it is used from, so switching loops reconnects. The one case that cannot work is
a sync call from code already running on the portal loop (it would wait for itself): that
always raises.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from tta_dev_primitives._blocked import blocked_loop, on_portal
from tta_dev_primitives.exceptions import UsageError

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _portal_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="tta-dev-primitives-sync", daemon=True
            )
            thread.start()
            _loop = loop
        return _loop


def _forked() -> None:
    """A forked child (a server's worker) starts its own portal at its first sync call. The
    parent's loop looks alive in the child, but its thread exists only in the parent: a call
    sent to it would wait forever. It is dropped, never closed (closing it here would take the
    parent's self-pipe out of the epoll set they share); the lock, which the parent's thread
    may have held, is new."""
    global _lock, _loop
    _lock, _loop = threading.Lock(), None


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_forked)


def run_sync(coro: Coroutine[Any, Any, T], *, instead: str, in_loop: bool = False) -> T:
    """Run ``coro`` to completion from sync code; ``instead`` names the async method to await.

    ``in_loop``: whether a call from inside a running event loop runs (blocking that loop until
    it returns) rather than raising.
    """
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    portal = _portal_loop()
    if running is portal:
        coro.close()
        raise UsageError(
            "called synchronously from code running on the sync portal's own event loop, "
            f"where it would wait for itself; await {instead} instead"
        )
    if running is not None and not in_loop:
        coro.close()
        raise UsageError(
            "called synchronously inside a running event loop, which it would block; "
            f"await {instead} instead"
        )
    # The work runs in a copy of this context (the portal's task copies it) that says so
    # (``on_portal``: sync steps go to a worker thread) and names the loop it blocks, if any:
    # what it closes there is closed when the loop runs again, unawaited.
    context = contextvars.copy_context()
    context.run(on_portal.set, True)
    if running is not None:
        context.run(blocked_loop.set, running)
    future = context.run(asyncio.run_coroutine_threadsafe, coro, portal)
    try:
        return future.result()
    except BaseException:
        future.cancel()  # interrupted (Ctrl-C): the work stops too, not just the wait
        raise
