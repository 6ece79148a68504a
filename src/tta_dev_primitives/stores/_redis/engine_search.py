"""Searches on a namespace's Query Engine index (``query_engine``), on one server or a cluster.

Keyword search ranks with the library's own BM25 (``keywords``: the engine proposes, we
score); semantic search is the engine's KNN with the scope as a pre-filter (exact in an index
below ``queries.EXACT_BELOW`` documents: ``_semantic``); hybrid fuses the
two candidate lists with the same ``fuse`` as in-process; a blank query lists the newest.
Every answer is cut by ``top``: best score first, ties to the newest write. On a cluster each
master is asked at once (or only the master of a scope's partition) and the rows merged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tta_dev_primitives._gather import gather_all
from tta_dev_primitives.exceptions import InvalidArgumentError
from tta_dev_primitives.search._analyzer import MAX_QUERY_TERMS, Query
from tta_dev_primitives.search._fusion import CANDIDATE_DEPTH, feedback, feedback_matches, fuse
from tta_dev_primitives.search._vector_index import as_unit_vector
from tta_dev_primitives.stores._redis import keywords, queries
from tta_dev_primitives.stores._redis.layout import DOC, Layout, base_among
from tta_dev_primitives.stores._redis.queries import TIE_MARGIN, top
from tta_dev_primitives.stores._redis.shards import Call, Shard

if TYPE_CHECKING:
    from tta_dev_primitives.stores._redis.query_engine import QueryEngine

__all__ = ["search"]

Rows = list[tuple[str, float, int]]

#: In a scope, a word matching at least 1/this of the candidates is asked without again
#: (``keywords.common``): the engine weighs it by the namespace, where a user's partner's name
#: is rare, and its matches took every place of the words ours weighs more in the scope.
CROWD_SHARE = 4


async def search(
    engine: QueryEngine, call: Call, query: Query, limit: int, scope: str | None,
    base: str | None,
) -> Rows | None:  # fmt: skip
    """``(key, score, sequence)`` best first, ties newest first (on a cluster, equal keyword
    scores past the candidates keep the engine's order); None if the engine cannot answer
    this query (vectors of another size): the caller uses the replica. ``scope`` was
    normalized once, by ``check_scope``, and is used as it is."""
    mode, weight = query.mode, query.weight
    if mode == "hybrid" and weight == 0.0:
        mode = "keyword"
    elif mode == "hybrid" and weight == 1.0:
        mode = "semantic"
    if mode != "keyword" and (engine.dims is None or len(query.vector) != engine.dims):
        return None  # the index holds no vectors of this size: the replica's do
    if mode == "keyword":
        if query.blank:
            found = await _fan(engine, call, base, queries.recent, limit, scope, query.filter)
            return top(found, limit)
        return (await _keyword(engine, call, query, limit, scope, base))[0]
    if mode == "semantic":
        found = await _fan(engine, call, base, _semantic, engine, query, limit, scope)
        return top(found, limit)
    depth = max(limit, CANDIDATE_DEPTH)
    keyword: Rows = []
    scale = 0.0
    near = query
    if not query.blank:
        keyword, scale = await _keyword(engine, call, query, depth, scope, base)
        if keyword:
            near = replace(query, vector=await _feedback(engine, call, query, keyword))
    semantic = top(await _fan(engine, call, base, _semantic, engine, near, depth, scope), depth)
    seqs = {key: seq for key, _, seq in keyword}
    seqs.update((key, seq) for key, _, seq in semantic)
    fused = fuse(
        [(k, s) for k, s, _ in keyword], [(k, s) for k, s, _ in semantic],
        query.weight, scale, query.fusion,
    )  # fmt: skip
    return top(((key, score, seqs[key]) for key, score in fused.items()), limit)


async def _semantic(
    client: Any, shard: Shard, engine: QueryEngine, query: Query, limit: int, scope: str | None
) -> Rows:
    """``queries.semantic`` on one server: exact below ``queries.EXACT_BELOW`` documents, and
    asked again exactly when the graph's answer ties below ``queries.EXACT_TIES_BELOW``."""
    count = await engine.count(client, shard)
    exact, ties = count < queries.EXACT_BELOW, count < queries.EXACT_TIES_BELOW
    return await queries.semantic(client, shard, query, limit, scope, exact, ties, count)


async def _feedback(engine: QueryEngine, call: Call, query: Query, keyword: Rows) -> Any:
    """The question's vector with keyword feedback (``_fusion.feedback``), from the first
    vectors of its best keyword matches as their documents hold them: one round trip."""
    from tta_dev_primitives.embeddings._vectors import decode_vector  # numpy: only when used

    dims = engine.dims
    assert dims is not None  # (checked by the caller: the index holds vectors of this size)
    bases = engine.bases
    best = feedback_matches(keyword, lambda row: row[0])
    names = [base_among(bases, key) + DOC + key for key, _, _ in best]

    async def run(client: Any) -> list[Any]:
        return await gather_all(*(client.hget(name, "e") for name in names))

    found: list[Any] = await call(run)
    matches = []
    for raw in found:
        if raw is None:
            continue
        try:
            matches.append(as_unit_vector(decode_vector(raw, dims)))
        except InvalidArgumentError:  # not a vector (short, NaN, zero): as a match without one
            continue
    return feedback(as_unit_vector(query.vector, "query vector"), matches)


def _shards_for(engine: QueryEngine, client: Any, base: str | None) -> list[Shard]:
    """Every server holding the index, or only the master of ``base`` (a scope's partition)."""
    shards = engine.shards(client)
    if base is not None and len(shards) > 1:
        owner = client.get_node_from_key(Layout.facts(base))
        shards = [s for s in shards if owner is None or s.node.name == owner.name] or shards
    return shards


def _once(rows: list[Any]) -> list[Any]:
    """Each key's first row only. During a slot move a master's index still lists documents
    of keys that moved away (RediSearch keeps them), so two masters can name one key."""
    seen: set[str] = set()
    kept = []
    for row in rows:
        if row[0] not in seen:
            seen.add(row[0])
            kept.append(row)
    return kept


async def _fan(
    engine: QueryEngine,
    call: Call,
    base: str | None,
    work: Callable[..., Awaitable[Rows]],
    *args: Any,
) -> Rows:
    """``work(client, shard, *args)`` on every server holding the index (at once), or only on
    the master of ``base``; their rows together, unsorted."""

    async def run(client: Any) -> Rows:
        shards = _shards_for(engine, client, base)
        if len(shards) == 1:
            return await work(client, shards[0], *args)
        parts = await gather_all(*(work(client, shard, *args) for shard in shards))
        return _once([row for part in parts for row in part])

    found: Rows = await call(run)
    return found


async def _keyword(
    engine: QueryEngine, call: Call, query: Query, limit: int, scope: str | None,
    base: str | None,
) -> tuple[Rows, float]:  # fmt: skip
    """The engine's candidates, rescored with our BM25 and statistics summed over every
    server asked (see ``keywords``): the best ``limit``, and the query's BM25 ceiling."""
    if len(query.terms) > keywords.MAX_QUERY_TOKENS:
        query = await _rarest(engine, call, query, scope, base)
    if not query.terms:
        return [], 0.0
    terms = keywords.terms_of(query)
    window = queries.rows_for(keywords.candidates(limit) + TIE_MARGIN)
    bases = engine.bases

    async def run(
        client: Any, faint: tuple[int, ...] = (), asked: list[keywords.Term] | None = None
    ) -> keywords.Answer:
        shards = _shards_for(engine, client, base)
        again = asked is not None or bool(faint)  # candidates only: the statistics are known
        these = terms if asked is None else asked
        if len(shards) == 1 and shards[0].node is None:  # one server: one round trip
            return await keywords.ask(
                client, shards[0], these, window, scope, bases, query.filter, faint, again
            )
        asks = [
            keywords.ask(client, shard, these, window, scope, (), query.filter, faint, again)
            for shard in shards
        ]
        stats = keywords.Stats(0, 0, [0] * len(terms))
        if not keywords.engine_counts(scope) and not again:
            # The namespace's or a user's running totals (asked again: the caller has them).
            totals = keywords.totals(client, shards, bases, scope)
            both: list[Any] = await gather_all(gather_all(*asks), totals)
            answers, (docs, length) = both
            stats = keywords.Stats(docs, length, stats.dfs)
        else:  # a deeper scope's, as each master counts it
            answers = await gather_all(*asks)
        rows = []
        for answer in answers:
            rows += answer.rows
            stats += answer.stats
        return keywords.Answer(_once(rows), stats, all(answer.complete for answer in answers))

    answer: keywords.Answer = await call(run)
    if unsure := keywords.ambiguous(query):
        answer = await _exact(engine, call, query, unsure, answer)
    # Unscoped, the engine weighs words by the statistics ours uses; in a scope, a word whose
    # matches would fill a quarter of the candidates may crowd out the rest.
    crowd = 0 if scope is None else max(1, window // CROWD_SHARE)
    faint, alone = keywords.common(answer.stats, answer.complete, crowd)
    # The engine reads a name once however often a memory holds it: with more matches than
    # candidates, those holding it most often are asked for too (``name_levels``).
    levels = [] if answer.complete else keywords.name_levels(terms)
    if faint or alone or levels:
        # A term in most documents (or, in a scope, enough to fill a share of the
        # candidates) may weigh far too much in the engine: ask again without such terms,
        # and in a scope by each of them alone (the engine may weigh one far above another
        # that ours weighs more), all in one more round trip, and rescore every ask's
        # candidates (the statistics are the same).
        others = [tuple(i for i in range(len(terms)) if i != own) for own in alone]
        asked = [faint, *others] if faint else others

        async def again_all(client: Any) -> list[keywords.Answer]:
            return list(await gather_all(
                *(run(client, f) for f in asked), *(run(client, (), each) for each in levels)
            ))  # fmt: skip

        agains: list[keywords.Answer] = await call(again_all)
        if unsure:  # each ask's long words counted at once, not one ask after another
            agains = list(
                await gather_all(*(_exact(engine, call, query, unsure, a) for a in agains))
            )
        rows: list[keywords.Row] = []
        seen: set[str] = set()
        for again in agains:
            rows += [row for row in again.rows if row[0] not in seen]
            seen.update(row[0] for row in again.rows)
        rows += [row for row in answer.rows if row[0] not in seen]
        complete = agains[0].complete if faint else answer.complete
        answer = keywords.Answer(rows, answer.stats, complete)
    found = keywords.rescore(answer.rows, answer.stats)
    return top(found[0], limit), found[1]


async def _exact(
    engine: QueryEngine, call: Call, query: Query, unsure: list[int], answer: keywords.Answer
) -> keywords.Answer:
    """The candidates, with the frequency of each query term the engine cannot match exactly
    (``keywords.ambiguous``: long words, which it matched by their first ``MAX_TOKEN``
    characters, so other long words that begin alike were proposed too) counted from each
    memory's own terms. One more round trip, only for such a query, reading the values of the
    candidates the engine counted such a term in (a candidate it did not holds none). A
    candidate left holding no query term is dropped; when every match was a candidate, those
    terms' document frequencies are recounted from them."""
    last = len(query.terms) - 1
    bases = engine.bases
    check = [row for row in answer.rows if any(row[3][i] for i in unsure)]
    if not check:
        return answer
    names = [Layout.value_in(base_among(bases, row[0]), row[0]) for row in check]

    async def run(client: Any) -> list[Any]:
        return await gather_all(*(client.get(name) for name in names))

    payloads: dict[str, Any] = dict(zip((row[0] for row in check), await call(run), strict=True))
    rows = []
    words = dict.fromkeys(unsure, 0)
    for key, seq, length, tfs in answer.rows:
        if key not in payloads:  # the engine counted none of these terms in it
            rows.append((key, seq, length, tfs))
            continue
        payload = payloads[key]
        held = {} if payload is None else engine.indexing.payload_terms(payload)
        exact = list(tfs)
        counted = {}
        for i in unsure:
            exact[i], counted[i] = keywords.exact_tf(
                query.terms[i], held, query.prefix_last and i == last
            )
        if any(exact):
            rows.append((key, seq, length, exact))
            for i, n in counted.items():
                words[i] += n
    stats = answer.stats
    if answer.complete and stats.dfs:
        dfs = list(stats.dfs)
        for i in unsure:
            dfs[i] = words[i]  # (``Term.held``: an unfinished word's completions, each)
        stats = keywords.Stats(stats.docs, stats.length, dfs)
    return keywords.Answer(rows, stats, answer.complete)


async def _rarest(
    engine: QueryEngine, call: Call, query: Query, scope: str | None, base: str | None
) -> Query:
    """A query of more terms than the engine is sent (``MAX_QUERY_TOKENS``), cut to the terms
    in-process BM25 scores (``TermIndex.plan``): the ``MAX_QUERY_TERMS`` rarest of those some
    document in ``scope`` holds, in query order. Sending the first ones instead would miss a
    memory that only a later, rarer word finds. Costs one round trip of counts per server, one
    ``FT.SEARCH`` a term: the analyzer read no more of the question than ``MAX_QUERY_LOOKUPS``
    distinct terms (as in-process, which looks up the same ones), so at most that many."""
    terms = keywords.terms_of(query, len(query.terms))

    async def run(client: Any) -> list[int]:
        shards = _shards_for(engine, client, base)
        parts = await gather_all(*(keywords.counts(client, s, terms, scope) for s in shards))
        return [sum(column) for column in zip(*parts, strict=True)]

    dfs: list[int] = await call(run)
    held = [i for i, df in enumerate(dfs) if df > 0]
    # Rarest first (idf falls as df grows), ties in query order, as ``token_order`` has them.
    kept = sorted(sorted(held, key=lambda i: dfs[i])[:MAX_QUERY_TERMS])
    last = len(query.terms) - 1
    return replace(
        query,
        terms=tuple(query.terms[i] for i in kept),
        prefix_last=query.prefix_last and last in kept,
    )
