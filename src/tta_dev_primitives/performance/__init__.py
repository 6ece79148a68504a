"""Memory and caching under the original library's import path.

The same objects as ``tta_dev_primitives.memory`` and ``tta_dev_primitives.caching``; this
module only re-exports them, so ``from tta_dev_primitives.performance import MemoryPrimitive``
keeps working for code migrating from the original.
"""

from tta_dev_primitives.caching import CachePrimitive
from tta_dev_primitives.memory import (
    AddMemory,
    ClearMemory,
    DeleteMemory,
    GetMemory,
    InMemoryStore,
    MemoryOperation,
    MemoryPage,
    MemoryPrimitive,
    ScoredMemory,
    SearchMemory,
    create_memory_key,
    turn_key,
)

__all__ = [
    "AddMemory",
    "CachePrimitive",
    "ClearMemory",
    "DeleteMemory",
    "GetMemory",
    "InMemoryStore",
    "MemoryOperation",
    "MemoryPage",
    "MemoryPrimitive",
    "ScoredMemory",
    "SearchMemory",
    "create_memory_key",
    "turn_key",
]
