"""Typed memory operations, for running ``MemoryPrimitive`` as a workflow step.

``await memory.execute(AddMemory(key="k", value={...}), ctx)``; a plain dict with an ``op``
field (``{"op": "get", "key": "k"}``) is validated into the matching model, strictly: a field
takes what the method it stands for takes (``ttl`` and ``limit`` by that method's own check),
never a value coerced from another type (``True`` is not a TTL of 1 s, ``"5"`` not a limit of 5).
A field of the wrong type (or a number, filter or mode the method refuses) is a
``pydantic.ValidationError`` naming the field and the problem; a key, value or scope the
method refuses raises the method's own error when the operation runs, before anything is
stored.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError

from tta_dev_primitives._checks import (
    check_filter,
    check_fraction,
    check_limit,
    check_min_score,
    check_ttl,
)
from tta_dev_primitives.telemetry._tracing import mark_own

__all__ = [
    "AddMemory",
    "ClearMemory",
    "DeleteMemory",
    "GetMemory",
    "MemoryOperation",
    "SearchMemory",
    "parse_operation",
]


def _checked(check: Callable[[Any], Any]) -> BeforeValidator:
    """Validate a field with the method's own argument check, so an operation accepts exactly
    what the method does (a numpy int limit, a Fraction TTL) and nothing it refuses. The check's
    message becomes the ValidationError's (pydantic reports a ValueError, not a TypeError)."""

    def validate(value: Any) -> Any:
        try:
            return check(value)
        except TypeError as exc:  # an InvalidArgumentTypeError
            raise ValueError(str(exc)) from exc

    return BeforeValidator(validate)


class _Op(BaseModel):
    # Schemas are built at first use: most programs never run a typed operation.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


class AddMemory(_Op):
    """Add or replace ``value`` under ``key``, optionally expiring after ``ttl`` seconds."""

    op: Literal["add"] = "add"
    key: str = Field(min_length=1)
    value: dict[str, Any]
    ttl: Annotated[float | None, _checked(check_ttl)] = Field(default=None, gt=0)


class GetMemory(_Op):
    """Fetch the memory under ``key`` (None if absent)."""

    op: Literal["get"] = "get"
    key: str = Field(min_length=1)


def _filter(pairs: Any) -> Any:
    check_filter(pairs)  # (its facets are the search's to make)
    return None if pairs is None else dict(pairs)  # (any mapping, as search takes)


def _weight(share: Any) -> float | None:
    return None if share is None else check_fraction("hybrid_weight", share)


class SearchMemory(_Op):
    """Search by words or word prefixes; ``scope`` restricts to keys under that prefix; the
    other fields as ``MemoryPrimitive.search`` takes them."""

    op: Literal["search"] = "search"
    query: str = ""
    limit: Annotated[int, _checked(check_limit)] = Field(default=5, ge=1)
    scope: str | None = None
    mode: Literal["keyword", "semantic", "hybrid"] | None = None
    min_score: Annotated[float | None, _checked(check_min_score)] = None
    filter: Annotated[dict[str, Any] | None, _checked(_filter)] = None
    hybrid_weight: Annotated[float | None, _checked(_weight)] = None


class DeleteMemory(_Op):
    """Remove the memory under ``key`` (True if it was there)."""

    op: Literal["delete"] = "delete"
    key: str = Field(min_length=1)


class ClearMemory(_Op):
    """Remove every memory in the namespace."""

    op: Literal["clear"] = "clear"


MemoryOperation = Annotated[
    AddMemory | GetMemory | SearchMemory | DeleteMemory | ClearMemory,
    Field(discriminator="op"),
]


@cache
def _adapter() -> TypeAdapter[MemoryOperation]:
    return TypeAdapter(MemoryOperation)


def parse_operation(data: Any) -> AddMemory | GetMemory | SearchMemory | DeleteMemory | ClearMemory:
    """An operation model from a model or a dict; ``pydantic.ValidationError`` otherwise."""
    if isinstance(data, AddMemory | GetMemory | SearchMemory | DeleteMemory | ClearMemory):
        return data
    try:
        return _adapter().validate_python(data)  # strict, as the models are: nothing coerced
    except ValidationError as exc:
        # Its message quotes the input (a key, a memory's text): spans record its type only.
        mark_own(exc)
        raise
