"""The LangGraph store's limits are the memory's, and visible: text_fields and capacity."""

from __future__ import annotations

import logging
import uuid

import pytest
from langgraph.store.memory import InMemoryStore

from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import InvalidArgumentError
from tta_dev_primitives.integrations.langgraph import UNBOUNDED, MemoryPrimitiveStore

ITEMS = {
    "hike": {"content": "I went hiking in the Alps", "title": "skiing trip", "mood": "sunny"},
    "car": {"content": "My car is a red Fiat", "title": "garage notes"},
    "none": {"title": "hiking boots"},  # nothing in the searched field
}
QUERIES = ["hiking", "skiing", "car", "garage", "sunny", "red fiat", "boots"]


@pytest.fixture(params=["in-process", pytest.param("redis", marks=pytest.mark.redis)])
def redis_url(request: pytest.FixtureRequest) -> str | None:
    """No URL (in-process), or the session's real redis-server."""
    if request.param == "in-process":
        return None
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


def namespace() -> str:
    return f"limits:{uuid.uuid4().hex}"


async def test_text_fields_search_the_same_through_the_store(redis_url: str | None) -> None:
    """With text_fields=("content",), store queries find exactly what memory queries find."""
    direct = MemoryPrimitive(redis_url, text_fields=("content",), namespace=namespace())
    wrapped = MemoryPrimitive(redis_url, text_fields=("content",), namespace=namespace())
    store = MemoryPrimitiveStore(wrapped)
    try:
        for key, value in ITEMS.items():
            await direct.add(f"u1:{key}", value)
            await store.aput(("u1",), key, value)
        for query in QUERIES:
            expected = [k for k, _ in await direct.search_items(query, limit=10, scope="u1")]
            found = await store.asearch(("u1",), query=query, limit=10)
            assert [f"u1:{item.key}" for item in found] == expected, query
        assert [i.key for i in await store.asearch(("u1",), query="hiking")] == ["hike"]
        assert await store.asearch(("u1",), query="skiing") == []  # titles are not searched
        # Items read back exactly as written: the copy made for search stays inside.
        assert (await store.aget(("u1",), "hike")).value == ITEMS["hike"]  # type: ignore[union-attr]
    finally:
        for memory in (direct, wrapped):
            await memory.clear()
            await memory.aclose()


async def test_text_fields_naming_a_record_field_are_refused() -> None:
    """text_fields=("value",) would mean the store's own field: refused, naming it."""
    with pytest.raises(InvalidArgumentError, match=r"\['value'\]"):
        MemoryPrimitiveStore(MemoryPrimitive(text_fields=("content", "value")))


async def test_from_url_in_process_keeps_every_item_like_in_memory_store() -> None:
    """1,201 puts through from_url(None) keep all 1,201, the first profile too, as InMemoryStore."""
    ours, theirs = MemoryPrimitiveStore.from_url(None), InMemoryStore()
    assert ours.memory.get_backend_info()["max_size"] == UNBOUNDED
    try:
        for store in (ours, theirs):
            await store.aput(("users", "u1"), "profile", {"name": "Ada", "likes": "hiking"})
            for i in range(1_200):
                await store.aput(("users", "u1", "turns"), f"t{i}", {"text": f"turn {i}"})
        for store in (ours, theirs):
            profile = await store.aget(("users", "u1"), "profile")
            assert profile is not None
            assert profile.value["name"] == "Ada"
        assert await ours.memory.size() == 1_201
    finally:
        await ours.memory.aclose()


@pytest.mark.redis
async def test_from_url_on_redis_keeps_every_item(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """On Redis, 1,201 puts past the stand-by copy's 1,000 keep the profile, with no warning."""
    store = MemoryPrimitiveStore.from_url(redis_server.url, namespace=namespace())
    try:
        with caplog.at_level(logging.WARNING, logger="tta_dev_primitives"):
            await store.aput(("users", "u1"), "profile", {"name": "Ada"})
            for i in range(1_200):
                await store.aput(("users", "u1", "turns"), f"t{i}", {"text": f"turn {i}"})
        profile = await store.aget(("users", "u1"), "profile")
        assert profile is not None
        assert profile.value == {"name": "Ada"}
        assert await store.memory.size() == 1_201
        assert store.memory.using_redis
        assert not [r for r in caplog.records if "is full" in r.getMessage()]
    finally:
        await store.memory.clear()
        await store.memory.aclose()


async def test_a_bounded_in_process_memory_warns_once_when_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A store on MemoryPrimitive(max_size=5) logs one warning (the memory's, at its first
    eviction), then drops the oldest."""
    store = MemoryPrimitiveStore(MemoryPrimitive(max_size=5))
    with caplog.at_level(logging.WARNING, logger="tta_dev_primitives"):
        for i in range(4):
            await store.aput(("u1",), f"k{i}", {"text": f"item {i}"})
        assert not caplog.records
        for i in range(4, 9):
            await store.aput(("u1",), f"k{i}", {"text": f"item {i}"})
    full = [r for r in caplog.records if "is full (max_size=5)" in r.getMessage()]
    assert len(full) == 1
    assert full[0].levelno == logging.WARNING
    assert await store.aget(("u1",), "k0") is None  # what the warning said would happen
    assert await store.aget(("u1",), "k8") is not None


async def test_from_url_in_process_honours_an_explicit_max_size() -> None:
    """from_url(None, max_size=3) is bounded as asked."""
    store = MemoryPrimitiveStore.from_url(None, max_size=3)
    assert store.memory.get_backend_info()["max_size"] == 3
