"""Run steps one after another, each on the previous step's output."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from ._composite import Composite
from ._context import WorkflowContext

__all__ = ["SequentialPrimitive"]

T = TypeVar("T")
U = TypeVar("U")


class SequentialPrimitive(Composite[T, U]):
    """Steps in order, sharing the caller's context: a plain loop, nothing more."""

    __slots__ = ()
    operator: ClassVar[str] = ">>"
    part: ClassVar[str] = "step"

    async def execute(self, input_data: T, context: WorkflowContext) -> U:
        """Feed ``input_data`` through every step in turn and return the last output."""
        data: Any = input_data
        for step in self._steps:
            data = await step.execute(data, context)
        return data  # type: ignore[no-any-return]
