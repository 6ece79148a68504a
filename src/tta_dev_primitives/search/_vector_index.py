"""The semantic half of an index: embeddings in blocks, an HNSW graph, and exact fallback.

A document's vector is a row of float32 blocks indexed by document number, L2-normalised, so
cosine similarity is a matrix-vector product. Search is exact (numpy) until the index holds
``ann_threshold`` vectors and usearch is installed (the ``vectors`` extra); from then on an
HNSW graph proposes candidates that are rescored exactly. The graph is never built in one go
(20k vectors took seconds, all of it one event-loop pause): it starts empty at a quarter of the
threshold and takes the rows it lacks in batches of ``ANN_BATCH``, two rows for every vector
added, so it has caught up long before the threshold; rows not yet in it are scanned exactly
beside its candidates. A document may have further vectors (one per field): it scores by its
best. Document numbers are given by the caller; ranking the candidates is the caller's too.
"""

from __future__ import annotations

from array import array
from typing import Any, Final

from tta_dev_primitives.exceptions import InvalidArgumentError
from tta_dev_primitives.search._arrays import gather, numpy
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
#: HNSW parameters: links per node, and the candidate list a query walks (recall vs. speed).
#: On 100k MiniLM vectors of real chitchat turns (benchmarks/bench_vectors.py) a search list of
#: 128 gave recall@10 0.935, 192 0.957 and 256 0.970 (p50 ~0.75, ~0.95, ~1.2 ms on 2 busy
#: cores); more candidates to rescore did not help: the list is what limits recall.
ANN_CONNECTIVITY: Final = 16
ANN_EXPANSION_ADD: Final = 128
ANN_EXPANSION_SEARCH: Final = 256
#: Storage of the graph's vectors; candidates are rescored from the f32 rows. At 100k x 384:
#: f16 ~1520 B/vector, 13 s build, recall@10 0.999; f32 ~2860 B, 26 s, 1.000; i8 ~850 B, 0.93.
ANN_DTYPE: Final = "f16"
#: Graph keys from here on are rows of documents' further vectors, not document numbers.
EXTRA_KEY: Final = 1 << 40
#: Rows handed to the graph at once (one ``add`` in 16 carries a batch: its longest pause). At
#: 384 dims on 2 busy cores 64 took 43-96 ms once the graph held 80k vectors; 32 halves that.
ANN_BATCH: Final = 32
#: Vectors live in blocks of this many rows (a power of two): growing the store allocates a
#: block and never copies the rows before it (doubling one matrix copied 800 MB in one ~2 s
#: ``add`` at 512k vectors). The first block alone grows by doubling, up to this size.
VECTOR_BLOCK_BITS: Final = 14
VECTOR_BLOCK: Final = 1 << VECTOR_BLOCK_BITS
#: Graph rows earned per vector added: the backlog of rows it starts without shrinks by
#: ``ANN_CATCH_UP - 1`` a vector, so starting at a quarter of the threshold it is whole by half.
ANN_CATCH_UP: Final = 2


def as_unit_vector(vector: Any, what: str = "vector") -> Any:
    """``vector`` as a 1-D float32 numpy array of length 1; zero, NaN or infinity are refused."""
    np = numpy()
    v = np.asarray(vector, dtype=np.float32)
    if v.ndim != 1 or v.size == 0:
        raise InvalidArgumentError(f"{what} must be a non-empty 1-D array, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise InvalidArgumentError(f"{what} holds NaN or infinity")
    norm = float(np.linalg.norm(v))
    if norm == 0.0 or not np.isfinite(norm):
        raise InvalidArgumentError(f"{what} is a zero vector: it has no direction to compare")
    if abs(norm - 1.0) > 1e-4:
        v = v / np.float32(norm)
    return np.ascontiguousarray(v, dtype=np.float32)


class VectorIndex:
    """Unit vectors by document number (and further ones per document), exact or by graph."""

    __slots__ = ("_ann", "_ann_credit", "_ann_cursor", "_ann_threshold", "_dim", "_has_vec",
                 "_n_vecs", "_no_usearch", "_vecs", "_xdoc", "_xrows", "_xvecs")  # fmt: skip

    def __init__(self, ann_threshold: int = ANN_THRESHOLD) -> None:
        """``ann_threshold``: vectors from which semantic search uses the HNSW graph."""
        self._ann_threshold = ann_threshold
        self._no_usearch = False  # an import of usearch failed: stay exact, never retry
        self.clear()

    def clear(self, *, keep_dim: bool = False) -> None:
        """Forget every vector, and their dimension unless ``keep_dim``."""
        if not keep_dim:
            self._dim: int | None = None
        self._vecs: list[Any] = []  # float32 blocks of VECTOR_BLOCK rows: docno -> a row
        self._has_vec = bytearray()  # docno -> 1 while that document has a vector
        self._n_vecs = 0
        self._ann: Any = None  # the HNSW graph (keys are docnos), grown in batches
        self._ann_cursor = 0  # docnos below this were offered to the graph; the rest are not
        self._ann_credit = 0  # rows the graph may take now (ANN_CATCH_UP per vector added)
        # A document's further vectors (one per field, as LangGraph indexes): rows of a second
        # matrix, each naming its docno (-1 once removed); the graph holds them under
        # EXTRA_KEY + row. A document scores by its best vector.
        self._xvecs: Any = None
        self._xdoc = array("q")
        self._xrows: dict[int, list[int]] = {}

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
        np = numpy()
        array_ = np.asarray(vector, dtype=np.float32)
        if array_.ndim == 2 and array_.shape[0] >= 1:
            found = [as_unit_vector(row) for row in array_]
        else:
            found = [as_unit_vector(vector)]
        self._check_dim(found[0], "vector")
        return found

    def query(self, vector: Any) -> Any:
        """A query vector checked against the index's dimension, as a unit vector."""
        q = as_unit_vector(vector, "query vector")
        self._check_dim(q, "query vector")
        return q

    def _check_dim(self, v: Any, what: str) -> None:
        if self._dim is not None and v.shape[0] != self._dim:
            raise InvalidArgumentError(
                f"{what} has {v.shape[0]} dimensions but the index holds {self._dim}-dimensional"
                " vectors"
            )

    def add(self, docno: int, rows: list[Any] | None, *, graph: bool = True) -> None:
        """Document ``docno`` (the next number) with these unit ``rows``, or none. Without
        ``graph`` the HNSW graph gets no batch now (a renumbering re-adding every document)."""
        self._has_vec.append(0)
        if rows:
            self._store_vector(docno, rows[0], graph)
            for row in rows[1:]:
                self._store_extra(docno, row)

    def remove(self, docno: int) -> None:
        """Drop the vectors of document ``docno``, from the graph too."""
        if self._has_vec[docno]:
            self._has_vec[docno] = 0
            self._n_vecs -= 1
            if self._ann is not None and docno < self._ann_cursor:
                self._ann.remove(docno)
        for row in self._xrows.pop(docno, ()):
            self._xdoc[row] = -1
            if self._ann is not None:
                self._ann.remove(EXTRA_KEY + row)

    def first(self, docno: int) -> Any:
        """Document ``docno``'s first vector (a row view), or None."""
        if not self._has_vec[docno]:
            return None
        return self._vecs[docno >> VECTOR_BLOCK_BITS][docno & (VECTOR_BLOCK - 1)]

    def vectors(self, docno: int) -> Any:
        """Every vector of document ``docno``, one row each (2-D, first as added), or None."""
        if not self._has_vec[docno]:
            return None
        np = numpy()
        first = self.first(docno)
        rows = self._xrows.get(docno, [])
        return np.vstack([first[None, :], *(self._xvecs[r][None, :] for r in rows)])

    def _store_vector(self, docno: int, vec: Any, graph: bool) -> None:
        """Put ``vec`` in row ``docno`` (a new block if need be), and give the graph its share."""
        np = numpy()
        if self._dim is None:
            self._dim = int(vec.shape[0])
        blocks, block, row = self._vecs, docno >> VECTOR_BLOCK_BITS, docno & (VECTOR_BLOCK - 1)
        if blocks and blocks[0].shape[0] < VECTOR_BLOCK and (block > 0 or row >= len(blocks[0])):
            # The first block doubles (full-size once another block follows it): at most one
            # block's rows are ever copied.
            size = (
                VECTOR_BLOCK if block > 0 else min(VECTOR_BLOCK, max(row + 1, 2 * len(blocks[0])))
            )
            grown = np.zeros((size, self._dim), dtype=np.float32)
            grown[: len(blocks[0])] = blocks[0]
            blocks[0] = grown
        while len(blocks) <= block:
            size = VECTOR_BLOCK if blocks or block > 0 else min(VECTOR_BLOCK, max(1024, row + 1))
            blocks.append(np.zeros((size, self._dim), dtype=np.float32))
        blocks[block][row] = vec
        self._has_vec[docno] = 1
        self._n_vecs += 1
        if graph:
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
        if self._ann is not None:
            self._ann.add(EXTRA_KEY + row, vec)

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
        return self._exact(q, view)

    def _exact(self, q: Any, view: ScopeView | None) -> tuple[Any, Any]:
        """Brute force: one matrix-vector product over all rows, or over the scope's rows."""
        np = numpy()
        size = len(self._has_vec)
        has_vec = gather(np, self._has_vec, np.bool_, slice(0, size)).copy()
        if view is None:
            rows = np.flatnonzero(has_vec)
            # Mostly live rows: multiply them all, then pick (no copy of the rows first).
            dense = len(rows) * 2 >= size
            sims = self._sims_below(np, q, size)[rows] if dense else self._rows(np, rows) @ q
        else:
            rows = np.flatnonzero(view.mask[:size] & has_vec)
            sims = self._rows(np, rows) @ q
        return rows, self._best(np, q, rows, sims)

    def _xdoc_array(self, np: Any) -> Any:
        """A copy of the further vectors' docnos (-1: removed), as int64."""
        return np.frombuffer(memoryview(self._xdoc), dtype=np.int64, count=len(self._xdoc)).copy()

    def _best(self, np: Any, q: Any, rows: Any, sims: Any) -> Any:
        """``sims`` of ``rows`` raised to each document's best further vector, if it has any."""
        if not self._xrows:
            return sims
        count = len(self._xdoc)
        xdoc = self._xdoc_array(np)
        pos = np.full(len(self._has_vec), -1, dtype=np.intp)
        pos[rows] = np.arange(len(rows))
        live = xdoc >= 0
        at = np.full(count, -1, dtype=np.intp)
        at[live] = pos[xdoc[live]]
        mine = at >= 0
        if not mine.any():
            return sims
        best = sims.astype(np.float32, copy=True)
        np.maximum.at(best, at[mine], self._xvecs[:count][mine] @ q)
        return best

    def _ann_search(self, q: Any, limit: int, view: ScopeView | None) -> tuple[Any, Any] | None:
        """Graph candidates, rescored exactly; None (go exact) without usearch or if too few.

        Rows the graph has not taken yet (at most a batch or two) join the candidates as they
        are: they are rescored with the rest, so the answer never waits for the graph.
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
        rows = np.empty(0, dtype=np.intp)
        if self._ann_cursor > 0 and len(graph):
            keys = np.asarray(graph.search(q, want, exact=False).keys, dtype=np.int64)
            extra = keys >= EXTRA_KEY  # a further vector's key names its row, not a docno
            rows = keys[~extra & (keys < self._ann_cursor)]
            if extra.any():
                xdoc = self._xdoc_array(np)
                more = xdoc[keys[extra] - EXTRA_KEY]
                rows = np.concatenate((rows, more[more >= 0]))
            rows = rows.astype(np.intp)
        pending = np.arange(self._ann_cursor, size, dtype=np.intp)
        rows = np.concatenate((rows, pending))
        if self._xrows:  # a document found by two of its vectors counts once
            _, first = np.unique(rows, return_index=True)
            rows = rows[np.sort(first)]
        rows = rows[has_vec[rows]]
        if view is not None:
            rows = rows[view.mask[rows]]
            if len(rows) < min(limit, view.members):
                return None
        elif len(rows) < min(limit, n):
            return None
        sims = self._best(np, q, rows, self._rows(np, rows) @ q)
        if len(sims) > 1:
            # Ties go to the newest, but of many equal vectors (one text written many times)
            # the graph finds some, not the newest: when the best limit + 1 tie, scan exactly.
            best = min(limit + 1, len(sims))
            top = np.partition(sims, len(sims) - best)[len(sims) - best :]
            if len(np.unique(top)) < best:
                return None
        return rows, sims

    def _rows(self, np: Any, rows: Any) -> Any:
        """The vectors of docnos ``rows`` (each must have one), in that order."""
        blocks = self._vecs
        if len(blocks) == 1:
            return blocks[0][rows]
        out = np.empty((len(rows), self._dim), dtype=np.float32)
        which = rows >> VECTOR_BLOCK_BITS
        for block in np.unique(which).tolist():
            at = which == block
            out[at] = blocks[block][rows[at] & (VECTOR_BLOCK - 1)]
        return out

    def _sims_below(self, np: Any, q: Any, size: int) -> Any:
        """Similarity of ``q`` to every stored row below docno ``size``, by docno."""
        parts = []
        for block, matrix in enumerate(self._vecs):
            start = block << VECTOR_BLOCK_BITS
            if start >= size:
                break
            parts.append(matrix[: size - start] @ q)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    # -- the graph -----------------------------------------------------------------------------

    def _ann_step(self) -> None:
        """After a vector is added: start the graph, or give it its next batch of rows."""
        if self._ann is None and (
            4 * self._n_vecs < self._ann_threshold or self._new_graph() is None
        ):
            return
        self._ann_credit = min(self._ann_credit + ANN_CATCH_UP, 2 * ANN_BATCH)
        if len(self._has_vec) - self._ann_cursor >= ANN_BATCH and self._ann_credit >= ANN_BATCH:
            self._ann_credit -= ANN_BATCH
            self._ann_extend(self._ann_cursor + ANN_BATCH)

    def _ann_extend(self, stop: int) -> None:
        """Hand the graph the vectors of docnos ``[cursor, stop)`` in one batch."""
        np = numpy()
        start, stop = self._ann_cursor, min(stop, len(self._has_vec))
        if stop <= start:
            return
        has_vec = gather(np, self._has_vec, np.bool_, slice(start, stop)).copy()
        rows = np.flatnonzero(has_vec) + start
        if len(rows):
            self._ann.add(rows.astype(np.uint64), self._rows(np, rows), threads=1)
        self._ann_cursor = stop

    def _new_graph(self) -> Any:
        """An empty HNSW graph (rows come in batches, ``_ann_step``); None without usearch."""
        if self._no_usearch or self._dim is None:
            return None
        try:
            from usearch.index import Index
        except ImportError:
            self._no_usearch = True
            return None
        self._ann = Index(
            ndim=self._dim,
            metric="ip",  # rows are unit vectors: inner product is cosine
            dtype=ANN_DTYPE,
            connectivity=ANN_CONNECTIVITY,
            expansion_add=ANN_EXPANSION_ADD,
            expansion_search=ANN_EXPANSION_SEARCH,
        )
        self._ann_cursor = 0
        self._ann_credit = 0
        if self._xrows:  # further vectors join at once: they are few beside the documents
            np = numpy()
            xdoc = self._xdoc_array(np)
            xrows = np.flatnonzero(xdoc >= 0)
            if len(xrows):
                self._ann.add((xrows + EXTRA_KEY).astype(np.uint64), self._xvecs[xrows])
        return self._ann

    def build_graph(self) -> Any:
        """The graph holding every vector now, built in one go (benchmarks); None without it."""
        if self._ann is None and self._new_graph() is None:
            return None
        self._ann_extend(len(self._has_vec))
        return self._ann
