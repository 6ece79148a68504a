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

    The engine counts vectors, not memories, and orders equal distances oldest first. So the
    KNN asks again for twice the rows while its rows were all it was asked for and either
    hold fewer than ``limit + TIE_MARGIN`` memories (a memory's further vectors,
    ``fv:<i>:<key>``, near the question filled them: one memory with 30 vectors answered a
    search for 3 alone) or end on the score of the ``limit``-th memory (equal vectors, the
    same text written many times, ran past them: the oldest were returned, not the newest,
    and hybrid's two sides fused different ones). Past ``MAX_TIE_ROWS`` rows, equal distances
    keep the engine's order."""
    from tta_dev_primitives.embeddings._vectors import encode_vector

    wanted = rows_for(limit + TIE_MARGIN)
    k = wanted
    where = scope_filter(scope, " ", query.filter).strip()
    vector = encode_vector(query.vector)
    while True:
        if exact:
            text = f"({where or EVERY})=>[KNN {k} @e $v HYBRID_POLICY ADHOC_BF AS d]"
        else:
            ef = max(EF_RUNTIME, k)
            text = f"({where or '*'})=>[KNN {k} @e $v EF_RUNTIME {ef} AS d]"
        reply = await shard.run(
            client, "FT.SEARCH", shard.name, text, "PARAMS", 2, "v", vector,
            "SORTBY", "d", "RETURN", 2, "d", "q", "LIMIT", 0, k, *shard.tail,
        )  # fmt: skip
        best: dict[str, tuple[float, int]] = {}
        last = None  # the distance of the farthest row
        rows = replies.rows(reply, scores=False)
        for key, _, fields in rows:
            seq = replies.seq(fields)
            distance = fields.get("d")
            if distance is not None:
                last = float(distance)
            if seq is None or distance is None or not in_scope(key, scope):
                continue
            sim = 1.0 - float(distance)
            if key not in best or sim > best[key][0]:
                best[key] = (sim, seq)
        found = [(key, sim, seq) for key, (sim, seq) in best.items()]
        if ties and not exact and tied(found, limit):
            exact, k = True, wanted  # the graph may have stopped among copies of one vector
            continue
        if len(rows) < k or k >= MAX_RESULTS:
            return found
        if len(found) >= wanted:
            cut = sorted((sim for _, sim, _ in found), reverse=True)[limit - 1]
            if last is None or 1.0 - last < cut or k >= MAX_TIE_ROWS:
                return found
        k = rows_for(2 * k)


def tied(found: list[tuple[str, float, int]], limit: int) -> bool:
    """True if the best ``limit + 1`` memories of ``found`` hold two equal scores."""
    best = sorted((sim for _, sim, _ in found), reverse=True)[: limit + 1]
    return len(set(best)) < len(best)


async def recent(
    client: Any, shard: Shard, limit: int, scope: str | None, wanted: tuple[str, ...] = ()
) -> list[tuple[str, float, int]]:
    """The newest writes in the scope holding the facets ``wanted`` (a blank query)."""
    text = scope_filter(scope, " ", wanted).strip() or "*"
    reply = await shard.run(
        client, "FT.SEARCH", shard.name, text, "SORTBY", "q", "DESC", "RETURN", 1, "q",
        "LIMIT", 0, rows_for(limit + TIE_MARGIN), *shard.tail,
    )  # fmt: skip
    return [
        (key, 0.0, seq)
        for key, _, fields in replies.rows(reply, scores=False)
        if (seq := replies.seq(fields)) is not None and in_scope(key, scope)
    ]


def top(found: Iterable[tuple[str, float, int]], limit: int) -> list[tuple[str, float, int]]:
    """Best score first, then the newest write: the order every search answers in."""
    return top_items(found, limit)
