"""Which fields are searched, the long-query bound, and big namespaces on Redis."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import pytest

from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.memory._values import encode_value
from tta_dev_primitives.search import MAX_QUERY_TERMS
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._term_index import TermIndex
from tta_dev_primitives.stores import Put
from tta_dev_primitives.stores._redis.backend import RedisBackend

TURN = {
    "role": "assistant",
    "type": "message",
    "user_id": "maria",
    "created_at": "2026-11-26T10:00:00Z",
    "content": "Your car is at the garage",
    "tags": ["repairs"],
    "meta": {"status": "open", "note": "brakes"},
}


async def test_metadata_fields_are_not_searched_by_default(memory: MemoryPrimitive) -> None:
    """role, type, *_id, *_at and status are labels: they never match; everything else does."""
    await memory.add("u1:s1:a", TURN)
    for label in ("assistant", "message", "maria", "2026", "open"):
        assert await memory.search(label) == [], label
    for text in ("car", "garage", "repairs", "brakes"):
        assert await memory.search(text) == [TURN], text


async def test_text_fields_names_the_searched_fields(memory: MemoryPrimitive) -> None:
    """text_fields=("content", "meta"): only those fields (and everything inside) are searched."""
    only = MemoryPrimitive(
        memory.get_backend_info()["url"],  # the same backend (test URLs have no password)
        namespace=f"fields:{uuid4().hex[:8]}",
        text_fields=("content", "meta"),
    )
    try:
        await only.add("u1:s1:a", TURN)
        assert await only.search("garage") == [TURN]
        assert await only.search("brakes open") == [TURN]  # inside meta: every string counts
        assert await only.search("repairs") == []  # tags is not named
    finally:
        await only.clear()
        await only.aclose()


@pytest.mark.parametrize("fields", ["content", ("",), (1,), 5, ()])
def test_bad_text_fields_are_refused(fields: Any) -> None:
    """A str, an empty name, a non-str name or no names at all: a clear error at construction."""
    with pytest.raises((TypeError, ValueError), match="text_fields"):
        MemoryPrimitive(text_fields=fields)


def test_a_long_query_scores_only_its_rarest_terms() -> None:
    """1,000 distinct known terms in a query: only MAX_QUERY_TERMS postings lists are scored."""
    terms = TermIndex()
    for i in range(2000):
        terms.add(i, f"k{i}", {f"w{i % 1000}": 1, "common": 1})
    plan = terms.plan(Query((*(f"w{i}" for i in range(1000)), "common")), None)
    assert plan is not None
    assert len(plan.expansions) == MAX_QUERY_TERMS
    assert ["common"] not in plan.expansions  # the most common term is the least informative


async def test_a_megabyte_query_answers_like_its_beginning(memory: MemoryPrimitive) -> None:
    """A pasted 1 MB question is cut to its first 10,000 characters, on every backend."""
    for i in range(50):
        await memory.add(f"u1:s1:{i}", {"content": f"note {i} about topic{i % 7} and garage"})
    head = " ".join(f"topic{i % 7} word{i}" for i in range(1200))[:10_000]
    query = head + " zebra" * 200_000
    assert len(query) > 1_000_000
    async with asyncio.timeout(30):  # a hang guard, not a timing assertion
        assert await memory.search(query, 5) == await memory.search(head, 5)


@pytest.mark.redis
async def test_searching_a_large_namespace_never_falls_back(redis_server: RedisServer) -> None:
    """20,000 memories, a short timeout: loading the replica and 100 questions stay on Redis."""
    ns = f"large:{uuid4().hex[:8]}"
    loader = RedisBackend(redis_server.url, namespace=ns, timeout=30)
    words = ["car", "garage", "brakes", "maria", "hiking", "trip", "dinner", "paris", "dog"]
    for start in range(0, 20_000, 1000):
        await loader.apply(
            [
                Put(f"u{i % 40}:s1:{i}", encode_value({"content": f"{words[i % 9]} turn {i}"}))
                for i in range(start, start + 1000)
            ]
        )
    await loader.aclose()
    memory = MemoryPrimitive(redis_server.url, namespace=ns, redis_timeout=0.5)
    try:
        for i in range(100):
            question = f"When did I talk about {words[i % 9]} on turn {i * 97 % 20_000}?"
            scope = None if i % 2 else f"u{i % 40}"
            assert await memory.search(question, 10, scope=scope)
            # A fallback would leave the memory degraded until the next probe, a second away.
            assert memory.using_redis, memory.get_backend_info()["last_error"]
        assert await memory.size() == 20_000
        assert memory.get_backend_info()["last_error"] is None
    finally:
        await memory.clear()
        await memory.aclose()
