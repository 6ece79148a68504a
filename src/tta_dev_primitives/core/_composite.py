"""What Sequential and Parallel share: a tuple of steps, flattening by operator, and a repr."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, ClassVar, Self, TypeVar

from tta_dev_primitives.exceptions import InvalidArgumentError, InvalidArgumentTypeError

from ._base import StepFunction, WorkflowPrimitive, as_primitive

__all__ = ["Composite"]

T = TypeVar("T")
U = TypeVar("U")


class Composite(WorkflowPrimitive[T, U]):
    """A primitive made of other primitives; subclasses say how to run them."""

    __slots__ = ("_steps",)

    #: The operator that builds this composite, for flattening and for the repr.
    operator: ClassVar[str]
    #: What one part is called in error messages.
    part: ClassVar[str]

    def __init__(self, primitives: Iterable[WorkflowPrimitive[Any, Any] | StepFunction]) -> None:
        if isinstance(primitives, WorkflowPrimitive | str) or not isinstance(primitives, Iterable):
            raise InvalidArgumentTypeError(
                f"{type(self).__name__} takes a list of {self.part}s, got "
                f"{type(primitives).__name__}"
            )
        if isinstance(primitives, Mapping | AbstractSet):
            # A dict (LangChain's RunnableParallel takes one) would run its keys; a set has no
            # order, so outputs would come in a different order from run to run.
            raise InvalidArgumentTypeError(
                f"{type(self).__name__} takes a list of {self.part}s, in the order their "
                f"outputs come, got a {type(primitives).__name__} (a dict's steps: "
                "list(steps.values()))"
            )
        steps = tuple(as_primitive(p) for p in primitives)
        if not steps:
            raise InvalidArgumentError(f"{type(self).__name__} needs at least one {self.part}")
        self._steps: tuple[WorkflowPrimitive[Any, Any], ...] = steps

    @classmethod
    def _chain(cls, left: WorkflowPrimitive[Any, Any], right: WorkflowPrimitive[Any, Any]) -> Self:
        """``left <op> right``, flattening operands of this same class so chains stay flat."""
        steps: list[WorkflowPrimitive[Any, Any]] = []
        for side in (left, right):
            # Exactly this class: a user's subclass may run its steps differently, so it stays
            # whole. (isinstance is there for the type checker.)
            if type(side) is cls and isinstance(side, Composite):
                steps.extend(side._steps)
            else:
                steps.append(side)
        # Both sides are primitives already: not through __init__, which converts each step,
        # so that building ``wf = wf >> step`` a step at a time costs one C-level copy of the
        # tuple per step (10,000 steps: about 0.5 s), not a Python conversion of every step.
        chained = cls.__new__(cls)
        chained._steps = tuple(steps)
        return chained

    @property
    def primitives(self) -> list[WorkflowPrimitive[Any, Any]]:
        """The parts, in order (a copy)."""
        return list(self._steps)

    def __repr__(self) -> str:
        return f" {self.operator} ".join(map(repr, self._steps)).join("()")
