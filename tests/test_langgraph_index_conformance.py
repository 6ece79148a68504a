"""LangGraph's own vector-search (``index=``) store tests, run against ``MemoryPrimitiveStore``.

Vendored from langchain-ai/langgraph at commit f09cfe8ffc1eeffd68f4b628ed69c30f7cad229f
(MIT licence, Copyright (c) 2024 LangChain, Inc.); the installed packages are langgraph 1.2.24
and langgraph-checkpoint 4.3.2, whose ``InMemoryStore`` is the reference read here:

- libs/checkpoint/tests/test_store.py (``InMemoryStore``): every test that passes ``index=``,
  from ``test_vector_store_initialization`` to ``test_non_ascii``.
- libs/checkpoint-postgres/tests/test_store.py: ``test_vector_search_edge_cases``,
  ``test_embed_with_path_sync``, ``test_embed_with_path_operation_config``, ``test_scores``
  and ``test_vector_search_with_filters``'s ``refresh_ttl`` variant.
- libs/checkpoint-postgres/tests/test_async_store.py: ``test_vector_search_edge_cases`` (the
  async one also checks scores) and ``test_search_sorting``.
- libs/checkpoint-sqlite/tests/test_store.py: ``test_basic_store_operations``,
  ``test_list_namespaces_operations`` and ``test_search_items`` (plain store operations on a
  store with an index configured).
- libs/checkpoint-sqlite/tests/test_async_store.py: ``test_embed_with_path`` (here
  ``test_async_embed_with_path_thresholds``: it checks score thresholds, not equalities) and
  ``test_basic_store_ops`` (``updated_at`` strictly later after a second).

Left out: the other Postgres and SQLite index tests (initialization, insert, update, filters,
pagination, non-ASCII; Postgres's async ``test_embed_with_path``) repeat the ``InMemoryStore``
ones above line for line, bar their store fixture and looser tolerances; SQLite's async
``test_vector_search_with_filters`` asserts nothing; ``test_nonnull_migrations`` is Postgres's
schema.

The fake embedder is vendored too (``langgraph_embed_test_utils.py``). What changed, and why:

- Each test builds its store with ``make_store(index=..., ttl=...)`` instead of
  ``InMemoryStore(index=...)`` / ``PostgresStore`` / ``SqliteStore``, and runs twice: on an
  in-process memory and on the session Redis (``redis_server`` from conftest.py), each store in
  a namespace of its own, cleared and closed after the test.
- Upstream runs the Postgres and SQLite tests for several vector and distance types; the store
  here has one (cosine similarity, as ``InMemoryStore``), so they run once, and ``test_scores``
  compares with cosine only. The fake embeddings are unit vectors, so Postgres's
  ``inner_product`` runs would expect the same numbers anyway.
- SQLite's index option ``text_fields`` is LangGraph's ``fields``; asserts on backend internals
  (SQLite tables, ``store.embeddings``) and Postgres migrations are dropped.
- ``MockAsyncBatchedStore`` (``InMemoryStore`` behind LangGraph's async batcher) becomes the
  store itself: its ``abatch`` already runs concurrent calls.
- Type hints added, lines rewrapped and ``assert a and b`` split in two for this repository's
  ruff settings; test bodies otherwise as upstream wrote them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from langgraph.store.base import IndexConfig, TTLConfig

from langgraph_embed_test_utils import CharacterEmbeddings
from tta_dev_primitives.integrations.langgraph import MemoryPrimitiveStore

MakeStore = Callable[..., MemoryPrimitiveStore]


@pytest.fixture
def fake_embeddings() -> CharacterEmbeddings:
    return CharacterEmbeddings(dims=500)


@pytest.fixture(params=["in_memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    """Builds stores as the upstream tests build theirs; each is cleared and closed after."""
    url = None if request.param == "in_memory" else request.getfixturevalue("redis_server").url
    made: list[MemoryPrimitiveStore] = []

    def make(*, index: IndexConfig | None = None, ttl: TTLConfig | None = None) -> Any:
        store = MemoryPrimitiveStore.from_url(
            url, index=index, ttl=ttl, namespace=f"test:{uuid.uuid4().hex[:12]}", max_size=10_000
        )
        made.append(store)
        return store

    yield make
    for store in made:
        await store.memory.clear()
        await store.memory.aclose()


def vector_store(make_store: MakeStore, fake_embeddings: CharacterEmbeddings) -> Any:
    """The Postgres tests' ``vector_store`` fixture: cosine, TTL on, no fields given."""
    return make_store(
        index={"dims": fake_embeddings.dims, "embed": fake_embeddings},
        ttl={"default_ttl": 2, "refresh_on_read": True},
    )


def sqlite_vector_store(
    make_store: MakeStore, fake_embeddings: CharacterEmbeddings, text_fields: list[str]
) -> Any:
    """SQLite's ``create_vector_store(fake_embeddings, text_fields=...)``."""
    return make_store(
        index={"dims": fake_embeddings.dims, "embed": fake_embeddings, "fields": text_fields}
    )


# -- libs/checkpoint/tests/test_store.py ---------------------------------------------------------


def test_vector_store_initialization(
    make_store: MakeStore, fake_embeddings: CharacterEmbeddings
) -> None:
    """Test store initialization with embedding config."""
    store = make_store(index={"dims": fake_embeddings.dims, "embed": fake_embeddings})
    assert store.index_config is not None
    assert store.index_config["dims"] == fake_embeddings.dims
    assert store.index_config["embed"] == fake_embeddings


def test_vector_insert_with_auto_embedding(
    make_store: MakeStore,
    fake_embeddings: CharacterEmbeddings,
) -> None:
    """Test inserting items that get auto-embedded."""
    store = make_store(index={"dims": fake_embeddings.dims, "embed": fake_embeddings})
    docs = [
        ("doc1", {"text": "short text"}),
        ("doc2", {"text": "longer text document"}),
        ("doc3", {"text": "longest text document here"}),
        ("doc4", {"description": "text in description field"}),
        ("doc5", {"content": "text in content field"}),
        ("doc6", {"body": "text in body field"}),
    ]

    for key, value in docs:
        store.put(("test",), key, value)

    results = store.search(("test",), query="long text")
    assert len(results) > 0

    doc_order = [r.key for r in results]
    assert "doc2" in doc_order
    assert "doc3" in doc_order


async def test_async_vector_insert_with_auto_embedding(
    make_store: MakeStore,
    fake_embeddings: CharacterEmbeddings,
) -> None:
    """Test inserting items that get auto-embedded using async methods."""
    store = make_store(index={"dims": fake_embeddings.dims, "embed": fake_embeddings})
    docs = [
        ("doc1", {"text": "short text"}),
        ("doc2", {"text": "longer text document"}),
        ("doc3", {"text": "longest text document here"}),
        ("doc4", {"description": "text in description field"}),
        ("doc5", {"content": "text in content field"}),
        ("doc6", {"body": "text in body field"}),
    ]

    for key, value in docs:
        await store.aput(("test",), key, value)

    results = await store.asearch(("test",), query="long text")
    assert len(results) > 0

    doc_order = [r.key for r in results]
    assert "doc2" in doc_order
    assert "doc3" in doc_order


def test_vector_update_with_embedding(
    make_store: MakeStore, fake_embeddings: CharacterEmbeddings
) -> None:
    """Test that updating items properly updates their embeddings."""
    store = make_store(index={"dims": fake_embeddings.dims, "embed": fake_embeddings})
    store.put(("test",), "doc1", {"text": "zany zebra Xerxes"})
    store.put(("test",), "doc2", {"text": "something about dogs"})
    store.put(("test",), "doc3", {"text": "text about birds"})

    results_initial = store.search(("test",), query="Zany Xerxes")
    assert len(results_initial) > 0
    assert results_initial[0].key == "doc1"
    initial_score = results_initial[0].score
    assert initial_score is not None

    store.put(("test",), "doc1", {"text": "new text about dogs"})

    results_after = store.search(("test",), query="Zany Xerxes")
    after_score = next((r.score for r in results_after if r.key == "doc1"), 0.0)
    assert after_score is not None
    assert after_score < initial_score

    results_new = store.search(("test",), query="new text about dogs")
    for r in results_new:
        if r.key == "doc1":
            assert r.score > after_score

    # Don't index this one
    store.put(("test",), "doc4", {"text": "new text about dogs"}, index=False)
    results_new = store.search(("test",), query="new text about dogs", limit=3)
    assert not any(r.key == "doc4" for r in results_new)


async def test_async_vector_update_with_embedding(
    make_store: MakeStore,
    fake_embeddings: CharacterEmbeddings,
) -> None:
    """Test that updating items properly updates their embeddings using async methods."""
    store = make_store(index={"dims": fake_embeddings.dims, "embed": fake_embeddings})
    await store.aput(("test",), "doc1", {"text": "zany zebra Xerxes"})
    await store.aput(("test",), "doc2", {"text": "something about dogs"})
    await store.aput(("test",), "doc3", {"text": "text about birds"})

    results_initial = await store.asearch(("test",), query="Zany Xerxes")
    assert len(results_initial) > 0
    assert results_initial[0].key == "doc1"
    initial_score = results_initial[0].score

    await store.aput(("test",), "doc1", {"text": "new text about dogs"})

    results_after = await store.asearch(("test",), query="Zany Xerxes")
    after_score = next((r.score for r in results_after if r.key == "doc1"), 0.0)
    assert after_score is not None
    assert after_score < initial_score

    results_new = await store.asearch(("test",), query="new text about dogs")
    for r in results_new:
        if r.key == "doc1":
            assert r.score is not None
            assert r.score > after_score

    # Don't index this one
    await store.aput(("test",), "doc4", {"text": "new text about dogs"}, index=False)
    results_new = await store.asearch(("test",), query="new text about dogs", limit=3)
    assert not any(r.key == "doc4" for r in results_new)


def test_vector_search_with_filters(
    make_store: MakeStore, fake_embeddings: CharacterEmbeddings
) -> None:
    """Test combining vector search with filters."""
    inmem_store = make_store(index={"dims": fake_embeddings.dims, "embed": fake_embeddings})
    # Insert test documents
    docs = [
        ("doc1", {"text": "red apple", "color": "red", "score": 4.5}),
        ("doc2", {"text": "red car", "color": "red", "score": 3.0}),
        ("doc3", {"text": "green apple", "color": "green", "score": 4.0}),
        ("doc4", {"text": "blue car", "color": "blue", "score": 3.5}),
    ]

    for key, value in docs:
        inmem_store.put(("test",), key, value)

    results = inmem_store.search(("test",), query="apple", filter={"color": "red"})
    assert len(results) == 2
    assert results[0].key == "doc1"

    results = inmem_store.search(("test",), query="car", filter={"color": "red"})
    assert len(results) == 2
    assert results[0].key == "doc2"

    results = inmem_store.search(("test",), query="bbbbluuu", filter={"score": {"$gt": 3.2}})
    assert len(results) == 3
    assert results[0].key == "doc4"

    # Multiple filters
    results = inmem_store.search(
        ("test",), query="apple", filter={"score": {"$gte": 4.0}, "color": "green"}
    )
    assert len(results) == 1
    assert results[0].key == "doc3"


async def test_async_vector_search_with_filters(
    make_store: MakeStore,
    fake_embeddings: CharacterEmbeddings,
) -> None:
    """Test combining vector search with filters using async methods."""
    store = make_store(index={"dims": fake_embeddings.dims, "embed": fake_embeddings})
    # Insert test documents
    docs = [
        ("doc1", {"text": "red apple", "color": "red", "score": 4.5}),
        ("doc2", {"text": "red car", "color": "red", "score": 3.0}),
        ("doc3", {"text": "green apple", "color": "green", "score": 4.0}),
        ("doc4", {"text": "blue car", "color": "blue", "score": 3.5}),
    ]

    for key, value in docs:
        await store.aput(("test",), key, value)

    results = await store.asearch(("test",), query="apple", filter={"color": "red"})
    assert len(results) == 2
    assert results[0].key == "doc1"

    results = await store.asearch(("test",), query="car", filter={"color": "red"})
    assert len(results) == 2
    assert results[0].key == "doc2"

    results = await store.asearch(("test",), query="bbbbluuu", filter={"score": {"$gt": 3.2}})
    assert len(results) == 3
    assert results[0].key == "doc4"

    # Multiple filters
    results = await store.asearch(
        ("test",), query="apple", filter={"score": {"$gte": 4.0}, "color": "green"}
    )
    assert len(results) == 1
    assert results[0].key == "doc3"


async def test_async_batched_vector_search_concurrent(
    make_store: MakeStore,
    fake_embeddings: CharacterEmbeddings,
) -> None:
    """Test concurrent vector search operations using async batched store."""
    store = make_store(index={"dims": fake_embeddings.dims, "embed": fake_embeddings})

    colors = ["red", "blue", "green", "yellow", "purple"]
    items = ["apple", "car", "house", "book", "phone"]
    scores = [3.0, 3.5, 4.0, 4.5, 5.0]

    docs = []
    for i in range(50):
        color = colors[i % len(colors)]
        item = items[i % len(items)]
        score = scores[i % len(scores)]
        docs.append(
            (
                f"doc{i}",
                {"text": f"{color} {item}", "color": color, "score": score, "index": i},
            )
        )
    coros = [
        *[store.aput(("test",), key, value) for key, value in docs],
        *[store.adelete(("test",), key) for key, value in docs],
        *[store.aput(("test",), key, value) for key, value in docs],
    ]
    await asyncio.gather(*coros)

    # Prepare multiple search queries with different filters
    search_queries: list[tuple[str, dict[str, Any]]] = [
        ("apple", {"color": "red"}),
        ("car", {"color": "blue"}),
        ("house", {"color": "green"}),
        ("phone", {"score": {"$gt": 4.99}}),
        ("book", {"score": {"$lte": 3.5}}),
        ("apple", {"score": {"$gte": 3.0}, "color": "red"}),
        ("car", {"score": {"$lt": 5.1}, "color": "blue"}),
        ("house", {"index": {"$gt": 25}}),
        ("phone", {"index": {"$lte": 10}}),
    ]

    all_results = await asyncio.gather(
        *[
            store.asearch(("test",), query=query, filter=filter_)
            for query, filter_ in search_queries
        ]
    )

    for results, (query, filter_) in zip(all_results, search_queries, strict=False):
        assert len(results) > 0, f"No results for query '{query}' with filter {filter_}"

        for result in results:
            if "color" in filter_:
                assert result.value["color"] == filter_["color"]

            if "score" in filter_:
                score = result.value["score"]
                for op, value in filter_["score"].items():
                    if op == "$gt":
                        assert score > value
                    elif op == "$gte":
                        assert score >= value
                    elif op == "$lt":
                        assert score < value
                    elif op == "$lte":
                        assert score <= value

            if "index" in filter_:
                index = result.value["index"]
                for op, value in filter_["index"].items():
                    if op == "$gt":
                        assert index > value
                    elif op == "$gte":
                        assert index >= value
                    elif op == "$lt":
                        assert index < value
                    elif op == "$lte":
                        assert index <= value


def test_vector_search_pagination(
    make_store: MakeStore, fake_embeddings: CharacterEmbeddings
) -> None:
    """Test pagination with vector search."""
    store = make_store(index={"dims": fake_embeddings.dims, "embed": fake_embeddings})
    for i in range(5):
        store.put(("test",), f"doc{i}", {"text": f"test document number {i}"})

    results_page1 = store.search(("test",), query="test", limit=2)
    results_page2 = store.search(("test",), query="test", limit=2, offset=2)

    assert len(results_page1) == 2
    assert len(results_page2) == 2
    assert results_page1[0].key != results_page2[0].key

    all_results = store.search(("test",), query="test", limit=10)
    assert len(all_results) == 5


async def test_async_vector_search_pagination(
    make_store: MakeStore,
    fake_embeddings: CharacterEmbeddings,
) -> None:
    """Test pagination with vector search using async methods."""
    store = make_store(index={"dims": fake_embeddings.dims, "embed": fake_embeddings})
    for i in range(5):
        await store.aput(("test",), f"doc{i}", {"text": f"test document number {i}"})

    results_page1 = await store.asearch(("test",), query="test", limit=2)
    results_page2 = await store.asearch(("test",), query="test", limit=2, offset=2)

    assert len(results_page1) == 2
    assert len(results_page2) == 2
    assert results_page1[0].key != results_page2[0].key

    all_results = await store.asearch(("test",), query="test", limit=10)
    assert len(all_results) == 5


async def test_embed_with_path(make_store: MakeStore, fake_embeddings: CharacterEmbeddings) -> None:
    # Test store-level field configuration
    store = make_store(
        index={
            "dims": fake_embeddings.dims,
            "embed": fake_embeddings,
            # Key 2 isn't included. Don't index it.
            "fields": ["key0", "key1", "key3"],
        }
    )
    # This will have 2 vectors representing it
    doc1 = {
        # Omit key0 - check it doesn't raise an error
        "key1": "xxx",
        "key2": "yyy",
        "key3": "zzz",
    }
    # This will have 3 vectors representing it
    doc2 = {
        "key0": "uuu",
        "key1": "vvv",
        "key2": "www",
        "key3": "xxx",
    }
    await store.aput(("test",), "doc1", doc1)
    await store.aput(("test",), "doc2", doc2)

    # doc2.key3 and doc1.key1 both would have the highest score
    results = await store.asearch(("test",), query="xxx")
    assert len(results) == 2
    assert results[0].key != results[1].key
    ascore = results[0].score
    bscore = results[1].score
    assert ascore is not None
    assert bscore is not None
    assert ascore == pytest.approx(bscore, abs=1e-5)

    results = await store.asearch(("test",), query="uuu")
    assert len(results) == 2
    assert results[0].key != results[1].key
    assert results[0].key == "doc2"
    assert results[0].score is not None
    assert results[0].score > results[1].score
    assert ascore == pytest.approx(results[0].score, abs=1e-5)

    # Un-indexed - will have low results for both. Not zero (because we're projecting)
    # but less than the above.
    results = await store.asearch(("test",), query="www")
    assert len(results) == 2
    assert results[0].score < ascore
    assert results[1].score < ascore

    # Test operation-level field configuration
    store_no_defaults = make_store(
        index={
            "dims": fake_embeddings.dims,
            "embed": fake_embeddings,
            "fields": ["key17"],
        }
    )

    doc3 = {
        "key0": "aaa",
        "key1": "bbb",
        "key2": "ccc",
        "key3": "ddd",
    }
    doc4 = {
        "key0": "eee",
        "key1": "bbb",  # Same as doc3.key1
        "key2": "fff",
        "key3": "ggg",
    }

    await store_no_defaults.aput(("test",), "doc3", doc3, index=["key0", "key1"])
    await store_no_defaults.aput(("test",), "doc4", doc4, index=["key1", "key3"])

    results = await store_no_defaults.asearch(("test",), query="aaa")
    assert len(results) == 2
    assert results[0].key == "doc3"
    assert results[0].score is not None
    assert results[0].score > results[1].score

    results = await store_no_defaults.asearch(("test",), query="ggg")
    assert len(results) == 2
    assert results[0].key == "doc4"
    assert results[0].score is not None
    assert results[0].score > results[1].score

    results = await store_no_defaults.asearch(("test",), query="bbb")
    assert len(results) == 2
    assert results[0].key != results[1].key
    assert results[0].score == results[1].score

    results = await store_no_defaults.asearch(("test",), query="ccc")
    assert len(results) == 2
    assert all(r.score < ascore for r in results)

    doc5 = {
        "key0": "hhh",
        "key1": "iii",
    }
    await store_no_defaults.aput(("test",), "doc5", doc5, index=False)

    results = await store_no_defaults.asearch(("test",), query="hhh")
    assert len(results) == 3
    doc5_result = next(r for r in results if r.key == "doc5")
    assert doc5_result.score is None


def test_non_ascii(make_store: MakeStore, fake_embeddings: CharacterEmbeddings) -> None:
    """Test support for non-ascii characters"""
    store = make_store(index={"dims": fake_embeddings.dims, "embed": fake_embeddings})
    store.put(("user_123", "memories"), "1", {"text": "这是中文"})  # Chinese
    store.put(("user_123", "memories"), "2", {"text": "これは日本語です"})  # Japanese
    store.put(("user_123", "memories"), "3", {"text": "이건 한국어야"})  # Korean
    store.put(("user_123", "memories"), "4", {"text": "Это русский"})  # Russian
    store.put(("user_123", "memories"), "5", {"text": "यह रूसी है"})  # Hindi

    result1 = store.search(("user_123", "memories"), query="这是中文")
    result2 = store.search(("user_123", "memories"), query="これは日本語です")
    result3 = store.search(("user_123", "memories"), query="이건 한국어야")
    result4 = store.search(("user_123", "memories"), query="Это русский")
    result5 = store.search(("user_123", "memories"), query="यह रूसी है")

    assert result1[0].key == "1"
    assert result2[0].key == "2"
    assert result3[0].key == "3"
    assert result4[0].key == "4"
    assert result5[0].key == "5"


# -- libs/checkpoint-postgres/tests/test_store.py --------------------------------------------------


@pytest.mark.parametrize("refresh_ttl", [True, False])
def test_vector_search_with_filters_refresh_ttl(
    make_store: MakeStore, fake_embeddings: CharacterEmbeddings, refresh_ttl: bool
) -> None:
    """Test combining vector search with filters (Postgres's variant, with refresh_ttl)."""
    store = vector_store(make_store, fake_embeddings)
    # Insert test documents
    docs = [
        ("doc1", {"text": "red apple", "color": "red", "score": 4.5}),
        ("doc2", {"text": "red car", "color": "red", "score": 3.0}),
        ("doc3", {"text": "green apple", "color": "green", "score": 4.0}),
        ("doc4", {"text": "blue car", "color": "blue", "score": 3.5}),
    ]

    for key, value in docs:
        store.put(("test",), key, value)

    results = store.search(
        ("test",), query="apple", filter={"color": "red"}, refresh_ttl=refresh_ttl
    )
    assert len(results) == 2
    assert results[0].key == "doc1"

    results = store.search(("test",), query="car", filter={"color": "red"}, refresh_ttl=refresh_ttl)
    assert len(results) == 2
    assert results[0].key == "doc2"

    results = store.search(
        ("test",),
        query="bbbbluuu",
        filter={"score": {"$gt": 3.2}},
        refresh_ttl=refresh_ttl,
    )
    assert len(results) == 3
    assert results[0].key == "doc4"

    # Multiple filters
    results = store.search(
        ("test",), query="apple", filter={"score": {"$gte": 4.0}, "color": "green"}
    )
    assert len(results) == 1
    assert results[0].key == "doc3"


def test_vector_search_edge_cases(
    make_store: MakeStore, fake_embeddings: CharacterEmbeddings
) -> None:
    """Test edge cases in vector search."""
    store = vector_store(make_store, fake_embeddings)
    store.put(("test",), "doc1", {"text": "test document"})

    results = store.search(("test",), query="")
    assert len(results) == 1

    results = store.search(("test",), query=None)
    assert len(results) == 1

    long_query = "test " * 100
    results = store.search(("test",), query=long_query)
    assert len(results) == 1

    special_query = "test!@#$%^&*()"
    results = store.search(("test",), query=special_query)
    assert len(results) == 1


def test_embed_with_path_sync(make_store: MakeStore, fake_embeddings: CharacterEmbeddings) -> None:
    """Test vector search with specific text fields in Postgres store."""
    store = make_store(
        index={
            "dims": fake_embeddings.dims,
            "embed": fake_embeddings,
            "fields": ["key0", "key1", "key3"],
        },
        ttl={"default_ttl": 2, "refresh_on_read": True},
    )
    # This will have 2 vectors representing it
    doc1 = {
        # Omit key0 - check it doesn't raise an error
        "key1": "xxx",
        "key2": "yyy",
        "key3": "zzz",
    }
    # This will have 3 vectors representing it
    doc2 = {
        "key0": "uuu",
        "key1": "vvv",
        "key2": "www",
        "key3": "xxx",
    }
    store.put(("test",), "doc1", doc1)
    store.put(("test",), "doc2", doc2)

    # doc2.key3 and doc1.key1 both would have the highest score
    results = store.search(("test",), query="xxx")
    assert len(results) == 2
    assert results[0].key != results[1].key
    ascore = results[0].score
    bscore = results[1].score
    assert ascore == pytest.approx(bscore, abs=1e-3)

    # ~Only match doc2
    results = store.search(("test",), query="uuu")
    assert len(results) == 2
    assert results[0].key != results[1].key
    assert results[0].key == "doc2"
    assert results[0].score > results[1].score
    assert ascore == pytest.approx(results[0].score, abs=1e-3)

    # ~Only match doc1
    results = store.search(("test",), query="zzz")
    assert len(results) == 2
    assert results[0].key != results[1].key
    assert results[0].key == "doc1"
    assert results[0].score > results[1].score
    assert ascore == pytest.approx(results[0].score, abs=1e-3)

    # Un-indexed - will have low results for both. Not zero (because we're projecting)
    # but less than the above.
    results = store.search(("test",), query="www")
    assert len(results) == 2
    assert results[0].key != results[1].key
    assert results[0].score < ascore
    assert results[1].score < ascore


def test_embed_with_path_operation_config(
    make_store: MakeStore, fake_embeddings: CharacterEmbeddings
) -> None:
    """Test operation-level field configuration for vector search."""
    store = make_store(
        index={
            "dims": fake_embeddings.dims,
            "embed": fake_embeddings,
            "fields": ["key17"],  # Default fields that won't match our test data
        },
        ttl={"default_ttl": 2, "refresh_on_read": True},
    )
    doc3 = {
        "key0": "aaa",
        "key1": "bbb",
        "key2": "ccc",
        "key3": "ddd",
    }
    doc4 = {
        "key0": "eee",
        "key1": "bbb",  # Same as doc3.key1
        "key2": "fff",
        "key3": "ggg",
    }

    store.put(("test",), "doc3", doc3, index=["key0", "key1"])
    store.put(("test",), "doc4", doc4, index=["key1", "key3"])

    results = store.search(("test",), query="aaa")
    assert len(results) == 2
    assert results[0].key == "doc3"
    assert len({r.key for r in results}) == 2
    assert results[0].score > results[1].score

    results = store.search(("test",), query="ggg")
    assert len(results) == 2
    assert results[0].key == "doc4"
    assert results[0].score > results[1].score

    results = store.search(("test",), query="bbb")
    assert len(results) == 2
    assert results[0].key != results[1].key
    assert results[0].score == pytest.approx(results[1].score, abs=1e-3)

    results = store.search(("test",), query="ccc")
    assert len(results) == 2
    assert all(r.score < 0.9 for r in results)  # Unindexed field should have low scores

    # Test index=False behavior
    doc5 = {
        "key0": "hhh",
        "key1": "iii",
    }
    store.put(("test",), "doc5", doc5, index=False)
    results = store.search(("test",))
    assert len(results) == 3
    assert all(r.score is None for r in results), f"{results}"
    assert any(r.key == "doc5" for r in results)

    results = store.search(("test",), query="hhh")
    # TODO: We don't currently fill in additional results if there are not enough
    # returned during vector search.
    # assert len(results) == 3
    # doc5_result = next(r for r in results if r.key == "doc5")
    # assert doc5_result.score is None


def _cosine_similarity(X: list[float], Y: list[list[float]]) -> list[float]:
    """
    Compute cosine similarity between a vector X and a matrix Y.
    Lazy import numpy for efficiency.
    """

    similarities = []
    for y in Y:
        dot_product = sum(a * b for a, b in zip(X, y, strict=False))
        norm1 = sum(a * a for a in X) ** 0.5
        norm2 = sum(a * a for a in y) ** 0.5
        similarity = dot_product / (norm1 * norm2) if norm1 > 0 and norm2 > 0 else 0.0
        similarities.append(similarity)

    return similarities


@pytest.mark.parametrize("query", ["aaa", "bbb", "ccc", "abcd", "poisson"])
def test_scores(make_store: MakeStore, fake_embeddings: CharacterEmbeddings, query: str) -> None:
    """Test operation-level field configuration for vector search."""
    store = make_store(
        index={"dims": fake_embeddings.dims, "embed": fake_embeddings, "fields": ["key0"]},
        ttl={"default_ttl": 2, "refresh_on_read": True},
    )
    doc = {
        "key0": "aaa",
    }
    store.put(("test",), "doc", doc, index=["key0", "key1"])

    results = store.search((), query=query)
    vec0 = fake_embeddings.embed_query(doc["key0"])
    vec1 = fake_embeddings.embed_query(query)
    similarities = _cosine_similarity(vec1, [vec0])

    assert len(results) == 1
    assert results[0].score == pytest.approx(similarities[0], abs=1e-3)


# -- libs/checkpoint-postgres/tests/test_async_store.py -------------------------------------------


async def test_async_vector_search_edge_cases(
    make_store: MakeStore, fake_embeddings: CharacterEmbeddings
) -> None:
    """Test edge cases in vector search."""
    vector_store_ = vector_store(make_store, fake_embeddings)
    await vector_store_.aput(("test",), "doc1", {"text": "test document"})

    perfect_match = await vector_store_.asearch(("test",), query="text test document")
    perfect_score = perfect_match[0].score

    results = await vector_store_.asearch(("test",), query="")
    assert len(results) == 1
    assert results[0].score is None

    results = await vector_store_.asearch(("test",), query=None)
    assert len(results) == 1
    assert results[0].score is None

    long_query = "foo " * 100
    results = await vector_store_.asearch(("test",), query=long_query)
    assert len(results) == 1
    assert results[0].score < perfect_score

    special_query = "test!@#$%^&*()"
    results = await vector_store_.asearch(("test",), query=special_query)
    assert len(results) == 1
    assert results[0].score < perfect_score


async def test_search_sorting(make_store: MakeStore, fake_embeddings: CharacterEmbeddings) -> None:
    """Test operation-level field configuration for vector search."""
    store = make_store(
        index={
            "dims": fake_embeddings.dims,
            "embed": fake_embeddings,
            "fields": ["key1"],  # Default fields that won't match our test data
        },
        ttl={"default_ttl": 2, "refresh_on_read": True},
    )
    amatch = {
        "key1": "mmm",
    }

    await store.aput(("test", "M"), "M", amatch)
    N = 100
    for i in range(N):
        await store.aput(("test", "A"), f"A{i}", {"key1": "no"})
    for i in range(N):
        await store.aput(("test", "Z"), f"Z{i}", {"key1": "no"})

    results = await store.asearch(("test",), query="mmm", limit=10)
    assert len(results) == 10
    assert len({r.key for r in results}) == 10
    assert results[0].key == "M"
    assert results[0].score > results[1].score


# -- libs/checkpoint-sqlite/tests/test_store.py ----------------------------------------------------


def test_basic_store_operations(
    make_store: MakeStore,
    fake_embeddings: CharacterEmbeddings,
) -> None:
    """Test basic store operations with SQLite store."""
    store = sqlite_vector_store(make_store, fake_embeddings, ["key0", "key1", "key3"])
    uid = uuid.uuid4().hex
    namespace = (uid, "test", "documents")
    item_id = "doc1"
    item_value = {"title": "Test Document", "content": "Hello, World!"}
    results = store.search((uid,))
    assert len(results) == 0

    store.put(namespace, item_id, item_value)
    item = store.get(namespace, item_id)

    assert item is not None
    assert item.namespace == namespace
    assert item.key == item_id
    assert item.value == item_value
    assert item.created_at is not None
    assert item.updated_at is not None

    updated_value = {
        "title": "Updated Test Document",
        "content": "Hello, LangGraph!",
    }
    store.put(namespace, item_id, updated_value)
    updated_item = store.get(namespace, item_id)
    assert updated_item is not None

    assert updated_item.value == updated_value
    assert updated_item.updated_at >= item.updated_at

    different_namespace = (uid, "test", "other_documents")
    item_in_different_namespace = store.get(different_namespace, item_id)
    assert item_in_different_namespace is None

    new_item_id = "doc2"
    new_item_value = {"title": "Another Document", "content": "Greetings!"}
    store.put(namespace, new_item_id, new_item_value)

    items = store.search((uid, "test"), limit=10)
    assert len(items) == 2
    assert any(item.key == item_id for item in items)
    assert any(item.key == new_item_id for item in items)

    namespaces = store.list_namespaces(prefix=(uid, "test"))
    assert (uid, "test", "documents") in namespaces

    store.delete(namespace, item_id)
    store.delete(namespace, new_item_id)
    deleted_item = store.get(namespace, item_id)
    assert deleted_item is None

    deleted_item = store.get(namespace, new_item_id)
    assert deleted_item is None

    empty_search_results = store.search((uid, "test"), limit=10)
    assert len(empty_search_results) == 0


def test_list_namespaces_operations(
    make_store: MakeStore,
    fake_embeddings: CharacterEmbeddings,
) -> None:
    """Test list namespaces functionality with various filters."""
    store = sqlite_vector_store(make_store, fake_embeddings, ["key0", "key1", "key3"])
    test_pref = str(uuid.uuid4())
    test_namespaces = [
        (test_pref, "test", "documents", "public", test_pref),
        (test_pref, "test", "documents", "private", test_pref),
        (test_pref, "test", "images", "public", test_pref),
        (test_pref, "test", "images", "private", test_pref),
        (test_pref, "prod", "documents", "public", test_pref),
        (test_pref, "prod", "documents", "some", "nesting", "public", test_pref),
        (test_pref, "prod", "documents", "private", test_pref),
    ]

    # Add test data
    for namespace in test_namespaces:
        store.put(namespace, "dummy", {"content": "dummy"})

    # Test prefix filtering
    prefix_result = store.list_namespaces(prefix=(test_pref, "test"))
    assert len(prefix_result) == 4
    assert all(ns[1] == "test" for ns in prefix_result)

    # Test specific prefix
    specific_prefix_result = store.list_namespaces(prefix=(test_pref, "test", "documents"))
    assert len(specific_prefix_result) == 2
    assert all(ns[1:3] == ("test", "documents") for ns in specific_prefix_result)

    # Test suffix filtering
    suffix_result = store.list_namespaces(suffix=("public", test_pref))
    assert len(suffix_result) == 4
    assert all(ns[-2] == "public" for ns in suffix_result)

    # Test combined prefix and suffix
    prefix_suffix_result = store.list_namespaces(
        prefix=(test_pref, "test"), suffix=("public", test_pref)
    )
    assert len(prefix_suffix_result) == 2
    assert all(ns[1] == "test" and ns[-2] == "public" for ns in prefix_suffix_result)

    # Test wildcard in prefix
    wildcard_prefix_result = store.list_namespaces(prefix=(test_pref, "*", "documents"))
    assert len(wildcard_prefix_result) == 5
    assert all(ns[2] == "documents" for ns in wildcard_prefix_result)

    # Test wildcard in suffix
    wildcard_suffix_result = store.list_namespaces(suffix=("*", "public", test_pref))
    assert len(wildcard_suffix_result) == 4
    assert all(ns[-2] == "public" for ns in wildcard_suffix_result)

    wildcard_single = store.list_namespaces(suffix=("some", "*", "public", test_pref))
    assert len(wildcard_single) == 1
    assert wildcard_single[0] == (
        test_pref,
        "prod",
        "documents",
        "some",
        "nesting",
        "public",
        test_pref,
    )

    # Test max depth
    max_depth_result = store.list_namespaces(max_depth=3)
    assert all(len(ns) <= 3 for ns in max_depth_result)

    max_depth_result = store.list_namespaces(max_depth=4, prefix=(test_pref, "*", "documents"))
    assert len(set(max_depth_result)) == len(max_depth_result) == 5

    # Test pagination
    limit_result = store.list_namespaces(prefix=(test_pref,), limit=3)
    assert len(limit_result) == 3

    offset_result = store.list_namespaces(prefix=(test_pref,), offset=3)
    assert len(offset_result) == len(test_namespaces) - 3

    empty_prefix_result = store.list_namespaces(prefix=(test_pref,))
    assert len(empty_prefix_result) == len(test_namespaces)
    assert set(empty_prefix_result) == set(test_namespaces)

    # Clean up
    for namespace in test_namespaces:
        store.delete(namespace, "dummy")


def test_search_items(
    make_store: MakeStore,
    fake_embeddings: CharacterEmbeddings,
) -> None:
    """Test search_items functionality by calling store methods directly."""
    base = "test_search_items"
    test_namespaces = [
        (base, "documents", "user1"),
        (base, "documents", "user2"),
        (base, "reports", "department1"),
        (base, "reports", "department2"),
    ]
    test_items = [
        {"title": "Doc 1", "author": "John Doe", "tags": ["important"]},
        {"title": "Doc 2", "author": "Jane Smith", "tags": ["draft"]},
        {"title": "Report A", "author": "John Doe", "tags": ["final"]},
        {"title": "Report B", "author": "Alice Johnson", "tags": ["draft"]},
    ]

    store = sqlite_vector_store(make_store, fake_embeddings, ["key0", "key1", "key3"])
    # Insert test data
    for ns, item in zip(test_namespaces, test_items, strict=False):
        key = f"item_{ns[-1]}"
        store.put(ns, key, item)

    # 1. Search documents
    docs = store.search((base, "documents"))
    assert len(docs) == 2
    assert all(item.namespace[1] == "documents" for item in docs)

    # 2. Search reports
    reports = store.search((base, "reports"))
    assert len(reports) == 2
    assert all(item.namespace[1] == "reports" for item in reports)

    # 3. Pagination
    first_page = store.search((base,), limit=2, offset=0)
    second_page = store.search((base,), limit=2, offset=2)
    assert len(first_page) == 2
    assert len(second_page) == 2
    keys_page1 = {item.key for item in first_page}
    keys_page2 = {item.key for item in second_page}
    assert keys_page1.isdisjoint(keys_page2)
    all_items = store.search((base,))
    assert len(all_items) == 4

    john_items = store.search((base,), filter={"author": "John Doe"})
    assert len(john_items) == 2
    assert all(item.value["author"] == "John Doe" for item in john_items)

    draft_items = store.search((base,), filter={"tags": ["draft"]})
    assert len(draft_items) == 2
    assert all("draft" in item.value["tags"] for item in draft_items)

    for ns in test_namespaces:
        key = f"item_{ns[-1]}"
        store.delete(ns, key)


# -- libs/checkpoint-sqlite/tests/test_async_store.py --------------------------------------------


async def test_async_embed_with_path_thresholds(
    make_store: MakeStore, fake_embeddings: CharacterEmbeddings
) -> None:
    """Test vector search with specific text fields in SQLite store."""
    store = sqlite_vector_store(make_store, fake_embeddings, ["key0", "key1", "key3"])
    # This will have 2 vectors representing it
    doc1 = {
        # Omit key0 - check it doesn't raise an error
        "key1": "xxx",
        "key2": "yyy",
        "key3": "zzz",
    }
    # This will have 3 vectors representing it
    doc2 = {
        "key0": "uuu",
        "key1": "vvv",
        "key2": "www",
        "key3": "xxx",
    }
    await store.aput(("test",), "doc1", doc1)
    await store.aput(("test",), "doc2", doc2)

    # doc2.key3 and doc1.key1 both would have the highest score
    results = await store.asearch(("test",), query="xxx")
    assert len(results) == 2
    assert results[0].key != results[1].key
    assert results[0].score > 0.9
    assert results[1].score > 0.9

    # ~Only match doc2
    results = await store.asearch(("test",), query="uuu")
    assert len(results) == 2
    assert results[0].key != results[1].key
    assert results[0].key == "doc2"
    assert results[0].score > results[1].score

    # Un-indexed - will have low results for both. Not zero (because we're projecting)
    # but less than the above.
    results = await store.asearch(("test",), query="www")
    assert len(results) == 2
    assert results[0].score < 0.9
    assert results[1].score < 0.9


async def test_async_basic_store_ops(
    make_store: MakeStore,
    fake_embeddings: CharacterEmbeddings,
) -> None:
    """Test vector search with specific text fields in SQLite store."""
    store = sqlite_vector_store(make_store, fake_embeddings, ["key0", "key1", "key3"])
    uid = uuid.uuid4().hex
    namespace = (uid, "test", "documents")
    item_id = "doc1"
    item_value = {"title": "Test Document", "content": "Hello, World!"}
    results = await store.asearch((uid,))
    assert len(results) == 0

    await store.aput(namespace, item_id, item_value)
    item = await store.aget(namespace, item_id)

    assert item is not None
    assert item.namespace == namespace
    assert item.key == item_id
    assert item.value == item_value
    assert item.created_at is not None
    assert item.updated_at is not None

    updated_value = {
        "title": "Updated Test Document",
        "content": "Hello, LangGraph!",
    }
    await asyncio.sleep(1.01)
    await store.aput(namespace, item_id, updated_value)
    updated_item = await store.aget(namespace, item_id)
    assert updated_item is not None

    assert updated_item.value == updated_value
    assert updated_item.updated_at > item.updated_at
    different_namespace = (uid, "test", "other_documents")
    item_in_different_namespace = await store.aget(different_namespace, item_id)
    assert item_in_different_namespace is None

    new_item_id = "doc2"
    new_item_value = {"title": "Another Document", "content": "Greetings!"}
    await store.aput(namespace, new_item_id, new_item_value)

    items = await store.asearch((uid, "test"), limit=10)
    assert len(items) == 2
    assert any(item.key == item_id for item in items)
    assert any(item.key == new_item_id for item in items)

    namespaces = await store.alist_namespaces(prefix=(uid, "test"))
    assert (uid, "test", "documents") in namespaces

    await store.adelete(namespace, item_id)
    await store.adelete(namespace, new_item_id)
    deleted_item = await store.aget(namespace, item_id)
    assert deleted_item is None

    deleted_item = await store.aget(namespace, new_item_id)
    assert deleted_item is None

    empty_search_results = await store.asearch((uid, "test"), limit=10)
    assert len(empty_search_results) == 0
