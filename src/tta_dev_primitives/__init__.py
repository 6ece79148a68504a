"""tta-dev-primitives: composable async workflow primitives and hybrid memory for LLM agents.

Compose steps with ``>>`` (sequential) and ``|`` (parallel); remember and recall with
``MemoryPrimitive``, which works in-process with no setup and upgrades to Redis when configured.
"""

from ._version import __version__
from .core import (
    LambdaPrimitive,
    ParallelPrimitive,
    RouterPrimitive,
    SequentialPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)
from .performance import CachePrimitive, InMemoryStore, MemoryPrimitive, create_memory_key

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
]
