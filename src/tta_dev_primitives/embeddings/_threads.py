"""``DaemonExecutor``: where sync embedders run, so that a hung one never keeps a program alive.

``asyncio.to_thread`` uses the loop's default ``ThreadPoolExecutor``, whose workers the
interpreter joins at exit: one sync model call that never returns would hang the program's
exit, and a few would take every worker. Here each call gets an idle daemon thread or a new
one, so a hung call holds only its own thread; idle threads beyond ``max_idle`` end, and
``shutdown`` ends the idle ones (a hung one ends with the process).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

from tta_dev_primitives._blocked import reset_at_fork
from tta_dev_primitives.exceptions import EmbeddingError

__all__ = ["DaemonExecutor"]

P = ParamSpec("P")
T = TypeVar("T")

_Work = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None


class DaemonExecutor(Executor):
    """An executor of daemon threads: one per running call, at most ``max_idle`` kept idle.

    ``max_busy`` bounds the threads running at once (hung calls included): past it, ``submit``
    raises ``EmbeddingError`` instead of starting yet another thread for a model that hangs.
    """

    def __init__(self, name: str, *, max_idle: int = 4, max_busy: int = 32) -> None:
        self._name, self._max_idle, self._max_busy = name, max_idle, max_busy
        self._closed = False
        self._forked()
        reset_at_fork(self)

    def _forked(self) -> None:
        """No threads yet: at first, and in a forked child, where the parent's are gone (its
        calls would otherwise wait forever for an idle thread that exists only in the parent)."""
        self._work: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0

    @property
    def busy(self) -> int:
        """Threads running a call now (hung ones included)."""
        with self._lock:
            return self._threads - self._idle

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("this executor was shut down")
            if self._idle == 0:
                if self._threads >= self._max_busy:
                    raise EmbeddingError(
                        f"{self._threads} calls to the sync embedder are still running "
                        "(hung past embed_timeout?); not starting another"
                    )
                self._threads += 1
                threading.Thread(
                    target=self._worker, name=f"{self._name}-{self._threads}", daemon=True
                ).start()
            else:
                self._idle -= 1  # claimed: the next submit will not count on this thread
            self._work.put((future, fn, args, kwargs))
        return future

    def _worker(self) -> None:
        while True:
            work = self._work.get()
            if work is None:
                break
            future, fn, args, kwargs = work
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # handed to the awaiting caller
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del work, future, fn, args, kwargs  # drop references while idle
            with self._lock:
                if self._closed or self._idle >= self._max_idle:
                    break
                self._idle += 1
        with self._lock:
            self._threads -= 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """End the idle threads (never waits for a running call: it may be hung)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, 0
        for _ in range(idle):
            self._work.put(None)
