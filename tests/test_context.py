"""WorkflowContext: defaults, validation and child contexts."""

from __future__ import annotations

import pydantic
import pytest

from tta_dev_primitives import WorkflowContext


def test_empty_context_is_valid_with_a_generated_correlation_id() -> None:
    """WorkflowContext() works and gets a fresh correlation id each time."""
    a, b = WorkflowContext(), WorkflowContext()
    assert a.workflow_id is None
    assert a.session_id is None
    assert a.user_id is None
    assert a.metadata == {}
    assert a.state == {}
    assert a.tags == {}
    assert a.correlation_id
    assert a.correlation_id != b.correlation_id


@pytest.mark.parametrize(
    "kwargs",
    [
        {"user_id": 123},
        {"session_id": ["s"]},
        {"session_id": b"s"},  # (pydantic's lax mode took bytes for a str)
        {"workflow_id": bytearray(b"w")},
        {"correlation_id": b"c"},
        {"tags": {b"k": "v"}},
        {"tags": {"k": b"v"}},
        {"metadata": "not a dict"},
        {"tags": {"k": 1}},
        {"state": 5},
        {"correlation_id": ""},
        {"unknown_field": 1},
    ],
)
def test_wrong_types_raise_validation_error(kwargs: dict[str, object]) -> None:
    """A field of the wrong type, or an unknown field, raises pydantic.ValidationError."""
    with pytest.raises(pydantic.ValidationError):
        WorkflowContext(**kwargs)  # type: ignore[arg-type]


def test_assignment_is_validated() -> None:
    """Assigning a wrong type to a field raises too."""
    ctx = WorkflowContext()
    with pytest.raises(pydantic.ValidationError):
        ctx.user_id = 5  # type: ignore[assignment]


def test_child_copies_ids_and_dicts() -> None:
    """child() keeps ids and correlation id and copies metadata, tags and state."""
    parent = WorkflowContext(
        workflow_id="w", session_id="s", user_id="u",
        metadata={"m": 1}, state={"x": 1}, tags={"t": "v"},
    )  # fmt: skip
    child = parent.child("branch")
    assert (child.workflow_id, child.session_id, child.user_id) == ("w", "s", "u")
    assert child.correlation_id == parent.correlation_id
    assert child.path == ("branch",)
    assert child.child("leaf").path == ("branch", "leaf")
    child.metadata["m"] = 2
    child.state["y"] = 2
    child.tags["t"] = "changed"
    assert parent.metadata == {"m": 1}
    assert parent.state == {"x": 1}
    assert parent.tags == {"t": "v"}
