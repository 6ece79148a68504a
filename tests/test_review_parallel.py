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


async def test_a_branch_ending_cancelled_cancels_its_siblings_at_once() -> None:
    """Branch 0 awaits a future that its owner cancels (not the group): the group ends then, as
    on a failure, cancelling branch 1 (which would wait for ever) and raising CancelledError, as
    ``gather`` does. Before, it waited for branch 1 to finish first (here: never; the 30 s is a
    hang guard)."""
    shared: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    sibling_cancelled = asyncio.Event()

    async def awaits_shared(x: int, ctx: WorkflowContext) -> int:
        return await shared

    async def slow(x: int, ctx: WorkflowContext) -> int:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            sibling_cancelled.set()
            raise
        return x

    group = ParallelPrimitive([awaits_shared, slow])
    running = asyncio.ensure_future(group.execute(1, WorkflowContext()))
    await asyncio.sleep(0)
    shared.cancel()
    done, _ = await asyncio.wait([running], timeout=30)
    assert done, "the group waited for its slow branch"
    assert running.cancelled()
    assert sibling_cancelled.is_set()
