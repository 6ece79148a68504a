"""Memory and caching: ``MemoryPrimitive``, ``InMemoryStore``, ``CachePrimitive``, keys."""

from tta_dev_primitives.performance._cache import CachePrimitive
from tta_dev_primitives.performance._keys import create_memory_key, turn_key
from tta_dev_primitives.performance._memory import MemoryPrimitive
from tta_dev_primitives.performance._ops import (
    AddMemory,
    ClearMemory,
    DeleteMemory,
    GetMemory,
    MemoryOperation,
    SearchMemory,
)
from tta_dev_primitives.performance._store import InMemoryStore

__all__ = [
    "AddMemory",
    "CachePrimitive",
    "ClearMemory",
    "DeleteMemory",
    "GetMemory",
    "InMemoryStore",
    "MemoryOperation",
    "MemoryPrimitive",
    "SearchMemory",
    "create_memory_key",
    "turn_key",
]
