"""A per-call deadline that measures the server's answer, not the time this event loop was busy."""

from __future__ import annotations

import asyncio
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
    """

    __slots__ = ("_credit", "_handle", "_loop", "_seconds", "_task", "_turns", "_when", "expired")

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds or 0.0  # None or 0: no deadline (the caller bounds the call)
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

    def remaining(self) -> float | None:
        """Seconds until the deadline (None: no deadline)."""
        return self._when - self._loop.time() if self._seconds else None

    def _deadline(self) -> None:
        now = self._loop.time()
        late = now - self._when
        if late > self._seconds / 20 and self._credit + late <= _MAX_CREDIT * self._seconds:
            self._credit += late  # the loop was busy elsewhere: give that time back
            self._when = now + late
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
        if self.expired and self._task.uncancel() == 0 and exc_type is asyncio.CancelledError:
            raise TimeoutError(f"no reply within {self._seconds}s") from None
