"""CachePrimitive single flight under cancellation and across event loops."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from tta_dev_primitives import CachePrimitive, ParallelPrimitive, WorkflowContext


def by_input(x: Any, ctx: WorkflowContext) -> str:
    return str(x)


async def test_a_waiter_cancelled_with_its_leader_stays_cancelled() -> None:
    """Leader and waiter on one key are cancelled together (a Parallel of two cached branches
    cancelled by its caller): the waiter must end cancelled, not take over the computation."""
    gate, entered = asyncio.Event(), asyncio.Event()
    calls = 0

    async def step(x: Any, ctx: WorkflowContext) -> Any:
        nonlocal calls
        calls += 1
        entered.set()
        if calls == 1:
            await gate.wait()  # the leader's computation never ends on its own
        return calls

    cache = CachePrimitive(step, by_input)
    leader = asyncio.create_task(cache.execute("q", WorkflowContext()))
    await entered.wait()
    waiter = asyncio.create_task(cache.execute("q", WorkflowContext()))
    for _ in range(3):
        await asyncio.sleep(0)  # the waiter awaits the leader's future
    leader.cancel()
    waiter.cancel()
    results = await asyncio.gather(leader, waiter, return_exceptions=True)
    assert [type(r) for r in results] == [asyncio.CancelledError, asyncio.CancelledError]
    assert calls == 1  # nobody ran the step again after being cancelled


async def test_cancelling_a_parallel_of_one_cached_key_cancels_both_branches() -> None:
    """The same through ParallelPrimitive: cancelling it must not leave a branch computing."""
    gate, entered = asyncio.Event(), asyncio.Event()
    calls = 0

    async def step(x: Any, ctx: WorkflowContext) -> Any:
        nonlocal calls
        calls += 1
        entered.set()
        await gate.wait()
        return calls

    cache = CachePrimitive(step, by_input)
    both = ParallelPrimitive([cache, cache])
    run = asyncio.create_task(both.execute("q", WorkflowContext()))
    await entered.wait()
    for _ in range(3):
        await asyncio.sleep(0)
    run.cancel()
    done, _ = await asyncio.wait([run], timeout=30)  # hang guard only
    gate.set()  # release a branch that took over, so the test ends either way
    assert run in done, "the cancelled Parallel waited on a branch that started computing anew"
    assert run.cancelled()
    assert calls == 1


def test_same_key_from_two_event_loops_does_not_wait_on_the_other_loops_future() -> None:
    """A miss in flight on one loop (thread) and a second caller of that key on another loop:
    the second must get an answer, not fail awaiting a future of another loop."""
    cache = CachePrimitive(lambda x, ctx: _slow(x), by_input)
    entered, release = threading.Event(), threading.Event()
    first: list[Any] = []

    async def _leader() -> Any:
        return await cache.execute("q", WorkflowContext())

    global _slow_gate
    _slow_gate = (entered, release)
    thread = threading.Thread(target=lambda: first.append(asyncio.run(_leader())))
    thread.start()
    assert entered.wait(30)
    try:

        async def _second() -> Any:
            task = asyncio.ensure_future(cache.execute("q", WorkflowContext()))
            for _ in range(5):
                await asyncio.sleep(0)
            release.set()  # the leader may finish now
            return await asyncio.wait_for(task, 30)  # hang guard only

        second = asyncio.run(_second())
    finally:
        release.set()
        thread.join(30)
    assert first == [second] == ["q!"]


_slow_gate: tuple[threading.Event, threading.Event] | None = None


async def _slow(x: Any) -> Any:
    assert _slow_gate is not None
    entered, release = _slow_gate
    entered.set()
    await asyncio.to_thread(release.wait, 30)
    return f"{x}!"
