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
