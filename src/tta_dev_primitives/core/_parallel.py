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
    fail together, the one with the lowest branch index wins. A branch that ends cancelled
    without the group being cancelled (it awaited something another task cancelled) ends the
    group too: its siblings are cancelled, and ``CancelledError`` propagates, as from ``gather``.
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
        pending: set[asyncio.Task[Any]] = set(tasks)
        try:
            # Until a branch fails or ends cancelled (not by us: it awaited something another
            # task cancelled), which ends the group as a failure does.
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(t.cancelled() or t.exception() is not None for t in done):
                    break
        except BaseException:
            # We were cancelled (or interrupted): take every branch down with us.
            await _cancel_and_wait(tasks)
            raise
        # The branches that ended the wait, lowest index first: what a sibling raises while
        # being cancelled because of them is a consequence, not the failure.
        ended = [t for t in tasks if t.done() and (t.cancelled() or t.exception() is not None)]
        if pending:
            await _cancel_and_wait(pending)
        # Read every finished branch's exception (so asyncio never reports one as unretrieved).
        for task in tasks:
            if not task.cancelled():
                task.exception()
        failure = next((t.exception() for t in ended if not t.cancelled()), None)
        if failure is not None:
            raise failure
        if ended:
            raise asyncio.CancelledError(f"{self.name}: a branch ended cancelled")
        return [task.result() for task in tasks]


async def _cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
