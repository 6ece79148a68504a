"""The Query Engine's queries on one index: KNN by meaning, most recent (keywords: ``keywords``).

Each reads ``TIE_MARGIN`` rows past ``limit`` so equal scores can be ordered newest first by
the caller (``top``), and drops rows outside the scope (a tag collision can cost a row, never
leak one). A filter's facets are TAG clauses beside the scope's, so the engine applies them
before its top ``limit`` (and as the KNN pre-filter).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._scopes import in_scope
from tta_dev_primitives.search._topk import top_items
from tta_dev_primitives.search._vector_index import ANN_THRESHOLD
from tta_dev_primitives.stores._redis import replies
from tta_dev_primitives.stores._redis.documents import scope_filter
from tta_dev_primitives.stores._redis.layout import Layout
from tta_dev_primitives.stores._redis.shards import Shard

__all__ = [
    "EF_RUNTIME",
    "EVERY",
    "EXACT_BELOW",
    "EXACT_TIES_BELOW",
    "MAX_RESULTS",
    "MAX_TIE_ROWS",
    "TIE_MARGIN",
    "recent",
    "rows_for",
    "semantic",
    "tied",
    "top",
]

#: Extra hits read past ``limit`` so that equal scores can be ordered newest first here.
TIE_MARGIN: Final = 20

#: The most rows one engine query may ask for: the engine refuses a ``LIMIT`` past its
#: ``MAXSEARCHRESULTS`` (1,000,000 by default) with an error, so a search with a larger
#: ``limit`` asks each query for this many rows instead (as many as the engine gives).
MAX_RESULTS: Final = 1_000_000


def rows_for(wanted: int) -> int:
    """The rows an engine query asks for when ``wanted`` are wanted: at most ``MAX_RESULTS``."""
    return min(wanted, MAX_RESULTS)


#: KNN rows past which a search asks for no more to order equal distances newest first (as
#: ``keywords.MAX_TIE_SORT`` for equal keyword scores).
MAX_TIE_ROWS: Final = 20_000

#: Times an exact KNN whose rows end among equal distances is asked again for twice the rows
#: before one scan sorted by the engine settles them (``_exact_sorted``). That scan keeps every
#: vector in the scope, and the engine spends about 1.4 us on each a KNN keeps: over 19,000
#: chat turns with 384-d vectors it took 30-35 ms against 5 for an ordinary exact KNN. So tens
#: of copies ("Hello?" 75 times) are cheaper to settle by asking for 2 and 4 times the rows
#: (for hybrid's 120 candidates too: settling them at once doubled its time), and thousands
#: ("Hey!" 3,230 times: 8 rounds, each returning all its rows, for a search of 10) by the
#: sorted scan.
TIE_DOUBLINGS: Final = 2

#: HNSW candidate list per vector query (the engine's default, 10, found ~57% of the true top
#: 10 on 100k MiniLM vectors; 128 found ~95%: benchmarks/results/vectors.md).
EF_RUNTIME: Final = 200

#: Documents in a server's index below which a search by meaning compares the question with
#: every vector (as in-process below its ``ANN_THRESHOLD``), not the HNSW graph's candidates:
#: many copies of one vector lead the graph's search astray (``semantic``). The engine's exact
#: search of 19,000 documents took 6.5-12 ms at 384 dims (the graph's: 1.2-1.7), 1.7 ms at 64.
EXACT_BELOW: Final = ANN_THRESHOLD
#: Documents below which a graph answer whose best ``limit + 1`` tie is asked again exactly;
#: past it that scan would hold the server up too long (50-75 ms at 100,000 and 384 dims).
EXACT_TIES_BELOW: Final = 50_000

#: A filter every document passes (no tag is ``x``: scope and facet tags are hex digits), for
#: an exact KNN of a whole index: the engine takes ``HYBRID_POLICY`` only with a filter.
EVERY: Final = "-@s:{x}"


async def semantic(
    client: Any,
    shard: Shard,
    query: Query,
    limit: int,
    scope: str | None,
    exact: bool = False,
    ties: bool = False,
    size: int = 0,
) -> list[tuple[str, float, int]]:
    """The nearest vectors (cosine) within the scope; a memory scores by its best.

    With ``exact`` (an index below ``EXACT_BELOW`` documents) the engine compares the question
    with every vector in the scope (``HYBRID_POLICY ADHOC_BF``), else it searches its HNSW
    graph; with ``ties`` (below ``EXACT_TIES_BELOW``), a graph's answer whose best
    ``limit + 1`` memories hold equal scores is asked again exactly, as in-process's graph
    (``VectorIndex``) is. Many copies of one vector (the same text
    written many times: "Hey!", "thanks!") fill each other's neighbour lists in the graph, which
    then leads a search into them and not out: over 20,000 chat turns, 3,400 of them "Hey!", 69
    of 300 questions left out a nearer memory, and 12 got none of their ten nearest.

    The engine counts vectors, not memories, and orders equal distances oldest first. So when
    the KNN's rows were all it was asked for and either hold fewer than ``limit + TIE_MARGIN``
    memories (a memory's further vectors, ``fv:<i>:<key>``, near the question filled them:
    one memory with 30 vectors answered a search for 3 alone) or end on the score of the
    ``limit``-th memory (equal vectors, the same text written many times, ran past them: the
    oldest were returned, not the newest, and hybrid's two sides fused different ones), the
    KNN is asked again for twice the rows, ``TIE_DOUBLINGS`` times at most when exact; then
    one scan sorted by the engine settles it (``_exact_sorted``: every vector in the scope
    by distance, then newest write). Doubling all the way took 8 scans, each returning all
    its rows, for a question near 3,230 copies of "Hey!" among 19,000 chat turns (150-190
    ms; now 4 queries, about 50 ms). ``size`` is the index's document count
    (``QueryEngine.count``). Through the graph alone (an index of ``EXACT_TIES_BELOW``
    documents or more, where a scan holds the server up too long) the rows are doubled
    until the tie is settled, and past ``MAX_TIE_ROWS`` rows equal distances keep the
    engine's order."""
    from tta_dev_primitives.embeddings._vectors import encode_vector

    wanted = rows_for(limit + TIE_MARGIN)
    k = wanted
    where = scope_filter(scope, " ", query.filter).strip()
    vector = encode_vector(query.vector)
    while True:
        rows = await _knn(client, shard, where, vector, k, exact)
        found = _best(rows, scope)
        if ties and not exact and tied(found, limit):
            exact, k = True, wanted  # the graph may have stopped among copies of one vector
            continue
        if len(rows) < k or k >= MAX_RESULTS:
            return found
        if len(found) >= wanted:
            cut = sorted((sim for _, sim, _ in found), reverse=True)[limit - 1]
            last = next((f["d"] for _, f in reversed(rows) if "d" in f), None)  # the farthest
            if last is None or 1.0 - float(last) < cut or (not exact and k >= MAX_TIE_ROWS):
                return found
        if exact and k >= wanted << TIE_DOUBLINGS:
            return await _exact_sorted(client, shard, scope, where, vector, wanted, size)
        k = rows_for(2 * k)


async def _exact_sorted(
    client: Any,
    shard: Shard,
    scope: str | None,
    where: str,
    vector: bytes,
    wanted: int,
    size: int,
) -> list[tuple[str, float, int]]:
    """The best ``wanted`` memories in the scope, as ``semantic`` finds them, in one exact
    scan however many vectors tie.

    An ``FT.AGGREGATE`` whose KNN keeps every vector in the scope (``k`` past the index's
    ``size``) has the engine sort them by distance, then newest write, and send the first
    ``wanted`` rows, each named by its ``__key`` on a single server. The engine loads that
    name by the document's name as a C string, which finds nothing for a name holding a NUL
    byte, nor, on a cluster, for a document outside its index name's slot: such a row comes
    back empty. So on a cluster (or when a row came back empty) the rows are asked as
    ``(d, q)`` alone, and a KNN over just the documents holding those write sequences (the
    scope's clauses and ``@q:[q q]`` for each: no scan) names them, keeping those at or
    before the last row in that order (another document with one of those sequences, a
    memory's further vector farther away, ranks after them). Asked again with a larger ``k``
    if the KNN was cut (``size`` was counted up to ``COUNT_EVERY`` seconds ago), or for more
    rows if further vectors of the same memories, or rows out of the scope, left fewer than
    ``wanted`` memories.

    The engine sorts the distances it computed, and ``top`` orders their ``1 - d`` with the
    write sequence alike, so near-ties (cosines differing in the seventh digit) keep their
    order, and equal distances (copies of one vector) go newest first. The KNN cannot stop at
    the tied distance: a ``VECTOR_RANGE`` query would, but on an HNSW field it walks the
    graph, and found 1,479 of the 3,258 vectors at a "Hey!" copy's distance or nearer."""
    k = rows_for(max(size, wanted) + wanted)
    n = wanted
    named = shard.node is None
    while True:
        knn = f"({where or EVERY})=>[KNN {k} @e $v HYBRID_POLICY ADHOC_BF AS d]"
        reply = await shard.run(
            client, "FT.AGGREGATE", shard.name, knn, "PARAMS", 2, "v", vector,
            "SORTBY", 4, "@d", "ASC", "@q", "DESC", "MAX", n,
            *(("LOAD", 1, "@__key") if named else ()), *shard.tail,
        )  # fmt: skip
        if replies.total(reply) >= k and k < MAX_RESULTS:  # more vectors in the scope than k
            k = rows_for(2 * k)
            continue
        ordered = replies.aggregate_fields(reply)
        if named and not all("__key" in f for f in ordered):
            named = False  # a row the engine could not name: ask for them unnamed
            continue
        if named:
            rows = [(Layout.key_of_document(f["__key"]), f) for f in ordered]
        else:
            rows = await _name(client, shard, where, vector, ordered)
        found = _best(rows, scope)
        if len(ordered) < n or len(found) >= wanted or n >= MAX_RESULTS:
            return found
        n = rows_for(2 * n)


async def _name(
    client: Any, shard: Shard, where: str, vector: bytes, ordered: list[dict[str, str]]
) -> list[tuple[str, dict[str, str]]]:
    """``(key, fields)`` of the KNN rows ``ordered`` (``(d, q)`` only, nearest first, then
    newest), from a KNN over the documents matching ``where`` that hold their sequences."""
    order = [_order(f) for f in ordered if "d" in f and "q" in f]
    if not order:
        return []
    seqs = sorted({f["q"] for f in ordered if "d" in f and "q" in f})
    which = " ".join([where, "(" + "|".join(f"@q:[{q} {q}]" for q in seqs) + ")"]).strip()
    end = max(order)
    rows = await _knn(client, shard, which, vector, len(order) + TIE_MARGIN)
    return [row for row in rows if "d" in row[1] and "q" in row[1] and _order(row[1]) <= end]


def _order(fields: dict[str, str]) -> tuple[float, int]:
    """A KNN row's place in ``top``'s order: nearest first, then newest write."""
    return float(fields["d"]), -int(float(fields["q"]))


async def _knn(
    client: Any, shard: Shard, where: str, vector: bytes, k: int, exact: bool = True
) -> list[tuple[str, dict[str, str]]]:
    """``(key, fields)`` of the ``k`` vectors nearest ``vector`` among the documents matching
    ``where``, nearest first: each compared (``exact``), or through the HNSW graph."""
    if exact:
        text = f"({where or EVERY})=>[KNN {k} @e $v HYBRID_POLICY ADHOC_BF AS d]"
    else:
        ef = max(EF_RUNTIME, k)
        text = f"({where or '*'})=>[KNN {k} @e $v EF_RUNTIME {ef} AS d]"
    reply = await shard.run(
        client, "FT.SEARCH", shard.name, text, "PARAMS", 2, "v", vector,
        "SORTBY", "d", "RETURN", 2, "d", "q", "LIMIT", 0, k, *shard.tail,
    )  # fmt: skip
    return [(key, fields) for key, _, fields in replies.rows(reply, scores=False)]


def _best(
    rows: list[tuple[str, dict[str, str]]], scope: str | None
) -> list[tuple[str, float, int]]:
    """``(key, score, seq)`` of each memory among KNN rows ``(key, fields)`` in the scope, by
    its best vector's score (``1 - d``)."""
    best: dict[str, tuple[float, int]] = {}
    for key, fields in rows:
        seq = replies.seq(fields)
        distance = fields.get("d")
        if seq is None or distance is None or not in_scope(key, scope):
            continue
        sim = 1.0 - float(distance)
        if key not in best or sim > best[key][0]:
            best[key] = (sim, seq)
    return [(key, sim, seq) for key, (sim, seq) in best.items()]


def tied(found: list[tuple[str, float, int]], limit: int) -> bool:
    """True if the best ``limit + 1`` memories of ``found`` hold two equal scores."""
    best = sorted((sim for _, sim, _ in found), reverse=True)[: limit + 1]
    return len(set(best)) < len(best)


async def recent(
    client: Any, shard: Shard, limit: int, scope: str | None, wanted: tuple[str, ...] = ()
) -> list[tuple[str, float, int]]:
    """The newest writes in the scope holding the facets ``wanted`` (a blank query).

    A further vector's document (``fv:``) holds its memory's scope and sequence too, so the
    engine lists a memory once per vector (review R18): each is kept once here. If such rows
    crowded the window, the query is asked again of memories' own documents only (those
    holding a length, ``@n:[-inf +inf]``): one more round trip where re-reading a longer
    window took 0.8-1.6 s for memories of 256 vectors (review R20). Not first: beside a
    scope, that clause intersects the namespace's numeric index (see ``keywords``)."""
    where = scope_filter(scope, " ", wanted)
    rows = rows_for(limit + TIE_MARGIN)
    found: dict[str, tuple[str, float, int]] = {}
    for text in (where.strip() or "*", "@n:[-inf +inf]" + where):
        reply = await shard.run(
            client, "FT.SEARCH", shard.name, text, "SORTBY", "q", "DESC", "RETURN", 1, "q",
            "LIMIT", 0, rows, *shard.tail,
        )  # fmt: skip
        listed = replies.rows(reply, scores=False)
        found, crowded = {}, False
        for key, _, fields in listed:
            crowded = crowded or key in found
            seq = None if key in found else replies.seq(fields)
            if seq is not None and in_scope(key, scope):
                found[key] = (key, 0.0, seq)
        if not crowded or len(listed) < rows:
            break  # no further vector's row, or every row the scope has
    return list(found.values())


def top(found: Iterable[tuple[str, float, int]], limit: int) -> list[tuple[str, float, int]]:
    """Best score first, then the newest write: the order every search answers in."""
    return top_items(found, limit)
