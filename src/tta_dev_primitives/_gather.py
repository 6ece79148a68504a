"""Awaiting several calls at once without orphans: when one fails, the others are cancelled and
awaited before the error is raised (``asyncio.gather`` leaves them running, and a call still
running after its store is closed can open a connection nothing will close)."""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

__all__ = ["gather_all"]

T = TypeVar("T")


async def gather_all(*calls: Awaitable[T], at_most: int | None = None) -> list[T]:
    """The results of ``calls`` in order; on the first failure (or a cancellation) the rest are
    cancelled and awaited, then that error is raised. With ``at_most``, no more than that many
    run at once: the others start as they finish (their own timeouts not started before), and
    those not started when one fails are closed, never run."""
    if at_most is not None and len(calls) > at_most:
        return await _in_turns(calls, at_most)
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        await _cancelled(tasks)
        raise


async def _in_turns(calls: tuple[Awaitable[T], ...], at_most: int) -> list[T]:
    results: list[Any] = [None] * len(calls)
    waiting = deque(enumerate(calls))
    running: dict[asyncio.Future[Any], int] = {}
    try:
        while waiting or running:
            while waiting and len(running) < at_most:
                i, call = waiting.popleft()
                running[asyncio.ensure_future(call)] = i
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                results[running.pop(task)] = task.result()  # (its error, raised)
    except BaseException:
        await _cancelled(running)
        for _, call in waiting:  # never started: closed, so none is left "never awaited"
            if inspect.iscoroutine(call):
                call.close()
        raise
    return results


async def _cancelled(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and await their ends (their errors are the first failure's doing)."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
