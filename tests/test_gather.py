"""gather_all: when one call fails, the others are cancelled and awaited, none left running."""

from __future__ import annotations

import asyncio

import pytest

from tta_dev_primitives._gather import gather_all


async def test_results_come_back_in_order() -> None:
    async def value(v: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return v

    assert await gather_all(value(1, 0.02), value(2, 0), value(3, 0.01)) == [1, 2, 3]


async def test_a_failure_cancels_and_awaits_the_others_before_it_is_raised() -> None:
    """asyncio.gather would leave the slow call running after the error (an orphan that may
    open a connection after its store is closed)."""
    states: list[str] = []

    async def slow() -> int:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            states.append("cancelled")
            raise
        return 1

    async def fails() -> int:
        await asyncio.sleep(0)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await gather_all(slow(), fails(), slow())
    assert states == ["cancelled", "cancelled"]  # both finished before the raise
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_at_most_bounds_the_calls_in_flight_and_keeps_the_order() -> None:
    flight = {"now": 0, "most": 0}

    async def value(v: int) -> int:
        flight["now"] += 1
        flight["most"] = max(flight["most"], flight["now"])
        await asyncio.sleep(0.001 * (v % 3))
        flight["now"] -= 1
        return v

    assert await gather_all(*(value(v) for v in range(20)), at_most=4) == list(range(20))
    assert flight["most"] == 4


async def test_at_most_closes_the_calls_it_never_started_when_one_fails() -> None:
    """A call still waiting its turn when another fails is closed, not left as a coroutine
    "never awaited" (53 of them failed a test run once, an engine sweep refused)."""
    started: list[int] = []

    async def call(v: int) -> int:
        started.append(v)
        await asyncio.sleep(0)
        if v == 1:
            raise ValueError("refused")
        await asyncio.sleep(30)
        return v

    calls = [call(v) for v in range(10)]
    with pytest.raises(ValueError, match="refused"):
        await gather_all(*calls, at_most=3)
    assert started == [0, 1, 2]
    assert all(c.cr_frame is None for c in calls)  # each ran to its end, or was closed
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
