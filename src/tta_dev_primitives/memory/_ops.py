"""Typed memory operations, for running ``MemoryPrimitive`` as a workflow step.

``await memory.execute(AddMemory(key="k", value={...}), ctx)``; a plain dict with an ``op``
field (``{"op": "get", "key": "k"}``) is validated into the matching model.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "AddMemory",
    "ClearMemory",
    "DeleteMemory",
    "GetMemory",
    "MemoryOperation",
    "SearchMemory",
    "parse_operation",
]


class _Op(BaseModel):
    # Schemas are built at first use: most programs never run a typed operation.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


class AddMemory(_Op):
    """Add or replace ``value`` under ``key``, optionally expiring after ``ttl`` seconds."""

    op: Literal["add"] = "add"
    key: str = Field(min_length=1)
    value: dict[str, Any]
    ttl: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class GetMemory(_Op):
    """Fetch the memory under ``key`` (None if absent)."""

    op: Literal["get"] = "get"
    key: str = Field(min_length=1)


class SearchMemory(_Op):
    """Search by words or word prefixes; ``scope`` restricts to keys under that prefix."""

    op: Literal["search"] = "search"
    query: str = ""
    limit: int = Field(default=5, ge=1)
    scope: str | None = None
    mode: Literal["keyword", "semantic", "hybrid"] | None = None


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
    return _adapter().validate_python(data, strict=False)
