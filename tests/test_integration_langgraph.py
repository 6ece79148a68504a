"""MemoryPrimitiveStore against LangGraph: its BaseStore API, a compiled graph, its reference store.

Runs on every backend of the behaviour suite and through a Redis outage.
"""

from __future__ import annotations

import asyncio
import json
import math
from datetime import datetime
from typing import Any, TypedDict
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import GetOp, InvalidNamespaceError, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore

from conftest import eventually, every_store_loses
from langgraph_embed_test_utils import CharacterEmbeddings
from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import (
    EmbeddingError,
    InvalidArgumentError,
    InvalidMemoryValueError,
)
from tta_dev_primitives.integrations.langgraph import MemoryPrimitiveStore


@pytest.fixture
def store(memory: MemoryPrimitive) -> MemoryPrimitiveStore:
    return MemoryPrimitiveStore(memory)


async def test_numpy_numbers_are_numbers_for_the_integrations(
    store: MemoryPrimitiveStore,
) -> None:
    """A ttl, a limit or a cap computed with numpy is the number it is: the store's ttl, the
    checkpointer's ``list`` limit, the chat history's ``max_messages`` and ``ttl``."""
    import numpy as np

    from tta_dev_primitives.integrations.langchain import MemoryChatMessageHistory
    from tta_dev_primitives.integrations.langgraph_checkpoint import MemoryCheckpointSaver

    await store.aput(("a",), "k", {"v": 1}, ttl=np.int64(5))
    item = await store.aget(("a",), "k")
    assert item is not None
    assert item.value == {"v": 1}
    saver = MemoryCheckpointSaver.from_url(None)
    thread = {"configurable": {"thread_id": "t"}}
    assert [t async for t in saver.alist(thread, limit=np.int64(2))] == []  # type: ignore[arg-type]
    history = MemoryChatMessageHistory(
        store.memory, "u1:s1", max_messages=np.int64(2), ttl=np.float32(60)
    )
    assert history.max_messages == 2
    await saver.aclose()


async def test_put_get_update_delete(store: MemoryPrimitiveStore) -> None:
    await store.aput(("users", "u1"), "prefs", {"food": "pizza"})
    first = await store.aget(("users", "u1"), "prefs")
    assert first is not None
    assert (first.namespace, first.key, first.value) == (
        ("users", "u1"),
        "prefs",
        {"food": "pizza"},
    )
    assert isinstance(first.created_at, datetime)
    assert first.created_at.tzinfo is not None
    await asyncio.sleep(0.01)
    await store.aput(("users", "u1"), "prefs", {"food": "sushi"})
    second = await store.aget(("users", "u1"), "prefs")
    assert second is not None
    assert second.value == {"food": "sushi"}
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at
    await store.adelete(("users", "u1"), "prefs")
    assert await store.aget(("users", "u1"), "prefs") is None
    assert await store.aget(("users", "nobody"), "prefs") is None


async def test_items_are_memories_under_the_namespace_path(store: MemoryPrimitiveStore) -> None:
    await store.aput(("users", "u1"), "pet", {"text": "a dog called Rex"})
    found = await store.memory.search("dog", scope="users:u1")
    assert [r["value"] for r in found] == [{"text": "a dog called Rex"}]
    assert await store.memory.get("users:u1:pet") is not None


async def test_colons_in_labels_cannot_alias_another_namespace(store: MemoryPrimitiveStore) -> None:
    await store.aput(("a:b",), "k", {"v": 1})
    await store.aput(("a", "b"), "k", {"v": 2})
    await store.aput(("a%3Ab",), "k", {"v": 3})
    assert (await store.aget(("a:b",), "k")).value == {"v": 1}  # type: ignore[union-attr]
    assert (await store.aget(("a", "b"), "k")).value == {"v": 2}  # type: ignore[union-attr]
    assert (await store.aget(("a%3Ab",), "k")).value == {"v": 3}  # type: ignore[union-attr]
    assert [i.value for i in await store.asearch(("a",))] == [{"v": 2}]
    assert await store.alist_namespaces() == [("a", "b"), ("a%3Ab",), ("a:b",)]


async def test_search_ranks_by_query_within_the_prefix(store: MemoryPrimitiveStore) -> None:
    await store.aput(("users", "u1"), "a", {"text": "pizza with olives"})
    await store.aput(("users", "u1"), "b", {"text": "olives"})
    await store.aput(("users", "u1"), "c", {"text": "the weather"})
    await store.aput(("users", "u10"), "a", {"text": "olives olives"})
    found = await store.asearch(("users", "u1"), query="olives pizza")
    assert [i.key for i in found] == ["a", "b"]
    assert all(i.namespace == ("users", "u1") for i in found)
    assert len(await store.asearch(("users",), query="olives")) == 3


async def test_search_filters_and_pages(store: MemoryPrimitiveStore) -> None:
    for n in range(10):
        await store.aput(("docs",), f"d{n}", {"n": n, "kind": "even" if n % 2 == 0 else "odd"})
    await store.memory.add("docs:not-an-item", {"n": 4, "kind": "even"})  # not the store's
    newest_first = [i.key for i in await store.asearch(("docs",), limit=20)]
    assert newest_first == [f"d{n}" for n in reversed(range(10))]
    even = await store.asearch(("docs",), filter={"kind": "even"}, limit=20)
    assert sorted(i.value["n"] for i in even) == [0, 2, 4, 6, 8]
    big = await store.asearch(("docs",), filter={"n": {"$gte": 7}, "kind": {"$ne": "odd"}})
    assert [i.key for i in big] == ["d8"]
    page = await store.asearch(("docs",), filter={"kind": "odd"}, limit=2, offset=1)
    assert [i.key for i in page] == ["d7", "d5"]
    assert await store.asearch(("docs",), filter={"n": {"$gt": "x"}}) == []


async def test_a_filter_on_a_long_string_compares_it(store: MemoryPrimitiveStore) -> None:
    """A filter naming a string longer than the memory's index keeps for filters (a title, a
    URL) matches as in LangGraph's stores, rather than raise the index's InvalidArgumentError."""
    title = "How to configure the Redis Query Engine for a multi-tenant agent memory"
    await store.aput(("docs",), "a", {"title": title})
    await store.aput(("docs",), "b", {"title": title + "!"})
    found = await store.asearch(("docs",), filter={"title": title})
    assert [item.key for item in found] == ["a"]


async def test_a_filter_on_an_int_past_a_float_s_range_compares_it(
    store: MemoryPrimitiveStore,
) -> None:
    """An int filter value too large for a float (an id, a hash as a number) matches as in
    LangGraph's stores: it raised OverflowError from ``math.isfinite`` before any search."""
    big = 10**400
    await store.aput(("docs",), "a", {"n": big})
    await store.aput(("docs",), "b", {"n": big + 1})
    assert [item.key for item in await store.asearch(("docs",), filter={"n": big})] == ["a"]


async def test_a_bad_filter_operator_is_named(store: MemoryPrimitiveStore) -> None:
    await store.aput(("docs",), "d", {"n": 1})
    with pytest.raises(ValueError, match=r"unsupported filter operator '\$near'"):
        await store.asearch(("docs",), filter={"n": {"$near": 1}})


async def test_list_namespaces_with_conditions(store: MemoryPrimitiveStore) -> None:
    for ns in [("users", "u1", "prefs"), ("users", "u2", "prefs"), ("users", "u2", "notes")]:
        await store.aput(ns, "k", {"v": 1})
    await store.aput(("docs", "public"), "k", {"v": 1})
    everything = await store.alist_namespaces()
    assert everything == [
        ("docs", "public"),
        ("users", "u1", "prefs"),
        ("users", "u2", "notes"),
        ("users", "u2", "prefs"),
    ]
    assert await store.alist_namespaces(prefix=("users",), max_depth=2) == [
        ("users", "u1"),
        ("users", "u2"),
    ]
    assert await store.alist_namespaces(suffix=("prefs",)) == [
        ("users", "u1", "prefs"),
        ("users", "u2", "prefs"),
    ]
    assert await store.alist_namespaces(prefix=("users", "*", "notes")) == [
        ("users", "u2", "notes")
    ]
    assert await store.alist_namespaces(limit=2, offset=1) == everything[1:3]


async def test_items_expire_after_their_ttl_in_minutes(store: MemoryPrimitiveStore) -> None:
    await store.aput(("tmp",), "k", {"v": 1}, ttl=0.02)  # 1.2 s: time to read it once
    assert await store.aget(("tmp",), "k", refresh_ttl=False) is not None

    async def gone() -> bool:
        return await store.aget(("tmp",), "k", refresh_ttl=False) is None

    await eventually(gone, within=10)


async def test_reading_refreshes_the_ttl(store: MemoryPrimitiveStore) -> None:
    await store.aput(("tmp",), "k", {"v": 1}, ttl=0.03)  # 1.8 s
    for _ in range(5):  # 2.5 s of reads, each restarting the clock; 1.3 s of slack per gap
        await asyncio.sleep(0.5)
        assert await store.aget(("tmp",), "k") is not None


async def test_a_default_ttl_comes_from_the_config(memory: MemoryPrimitive) -> None:
    store = MemoryPrimitiveStore(memory, ttl={"default_ttl": 0.005, "refresh_on_read": False})
    await store.aput(("tmp",), "k", {"v": 1})
    record = await memory.get("tmp:k")
    assert record is not None
    assert record["ttl"] == 0.005

    async def gone() -> bool:
        return await store.aget(("tmp",), "k") is None

    await eventually(gone, within=10)


@pytest.mark.parametrize(
    ("namespace", "key", "value", "error", "match"),
    [
        (("a.b",), "k", {"v": 1}, InvalidNamespaceError, "without '.'"),
        ((), "k", {"v": 1}, InvalidNamespaceError, "must not be empty"),
        (("a", ""), "k", {"v": 1}, InvalidNamespaceError, "non-empty"),
        (("a",), 5, {"v": 1}, TypeError, "item keys"),
        (("a",), "k", ["not", "a", "dict"], TypeError, "values must be dict"),
        (("a",), "k", {"v": float("nan")}, InvalidMemoryValueError, r"value\['v'\] is nan"),
        (("a",), "k", {"v": {1, 2}}, InvalidMemoryValueError, "set"),
    ],
)
async def test_bad_puts_are_named_and_store_nothing(
    store: MemoryPrimitiveStore,
    namespace: tuple[str, ...],
    key: str,
    value: Any,
    error: type,
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        await store.abatch([PutOp(namespace, key, value)])
    assert await store.memory.size() == 0


async def test_an_empty_item_key_is_a_key_as_in_langgraph_s_stores(
    store: MemoryPrimitiveStore,
) -> None:
    """LangGraph's InMemoryStore takes ``""`` as an item key; so does this one, apart from every
    other key ("%" included)."""
    await store.aput(("a",), "", {"text": "empty key"})
    await store.aput(("a",), "%", {"text": "percent key"})
    empty, percent = await store.aget(("a",), ""), await store.aget(("a",), "%")
    assert empty is not None
    assert (empty.key, empty.value) == ("", {"text": "empty key"})
    assert percent is not None
    assert percent.value == {"text": "percent key"}
    found = await store.asearch(("a",), query="key")
    assert sorted(item.key for item in found) == ["", "%"]
    await store.adelete(("a",), "")
    assert await store.aget(("a",), "") is None
    assert await store.aget(("a",), "%") is not None


async def test_a_bad_ttl_is_named(store: MemoryPrimitiveStore) -> None:
    """A number past the largest float (10**400 minutes) is refused as out of range, not an
    OverflowError from ``math.isfinite``."""
    from fractions import Fraction

    for ttl in (-1, 0, float("inf"), "5", 10**400, Fraction(10**400, 3), -(10**5000)):
        with pytest.raises(InvalidArgumentError, match="ttl"):
            await store.abatch([PutOp(("a",), "k", {"v": 1}, ttl=ttl)])  # type: ignore[arg-type]
    assert await store.memory.size() == 0


async def test_a_batch_runs_in_order(store: MemoryPrimitiveStore) -> None:
    results = await store.abatch(
        [
            PutOp(("a",), "k", {"v": 1}),
            GetOp(("a",), "k"),
            PutOp(("a",), "k", None),
            GetOp(("a",), "k"),
            SearchOp(("a",)),
        ]
    )
    assert results[0] is None
    assert results[1].value == {"v": 1}  # type: ignore[union-attr]
    assert results[2:] == [None, None, []]


def test_the_sync_api_works_outside_a_loop() -> None:
    store = MemoryPrimitiveStore(MemoryPrimitive())
    store.put(("a",), "k", {"text": "hello"})
    assert store.get(("a",), "k").value == {"text": "hello"}  # type: ignore[union-attr]
    assert [i.key for i in store.search(("a",), query="hello")] == ["k"]
    assert store.list_namespaces() == [("a",)]


# -- sync calls inside a running loop, and list prefixes, as LangGraph's own store tests make them.
# Modelled on langchain-ai/langgraph: libs/checkpoint/tests/test_store.py
# (test_cannot_put_empty_namespace, an async test calling put/get/batch/search/delete) and
# libs/checkpoint-postgres/tests/test_store.py (test_search, which searches with list prefixes).
# In-process and on Redis: a sync call runs on the portal's loop, an async one on the test's, and
# the memory keeps one Redis client per loop, all closed by aclose() (issue 12, item 14).


@pytest.fixture(params=["in_memory", pytest.param("redis", marks=pytest.mark.redis)])
async def sync_memory(request: pytest.FixtureRequest) -> Any:
    """A memory for sync-in-loop tests, in-process or on the session Redis; closed after."""
    if request.param == "in_memory":
        memory = MemoryPrimitive()
    else:
        server = request.getfixturevalue("redis_server")
        memory = MemoryPrimitive(server.url, namespace=f"test:{uuid4().hex[:12]}")
    yield memory
    await memory.clear()
    await memory.aclose()


@pytest.fixture
def both_stores(sync_memory: MemoryPrimitive) -> tuple[InMemoryStore, MemoryPrimitiveStore]:
    return InMemoryStore(), MemoryPrimitiveStore(sync_memory)


def summary(item: Any) -> Any:
    return item and (item.namespace, item.key, item.value)


async def test_sync_put_inside_a_running_loop(both_stores: Any) -> None:
    """A sync put (and delete) from an async test works, as with InMemoryStore."""
    doc = {"foo": "bar"}
    for store in both_stores:
        store.put(("foo", "langgraph", "foo"), "bar", doc)
        assert (await store.aget(("foo", "langgraph", "foo"), "bar")).value == doc  # type: ignore[union-attr]
        with pytest.raises(InvalidNamespaceError):
            store.put(("the", "thing.about"), "foo", doc)
        store.delete(("foo", "langgraph", "foo"), "bar")
        assert await store.aget(("foo", "langgraph", "foo"), "bar") is None


async def test_sync_batch_inside_a_running_loop(both_stores: Any) -> None:
    """Sync batches past the public put API answer as InMemoryStore's do.

    (InMemoryStore applies a batch's puts after its reads, so each batch here is reads or writes.)
    """
    doc = {"foo": "bar"}
    batches: list[list[Any]] = [
        [PutOp(("langgraph", "foo"), "bar", doc), PutOp(("other",), "k", {"n": 1})],
        [GetOp(("langgraph", "foo"), "bar"), SearchOp(("langgraph",)), GetOp(("other",), "x")],
        [PutOp(("langgraph", "foo"), "bar", None)],
        [GetOp(("langgraph", "foo"), "bar"), SearchOp(("langgraph",))],
    ]

    def summaries(results: list[Any]) -> list[Any]:
        return [[summary(i) for i in r] if isinstance(r, list) else summary(r) for r in results]

    reference, ours = both_stores
    answers = [summaries(ours.batch(ops)) for ops in batches]
    assert answers == [summaries(reference.batch(ops)) for ops in batches]
    assert answers[1][0] == (("langgraph", "foo"), "bar", doc)


async def test_sync_get_and_search_inside_a_running_loop(both_stores: Any) -> None:
    """Sync get and search, after async puts, see the same items as InMemoryStore's."""
    reference, ours = both_stores
    for store in (reference, ours):
        await store.aput(("users", "u1"), "prefs", {"text": "pizza with olives"})
    assert summary(ours.get(("users", "u1"), "prefs")) == summary(
        reference.get(("users", "u1"), "prefs")
    )
    assert ours.get(("users", "u1"), "absent") is reference.get(("users", "u1"), "absent") is None
    assert [summary(i) for i in ours.search(("users",))] == [
        summary(i) for i in reference.search(("users",))
    ]
    assert [summary(i) for i in ours.search(["users"])] == [  # type: ignore[arg-type]
        summary(i) for i in reference.search(("users",))
    ]


async def test_a_list_prefix_searches_like_the_tuple(memory: MemoryPrimitive) -> None:
    """search(["test"]) finds what search(("test",)) finds, filters and pages included.

    InMemoryStore answers the tuple spelling; with a list it compares a tuple to a list and
    finds nothing, while LangGraph's Postgres and SQLite stores find the items: we do too.
    """
    reference, ours = InMemoryStore(), MemoryPrimitiveStore(memory)
    data = [
        (("test", "docs"), "doc1", {"title": "First Doc", "author": "Alice"}),
        (("test", "docs"), "doc2", {"title": "Second Doc", "author": "Bob"}),
        (("test", "images"), "img1", {"title": "Image 1", "author": "Alice"}),
    ]
    for namespace, key, value in data:
        reference.put(namespace, key, value)
        await ours.aput(namespace, key, value)

    def keys(items: list[Any]) -> list[tuple[tuple[str, ...], str]]:
        return sorted((i.namespace, i.key) for i in items)

    for prefix, options in [
        (["test"], {}),
        (["test", "docs"], {}),
        (["test"], {"filter": {"author": "Alice"}}),
    ]:
        expected = keys(reference.search(tuple(prefix), **options))
        assert keys(await ours.asearch(prefix, **options)) == expected  # type: ignore[arg-type]
    assert len(await ours.asearch(["test"], limit=2)) == 2  # type: ignore[arg-type]
    assert len(await ours.asearch(["test"], offset=2)) == 1  # type: ignore[arg-type]


async def test_a_sync_call_from_the_portal_loop_itself_says_what_to_await() -> None:
    """The one case that cannot work (it would wait for itself) raises, naming the async method."""
    from tta_dev_primitives.integrations._portal import run_sync

    store = MemoryPrimitiveStore(MemoryPrimitive())

    async def nested() -> None:
        store.put(("a",), "k", {"v": 1})

    with pytest.raises(RuntimeError, match="await abatch"):
        run_sync(nested(), instead="nested()", in_loop=True)
    assert await store.aget(("a",), "k") is None


def test_only_a_memory_primitive_backs_the_store() -> None:
    with pytest.raises(TypeError, match="MemoryPrimitive"):
        MemoryPrimitiveStore({})  # type: ignore[arg-type]


# -- in a compiled graph -----------------------------------------------------------------------


class State(TypedDict):
    user: str
    message: str
    reply: str


async def remember_and_recall(state: State, runtime: Runtime[None]) -> dict[str, str]:
    assert runtime.store is not None
    namespace = ("memories", state["user"])
    await runtime.store.aput(namespace, str(uuid4()), {"text": state["message"]})
    found = await runtime.store.asearch(namespace, query="pizza")
    return {"reply": f"{len(found)} about pizza"}


def graph_builder() -> StateGraph[State, None, State, State]:
    builder = StateGraph(State)
    builder.add_node("remember_and_recall", remember_and_recall)
    builder.add_edge(START, "remember_and_recall")
    builder.add_edge("remember_and_recall", END)
    return builder


async def test_a_compiled_graph_stores_and_searches(memory: MemoryPrimitive) -> None:
    graph = graph_builder().compile(store=MemoryPrimitiveStore(memory))
    replies = []
    for message in ["I love pizza", "the weather", "pizza again"]:
        out = await graph.ainvoke({"user": "u1", "message": message, "reply": ""})
        replies.append(out["reply"])
    assert replies == ["1 about pizza", "1 about pizza", "2 about pizza"]
    assert len(await memory.search("weather", scope="memories:u1")) == 1


# -- the same answers as LangGraph's own InMemoryStore -------------------------------------------

labels = st.sampled_from(["a", "b", "c:d"])
namespaces = st.lists(labels, min_size=1, max_size=3).map(tuple)
values = st.fixed_dictionaries({"n": st.integers(0, 5), "s": st.sampled_from(["x", "y"])})
puts = st.tuples(namespaces, st.sampled_from(["k1", "k2"]), st.one_of(st.none(), values))
filters = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"s": st.sampled_from(["x", "y"])}),
    st.builds(
        lambda op, n: {"n": {op: n}},
        st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]),
        st.integers(0, 5),
    ),
)


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(puts, max_size=25), prefix=st.lists(labels, max_size=2).map(tuple), filt=filters
)
def test_answers_match_langgraphs_reference_store(
    ops: list[tuple[tuple[str, ...], str, dict[str, Any] | None]],
    prefix: tuple[str, ...],
    filt: dict[str, Any],
) -> None:
    """Law: after the same puts and deletes, gets, filtered searches and namespaces agree."""
    reference = InMemoryStore()
    ours = MemoryPrimitiveStore(MemoryPrimitive(max_size=10_000))

    async def run() -> None:
        for namespace, key, value in ops:
            if value is None:
                reference.delete(namespace, key)
                await ours.adelete(namespace, key)
            else:
                reference.put(namespace, key, value)
                await ours.aput(namespace, key, value)
        for namespace, key, _ in ops:
            expected, got = reference.get(namespace, key), await ours.aget(namespace, key)
            assert (got and got.value) == (expected and expected.value)
        expected_found = reference.search(prefix, filter=filt, limit=100)
        found = await ours.asearch(prefix, filter=filt, limit=100)
        assert sorted((i.namespace, i.key) for i in found) == sorted(
            (i.namespace, i.key) for i in expected_found
        )
        # The reference lists a namespace after its last item is deleted; we list live ones.
        live = {i.namespace for i in reference.search((), limit=1000)}
        assert await ours.alist_namespaces(limit=1000) == sorted(live)

    asyncio.run(run())


# -- through a Redis outage ----------------------------------------------------------------------


@pytest.mark.redis
async def test_the_store_survives_redis_dying_and_lands_in_redis_after(
    redis_server_factory: Any,
) -> None:
    server: RedisServer = redis_server_factory(appendonly=True)
    ns = f"test:{uuid4().hex[:12]}"
    options: dict[str, Any] = {
        "namespace": ns,
        "redis_timeout": 0.5,
        "recovery_interval": 0.05,
        "max_recovery_interval": 0.2,
    }
    async with MemoryPrimitive(server.url, **options) as memory:
        store = MemoryPrimitiveStore(memory)
        await store.aput(("users", "u1"), "before", {"text": "written to redis"})
        assert memory.using_redis
        server.kill()
        await store.aput(("users", "u1"), "during", {"text": "written during the outage"})
        assert not memory.using_redis
        found = await store.asearch(("users",), query="written")
        assert sorted(i.key for i in found) == ["before", "during"]
        server.start()

        async def replayed() -> bool:
            return await memory.flush() and memory.using_redis

        await eventually(replayed, within=15)
    async with MemoryPrimitive(server.url, namespace=ns) as reader:
        found = await MemoryPrimitiveStore(reader).asearch(("users", "u1"), query="written")
        assert sorted(i.key for i in found) == ["before", "during"]


# -- semantic search with LangGraph's index= -----------------------------------------------------
# LangGraph's own index tests run in test_langgraph_index_conformance.py; these pin what they
# leave open: which text an item's vector is of, items without one, TTL refreshes, the config.


@pytest.fixture(params=["in_memory", pytest.param("redis", marks=pytest.mark.redis)])
async def indexed(request: pytest.FixtureRequest) -> Any:
    """Builds a store with ``index=`` (fake character embeddings, 64 dims); closed after."""
    url = None if request.param == "in_memory" else request.getfixturevalue("redis_server").url
    made: list[MemoryPrimitiveStore] = []

    def make(fields: list[str] | None = None, **options: Any) -> MemoryPrimitiveStore:
        index: Any = {"dims": 64, "embed": CharacterEmbeddings(dims=64), "fields": fields}
        store = MemoryPrimitiveStore.from_url(
            url, index=index, namespace=f"test:{uuid4().hex[:12]}", **options
        )
        made.append(store)
        return store

    yield make
    for store in made:
        await store.memory.clear()
        await store.memory.aclose()


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


async def test_fields_choose_the_text_an_item_is_embedded_by(indexed: Any) -> None:
    """Each text at a ``fields`` path gets a vector; the item scores by its best, as upstream."""
    store = indexed(["title", "meta.tags[0]", "sections[*].text", "missing"])
    value = {
        "title": "Lisbon",
        "meta": {"tags": ["travel", "family"]},
        "sections": [{"text": "Ana lives there"}, {"text": "since 2019"}],
        "ignored": "not embedded",
    }
    await store.aput(("docs",), "d", value)
    for text in ("Lisbon", "travel", "Ana lives there", "since 2019"):
        [hit] = await store.asearch(("docs",), query=text)
        assert hit.score == pytest.approx(1.0), text
    for text in ("not embedded", "family"):
        [hit] = await store.asearch(("docs",), query=text)
        assert hit.score < 0.999, text


async def test_by_default_the_whole_value_is_embedded_as_langgraph_reads_it(indexed: Any) -> None:
    """``"$"`` (the default field) is the value as LangGraph's sorted JSON."""
    store = indexed()
    value = {"b": "beta", "a": ["alpha", 1]}
    await store.aput(("docs",), "d", value)
    [hit] = await store.asearch(("docs",), query=json.dumps(value, sort_keys=True))
    assert hit.score == pytest.approx(1.0)


async def test_single_path_scores_are_langgraphs(indexed: Any) -> None:
    """With one text per item, scores and order are InMemoryStore's (same embedder, cosine)."""
    embed = CharacterEmbeddings(dims=64)
    reference = InMemoryStore(index={"dims": 64, "embed": embed, "fields": ["text"]})
    ours = indexed(["text"])
    texts = ["red apple", "green apple", "blue car", "a red car", "zany zebra", "apple pie"]
    for n, text in enumerate(texts):
        await reference.aput(("t",), f"k{n}", {"text": text, "n": n})
        await ours.aput(("t",), f"k{n}", {"text": text, "n": n})
    for query in ["apple", "red car", "zebra", "xyz"]:
        expected = await reference.asearch(("t",), query=query, limit=10)
        got = await ours.asearch(("t",), query=query, limit=10)
        assert [i.key for i in got] == [i.key for i in expected]
        assert [i.score for i in got] == pytest.approx([i.score for i in expected], abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["k1", "k2", "k3", "k4"]),
            st.one_of(st.none(), st.text("abcxyz ", min_size=1, max_size=8)),
            st.booleans(),
        ),
        max_size=12,
    ),
    query=st.text("abcxyz", min_size=1, max_size=4),
    limit=st.integers(1, 6),
)
def test_semantic_answers_match_langgraphs_reference_store(
    ops: list[tuple[str, str | None, bool]], query: str, limit: int
) -> None:
    """Law: after the same puts (embedded or ``index=False``) and deletes, a query finds the
    same items with the same scores, scored ones first, as ``InMemoryStore`` (one path each)."""
    embed = CharacterEmbeddings(dims=32)
    index: Any = {"dims": 32, "embed": embed, "fields": ["text"]}
    reference = InMemoryStore(index=index)
    ours = MemoryPrimitiveStore.from_url(index=index)

    async def run() -> None:
        for key, text, embedded in ops:
            if text is None:
                reference.delete(("t",), key)
                await ours.adelete(("t",), key)
            else:
                # InMemoryStore keeps an item's old vectors when it is put again with
                # index=False; we drop them ("don't index this item"): delete first there.
                reference.delete(("t",), key)
                for store in (reference, ours):
                    store.put(("t",), key, {"text": text}, index=None if embedded else False)
        expected = reference.search(("t",), query=query, limit=limit)
        got = await ours.asearch(("t",), query=query, limit=limit)
        assert len(got) == len(expected)

        def scores(items: list[Any]) -> list[Any]:
            """Scores to compare (float32 vectors here: equal to 1e-5), None for no vector."""
            return [None if i.score is None else pytest.approx(i.score, abs=1e-5) for i in items]

        assert [i.score for i in got] == scores(expected)  # best first, unscored last
        every = reference.search(("t",), query=query, limit=100)
        score_of = dict(zip((i.key for i in every), scores(every), strict=True))
        assert [i.score for i in got] == [score_of[i.key] for i in got]  # each item's own
        await ours.memory.aclose()

    asyncio.run(run())


async def test_a_puts_own_paths_and_index_false(indexed: Any) -> None:
    """``index=[paths]`` embeds those; ``index=False`` stores no vector: no score, ranked last."""
    store = indexed(["nothing"])
    await store.aput(("t",), "chosen", {"a": "hhh", "b": "zzz"}, index=["b"])
    await store.aput(("t",), "unembedded", {"a": "hhh"}, index=False)
    await store.aput(("t",), "absent", {"a": "hhh"})  # the store's field is missing: no vector
    found = await store.asearch(("t",), query="zzz")
    assert [(i.key, i.score is None) for i in found] == [
        ("chosen", False),
        ("absent", True),
        ("unembedded", True),
    ]
    assert found[0].score == pytest.approx(1.0)
    assert [i.key for i in await store.asearch(("t",), query="zzz", limit=1, offset=1)] == [
        "absent"
    ]
    assert await store.asearch(("t",), query="zzz", filter={"b": "nope"}) == []
    assert all(i.score is None for i in await store.asearch(("t",)))  # no query: no scores


async def test_putting_again_with_index_false_drops_the_vector(indexed: Any) -> None:
    """`index=False` means no vector: an earlier one goes too (InMemoryStore keeps it)."""
    store = indexed(["a"])
    await store.aput(("t",), "k", {"a": "zzz"})
    await store.aput(("t",), "k", {"a": "zzz"}, index=False)
    assert [(i.key, i.score) for i in await store.asearch(("t",), query="zzz")] == [("k", None)]


async def test_a_ttl_refresh_keeps_the_puts_paths(indexed: Any) -> None:
    """A read that restarts an item's TTL rewrites it with the same text embedded."""
    store = indexed(["nothing"])
    await store.aput(("t",), "k", {"a": "kept", "b": "other"}, index=["a"], ttl=10)
    await store.aput(("t",), "off", {"a": "kept"}, index=False, ttl=10)
    assert await store.aget(("t",), "k") is not None  # refresh_ttl defaults to True
    assert await store.aget(("t",), "off") is not None
    found = await store.asearch(("t",), query="kept")
    assert [(i.key, i.score) for i in found] == [("k", pytest.approx(1.0)), ("off", None)]


async def test_the_memory_can_be_searched_by_meaning_too(indexed: Any) -> None:
    """The store's items are the memory's: ``memory.search_scored(..., mode="semantic")``."""
    store = indexed(["text"])
    await store.aput(("users", "u1"), "a", {"text": "zany zebra"})
    await store.aput(("users", "u2"), "b", {"text": "zany zebra"})
    hits = await store.memory.search_scored("zany zebra", scope="users:u1", mode="semantic")
    assert [(h.key, h.score) for h in hits] == [("users:u1:a", pytest.approx(1.0))]


async def test_a_failing_embedder_stores_nothing() -> None:
    """A put whose text cannot be embedded raises and leaves the earlier item as it was."""
    calls = {"fail": False}

    def embed(texts: list[str]) -> list[list[float]]:
        if calls["fail"]:
            raise RuntimeError("model down")
        return [[1.0, float(len(t))] for t in texts]

    store = MemoryPrimitiveStore.from_url(index={"dims": 2, "embed": embed, "fields": ["t"]})
    try:
        await store.aput(("a",), "k", {"t": "first"})
        calls["fail"] = True
        with pytest.raises(EmbeddingError):
            await store.aput(("a",), "k", {"t": "second"})
        assert (await store.aget(("a",), "k")).value == {"t": "first"}  # type: ignore[union-attr]
    finally:
        await store.memory.aclose()


@pytest.mark.redis
async def test_another_process_finds_the_items_by_meaning(redis_server: RedisServer) -> None:
    """Vectors live in Redis: a second memory with the same embedder gets the same answers."""
    ns = f"test:{uuid4().hex[:12]}"
    embed = CharacterEmbeddings(dims=64)
    index: Any = {"dims": 64, "embed": embed, "fields": ["text"]}
    writer = MemoryPrimitiveStore.from_url(redis_server.url, index=index, namespace=ns)
    reader = MemoryPrimitiveStore.from_url(redis_server.url, index=index, namespace=ns)
    try:
        for n, text in enumerate(["red apple", "blue car", "green apple"]):
            await writer.aput(("t",), f"k{n}", {"text": text})
        await writer.aput(("t",), "off", {"text": "apple"}, index=False)
        expected = [(i.key, i.score) for i in await writer.asearch(("t",), query="apple")]
        got = [(i.key, i.score) for i in await reader.asearch(("t",), query="apple")]
        assert got == expected
        assert {k for k, _ in got[:2]} == {"k0", "k2"}  # the apples
        assert got[-1] == ("off", None)
    finally:
        await writer.memory.clear()
        await writer.memory.aclose()
        await reader.memory.aclose()


def test_index_needs_a_memory_that_embeds_at_its_dims() -> None:
    embed = CharacterEmbeddings(dims=8)
    with pytest.raises(ValueError, match="needs a memory that embeds"):
        MemoryPrimitiveStore(MemoryPrimitive(), index={"dims": 8, "embed": embed})
    with pytest.raises(ValueError, match="dims"):
        MemoryPrimitiveStore(
            MemoryPrimitive(embed=embed, dims=8), index={"dims": 16, "embed": embed}
        )
    store = MemoryPrimitiveStore(
        MemoryPrimitive(embed=embed, dims=8), index={"dims": 8, "embed": embed}
    )
    assert store.index_config == {"dims": 8, "embed": embed}


@pytest.mark.parametrize(
    ("index", "error", "match"),
    [
        ("openai:text-embedding-3-small", TypeError, "IndexConfig"),
        ({"dims": 8}, ValueError, "needs 'embed'"),
        ({"dims": 0, "embed": CharacterEmbeddings(dims=8)}, ValueError, "dims"),
        ({"dims": 8, "embed": CharacterEmbeddings(dims=8), "fields": "text"}, TypeError, "fields"),
        ({"dims": 8, "embed": CharacterEmbeddings(dims=8), "fields": [""]}, ValueError, "fields"),
    ],
)
def test_a_bad_index_config_is_named(index: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        MemoryPrimitiveStore.from_url(index=index)


def test_from_url_takes_the_embedder_from_index_only() -> None:
    embed = CharacterEmbeddings(dims=8)
    with pytest.raises(ValueError, match=r"index\['embed'\]"):
        MemoryPrimitiveStore.from_url(index={"dims": 8, "embed": embed}, embed=embed)


async def test_a_bad_put_index_is_named(indexed: Any) -> None:
    store = indexed()
    with pytest.raises(TypeError, match="index"):
        await store.aput(("t",), "k", {"a": "x"}, index="a")
    assert await store.memory.size() == 0


async def test_an_embedding_function_works_as_langgraphs_does() -> None:
    """``embed`` may be a plain batch function, as in LangGraph's IndexConfig."""
    embed = CharacterEmbeddings(dims=16)

    def embed_texts(texts: list[str]) -> list[list[float]]:
        return embed.embed_documents(texts)

    store = MemoryPrimitiveStore.from_url(index={"dims": 16, "embed": embed_texts})
    try:
        await store.aput(("t",), "k", {"text": "hello"})
        await store.aput(("t",), "j", {"text": "other"})
        found = await store.asearch(("t",), query=json.dumps({"text": "hello"}))
        assert found[0].key == "k"
        assert found[0].score == pytest.approx(1.0)
    finally:
        await store.memory.aclose()


async def test_without_index_the_query_stays_word_search(memory: MemoryPrimitive) -> None:
    """A store with no ``index`` ranks by words and gives no scores, whatever the memory does."""
    store = MemoryPrimitiveStore(memory)
    await store.aput(("t",), "a", {"text": "olives"}, index=["text"])
    await store.aput(("t",), "b", {"text": "pizza"})
    found = await store.asearch(("t",), query="olives")
    assert [(i.key, i.score) for i in found] == [("a", None)]


async def test_the_store_exposes_its_embeddings_as_langgraphs_stores_do() -> None:
    """``store.embeddings`` is the index's ``Embeddings`` (a function wrapped as LangGraph
    wraps it), and None without an index."""
    embeddings = CharacterEmbeddings(dims=16)
    store = MemoryPrimitiveStore.from_url(index={"dims": 16, "embed": embeddings})
    assert store.embeddings is embeddings

    def embed(texts: list[str]) -> list[list[float]]:
        return [[float(len(t)), 1.0] for t in texts]

    wrapped = MemoryPrimitiveStore.from_url(index={"dims": 2, "embed": embed})
    assert wrapped.embeddings is not None
    assert wrapped.embeddings.embed_query("abc") == [3.0, 1.0]
    plain = MemoryPrimitiveStore.from_url()
    assert plain.embeddings is None
    for s in (store, wrapped, plain):
        await s.memory.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("read", ["get", "search"])
async def test_a_refreshing_read_never_undoes_a_put_made_meanwhile(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, read: str
) -> None:
    """A read that restarts a TTL must not write back what it read: another process's put,
    landing between that read and its refresh, was acknowledged and must stand."""
    from conftest import namespace

    ns = namespace()
    reader = MemoryPrimitiveStore(MemoryPrimitive(redis_server.url, namespace=ns))
    writer = MemoryPrimitiveStore(MemoryPrimitive(redis_server.url, namespace=ns))
    try:
        await writer.aput(("u1",), "prefs", {"n": 1}, ttl=10)
        real = getattr(reader.memory, read)

        async def read_then_other_put(*args: Any, **kwargs: Any) -> Any:
            seen = await real(*args, **kwargs)
            await writer.aput(("u1",), "prefs", {"n": 2}, ttl=10)  # "another process"
            return seen

        monkeypatch.setattr(reader.memory, read, read_then_other_put)
        if read == "get":
            item = await reader.aget(("u1",), "prefs")
            assert item is not None
            assert item.value == {"n": 1}  # what it read
        else:
            assert [i.value for i in await reader.asearch(("u1",))] == [{"n": 1}]
        monkeypatch.undo()
        for store in (writer, reader):
            item = await store.aget(("u1",), "prefs", refresh_ttl=False)
            assert item is not None
            assert item.value == {"n": 2}
    finally:
        await reader.memory.aclose()
        await writer.memory.aclose()


@pytest.mark.redis
async def test_a_refreshing_read_during_an_outage_answers(redis_server_factory: Any) -> None:
    """Redis away: the refresh (a touch, which needs Redis) is skipped, the read answers."""
    from conftest import fast_recovery, replayed

    server = redis_server_factory(appendonly=True)  # the item survives the restart
    store = MemoryPrimitiveStore(fast_recovery(server.url))
    try:
        await store.aput(("u1",), "prefs", {"n": 1}, ttl=10)
        server.kill()
        item = await store.aget(("u1",), "prefs")  # refresh_ttl defaults to True
        assert item is not None
        assert item.value == {"n": 1}
        assert [i.value for i in await store.asearch(("u1",))] == [{"n": 1}]
        assert not store.memory.using_redis
        server.start()
        await replayed(store.memory)
        item = await store.aget(("u1",), "prefs")
        assert item is not None
        assert item.value == {"n": 1}
    finally:
        await store.memory.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("change", ["put", "delete"])
async def test_a_put_that_loses_to_another_process_s_newer_change_returns(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Several processes putting one item at once: Redis rejects a put (or delete) when a
    newer change of the item landed after it was issued, its retry too if another one did
    (``StaleWriteError``; 6-50 of about 9,000 puts from 2-8 processes in a review). The
    caller's change came first and was overwritten, as after any put: it returns, as
    LangGraph's stores do, and the newer change stands."""
    ns = f"lg:{uuid4().hex[:8]}"
    ours = MemoryPrimitiveStore.from_url(redis_server.url, namespace=ns)
    theirs = MemoryPrimitiveStore.from_url(redis_server.url, namespace=ns)
    made = 0

    async def another_put() -> None:
        nonlocal made
        made += 1
        await theirs.aput(("chat",), "profile", {"by": "them", "n": made})

    every_store_loses(ours.memory, another_put, monkeypatch)
    remote = ours.memory._store.remote  # type: ignore[attr-defined]
    real_delete = remote.delete

    async def delete_after_another_put(*args: Any, **kwargs: Any) -> Any:
        await another_put()
        return await real_delete(*args, **kwargs)

    monkeypatch.setattr(remote, "delete", delete_after_another_put)
    try:
        if change == "put":
            await ours.aput(("chat",), "profile", {"by": "us"})
        else:
            await ours.adelete(("chat",), "profile")
        assert made == 2  # (rejected, retried, rejected again)
        item = await theirs.aget(("chat",), "profile")
        assert item is not None
        assert item.value == {"by": "them", "n": 2}
        seen = await ours.aget(("chat",), "profile")
        assert seen is None or seen.value == {"by": "them", "n": 2}  # never ours
    finally:
        await ours.memory.clear()
        await ours.memory.aclose()
        await theirs.memory.aclose()
