"""The workflow steps of a memory: ``memory.recall(...)`` searches into ``context.state``,
``memory.remember(...)`` stores what a step produced; both pass their input through."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from tta_dev_primitives.core._base import WorkflowPrimitive
from tta_dev_primitives.core._context import WorkflowContext
from tta_dev_primitives.exceptions import InvalidArgumentTypeError

if TYPE_CHECKING:
    from tta_dev_primitives.memory._primitive import MemoryPrimitive, Mode
    from tta_dev_primitives.search._facets import Scalar

__all__ = ["MemoryRecall", "MemoryRemember", "SearchOptions", "TextOrFn"]


class SearchOptions(TypedDict, total=False):
    """What a recall step passes to ``search`` beside its query, limit and scope."""

    mode: Mode | None
    hybrid_weight: float | None
    min_score: float | None
    filter: Mapping[str, Scalar] | None


T = TypeVar("T")

#: A step's text: fixed, or made from the step's input and context (sync or async, as every
#: function in a workflow may be).
TextOrFn = str | Callable[[Any, WorkflowContext], "str | Awaitable[str]"]


async def _resolve(text: TextOrFn, data: Any, context: WorkflowContext, what: str) -> str:
    value = text(data, context) if callable(text) else text
    if inspect.isawaitable(value):
        value = await value
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(f"{what} must be a str, got {type(value).__name__}")
    return value


class MemoryRecall(WorkflowPrimitive[T, T]):
    """Search memory into ``context.state``; pass the input through."""

    def __init__(
        self,
        memory: MemoryPrimitive,
        query: TextOrFn,
        limit: int,
        scope: TextOrFn | None,
        into: str,
        options: SearchOptions,
    ) -> None:
        self._memory, self._query, self._limit = memory, query, limit
        self._scope, self._into, self._options = scope, into, options

    @property
    def name(self) -> str:
        return "memory.recall"

    def __repr__(self) -> str:
        return f"memory.recall(into={self._into!r})"

    async def execute(self, input_data: T, context: WorkflowContext) -> T:
        query = await _resolve(self._query, input_data, context, "recall query")
        scope = (
            None
            if self._scope is None
            else await _resolve(self._scope, input_data, context, "recall scope")
        )
        context.state[self._into] = await self._memory.search(
            query, self._limit, scope=scope, **self._options
        )
        return input_data


class MemoryRemember(WorkflowPrimitive[T, T]):
    """Store a memory derived from the output; pass it through."""

    def __init__(
        self,
        memory: MemoryPrimitive,
        key: TextOrFn,
        value: Callable[[Any, WorkflowContext], dict[str, Any] | Awaitable[dict[str, Any]]],
        ttl: float | None,
    ) -> None:
        self._memory, self._key, self._value, self._ttl = memory, key, value, ttl

    @property
    def name(self) -> str:
        return "memory.remember"

    def __repr__(self) -> str:
        return "memory.remember()"

    async def execute(self, input_data: T, context: WorkflowContext) -> T:
        key = await _resolve(self._key, input_data, context, "remember key")
        value = self._value(input_data, context)
        if inspect.isawaitable(value):  # an async value function (a summary by an LLM)
            value = await value
        await self._memory.add(key, value, self._ttl)
        return input_data
