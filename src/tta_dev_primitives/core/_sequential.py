"""Run steps one after another, each on the previous step's output."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from ._base import StepFunction, WorkflowPrimitive, as_primitive
from ._context import WorkflowContext

__all__ = ["SequentialPrimitive"]

T = TypeVar("T")
U = TypeVar("U")


class SequentialPrimitive(WorkflowPrimitive[T, U]):
    """Steps in order, sharing the caller's context: a plain loop, nothing more."""

    __slots__ = ("_steps",)

    def __init__(self, primitives: Iterable[WorkflowPrimitive[Any, Any] | StepFunction]):
        steps = tuple(as_primitive(p) for p in primitives)
        if not steps:
            raise ValueError("SequentialPrimitive needs at least one step")
        self._steps: tuple[WorkflowPrimitive[Any, Any], ...] = steps

    @classmethod
    def _chain(
        cls, left: WorkflowPrimitive[Any, Any], right: WorkflowPrimitive[Any, Any]
    ) -> SequentialPrimitive[Any, Any]:
        """``left >> right``, flattening sequential operands so chains stay one level deep."""
        steps: list[WorkflowPrimitive[Any, Any]] = []
        for side in (left, right):
            steps.extend(side._steps if type(side) is SequentialPrimitive else (side,))
        return SequentialPrimitive(steps)

    @property
    def primitives(self) -> list[WorkflowPrimitive[Any, Any]]:
        """The steps, in order (a copy)."""
        return list(self._steps)

    async def execute(self, input_data: T, context: WorkflowContext) -> U:
        """Feed ``input_data`` through every step in turn and return the last output."""
        data: Any = input_data
        for step in self._steps:
            data = await step.execute(data, context)
        return data  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return " >> ".join(map(repr, self._steps)).join("()")
