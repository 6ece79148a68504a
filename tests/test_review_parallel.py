"""ParallelPrimitive: the failing branch's exception, not a sibling's reaction to being
cancelled because of it."""

from __future__ import annotations

import asyncio

import pytest

from tta_dev_primitives import ParallelPrimitive, WorkflowContext


async def test_a_siblings_error_while_being_cancelled_does_not_replace_the_failure() -> None:
    """Branch 1 fails; branch 0, cancelled because of it, raises from its cleanup. The caller
    must see branch 1's exception (the one that failed first), as the docs say."""
    started = asyncio.Event()

    async def cleanup_fails(x: int, ctx: WorkflowContext) -> int:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("connection lost while cancelling") from None
        return x

    async def failing(x: int, ctx: WorkflowContext) -> int:
        await started.wait()
        raise KeyError("the real failure")

    with pytest.raises(KeyError, match="the real failure"):
        await ParallelPrimitive([cleanup_fails, failing]).execute(0, WorkflowContext())
