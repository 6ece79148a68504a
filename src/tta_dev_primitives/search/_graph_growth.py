"""How the HNSW graph of a ``VectorIndex`` grows: in batches, never in one go, and anew once
removals have worn it (see ``_vector_index``'s docstring). A mixin: ``VectorIndex`` holds the
state; this module holds the steps that move rows into a graph, start one, and drop one."""

from __future__ import annotations

from array import array
from typing import Any, Final

from tta_dev_primitives.search._arrays import gather, numpy
from tta_dev_primitives.search._blocks import Blocks
from tta_dev_primitives.search._graph import hnsw

__all__ = ["ANN_BATCH", "ANN_CATCH_UP", "ANN_REBUILD_SHARE", "EXTRA_KEY", "GraphGrowth"]

#: Graph keys from here on are rows of documents' further vectors, not document numbers.
EXTRA_KEY: Final = 1 << 40
#: Rows handed to the graph at once (one ``add`` in 16 carries a batch: its longest pause). At
#: 384 dims on 2 busy cores 64 took 43-96 ms once the graph held 80k vectors; 32 halves that.
ANN_BATCH: Final = 32
#: Graph rows earned per vector added: the backlog of rows it starts without shrinks by
#: ``ANN_CATCH_UP - 1`` a vector, so starting at a quarter of the threshold it is whole by half.
ANN_CATCH_UP: Final = 2
#: The graph starts over once the vectors removed from it number at least 1/this of those it
#: holds. Removed vectors stay in it as waypoints and their slots go to later vectors, so links
#: lead astray: 30k clustered 64-dim vectors each rewritten once (as many removed as it holds)
#: left 3-13 of 300 queries with under half their true top 10 (some none), while rewrites at
#: random up to twice the graph's size left 0 (repro/m_share.py); 2 keeps a margin of two.
ANN_REBUILD_SHARE: Final = 2


class GraphGrowth:
    """The graph's growth steps, over the state ``VectorIndex`` keeps (declared here)."""

    # The graph's own state; what it reads of the vectors is ``VectorIndex``'s.
    __slots__ = ("_ann", "_ann_credit", "_ann_cursor", "_ann_removed", "_no_usearch", "_old",
                 "_xcursor")  # fmt: skip

    _ann: Any
    _ann_credit: int
    _ann_cursor: int
    _ann_removed: int
    _ann_threshold: int
    _dim: int | None
    _has_vec: bytearray
    _n_vecs: int
    _no_usearch: bool
    _old: Any
    _old_cursor: int
    _old_xcursor: int
    _vecs: Blocks
    _xcursor: int
    _xdoc: array[int]
    _xvecs: Any

    def _graph_rows(
        self, np: Any, graph: Any, q: Any, want: int, low: int, high: int, xlow: int
    ) -> Any:
        """Docnos ``graph`` proposes for ``q``: of its first vectors in ``[low, high)`` and
        its further vectors from row ``xlow`` (a document may come twice)."""
        if high <= low or not len(graph):
            return np.empty(0, dtype=np.intp)
        keys = np.asarray(graph.search(q, want, exact=False).keys, dtype=np.int64)
        extra = keys >= EXTRA_KEY  # a further vector's key names its row, not a docno
        rows = keys[~extra & (keys >= low) & (keys < high)]
        if extra.any():
            xrows = keys[extra] - EXTRA_KEY
            more = gather(np, self._xdoc, np.int64, xrows[xrows >= xlow])
            rows = np.concatenate((rows, more[more >= 0]))
        return rows.astype(np.intp)

    def _ann_step(self) -> None:
        """After a vector is added: start the graph, or give it its next batch of rows."""
        if self._ann is None and (
            4 * self._n_vecs < self._ann_threshold or self._new_graph() is None
        ):
            return
        # Twice as fast while an old graph waits to go: searches walk both meanwhile.
        earned = ANN_CATCH_UP if self._old is None else 2 * ANN_CATCH_UP
        self._ann_credit = min(self._ann_credit + earned, 2 * ANN_BATCH)
        if self._ann_credit < ANN_BATCH:
            return
        behind = self._old is not None and self._ann_cursor < self._old_cursor  # take them all
        if len(self._has_vec) - self._ann_cursor >= ANN_BATCH or behind:
            self._ann_credit -= ANN_BATCH
            self._ann_extend(self._ann_cursor + ANN_BATCH)
        elif self._xcursor < len(self._xdoc):  # then the further vectors, as many at a time
            self._ann_credit -= ANN_BATCH
            self._extra_extend(self._xcursor + ANN_BATCH)
        self._release_old()

    def _cursors(self) -> tuple[int, int]:
        """The graph's cursors: docnos, then further rows, below these were offered to it."""
        return self._ann_cursor, self._xcursor

    def _release_old(self) -> None:
        """Let the graph being replaced go once the new one holds all it held."""
        if self._old is not None and (
            self._ann_cursor >= self._old_cursor and self._xcursor >= self._old_xcursor
        ):
            self._old = None

    def _extra_extend(self, stop: int) -> None:
        """Hand the graph the further vectors of rows ``[xcursor, stop)`` in one batch."""
        np = numpy()
        start, stop = self._xcursor, min(stop, len(self._xdoc))
        rows = np.arange(start, stop)
        rows = rows[gather(np, self._xdoc, np.int64, slice(start, stop)) >= 0]
        if len(rows):
            self._ann.add((rows + EXTRA_KEY).astype(np.uint64), self._xvecs[rows], threads=1)
        self._xcursor = max(start, stop)

    def _ann_extend(self, stop: int) -> None:
        """Hand the graph the vectors of docnos ``[cursor, stop)`` in one batch."""
        np = numpy()
        start, stop = self._ann_cursor, min(stop, len(self._has_vec))
        if stop <= start:
            return
        has_vec = gather(np, self._has_vec, np.bool_, slice(start, stop)).copy()
        rows = np.flatnonzero(has_vec) + start
        if len(rows):
            self._ann.add(rows.astype(np.uint64), self._vecs.take(np, rows), threads=1)
        self._ann_cursor = stop

    def _new_graph(self) -> Any:
        """An empty HNSW graph (rows come in batches, ``_ann_step``); None without usearch."""
        if self._no_usearch or self._dim is None:
            return None
        self._ann = hnsw(self._dim)
        self._no_usearch = self._ann is None
        self._ann_cursor = self._ann_credit = self._xcursor = 0  # (all join in batches)
        self._ann_removed = 0
        return self._ann

    def _drop_graph(self, *, keep_old: bool = False) -> None:
        """Forget the graph (and the one being replaced, unless ``keep_old``): a new one
        starts and catches up as after ``clear``."""
        self._ann = None
        self._ann_cursor = self._ann_credit = self._xcursor = self._ann_removed = 0
        if not keep_old:
            self._old = None

    def build_graph(self) -> Any:
        """The graph holding every vector now, built in one go (benchmarks); None without it."""
        if self._ann is None and self._new_graph() is None:
            return None
        self._ann_extend(len(self._has_vec))
        self._extra_extend(len(self._xdoc))
        self._release_old()
        return self._ann
