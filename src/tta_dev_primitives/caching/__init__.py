"""``CachePrimitive``: run a primitive once per key and reuse its output, on the storage seam."""

from tta_dev_primitives.caching._primitive import CachePrimitive

__all__ = ["CachePrimitive"]
