"""Vector checks and bytes: what an embedder returned becomes unit-norm float32 rows, or an error.

``encode_vector``/``decode_vector`` are the durable form (float32, little-endian) that Redis
stores, so a vector written on one machine reads back bit-identical on any other.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from tta_dev_primitives.exceptions import (
    EmbeddingError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
)

__all__ = [
    "Vectors",
    "check_dims",
    "decode_vector",
    "encode_vector",
    "normalised_rows",
    "rows_or_errors",
    "stored_rows",
]

Vectors = npt.NDArray[np.float32]

_LE_F32 = np.dtype("<f4")


def check_dims(dims: Any) -> int | None:
    """``dims`` as given to an embedder: ``None`` (learn it) or a positive ``int``."""
    if dims is None:
        return None
    if isinstance(dims, bool) or not isinstance(dims, int):
        raise InvalidArgumentTypeError(f"dims must be a positive int or None, got {dims!r}")
    if dims <= 0:
        raise InvalidArgumentError(f"dims must be positive, got {dims}")
    return dims


def normalised_rows(
    raw: object, count: int, dims: int | None, source: str, *, first: int = 0
) -> Vectors:
    """``raw`` (what ``source`` returned for ``count`` texts) as ``(count, dims)`` unit rows.

    ``first`` is the batch position of ``raw``'s first row, for the row numbers in errors.

    Raises ``EmbeddingError`` for a non-numeric or ragged result, the wrong number of vectors,
    the wrong dimension (when ``dims`` is known), NaN or infinity, or a zero vector: each would
    otherwise poison every similarity computed from it.
    """
    try:
        array = np.asarray(raw)
    except (ValueError, TypeError) as exc:  # ragged lists, odd objects
        raise EmbeddingError(f"{source} returned vectors numpy cannot read: {exc}") from exc
    if array.dtype.kind not in "fiu":
        raise EmbeddingError(
            f"{source} must return numbers, got an array of dtype {array.dtype} "
            f"(from {type(raw).__name__})"
        )
    if array.ndim != 2:
        raise EmbeddingError(
            f"{source} must return one vector per text (a 2-D array), got shape {array.shape}"
        )
    if array.shape[0] != count:
        raise EmbeddingError(f"{source} returned {array.shape[0]} vectors for {count} texts")
    if dims is not None and array.shape[1] != dims:
        raise EmbeddingError(f"{source} returned vectors of {array.shape[1]} dims, expected {dims}")
    if array.shape[1] == 0:
        raise EmbeddingError(f"{source} returned empty vectors")
    wide = array.astype(np.float64)
    finite = np.isfinite(wide).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise EmbeddingError(f"{source} returned NaN or infinity in vector {first + row}")
    # Scale each row by its largest magnitude first, so squaring can neither overflow (1e300)
    # nor underflow to zero (1e-300): any finite non-zero vector keeps its direction.
    peaks = np.abs(wide).max(axis=1)
    if not (peaks > 0).all():
        row = int(np.argmin(peaks > 0))
        raise EmbeddingError(
            f"{source} returned a zero vector (row {first + row}), which has no direction"
        )
    scaled = wide / peaks[:, None]
    unit: Vectors = (scaled / np.linalg.norm(scaled, axis=1)[:, None]).astype(np.float32)
    return unit


def rows_or_errors(
    raw: object, count: int, dims: int | None, source: str
) -> list[Vectors | EmbeddingError]:
    """``normalised_rows``, one row at a time: a bad row (NaN, zero, wrong dims) is its own error.

    A batch holds texts from many callers, so one bad vector must fail only its own text. A
    result that is wrong as a whole (not numbers, not one vector per text) still raises.
    """
    try:
        return list(normalised_rows(raw, count, dims, source))
    except EmbeddingError as whole:
        error = whole
    rows = _as_rows(raw)
    if rows is None or len(rows) != count:
        raise error
    if dims is None:
        dims = _most_common_size(rows)  # one odd row first must not fail all the others (R25)
    results: list[Vectors | EmbeddingError] = []
    for number, row in enumerate(rows):
        try:
            unit = normalised_rows([row], 1, dims, source, first=number)[0]
        except EmbeddingError as exc:
            results.append(exc)
            continue
        if dims is None:
            dims = int(unit.shape[0])  # the first good row sets the dimension for the rest
        results.append(unit)
    if all(isinstance(result, EmbeddingError) for result in results):
        raise error
    return results


def _most_common_size(rows: list[object]) -> int | None:
    """The length most rows share (the first to reach it on a tie), None if no row has one."""
    counts: dict[int, int] = {}
    for row in rows:
        try:
            shape = np.shape(row)  # type: ignore[call-overload]
        except (ValueError, TypeError):  # (ragged: not a row)
            continue
        if len(shape) == 1 and shape[0]:
            counts[shape[0]] = counts.get(shape[0], 0) + 1
    return max(counts, key=lambda size: counts[size]) if counts else None


def _as_rows(raw: object) -> list[object] | None:
    """``raw``'s rows, if it is a sequence (list, tuple or array) of them; else None."""
    if isinstance(raw, np.ndarray):
        return list(raw) if raw.ndim >= 1 else None
    if isinstance(raw, list | tuple):
        return list(raw)
    return None


def encode_vector(vector: npt.ArrayLike) -> bytes:
    """One vector as bytes: float32, little-endian, ``4 * dims`` bytes (what Redis stores)."""
    try:
        array = np.asarray(vector)
    except (ValueError, TypeError) as exc:
        raise InvalidArgumentTypeError(f"vector must be a sequence of numbers: {exc}") from exc
    if array.dtype.kind not in "fiu":
        raise InvalidArgumentTypeError(f"vector must hold numbers, got dtype {array.dtype}")
    if array.ndim != 1 or array.shape[0] == 0:
        raise InvalidArgumentError(f"vector must be 1-D and non-empty, got shape {array.shape}")
    with np.errstate(over="ignore"):  # past float32's range becomes inf, refused just below
        packed = array.astype(_LE_F32)
    if not np.isfinite(packed).all():
        raise InvalidArgumentError("vector holds NaN or infinity (or a value past float32)")
    return packed.tobytes()


def decode_vector(data: bytes | bytearray | memoryview, dims: int) -> Vectors:
    """The float32 vector ``encode_vector`` wrote, checked to have ``dims`` finite values."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidArgumentTypeError(f"vector bytes must be bytes, got {type(data).__name__}")
    checked = check_dims(dims)
    if checked is None:
        raise InvalidArgumentTypeError("dims is required to decode a vector")
    raw = bytes(data)
    if len(raw) != 4 * checked:
        raise InvalidArgumentError(
            f"a {checked}-dim float32 vector is {4 * checked} bytes, got {len(raw)}"
        )
    vector: Vectors = np.frombuffer(raw, dtype=_LE_F32).astype(np.float32)
    if not np.isfinite(vector).all():
        raise InvalidArgumentError("vector bytes decode to NaN or infinity")
    return vector


#: How far from 1 the norm of a stored row may be: every vector is stored unit-norm (float32
#: rounding leaves about 1e-7), while a piece of a longer vector is well short of 1.
UNIT_TOLERANCE = 1e-3


def stored_rows(flat: Vectors, dims: int) -> Vectors:
    """A memory's stored vectors (``flat``: its rows end to end) as rows of ``dims``; raises
    ``InvalidArgumentError`` if they are not: a length that does not divide, or several rows
    that are not unit vectors. A memory may hold several vectors, stored without their count,
    so another model's vector of twice the size (768 against 384) divides evenly too; its
    halves are not unit vectors, and it is not read as two of this size. Nor are another
    model's several vectors read as one (their concatenation is not a unit vector)."""
    if flat.shape[0] % dims:
        raise InvalidArgumentError(f"{flat.shape[0]} numbers are not whole {dims}-dim vectors")
    rows = flat.reshape(-1, dims)
    # One row is checked too: another model's several vectors of half this size, end to end
    # (two 4-dim ones beside an 8-dim embedder), are one row of this size, but not a unit one.
    norms = np.linalg.norm(rows.astype(np.float64), axis=1)
    if np.any(np.abs(norms - 1.0) > UNIT_TOLERANCE):
        raise InvalidArgumentError(
            f"{flat.shape[0]} numbers are not {rows.shape[0]} unit {dims}-dim vectors "
            "(another embedder's vectors?)"
        )
    return rows
