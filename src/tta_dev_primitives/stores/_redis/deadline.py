"""A per-call deadline that measures the server's answer, not the time this event loop was busy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["AnswerWithin"]

#: Loop turns between a call's deadline and its cancellation (see ``AnswerWithin``): a reply
#: read in one turn wakes its caller in the next.
_GRACE_TURNS = 3
#: The most loop-busy time given back to one call, in timeouts (see ``AnswerWithin``).
_MAX_CREDIT = 10


class AnswerWithin:
    """Like ``asyncio.timeout``, but time this event loop spent on other work does not count.

    A busy loop (a burst of thousands of calls, a blocking callback) runs a deadline's timer
    late, often in the same turn that reads the reply, before the call could resume: with
    ``asyncio.timeout`` an answered call would fail as if Redis were down. Here a timer that
    fires late by more than a twentieth of the timeout was held up by the loop, not the server:
    the deadline moves on by that lateness (at most ``_MAX_CREDIT`` timeouts in all, so a
    stalled server is still given up on). A timer on time cancels the call after
    ``_GRACE_TURNS`` more turns, so a reply already received is delivered first. So the timeout
    measures the server's answer; on an idle loop this costs what ``asyncio.timeout`` does.

    ``alive`` (optional): asked once, when the deadline comes, whether the server still answers
    others (a ``PING``, bounded by the caller); while it asks, the call goes on. If it does,
    the deadline moves on by ``extra`` seconds: a reply is still on its way, a large one on a
    slow link (``sizes``). If not, the call is cancelled as above.
    """

    __slots__ = (
        "_alive", "_asking", "_credit", "_extra", "_handle", "_loop", "_seconds", "_task",
        "_turns", "_when", "expired",
    )  # fmt: skip

    def __init__(
        self,
        seconds: float | None,
        *,
        alive: Callable[[], Coroutine[Any, Any, bool]] | None = None,
        extra: float = 0.0,
    ) -> None:
        self._seconds = seconds or 0.0  # None or 0: no deadline (the caller bounds the call)
        self._alive = alive
        self._extra = extra
        self._asking: asyncio.Task[bool] | None = None
        self.expired = False

    async def __aenter__(self) -> AnswerWithin:
        self._loop = loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._turns = _GRACE_TURNS
        self._credit = 0.0
        self._when = loop.time() + self._seconds
        self._handle: asyncio.Handle | None = None
        if self._seconds:
            self._handle = loop.call_at(self._when, self._deadline)
        return self

    def _deadline(self) -> None:
        now = self._loop.time()
        late = now - self._when
        if late > self._seconds / 20 and self._credit + late <= _MAX_CREDIT * self._seconds:
            self._credit += late  # the loop was busy elsewhere: give that time back
            self._when = now + late
            self._handle = self._loop.call_at(self._when, self._deadline)
        elif self._alive is not None:
            self._asking = self._loop.create_task(self._alive())
            self._asking.add_done_callback(self._answered)
            self._alive = None  # once
        else:
            self._turn()

    def _answered(self, asking: asyncio.Task[bool]) -> None:
        if self._handle is None:  # the call ended meanwhile
            return
        if not asking.cancelled() and asking.exception() is None and asking.result():
            self._when = self._loop.time() + self._extra
            self._handle = self._loop.call_at(self._when, self._deadline)
        else:
            self._turn()

    def _turn(self) -> None:
        if self._turns:
            self._turns -= 1
            self._handle = self._loop.call_soon(self._turn)
        else:
            self.expired = True
            self._task.cancel()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: Any, tb: Any) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._asking is not None and not self._asking.done():
            self._asking.cancel()
        if self.expired and self._task.uncancel() == 0 and exc_type is asyncio.CancelledError:
            raise TimeoutError(f"no reply within {self._seconds}s") from None
