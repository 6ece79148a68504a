"""``search(..., filter={field: value})``: applied inside the index, on every backend.

What is promised: a filter keeps the memories whose top-level field holds the value (or a list
there holding it; ``"a.b"`` reaches into object ``a``), every pair, with types apart (``1``,
``True`` and ``"1"`` differ); it narrows the candidates before the top ``limit`` in every mode
(keyword, semantic, hybrid, a blank query's most recent), so 3 matches among 10,000 memories
that score below all the others still come back with ``limit=3``; it combines with a scope; a
bad filter is a typed error; and searching with a filter equals searching without one,
restricted to the matching memories. A Query Engine namespace whose documents predate filters
is rewritten in the background and misses no match meanwhile.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import BACKENDS, REDIS_BACKENDS, namespace
from redis_server import RedisServer
from search_model import MemoryModel
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import InvalidArgumentError, InvalidArgumentTypeError
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._facets import MAX_FACET_CHARS, MAX_FACET_ITEMS, facet
from tta_dev_primitives.search._index import SearchIndex
from tta_dev_primitives.stores._redis.documents import scope_tags
from tta_dev_primitives.stores._redis.layout import DOC, FACT_ENGINE_FORM, Layout

DIMS = 4


def vector(text: str) -> list[float]:
    """ "garden" on the first axis, every other word spread over the rest."""
    v = [0.0] * DIMS
    for word in re.findall(r"\w+", text.lower()):
        v[0 if word == "garden" else 1 + sum(map(ord, word)) % (DIMS - 1)] += 1.0
    return v if any(v) else [0.0, 0.0, 0.0, 1.0]


async def embed(texts: list[str]) -> list[list[float]]:
    return [vector(t) for t in texts]


@pytest.fixture(params=BACKENDS)
async def memory(request: pytest.FixtureRequest) -> AsyncIterator[MemoryPrimitive]:
    """A memory that embeds, on each backend, in a namespace of its own."""
    if request.param == "in_memory":
        mem = MemoryPrimitive(max_size=20_000, embed=embed, dims=DIMS)
    else:
        fixture, engine = REDIS_BACKENDS[request.param]
        server = request.getfixturevalue(fixture)
        mem = MemoryPrimitive(
            server.url, max_size=20_000, namespace=namespace(), embed=embed, dims=DIMS,
            search_engine=engine,  # type: ignore[arg-type]
            redis_timeout=30.0,  # 10,000 memories on a loaded machine: load alone must not fail
        )  # fmt: skip
    yield mem
    await mem.clear()
    await mem.aclose()


async def settled(memory: MemoryPrimitive) -> None:
    """On a Query Engine backend, wait until searches run in the engine (not its replica)."""
    engine = getattr(getattr(memory._store.remote, "index", None), "engine", None)
    if engine is None or engine.mode != "redis":
        return
    await memory.search("", 1)
    await engine.wait_backfill()
    await memory.search("", 1)
    assert memory.get_backend_info()["search_engine"] == "redis"


async def add_all(memory: MemoryPrimitive, items: list[tuple[str, dict[str, Any]]]) -> None:
    for start in range(0, len(items), 500):
        await asyncio.gather(*(memory.add(k, v) for k, v in items[start : start + 500]))


RARE = ["u1:s1:rare0", "u2:s1:rare1", "u3:s2:rare2"]


async def test_three_matches_among_three_thousand_come_back_in_every_mode(
    memory: MemoryPrimitive,
) -> None:
    """The 3 memories a filter keeps rank below 2,997 others in every mode, and ``limit=3``
    still returns exactly them: the filter is applied before the top-k, not after (2,997 is
    well past every candidate pool: the engine's few hundred, HNSW's ef)."""
    rare = [
        (key, {"content": "garden " + "weeds and stones " * 4, "tag": "rare", "n": i})
        for i, key in enumerate(RARE)
    ]  # written first: the oldest, the weakest keyword and semantic matches
    common = [
        (f"u{i % 5}:s{i % 3}:{i}", {"content": "garden garden", "tag": "common", "n": i})
        for i in range(2_997)
    ]
    await add_all(memory, rare + common)
    await settled(memory)
    for mode in ("keyword", "semantic", "hybrid"):
        for query in ("garden", ""):
            unfiltered = await memory.search_items(query, 3, mode=mode)  # type: ignore[arg-type]
            assert not {k for k, _ in unfiltered} & set(RARE), (mode, query)
            found = await memory.search_items(
                query,
                3,
                mode=mode,
                filter={"tag": "rare"},  # type: ignore[arg-type]
            )
            assert sorted(k for k, _ in found) == sorted(RARE), (mode, query)
    both = await memory.search_items("garden", 10, filter={"tag": "rare", "n": 1})
    assert [k for k, _ in both] == ["u2:s1:rare1"]
    assert await memory.search("garden", 3, filter={"tag": "none of them"}) == []


async def test_a_scope_and_a_filter_together_keep_their_intersection(
    memory: MemoryPrimitive,
) -> None:
    """scope + filter: memories of that scope holding that value, in every mode."""
    items = [
        (f"u{u}:s1:{i}", {"content": f"garden note {i}", "role": role})
        for u in (1, 2)
        for i, role in enumerate(["user", "assistant", "user", "tool"])
    ]
    await add_all(memory, items)
    await settled(memory)
    for mode in ("keyword", "semantic", "hybrid"):
        for query in ("garden", ""):
            found = await memory.search_items(
                query,
                10,
                scope="u2",
                mode=mode,
                filter={"role": "user"},  # type: ignore[arg-type]
            )
            assert sorted(k for k, _ in found) == ["u2:s1:0", "u2:s1:2"], (mode, query)


async def test_lists_nested_fields_and_types_match_as_documented(memory: MemoryPrimitive) -> None:
    """A list field matches each item, ``a.b`` reaches into an object, and 1, True, "1" and
    1.0 compare by type (1 and 1.0 are one number); updates and deletes leave the filter."""
    await memory.add(
        "u1:a", {"content": "x", "tags": ["work", "home"], "n": 1, "meta": {"lang": "en"}}
    )
    await memory.add("u1:b", {"content": "x", "tags": "work", "n": True, "none": None})
    await memory.add("u1:c", {"content": "x", "n": "1", "n.m": 2.5})
    await settled(memory)

    async def keys(**pairs: Any) -> list[str]:
        return sorted(k for k, _ in await memory.search_items("", 10, filter=pairs))

    assert await keys(tags="work") == ["u1:a", "u1:b"]
    assert await keys(tags="home") == ["u1:a"]
    assert await keys(n=1) == await keys(n=1.0) == ["u1:a"]
    assert await keys(n=True) == ["u1:b"]
    assert await keys(n="1") == ["u1:c"]
    assert await keys(none=None) == ["u1:b"]
    assert await keys(**{"meta.lang": "en"}) == ["u1:a"]
    assert await keys(**{"n.m": 2.5}) == ["u1:c"]
    assert await keys(tags="work", n=True) == ["u1:b"]
    await memory.add("u1:a", {"content": "x", "tags": ["play"]})
    await memory.delete("u1:b")
    assert await keys(tags="work") == []
    assert await keys(tags="play") == ["u1:a"]


async def test_numpy_floats_match_the_numbers_they_are(memory: MemoryPrimitive) -> None:
    """numpy's float64 is a float, so a value may hold one (stored as the JSON number), and a
    filter may name one: both match by number on every backend. The facet was spelled from its
    repr, "np.float64(1.5)", so where the index reads the caller's value (in-process, the Query
    Engine) a filter on 1.5 found nothing, and a filter on np.float64(1.5) found nothing
    anywhere."""
    value = {"content": "x", "n": np.float64(1.5), "tags": [np.float64(0.25)]}
    await memory.add("u1:a", {**value, "meta": {"w": np.float64(3.5)}})
    await memory.add("u1:b", {"content": "x", "n": 2.5})
    await settled(memory)

    async def keys(**pairs: Any) -> list[str]:
        return sorted(k for k, _ in await memory.search_items("", 10, filter=pairs))

    assert await keys(n=1.5) == await keys(n=np.float64(1.5)) == ["u1:a"]
    assert await keys(tags=0.25) == await keys(**{"meta.w": 3.5}) == ["u1:a"]
    assert await keys(n=np.float64(2.5)) == ["u1:b"]


async def test_long_strings_and_long_lists_are_not_filter_values() -> None:
    """Strings up to MAX_FACET_CHARS and lists up to MAX_FACET_ITEMS match; a longer string in
    a filter is refused (it is text: search its words), a longer list's items are not indexed."""
    memory = MemoryPrimitive()
    edge = "x" * MAX_FACET_CHARS
    await memory.add("u1:a", {"content": "garden", "code": edge, "tags": ["t"] * MAX_FACET_ITEMS})
    await memory.add("u1:b", {"content": "garden", "tags": [f"t{i}" for i in range(65)]})
    assert [k for k, _ in await memory.search_items("", 5, filter={"code": edge})] == ["u1:a"]
    assert [k for k, _ in await memory.search_items("", 5, filter={"tags": "t"})] == ["u1:a"]
    assert await memory.search("", filter={"tags": "t0"}) == []  # 65 items: not indexed
    with pytest.raises(InvalidArgumentError, match=f"up to {MAX_FACET_CHARS}"):
        await memory.search("garden", filter={"code": edge + "x"})
    await memory.aclose()


@pytest.mark.parametrize(
    ("bad", "error", "named"),
    [
        ([("role", "user")], InvalidArgumentTypeError, "mapping"),
        ({1: "user"}, InvalidArgumentTypeError, "field names must be str"),
        ({"tags": ["a"]}, InvalidArgumentTypeError, "filter\\['tags'\\]"),
        ({"meta": {"lang": "en"}}, InvalidArgumentTypeError, "filter\\['meta'\\]"),
        ({"n": math.nan}, InvalidArgumentError, "finite"),
        ({"n": object()}, InvalidArgumentTypeError, "got object"),
    ],
)
async def test_a_bad_filter_is_a_typed_error_naming_it(bad: Any, error: type, named: str) -> None:
    """Not a mapping, a non-str field, a nested or unhashable value, NaN: each a typed error."""
    memory = MemoryPrimitive()
    await memory.add("u1:a", {"content": "garden"})
    for search in (memory.search, memory.search_items, memory.search_scored):
        with pytest.raises(error, match=named):
            await search("garden", filter=bad)
    await memory.aclose()


# -- the law, against the model -------------------------------------------------------------------

WORDS = ["garden", "gate", "rose", "stone", "weed"]
KEYS = ["u1:s1:a", "u1:s1:b", "u1:s2:c", "u2:s1:d", "u2:s1:e", "plain", "u1:s1"]
SCALARS = st.sampled_from(["a", "b", "1", 1, 1.0, 2, True, False, None])
values = st.fixed_dictionaries(
    {"content": st.lists(st.sampled_from(WORDS), max_size=4).map(" ".join)},
    optional={
        "tag": SCALARS,
        "tags": st.lists(SCALARS, max_size=3),
        "meta": st.fixed_dictionaries({}, optional={"tag": SCALARS}),
    },
)
filters = st.dictionaries(st.sampled_from(["tag", "tags", "meta.tag", "content"]), SCALARS,
                          max_size=2)  # fmt: skip


def same(a: Any, b: Any) -> bool:
    """Equal as JSON values of one type (a bool is not a number)."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return bool(a == b)


def holds(value: dict[str, Any], field: str, wanted: Any) -> bool:
    """The model of one pair: the field (or the dotted field of an object) holds the value."""
    found = []
    if field in value:
        found.append(value[field])
    outer, _, inner = field.partition(".")
    if inner and isinstance(value.get(outer), dict) and inner in value[outer]:
        found.append(value[outer][inner])
    return any(any(same(x, wanted) for x in (v if isinstance(v, list) else [v])) for v in found)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    writes=st.lists(st.tuples(st.sampled_from(KEYS), values), min_size=1, max_size=12),
    query=st.sampled_from(["", "garden", "ga", "rose stone", "weed gate"]),
    scope=st.sampled_from([None, "u1", "u1:s1", "u2"]),
    pairs=filters,
    limit=st.integers(1, 6),
)
def test_a_filtered_search_is_the_unfiltered_one_restricted_to_matches(
    writes: list[tuple[str, dict[str, Any]]],
    query: str,
    scope: str | None,
    pairs: dict[str, Any],
    limit: int,
) -> None:
    """Keyword search with a filter returns the unfiltered ranking (the model's) restricted to
    the memories the filter keeps, cut at ``limit``: scores are the scope's, not the filter's."""
    model = MemoryModel(max_size=100)

    async def run() -> list[dict[str, Any]]:
        memory = MemoryPrimitive(max_size=100)
        for key, value in writes:
            await memory.add(key, value)
            model.add(key, value, None)
        found = await memory.search(query, limit, scope=scope, filter=pairs)
        await memory.aclose()
        return found

    found = asyncio.run(run())
    ranked = model.search(query, 1_000, scope)
    assert found == [v for v in ranked if all(holds(v, f, w) for f, w in pairs.items())][:limit]


# -- the vector index's graph under a filter ------------------------------------------------------


def test_a_filter_through_the_vector_graph_returns_its_exact_best() -> None:
    """With the HNSW graph in use, a filter keeping 300 of 3,000 vectors (all far from the
    question) still returns its best 10, exactly as a brute-force scan ranks them."""
    pytest.importorskip("usearch")
    rng = np.random.default_rng(7)
    index = SearchIndex(ann_threshold=256)
    q = np.ones(16, dtype=np.float32) / 4.0
    kept: dict[str, Any] = {}
    for i in range(3_000):
        v = rng.normal(size=16).astype(np.float32)
        v /= np.linalg.norm(v)
        if i % 10 == 0:
            v = -np.abs(v)  # the filter's members point away from the question
        key = f"u1:{i}"
        terms = {"garden": 1, **({str(facet("tag", "far")): 1} if i % 10 == 0 else {})}
        index.add(key, terms, vector=v)
        if i % 10 == 0:
            kept[key] = v
    query = Query(("garden",), vector=q, mode="semantic", filter=(str(facet("tag", "far")),))
    found = index.search_scored(query, 10)
    best = sorted(kept, key=lambda k: -float(kept[k] @ q))[:10]
    assert [k for k, _ in found] == best


# -- a Query Engine namespace written before filters ----------------------------------------------


@pytest.mark.redis
async def test_engine_documents_written_before_filters_are_rewritten_and_none_is_missed(
    redis_query_engine: RedisServer,
) -> None:
    """Documents in the old form (no facet tags, no ``ftform`` fact) are found by a filtered
    search at once (by the replica) and, after the background rewrite, by the engine."""
    ns = namespace()
    first = MemoryPrimitive(redis_query_engine.url, namespace=ns, search_engine="redis")
    items = [(f"u{i % 3}:s1:{i}", {"content": "garden note", "tag": "a" if i % 4 else "b"})
             for i in range(400)]  # fmt: skip
    await add_all(first, items)
    await settled(first)
    remote: Any = first._store.remote
    layout: Layout = remote.layout

    async def old_form(client: Any) -> None:  # as a version before filters wrote them
        for key, _ in items:
            await client.hset(layout.base(key) + DOC + key, "s", scope_tags(key))
        for base in layout.bases:
            await client.hdel(Layout.facts(base), FACT_ENGINE_FORM)

    await remote.connection.call(old_form)
    assert await first.search("garden", 500, filter={"tag": "b"}) == []  # the old form, seen

    later = MemoryPrimitive(redis_query_engine.url, namespace=ns, search_engine="redis")
    wanted = sorted(k for k, v in items if v["tag"] == "b")
    found = await later.search_items("garden", 500, filter={"tag": "b"})
    assert sorted(k for k, _ in found) == wanted  # complete, whichever engine answered
    await settled(later)
    found = await later.search_items("garden", 500, filter={"tag": "b"})
    assert sorted(k for k, _ in found) == wanted
    await first.clear()
    for m in (first, later):
        await m.aclose()


# -- the LangGraph store --------------------------------------------------------------------------


async def test_the_langgraph_store_asks_the_index_for_equality_filters() -> None:
    """An equality filter reaches the memory's index: the store asks for ``limit`` items once
    and gets the 3 rare ones among 300; an operator beside it is still checked per item."""
    from tta_dev_primitives.integrations.langgraph import MemoryPrimitiveStore

    memory = MemoryPrimitive(max_size=1_000)
    store = MemoryPrimitiveStore(memory)
    for i in range(300):
        role = "user" if i < 3 else "assistant"
        await store.aput(("chat", "u1"), f"t{i}", {"role": role, "text": "garden", "n": i})
    asked: list[int] = []
    search = memory.search

    async def counted(*args: Any, **options: Any) -> list[dict[str, Any]]:
        asked.append(options["limit"])
        return await search(*args, **options)

    memory.search = counted  # type: ignore[method-assign]
    found = await store.asearch(("chat",), query="garden", filter={"role": "user"}, limit=3)
    assert sorted(item.key for item in found) == ["t0", "t1", "t2"]
    assert asked == [3]
    found = await store.asearch(("chat",), filter={"role": "user", "n": {"$gt": 0}}, limit=3)
    assert sorted(item.key for item in found) == ["t1", "t2"]
    found = await store.asearch(("chat",), filter={"n": True}, limit=3)  # LangGraph: True == 1
    assert [item.key for item in found] == ["t1"]
    await memory.aclose()
