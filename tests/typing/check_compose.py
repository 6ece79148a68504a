"""Checked by ``mypy --strict`` (tests/test_typing.py), never imported: ``>>`` keeps its types."""

from __future__ import annotations

from typing import assert_type

from tta_dev_primitives import (
    LambdaPrimitive,
    SequentialPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)


class Parse(WorkflowPrimitive[str, int]):
    async def execute(self, input_data: str, context: WorkflowContext) -> int:
        return int(input_data)


class Show(WorkflowPrimitive[int, str]):
    async def execute(self, input_data: int, context: WorkflowContext) -> str:
        return str(input_data)


class Halve(WorkflowPrimitive[str, float]):
    async def execute(self, input_data: str, context: WorkflowContext) -> float:
        return len(input_data) / 2


def to_length(text: str, ctx: WorkflowContext) -> int:
    return len(text)


async def to_ratio(text: str, ctx: WorkflowContext) -> float:
    return len(text) / 100


def shout(text: str, ctx: WorkflowContext) -> str:
    return text.upper()


async def fetch(url: str, ctx: WorkflowContext) -> str:
    return url


show, halve = Show(), Halve()

# primitive >> primitive
assert_type(show >> halve, SequentialPrimitive[int, float])
# primitive >> function, sync and async
assert_type(show >> to_length, SequentialPrimitive[int, int])
assert_type(show >> to_ratio, SequentialPrimitive[int, float])
# function >> primitive, sync and async
assert_type(shout >> halve, SequentialPrimitive[str, float])
assert_type(fetch >> halve, SequentialPrimitive[str, float])
# longer chains, either grouping
assert_type(Parse() >> show >> halve, SequentialPrimitive[str, float])
assert_type(Parse() >> (show >> halve), SequentialPrimitive[str, float])
assert_type(fetch >> Parse() >> show >> to_ratio, SequentialPrimitive[str, float])
assert_type(LambdaPrimitive(to_ratio), LambdaPrimitive[str, float])
# a lambda takes its input type from the step before it
assert_type(show >> (lambda text, ctx: len(text)), SequentialPrimitive[int, int])

# a step that does not take the previous output is an error
show >> show  # type: ignore[operator]
Parse() >> shout  # type: ignore[operator]
shout >> show  # type: ignore[operator]
