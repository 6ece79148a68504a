"""The semantic half of an index: embeddings in blocks, an HNSW graph, and exact fallback.

A document's vector is a row of float32 blocks indexed by document number, L2-normalised, so
cosine similarity is a matrix-vector product. Search is exact (numpy) until the index holds
``ann_threshold`` vectors and usearch is installed (the ``vectors`` extra); from then on an
HNSW graph proposes candidates that are rescored exactly. The graph is never built in one go
(20k vectors took seconds, all of it one event-loop pause): it starts empty at a quarter of the
threshold and takes the rows it lacks in batches of ``ANN_BATCH``, two rows for every vector
added, so it has caught up long before the threshold; rows not yet in it are scanned exactly
beside its candidates. A document may have further vectors (one per field): it scores by its
best; they join the graph in batches too, once the documents' first vectors are all in it.
A removal only marks its vector deleted in the graph (usearch repairs no link through it, and
hands its slot to a later vector): once the graph has lost half as many vectors as it holds,
a new one is grown the same way but twice as fast, removals earning rows as additions do; the
old graph answers for the rows the new one lacks until it has them all (the rest are scanned
exactly, by one product over their range), then goes.
Document numbers are given by the caller; ranking the candidates is the caller's too.
"""

from __future__ import annotations

from array import array
from typing import Any, Final

from tta_dev_primitives.search._arrays import as_unit_vector, dots, gather, numpy, product
from tta_dev_primitives.search._blocks import VECTOR_BLOCK, Blocks
from tta_dev_primitives.search._graph import rename
from tta_dev_primitives.search._graph_growth import (
    ANN_BATCH,
    ANN_REBUILD_SHARE,
    EXTRA_KEY,
    GraphGrowth,
)
from tta_dev_primitives.search._scope_index import ScopeView

__all__ = ["ANN_BATCH", "ANN_THRESHOLD", "VECTOR_BLOCK", "VectorIndex", "as_unit_vector"]

#: Vectors from which semantic search goes approximate (HNSW via usearch), when installed.
#: Measured on a shared 2-core machine at 384 dims (benchmarks/bench_vectors_index.py): exact
#: numpy p50 is ~0.4 ms at 10k, ~1 ms at 20k-30k, ~1.8 ms at 50k, ~5.5 ms at 100k; 20k keeps
#: headroom under 2 ms for tail latency and a busy machine. The graph answers 100k in ~0.4 ms.
ANN_THRESHOLD: Final = 20_000
#: A scope with at most this many members (or ``ann_threshold``, if lower) is searched
#: exactly, never through the graph: over-fetching for it would cost more than the scan.
SMALL_SCOPE: Final = 4096
#: Rows scored at once below 1/this of the further vectors and documents look theirs up by
#: docno instead of a pass over all (3 a memory made a scope of 500 at 50k 8x slower than 1).
_LOOKUP_SHARE: Final = 16


class VectorIndex(GraphGrowth):
    """Unit vectors by document number (and further ones per document), exact or by graph (grown
    in batches: ``GraphGrowth``)."""

    __slots__ = ("_ann_threshold", "_dim", "_has_vec", "_n_vecs", "_old_cursor", "_old_xcursor",
                 "_vecs", "_xdoc", "_xrows", "_xvecs")  # fmt: skip

    def __init__(self, ann_threshold: int = ANN_THRESHOLD) -> None:
        """``ann_threshold``: vectors from which semantic search uses the HNSW graph."""
        self._ann_threshold = ann_threshold
        self._no_usearch = False  # an import of usearch failed: stay exact, never retry
        self.clear()

    def clear(self, *, keep_dim: bool = False) -> None:
        """Forget every vector, and their dimension unless ``keep_dim``."""
        if not keep_dim:
            self._dim: int | None = None
        self._vecs = Blocks()  # docno -> its (first) vector
        self._has_vec = bytearray()  # docno -> 1 while that document has a vector
        self._n_vecs = 0
        self._ann: Any = None  # the HNSW graph (keys are docnos), grown in batches
        self._ann_cursor = 0  # docnos below this were offered to the graph; the rest are not
        self._ann_credit = 0  # rows the graph may take now (ANN_CATCH_UP per vector added)
        self._ann_removed = 0  # vectors removed from the graph since it was made
        # The graph being replaced, while the new one grows: it answers for the docnos in
        # [_ann_cursor, _old_cursor) and further rows in [_xcursor, _old_xcursor).
        self._old: Any = None
        self._old_cursor = self._old_xcursor = 0
        # A document's further vectors (one per field, as LangGraph indexes): rows of a second
        # matrix, each naming its docno (-1 once removed); the graph holds them under
        # EXTRA_KEY + row. A document scores by its best vector.
        self._xvecs: Any = None
        self._xdoc = array("q")
        self._xrows: dict[int, list[int]] = {}
        self._xcursor = 0  # further rows below this were offered to the graph

    def __len__(self) -> int:
        """Documents with a vector."""
        return self._n_vecs

    @property
    def dim(self) -> int | None:
        """The dimension every vector must have: fixed by the first one, None before."""
        return self._dim

    @property
    def graph_size(self) -> int | None:
        """Vectors in the HNSW graph, or None while there is no graph."""
        return None if self._ann is None else len(self._ann)

    def rows(self, vector: Any) -> list[Any]:
        """``vector`` checked and normalised, as unit rows: one, or one per row of a 2-D array."""
        array_ = numpy().asarray(vector, dtype=numpy().float32)
        if array_.ndim == 2 and array_.shape[0] >= 1:
            return [as_unit_vector(row, "vector", self._dim or len(array_[0])) for row in array_]
        return [as_unit_vector(vector, "vector", self._dim)]

    def query(self, vector: Any) -> Any:
        """A query vector checked against the index's dimension, as a unit vector."""
        return as_unit_vector(vector, "query vector", self._dim)

    def add(self, docno: int, rows: list[Any] | None) -> None:
        """Document ``docno`` (the next number) with these unit ``rows``, or none."""
        self._has_vec.append(0)
        if rows:
            self._store_vector(docno, rows[0])
            for row in rows[1:]:
                self._store_extra(docno, row)

    def remove(self, docno: int) -> None:
        """Drop the vectors of document ``docno``, from the graph too (which starts over once
        it has lost ``1/ANN_REBUILD_SHARE`` of what it holds); a removal earns the graph rows
        as an addition does, so churn alone grows it back."""
        had = self._has_vec[docno]
        graph, old, removed = self._ann, self._old, 0
        if had:
            self._has_vec[docno] = 0
            self._n_vecs -= 1
            if graph is not None and docno < self._ann_cursor:
                graph.remove(docno)
                removed += 1
            if old is not None and docno < self._old_cursor:
                old.remove(docno)
        for row in self._xrows.pop(docno, ()):
            self._xdoc[row] = -1
            if graph is not None and row < self._xcursor:
                graph.remove(EXTRA_KEY + row)
                removed += 1
            if old is not None and row < self._old_xcursor:
                old.remove(EXTRA_KEY + row)
        if removed:
            self._ann_removed += removed
            if ANN_REBUILD_SHARE * self._ann_removed >= max(len(graph), ANN_BATCH):
                # A new graph grows; this one answers for the rows it lacks meanwhile (or
                # the one before, if this one was still growing: it holds more).
                if old is None:
                    self._old, self._old_cursor, self._old_xcursor = graph, *self._cursors()
                self._drop_graph(keep_old=True)
        if had:
            self._ann_step()

    def renumber(self, new_of: Any, order: Any) -> None:
        """Document ``order[i]`` becomes ``i`` (``new_of`` maps each old docno to its new one,
        -1 if removed). The HNSW graph keeps its vectors under their new keys (two ``rename``
        calls, milliseconds); it starts over (catching up as vectors are added, as after
        ``clear``) only when the documents changed order and many rows had yet to join it."""
        np = numpy()
        has = gather(np, self._has_vec, np.bool_, order)
        in_order = bool((order[1:] > order[:-1]).all())
        targets = np.flatnonzero(has)
        self._vecs.renumber(np, order[targets], targets, in_order)
        self._has_vec = bytearray(has.astype(np.uint8).tobytes())
        graph, old = self._ann, self._old
        if old is not None and in_order:  # the graph being replaced keeps answering too
            old_offered = order < self._old_cursor
            moved = np.flatnonzero(has & old_offered)
            rename(np, old, order[moved], moved)
            self._old_cursor = int(np.count_nonzero(old_offered))
        elif old is not None:
            old = self._old = None
        offered = order < self._ann_cursor
        late = np.flatnonzero(has & ~offered)  # rows the graph has not taken yet
        if graph is not None and (in_order or len(late) <= 2 * ANN_BATCH):
            moved = np.flatnonzero(has & offered)
            rename(np, graph, order[moved], moved)
            self._ann_cursor = int(np.count_nonzero(offered))  # in order: a prefix
            if not in_order:
                if len(late):
                    graph.add(late.astype(np.uint64), self._vecs.take(np, late), threads=1)
                self._ann_cursor = len(order)
        elif graph is not None:
            self._drop_graph()
            graph = None
        xdoc = self._xdoc_array(np)
        kept = np.flatnonzero(xdoc >= 0)
        joined = kept[kept < self._xcursor]  # (the graph's, in order: a prefix of ``kept``)
        self._xdoc = array("q", new_of[xdoc[kept]].astype(np.int64).tobytes())
        self._xvecs = None if not len(kept) else self._xvecs[kept]
        self._xrows = {}
        for row, docno in enumerate(self._xdoc):
            self._xrows.setdefault(docno, []).append(row)
        self._xcursor = len(joined)
        if graph is not None:
            rename(np, graph, joined + EXTRA_KEY, np.arange(len(joined)) + EXTRA_KEY)
        if old is not None:
            joined = kept[kept < self._old_xcursor]
            self._old_xcursor = len(joined)
            rename(np, old, joined + EXTRA_KEY, np.arange(len(joined)) + EXTRA_KEY)

    def first(self, docno: int) -> Any:
        """Document ``docno``'s first vector (a row view), or None."""
        if not self._has_vec[docno]:
            return None
        return self._vecs.row(docno)

    def vectors(self, docno: int) -> Any:
        """Every vector of document ``docno``, one row each (2-D, first as added), or None."""
        if not self._has_vec[docno]:
            return None
        np = numpy()
        first = self.first(docno)
        rows = self._xrows.get(docno, [])
        return np.vstack([first[None, :], *(self._xvecs[r][None, :] for r in rows)])

    def _store_vector(self, docno: int, vec: Any) -> None:
        """Put ``vec`` in row ``docno`` (a new block if need be), and give the graph its share."""
        if self._dim is None:
            self._dim = int(vec.shape[0])
        self._vecs.put(numpy(), docno, vec)
        self._has_vec[docno] = 1
        self._n_vecs += 1
        self._ann_step()

    def _store_extra(self, docno: int, vec: Any) -> None:
        """A further vector of ``docno``: a row of the second matrix, and in the graph."""
        np = numpy()
        row = len(self._xdoc)
        if self._xvecs is None or row >= self._xvecs.shape[0]:
            capacity = max(64, 0 if self._xvecs is None else 2 * self._xvecs.shape[0])
            grown = np.zeros((capacity, self._dim), dtype=np.float32)
            if self._xvecs is not None:
                grown[: self._xvecs.shape[0]] = self._xvecs
            self._xvecs = grown
        self._xvecs[row] = vec
        self._xdoc.append(docno)
        self._xrows.setdefault(docno, []).append(row)
        if self._ann is not None and self._xcursor == row:  # none waiting before it
            self._ann.add(EXTRA_KEY + row, vec)
            self._xcursor = row + 1
        self._ann_step()

    # -- searching -----------------------------------------------------------------------------

    def candidates(self, q: Any, limit: int, view: ScopeView | None) -> tuple[Any, Any]:
        """Documents (in ``view``, if given) that may rank in the top ``limit`` for the unit
        query ``q``, and their exact cosine: all of them for small sets and scopes, the graph's
        candidates rescored for large."""
        small = min(SMALL_SCOPE, self._ann_threshold)
        if self._n_vecs >= self._ann_threshold and (view is None or view.members > small):
            found = self._ann_search(q, limit, view)
            if found is not None:
                return found
        return self._exact(q, limit, view)

    def _exact(self, q: Any, limit: int, view: ScopeView | None) -> tuple[Any, Any]:
        """Brute force: one matrix-vector product over all rows, or over the scope's rows."""
        np = numpy()
        size = len(self._has_vec)
        if view is None:
            rows = np.flatnonzero(gather(np, self._has_vec, np.bool_, slice(0, size)).copy())
            # Mostly live rows: multiply them all, then pick (no copy of the rows first).
            dense = len(rows) * 2 >= size
            sims = (
                self._vecs.sims_below(np, q, size)[rows] if dense else self._vecs.take(np, rows) @ q
            )
        else:
            # A small scope's members as they are, not a scan of a mask the index's size.
            rows = np.flatnonzero(view.mask[:size]) if view.rows is None else view.rows
            rows = rows[gather(np, self._has_vec, np.bool_, rows)]
            sims = self._vecs.take(np, rows) @ q
        return rows, self._settle(np, q, rows, self._best(np, q, rows, sims), limit)

    def _settle(self, np: Any, q: Any, rows: Any, sims: Any, k: int) -> Any:
        """``sims`` with every row that may rank in the top ``k`` scored again by ``dots``,
        which rounds a row alike wherever it sits: those below the ``k``-th by more than the
        matrix product's error cannot reach it, so they keep its faster estimate."""
        if not len(sims) or k <= 0:
            return sims
        k = min(k, len(sims))
        kth = np.partition(sims, len(sims) - k)[len(sims) - k]
        near = np.flatnonzero(sims >= kth - q.shape[0] * 2.0**-21)  # 4x the worst error
        candidates = rows[near]
        firsts = dots(np, self._vecs.take(np, candidates), q)
        settled = sims.astype(np.float32, copy=True)
        settled[near] = self._best(np, q, candidates, firsts, settled=True)
        return settled

    def _xdoc_array(self, np: Any) -> Any:
        """A copy of the further vectors' docnos (-1: removed), as int64."""
        return np.frombuffer(memoryview(self._xdoc), dtype=np.int64, count=len(self._xdoc)).copy()

    def _best(self, np: Any, q: Any, rows: Any, sims: Any, *, settled: bool = False) -> Any:
        """``sims`` of ``rows`` raised to each document's best further vector, if it has any:
        a matrix product's estimate, or ``settled`` by ``dots`` (einsum is 10x slower)."""
        if not self._xrows:
            return sims
        score = dots if settled else product
        count = len(self._xdoc)
        if len(rows) * _LOOKUP_SHARE < count + len(self._has_vec):  # a scope, the graph's
            owned: list[int] = []
            further: list[int] = []
            for i, docno in enumerate(rows.tolist()):
                theirs = self._xrows.get(docno)
                if theirs:
                    owned.extend([i] * len(theirs))
                    further.extend(theirs)
            owners = np.array(owned, dtype=np.intp)
            scores = score(np, self._xvecs[further], q) if further else None
        else:  # most rows: one pass over every further vector's owner
            xdoc = self._xdoc_array(np)
            pos = np.full(len(self._has_vec), -1, dtype=np.intp)
            pos[rows] = np.arange(len(rows))
            live = xdoc >= 0
            at = np.full(count, -1, dtype=np.intp)
            at[live] = pos[xdoc[live]]
            mine = at >= 0
            owners, xvecs = at[mine], self._xvecs[:count]
            if not len(owners):
                scores = None
            elif 4 * len(owners) >= count:  # most of them: no copy of the rows (10x a product)
                scores = score(np, xvecs, q)[mine]
            else:
                scores = score(np, xvecs[mine], q)
        if scores is None:
            return sims
        best = sims.astype(np.float32, copy=True)
        np.maximum.at(best, owners, scores)
        return best

    def _ann_search(self, q: Any, limit: int, view: ScopeView | None) -> tuple[Any, Any] | None:
        """Graph candidates, rescored exactly; None (go exact) without usearch or if too few.

        Rows the graph has not taken yet (a batch or two, or all of them while a new graph
        grows) join the candidates as they are, scored by a product over their range: the
        answer never waits for the graph.
        """
        graph = self._ann
        if graph is None:
            graph = self._new_graph()
            if graph is None:
                return None
        np = numpy()
        n, size = self._n_vecs, len(self._has_vec)
        want = 2 * limit  # extra candidates, reranked by exact f32 cosine
        if view is not None:
            want = int(want * n / view.members * 2) + limit  # over-fetch, then filter
        want = min(n, max(want, 32))
        has_vec = gather(np, self._has_vec, np.bool_, slice(0, size)).copy()
        cursor, xcursor = self._ann_cursor, self._xcursor
        rows = self._graph_rows(np, graph, q, want, 0, cursor, 0)
        if self._old is not None:  # the graph being replaced, for the rows the new one lacks
            more = self._graph_rows(np, self._old, q, want, cursor, self._old_cursor, xcursor)
            rows = np.concatenate((rows, more))
            cursor, xcursor = max(cursor, self._old_cursor), max(xcursor, self._old_xcursor)
        cursor = min(cursor, size)
        if xcursor < len(self._xdoc):  # documents of further vectors in no graph yet
            waiting = gather(np, self._xdoc, np.int64, slice(xcursor, None))
            rows = np.concatenate((rows, waiting[waiting >= 0].astype(np.intp)))
        if self._xrows:  # a document found by two of its vectors counts once
            _, first = np.unique(rows, return_index=True)
            rows = rows[np.sort(first)]
        rows = rows[rows < cursor]  # (the rest are pending: scanned below)
        rows = rows[has_vec[rows]]
        # Rows the graph has not taken yet (a batch or two; all of them while a new graph
        # grows) are scanned exactly, by one product over their range.
        pending = np.flatnonzero(has_vec[cursor:])
        if view is not None:
            rows = rows[view.mask[rows]]
            pending = pending[view.mask[pending + cursor]]
        if len(rows) + len(pending) < min(limit, n if view is None else view.members):
            return None
        sims = self._vecs.take(np, rows) @ q
        if len(pending):
            sims = np.concatenate((sims, self._vecs.sims_from(np, q, cursor, size)[pending]))
            rows = np.concatenate((rows, pending + cursor))
        sims = self._best(np, q, rows, sims)
        sims = self._settle(np, q, rows, sims, limit + 1)
        if len(sims) > 1:
            # Ties go to the newest, but of many equal vectors (one text written many times)
            # the graph finds some, not the newest: when the best limit + 1 tie, scan exactly.
            best = min(limit + 1, len(sims))
            top = np.partition(sims, len(sims) - best)[len(sims) - best :]
            if len(np.unique(top)) < best:
                return None
        return rows, sims
