"""Run branches concurrently on the same input, with structured concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar

from ._composite import Composite
from ._context import WorkflowContext

__all__ = ["ParallelPrimitive"]

T = TypeVar("T")
U = TypeVar("U")


class ParallelPrimitive(Composite[T, list[U]]):
    """Branches run concurrently on one input; outputs come back as a list in branch order.

    Each branch gets ``context.child(...)``. When a branch raises, its siblings are cancelled and
    awaited, and that branch's own exception propagates (not an ``ExceptionGroup``). If several
    fail together, the one with the lowest branch index wins.
    """

    __slots__ = ()
    operator: ClassVar[str] = "|"
    part: ClassVar[str] = "branch"

    async def execute(self, input_data: T, context: WorkflowContext) -> list[U]:
        """Run every branch; return their outputs in branch order."""
        tasks = [
            asyncio.create_task(step.execute(input_data, context.child(f"{self.name}[{i}]")))
            for i, step in enumerate(self._steps)
        ]
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        except BaseException:
            # We were cancelled (or interrupted): take every branch down with us.
            await _cancel_and_wait(tasks)
            raise
        # The failures that ended the wait, lowest index first: what a sibling raises while
        # being cancelled because of them is a consequence, not the failure.
        failures = [t.exception() for t in tasks if t in done and not t.cancelled()]
        if pending:
            await _cancel_and_wait(pending)
        # Read every finished branch's exception (so asyncio never reports one as unretrieved).
        for task in tasks:
            if not task.cancelled():
                task.exception()
        failure = next((exc for exc in failures if exc is not None), None)
        if failure is not None:
            raise failure
        return [task.result() for task in tasks]


async def _cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
