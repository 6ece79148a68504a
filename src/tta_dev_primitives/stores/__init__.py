"""Storage backends behind one small seam, shared by ``MemoryPrimitive`` and ``CachePrimitive``.

``StorageBackend`` is the key/value seam a cache needs (pass one as
``CachePrimitive(backend=...)``); ``SearchableBackend`` adds the search a memory needs.
``InProcessBackend`` is the zero-setup backend (and a test double for your own code).
"""

from tta_dev_primitives.stores._base import (
    Clear,
    Delete,
    Document,
    Put,
    SearchableBackend,
    StorageBackend,
    Write,
)
from tta_dev_primitives.stores._inprocess import InProcessBackend

__all__ = [
    "Clear",
    "Delete",
    "Document",
    "InProcessBackend",
    "Put",
    "SearchableBackend",
    "StorageBackend",
    "Write",
]
