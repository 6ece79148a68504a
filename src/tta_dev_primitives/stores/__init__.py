"""Storage backends behind one small seam, shared by ``MemoryPrimitive`` and ``CachePrimitive``.

``StorageBackend`` is the seam; ``InProcessBackend`` is the zero-setup backend (and a test
double for your own code).
"""

from tta_dev_primitives.stores._base import Clear, Delete, Put, StorageBackend, Write
from tta_dev_primitives.stores._inprocess import InProcessBackend

__all__ = ["Clear", "Delete", "InProcessBackend", "Put", "StorageBackend", "Write"]
