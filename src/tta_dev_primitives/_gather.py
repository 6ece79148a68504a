"""Awaiting several calls at once without orphans: when one fails, the others are cancelled and
awaited before the error is raised (``asyncio.gather`` leaves them running, and a call still
running after its store is closed can open a connection nothing will close)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

__all__ = ["gather_all"]

T = TypeVar("T")


async def gather_all(*calls: Awaitable[T]) -> list[T]:
    """The results of ``calls`` in order; on the first failure (or a cancellation) the rest are
    cancelled and awaited, then that error is raised."""
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
