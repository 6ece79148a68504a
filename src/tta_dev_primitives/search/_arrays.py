"""numpy, imported when first needed; a safe read of a growable buffer through it; unit vectors
and their dot products, rounded alike whatever their row."""

from __future__ import annotations

from typing import Any

from tta_dev_primitives.exceptions import InvalidArgumentError

__all__ = ["as_unit_vector", "dots", "gather", "numpy", "product"]

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


def as_unit_vector(vector: Any, what: str = "vector", dim: int | None = None) -> Any:
    """``vector`` as a 1-D float32 numpy array of length 1; zero, NaN or infinity are refused,
    and so is a length other than ``dim`` (the index's), if given."""
    np = numpy()
    v = np.asarray(vector, dtype=np.float32)
    if v.ndim != 1 or v.size == 0:
        raise InvalidArgumentError(f"{what} must be a non-empty 1-D array, got shape {v.shape}")
    if dim is not None and v.shape[0] != dim:
        raise InvalidArgumentError(
            f"{what} has {v.shape[0]} dimensions but the index holds {dim}-dimensional vectors"
        )
    if not np.isfinite(v).all():
        raise InvalidArgumentError(f"{what} holds NaN or infinity")
    norm = float(np.linalg.norm(v))
    if norm == 0.0 or not np.isfinite(norm):
        raise InvalidArgumentError(f"{what} is a zero vector: it has no direction to compare")
    if abs(norm - 1.0) > 1e-4:
        v = v / np.float32(norm)
    return np.ascontiguousarray(v, dtype=np.float32)


def dots(np: Any, rows: Any, q: Any) -> Any:
    """Each row of ``rows`` dotted with ``q``, every row summed in the same order. BLAS's
    matrix-vector product rounds a row by its position in the matrix: equal vectors (one text
    written twice) scored a float32 step apart, so their tie went by position, not recency."""
    return np.einsum("ij,j->i", rows, q)


def product(np: Any, rows: Any, q: Any) -> Any:
    """Each row of ``rows`` dotted with ``q`` by BLAS: ~10x ``dots``'s speed, rounded by
    position (scores that may decide a tie are computed again by ``dots``)."""
    return rows @ q
