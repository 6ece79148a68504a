"""numpy, imported when first needed, and a safe read of a growable buffer through it."""

from __future__ import annotations

from typing import Any

__all__ = ["gather", "numpy"]

_np: Any = None


def numpy() -> Any:
    """numpy, imported at the first scored search (it is not needed to import the library)."""
    global _np
    if _np is None:
        import numpy as np

        _np = np
    return _np


def gather(np: Any, buffer: Any, dtype: Any, at: Any) -> Any:
    """``buffer[at]`` as a new numpy array, through a view released at once.

    A live view would stop the ``array``/``bytearray`` from growing (BufferError on append).
    """
    view = np.frombuffer(buffer, dtype=dtype)
    try:
        return view[at]
    finally:
        del view
