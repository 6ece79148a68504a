"""Vectors stored as float32 rows by document number, in blocks.

Growing the store allocates a block and never copies the rows before it (doubling one matrix
copied 800 MB in one ~2 s ``add`` at 512k vectors); only the first block grows by doubling, up
to ``VECTOR_BLOCK`` rows, so a small index stays small.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["VECTOR_BLOCK", "VECTOR_BLOCK_BITS", "Blocks"]

#: Rows of a block (a power of two).
VECTOR_BLOCK_BITS: Final = 14
VECTOR_BLOCK: Final = 1 << VECTOR_BLOCK_BITS
#: Rows moved at once when renumbering (a copy of this many rows at a time, not of the store).
_MOVE: Final = 4096


def _first_size(rows: int) -> int:
    """The first block's size for a store of ``rows`` rows."""
    return min(VECTOR_BLOCK, max(1024, rows))


class Blocks:
    """Rows by document number: ``put`` one, read some (``take``), score all (``sims_below``)
    or a range (``sims_from``)."""

    __slots__ = ("_blocks",)

    def __init__(self) -> None:
        self._blocks: list[Any] = []

    def put(self, np: Any, docno: int, vec: Any) -> None:
        """Store ``vec`` as row ``docno``, allocating (or growing the first) block if need be."""
        blocks, block, row = self._blocks, docno >> VECTOR_BLOCK_BITS, docno & (VECTOR_BLOCK - 1)
        dim = vec.shape[0]
        if blocks and blocks[0].shape[0] < VECTOR_BLOCK and (block > 0 or row >= len(blocks[0])):
            # The first block doubles (full-size once another block follows it): at most one
            # block's rows are ever copied.
            size = (
                VECTOR_BLOCK if block > 0 else min(VECTOR_BLOCK, max(row + 1, 2 * len(blocks[0])))
            )
            grown = np.zeros((size, dim), dtype=np.float32)
            grown[: len(blocks[0])] = blocks[0]
            blocks[0] = grown
        while len(blocks) <= block:
            size = VECTOR_BLOCK if blocks or block > 0 else _first_size(row + 1)
            blocks.append(np.zeros((size, dim), dtype=np.float32))
        blocks[block][row] = vec

    def row(self, docno: int) -> Any:
        """Row ``docno`` (a view)."""
        return self._blocks[docno >> VECTOR_BLOCK_BITS][docno & (VECTOR_BLOCK - 1)]

    def take(self, np: Any, rows: Any) -> Any:
        """The rows of docnos ``rows`` (each must be stored), in that order: a new matrix."""
        blocks = self._blocks
        if len(blocks) == 1:
            return blocks[0][rows]
        out = np.empty((len(rows), blocks[0].shape[1]), dtype=np.float32)
        if len(rows) < 8 * len(blocks):
            # A few rows a block (a user's memories, written over months): one copy each; a
            # numpy call per block cost 0.8 ms for 500 rows over 244 blocks (1M memories).
            for i, docno in enumerate(rows.tolist()):
                out[i] = blocks[docno >> VECTOR_BLOCK_BITS][docno & (VECTOR_BLOCK - 1)]
            return out
        which = rows >> VECTOR_BLOCK_BITS
        order = np.argsort(which, kind="stable")
        which = which[order]
        cuts = (np.flatnonzero(which[1:] != which[:-1]) + 1).tolist()
        for start, end in zip([0, *cuts], [*cuts, len(which)], strict=True):
            at = order[start:end]
            out[at] = blocks[int(which[start])][rows[at] & (VECTOR_BLOCK - 1)]
        return out

    def sims_below(self, np: Any, q: Any, size: int) -> Any:
        """Similarity of ``q`` to every stored row below docno ``size``, by docno."""
        parts = []
        for block, matrix in enumerate(self._blocks):
            start = block << VECTOR_BLOCK_BITS
            if start >= size:
                break
            parts.append(matrix[: size - start] @ q)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def sims_from(self, np: Any, q: Any, start: int, stop: int) -> Any:
        """Similarity of ``q`` to every stored row of docnos ``[start, stop)``, by docno from
        ``start`` (shorter when the store ends before ``stop``): no copy of the rows first."""
        parts = [np.empty(0, dtype=np.float32)]
        for block, matrix in enumerate(self._blocks):
            first = block << VECTOR_BLOCK_BITS
            if first >= stop:
                break
            if first + len(matrix) > start:
                parts.append(matrix[max(start - first, 0) : stop - first] @ q)
        return parts[-1] if len(parts) == 2 else np.concatenate(parts)

    def renumber(self, np: Any, sources: Any, targets: Any, in_place: bool) -> None:
        """Row ``targets[i]`` becomes what row ``sources[i]`` held; every other row is dropped.

        ``in_place`` (every target at or below its source, in increasing order, as when the
        documents keep their order) moves rows within the blocks a slice at a time, so the
        store is never held twice; otherwise the rows are copied into new blocks.
        """
        if not len(targets):
            self._blocks = []
            return
        top = int(targets[-1]) if in_place else int(targets.max())
        if in_place:
            fresh = self._blocks
        else:
            dim = self._blocks[0].shape[1]
            count = (top >> VECTOR_BLOCK_BITS) + 1
            first = _first_size(top + 1) if count == 1 else VECTOR_BLOCK
            fresh = [
                np.zeros((first if i == 0 else VECTOR_BLOCK, dim), np.float32) for i in range(count)
            ]
        for start in range(0, len(targets), _MOVE):
            rows = self.take(np, sources[start : start + _MOVE])  # read before any is written
            to = targets[start : start + _MOVE]
            which = to >> VECTOR_BLOCK_BITS
            for block in np.unique(which).tolist():
                at = which == block
                fresh[block][to[at] & (VECTOR_BLOCK - 1)] = rows[at]
        del fresh[(top >> VECTOR_BLOCK_BITS) + 1 :]
        self._blocks = fresh
