"""tta-dev-primitives: composable async workflow primitives and hybrid memory for LLM agents.

Compose steps with ``>>`` (sequential) and ``|`` (parallel); remember and recall with
``MemoryPrimitive``, which works in-process with no setup and upgrades to Redis when configured.
The memory layer is imported on first use of one of its names, so a program that only composes
steps does not pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .core import (
    LambdaPrimitive,
    ParallelPrimitive,
    RouterPrimitive,
    SequentialPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)

if TYPE_CHECKING:
    from .performance import (
        CachePrimitive,
        InMemoryStore,
        MemoryPrimitive,
        create_memory_key,
        turn_key,
    )

__all__ = [
    "CachePrimitive",
    "InMemoryStore",
    "LambdaPrimitive",
    "MemoryPrimitive",
    "ParallelPrimitive",
    "RouterPrimitive",
    "SequentialPrimitive",
    "WorkflowContext",
    "WorkflowPrimitive",
    "__version__",
    "create_memory_key",
    "turn_key",
]

_LAZY = {"CachePrimitive", "InMemoryStore", "MemoryPrimitive", "create_memory_key", "turn_key"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(".performance", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
