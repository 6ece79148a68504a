"""Agent and conversation memory: ``MemoryPrimitive``, the sync ``InMemoryStore``, keys, ops.

``tta_dev_primitives.performance`` re-exports these names under the import path of the
original library, so code migrating from it keeps working.
"""

from tta_dev_primitives.memory._inmemory_store import InMemoryStore
from tta_dev_primitives.memory._keys import create_memory_key, turn_key
from tta_dev_primitives.memory._lifecycle import MemoryPage
from tta_dev_primitives.memory._ops import (
    AddMemory,
    ClearMemory,
    DeleteMemory,
    GetMemory,
    MemoryOperation,
    SearchMemory,
)
from tta_dev_primitives.memory._primitive import MemoryPrimitive, ScoredMemory

__all__ = [
    "AddMemory",
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
