"""Replicas per user: a scoped search reads and keeps only that user's memories, LRU-capped.

Against a real ``redis-server``. Rankings are compared with the in-process index holding the same
user's memories (the statistics a segment replica ranks with).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import namespace
from redis_server import RedisServer
from tta_dev_primitives.memory._values import encode_value
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.stores import Document, Put
from tta_dev_primitives.stores._inprocess import InProcessSearchBackend
from tta_dev_primitives.stores._redis.backend import RedisBackend
from tta_dev_primitives.stores._redis.search import RedisSearchBackend

pytestmark = pytest.mark.redis

INDEXING = Indexing()
WORDS = ["car", "garage", "brakes", "maria", "trip", "paris"]


def backend(url: str, ns: str, **options: Any) -> RedisSearchBackend:
    """A searching backend (segment replicas are on by default; said here, as tested)."""
    return RedisSearchBackend(url, namespace=ns, timeout=30, scope_replicas=True, **options)


async def put(store: Any, key: str, text: str) -> None:
    """Write a memory as MemoryPrimitive would (payload and analysed document)."""
    value = {"content": text}
    await store.put(key, encode_value(value), None, document=Document(INDEXING.terms(value)))


def held(store: RedisSearchBackend) -> dict[str, int]:
    """Memories held by each segment replica of ``store``."""
    assert store.index.replicas is not None
    return {seg: len(replica.index) for seg, replica in store.index.replicas.scoped.items()}


ops = st.lists(
    st.tuples(
        st.sampled_from(["put", "put", "delete"]),
        st.sampled_from(["u1", "u2", "u10", "u1x"]),
        st.sampled_from(["s1", "s2"]),
        st.integers(0, 5),
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
    ),
    max_size=30,
)


def test_a_scoped_search_ranks_like_in_process_over_that_users_memories(
    redis_server: RedisServer,
) -> None:
    """Any writes and deletes by another process: scope "u1" gives the in-process answer."""

    @settings(max_examples=20, deadline=None)
    @given(writes=ops, question=st.sampled_from(WORDS))
    def check(writes: list[tuple[str, str, str, int, str]], question: str) -> None:
        async def body() -> None:
            ns = namespace()
            reader, writer = backend(redis_server.url, ns), backend(redis_server.url, ns)
            local = InProcessSearchBackend(10_000)  # u1's memories only
            query = INDEXING.query(question)
            try:
                await reader.search(query, 50, "u1")  # loaded before the writes: catch-up
                for op, user, session, n, text in writes:
                    key = f"{user}:{session}:{n}"
                    if op == "put":
                        await put(writer, key, text)
                        if user == "u1":
                            await put(local, key, text)
                    else:
                        await writer.delete(key)
                        await local.delete(key)
                want = await local.search(query, 50, None)
                got = await reader.search(query, 50, "u1")
                assert [(k, p.decode(), s) for k, p, s in got] == want
                assert held(reader) == {"u1": await local.size()}  # no other user's memory
                want = await local.search(query, 50, "u1:s1")
                got = await reader.search(query, 50, "u1:s1")
                assert [k for k, _, _ in got] == [k for k, _, _ in want]
            finally:
                await reader.clear()
                await reader.aclose()
                await writer.aclose()

        asyncio.run(body())

    check()


async def test_segment_replicas_are_capped_by_count_and_by_memories(
    redis_server: RedisServer,
) -> None:
    """Beyond max_scopes or scope_budget, the least recently searched user's replica goes."""
    ns = namespace()
    writer = RedisBackend(redis_server.url, namespace=ns, timeout=30)
    await writer.apply(
        [
            Put(f"u{u}:s1:{i}", encode_value({"content": "trip"}))
            for u in range(4)
            for i in range(10)
        ]
    )
    await writer.aclose()
    query = INDEXING.query("trip")
    by_count = backend(redis_server.url, ns, max_scopes=2)
    by_memories = backend(redis_server.url, ns, scope_budget=25)
    try:
        for user in ("u0", "u1", "u0", "u2"):
            assert len(await by_count.search(query, 50, user)) == 10
            assert len(await by_memories.search(query, 50, user)) == 10
        assert list(held(by_count)) == ["u0", "u2"]
        assert held(by_memories) == {"u0": 10, "u2": 10}
        assert len(await by_count.search(query, 50, None)) == 40  # the namespace's replica
        assert held(by_count) == {}  # it answers every scope from now on
        assert len(await by_count.search(query, 50, "u3")) == 10
    finally:
        await by_count.clear()
        await by_count.aclose()
        await by_memories.aclose()


async def test_partitions_written_before_segment_feeds_are_searched_by_user(
    redis_server: RedisServer,
) -> None:
    """A partition without segment feeds (an older layout) is filtered by user in Redis."""
    ns = namespace()
    writer = backend(redis_server.url, ns)
    for i in range(30):
        await put(writer, f"u{i % 3}:s1:{i}", f"paris {WORDS[i % 6]}")
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        # As the layout was before: no segment feeds, no "segs" fact.
        base = writer.layout.bases[0]
        await raw.hdel(base + "n", "segs")
        await raw.delete(*[base + f"r:u{u}" for u in range(3)])
        reader = backend(redis_server.url, ns)
        query = INDEXING.query("paris")
        found = await reader.search(query, 50, "u1")
        assert sorted(k for k, _, _ in found) == sorted(f"u1:s1:{i}" for i in range(1, 30, 3))
        assert held(reader) == {"u1": 10}
        await put(writer, "u1:s2:new", "paris again")
        await writer.delete("u1:s1:1")
        found = await reader.search(query, 50, "u1")
        assert "u1:s2:new" in {k for k, _, _ in found}
        assert "u1:s1:1" not in {k for k, _, _ in found}
        assert held(reader) == {"u1": 10}
        await reader.aclose()
    finally:
        await raw.aclose()
        await writer.clear()
        await writer.aclose()


async def test_memory_primitive_takes_the_replica_caps_and_load_budget(
    redis_server: RedisServer,
) -> None:
    """MemoryPrimitive(max_scopes=, scope_budget=, load_timeout=) reach the Redis backend; a
    bad value is named at construction, with or without Redis."""
    from tta_dev_primitives import MemoryPrimitive
    from tta_dev_primitives.exceptions import InvalidArgumentError

    memory = MemoryPrimitive(
        redis_server.url, namespace=namespace(), search_engine="replica",
        max_scopes=1, scope_budget=500, load_timeout=30,
    )  # fmt: skip
    for user in ("u0", "u1"):
        await memory.add(f"{user}:s1:t", {"content": "trip"})
        assert len(await memory.search("trip", scope=user)) == 1
    remote = memory._store.remote
    assert list(held(remote)) == ["u1"]  # max_scopes=1: u0's replica went
    assert remote.index.load_timeout == 30  # type: ignore[union-attr]
    await memory.clear()
    await memory.aclose()
    for bad in ({"max_scopes": 0}, {"scope_budget": -1}, {"load_timeout": 0}):
        with pytest.raises(InvalidArgumentError):
            MemoryPrimitive(**bad)  # type: ignore[arg-type]


async def test_an_unfinished_word_completes_from_the_scope_s_own_words(
    redis_server: RedisServer,
) -> None:
    """Another user's 300 words starting "pro" (more than an unfinished word expands to) do
    not hide this user's "projector": in-process, in a replica of the user, and in the whole
    namespace's replica, before and after an unscoped search made it."""
    from tta_dev_primitives import MemoryPrimitive

    ns = namespace()
    local = MemoryPrimitive(max_size=1_000)
    shared = MemoryPrimitive(redis_server.url, namespace=ns, search_engine="replica")
    memories = [(f"u2:s1:{i}", f"pro{1000 + i} is a part number") for i in range(300)]
    memories.append(("u1:s1:a", "I bought a projector"))
    for memory in (local, shared):
        for key, text in memories:
            await memory.add(key, {"content": text})
    reader = MemoryPrimitive(redis_server.url, namespace=ns, search_engine="replica")
    try:
        found = await local.search_scored("where is my pro", scope="u1")
        want = [(h.key, round(h.score, 9)) for h in found]
        assert [key for key, _ in want] == ["u1:s1:a"]
        for unscoped_first in (False, True):
            if unscoped_first:
                await reader.search("where is my pro")  # the whole namespace's replica
            got = await reader.search_scored("where is my pro", scope="u1")
            assert [(h.key, round(h.score, 9)) for h in got] == want
    finally:
        await shared.clear()
        for memory in (local, shared, reader):
            await memory.aclose()
