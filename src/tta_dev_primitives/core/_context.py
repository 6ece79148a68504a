"""The typed context that travels with a workflow run."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field, StrictStr

__all__ = ["WorkflowContext"]


def _new_correlation_id() -> str:
    return uuid4().hex


class WorkflowContext(BaseModel):
    """Ids, metadata and scratch state shared by the steps of one workflow run.

    Fields are validated on construction and on assignment, and unknown fields are refused, so a
    typo or a wrong type is a ``pydantic.ValidationError`` instead of silently lost data.
    """

    # defer_build: the schema is built at the first WorkflowContext(), not at import (about
    # 30 ms, mostly pydantic scanning installed plugins), which keeps importing cheap.
    model_config = ConfigDict(validate_assignment=True, extra="forbid", defer_build=True)

    # Strict: pydantic would otherwise take bytes for a str (b"u1" as "u1"), a wrong type that
    # API.md says is refused.
    workflow_id: StrictStr | None = None
    session_id: StrictStr | None = None
    user_id: StrictStr | None = None
    correlation_id: StrictStr = Field(default_factory=_new_correlation_id, min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)
    state: dict[str, Any] = Field(default_factory=dict)
    tags: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    path: tuple[StrictStr, ...] = Field(
        default=(), description="Names of the child contexts leading from the root to this one."
    )

    def child(self, name: str) -> WorkflowContext:
        """A context for a branch: same ids and correlation id, its own copies of the dicts.

        The copies are shallow: a branch can set ``state[key]`` without its siblings seeing it,
        but mutating an object already stored in ``state`` is visible to all.
        """
        return self.model_copy(
            update={
                "metadata": dict(self.metadata),
                "state": dict(self.state),
                "tags": dict(self.tags),
                "path": (*self.path, name),
            }
        )
