"""Awaiting several calls at once without orphans: when one fails, the others are cancelled and
awaited before the error is raised (``asyncio.gather`` leaves them running, and a call still
running after its store is closed can open a connection nothing will close)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

__all__ = ["gather_all"]

T = TypeVar("T")


async def gather_all(*calls: Awaitable[T], at_most: int | None = None) -> list[T]:
    """The results of ``calls`` in order; on the first failure (or a cancellation) the rest are
    cancelled and awaited, then that error is raised. With ``at_most``, no more than that many
    run at once (the others wait their turn, their own timeouts not yet started)."""
    if at_most is not None and len(calls) > at_most:
        turns = asyncio.Semaphore(at_most)

        async def in_turn(call: Awaitable[T]) -> T:
            async with turns:
                return await call

        calls = tuple(in_turn(call) for call in calls)
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
