"""RedisBackend itself: same answers as the in-process backend, a clean index, odd inputs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import uuid4

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import documented_acl, eventually
from redis_server import RedisServer, free_port
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import BackendRefusedError, BackendUnavailableError
from tta_dev_primitives.memory._values import encode_value
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.stores import Clear, Delete, Document, Put
from tta_dev_primitives.stores._inprocess import InProcessSearchBackend
from tta_dev_primitives.stores._redis.search import RedisSearchBackend

pytestmark = pytest.mark.redis

WORDS = ["alpha", "alps", "al", "beta", "bet", "betting", "redis", "red", "reddish", "time"]
KEYS = ["u1:s1:a", "u1:s1:b", "u1:s2:c", "u2:s1:d", "u10:s1:e", "u1:s1", "solo", "x y:{z}*"]
SCOPES = [None, "u1", "u1:s1", "u10", "solo", "x y"]

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("put"),
            st.sampled_from(KEYS),
            st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join),
        ),
        st.tuples(st.just("delete"), st.sampled_from(KEYS), st.just("")),
    ),
    min_size=1,
    max_size=25,
)
queries = st.lists(
    st.tuples(
        st.one_of(
            st.just(""),
            st.sampled_from(WORDS),
            st.sampled_from(WORDS).map(lambda w: w[:2]),
            st.lists(st.sampled_from(WORDS), min_size=2, max_size=3).map(" ".join),
        ),
        st.integers(1, 6),
        st.sampled_from(SCOPES),
    ),
    min_size=1,
    max_size=8,
)


INDEXING = Indexing()


def encode(value: dict[str, Any]) -> tuple[str, dict[str, int]]:
    """A value's payload and terms, as MemoryPrimitive hands them to a backend."""
    return encode_value(value), INDEXING.terms(value)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def namespace_keys(url: str, namespace: str) -> list[bytes]:
    client = aioredis.Redis.from_url(url)
    keys = [k async for k in client.scan_iter(match=f"{namespace}:*", count=1000)]
    await client.aclose()
    return sorted(keys)


@pytest.mark.parametrize("partitions", [1, 4])
def test_redis_answers_exactly_like_in_process(redis_server: RedisServer, partitions: int) -> None:
    """Random writes, then searches of every kind: same keys in the same order on both."""

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(writes=ops, searches=queries)
    def check(writes: list[tuple[str, str, str]], searches: list[tuple[str, int, Any]]) -> None:
        async def body() -> None:
            ns = f"parity:{uuid4().hex[:10]}"
            remote = RedisSearchBackend(redis_server.url, namespace=ns, partitions=partitions)
            local = InProcessSearchBackend(10_000)
            for op, key, text in writes:
                if op == "put":
                    payload, terms = encode({"content": text, "key": key})
                    await local.put(key, payload, None, document=Document(terms))
                    await remote.put(key, payload, None, document=Document(terms))
                else:
                    assert await local.delete(key) == await remote.delete(key)
            assert await local.size() == await remote.size()
            for query, limit, scope in searches:
                analysed = INDEXING.query(query)
                want = await local.search(analysed, limit, scope)
                got = await remote.search(analysed, limit, scope)
                # Same keys, payloads and scores, in the same order.
                assert [(k, p.decode(), sc) for k, p, sc in got] == want, (query, limit, scope)
            for key in KEYS:
                got_value = await remote.get(key)
                assert (got_value.decode() if got_value else None) == await local.get(key)
            await remote.clear()
            await remote.aclose()

        run(body())

    check()


def bookkeeping(name: bytes) -> bool:
    """A partition's facts, heads or tombstones (``n``, ``h``, ``hm``, ``g``, or a segment's
    ``g:<seg>`` and its head ``h:<seg>``, which goes with the segment's last tombstone)."""
    own = name.rsplit(b"}:", 1)[1]
    return own in (b"n", b"h", b"hm", b"g") or own.startswith((b"g:", b"h:"))


def test_no_index_entries_survive_deleting_everything(redis_server: RedisServer) -> None:
    """After any writes and a delete of every key, only partition facts, heads and tombstones
    remain."""

    @settings(max_examples=25, deadline=None)
    @given(writes=ops)
    def check(writes: list[tuple[str, str, str]]) -> None:
        async def body() -> None:
            ns = f"orphans:{uuid4().hex[:10]}"
            backend = RedisSearchBackend(redis_server.url, namespace=ns, partitions=2)
            for op, key, text in writes:
                if op == "put":
                    payload, terms = encode({"content": text})
                    await backend.put(key, payload, None, document=Document(terms))
                else:
                    await backend.delete(key)
            for key in KEYS:
                await backend.delete(key)
            left = await namespace_keys(redis_server.url, ns)
            assert all(map(bookkeeping, left)), left
            await backend.clear()
            assert await namespace_keys(redis_server.url, ns) == []
            await backend.aclose()

        run(body())

    check()


async def test_expired_memories_leave_no_index_entries(redis_server: RedisServer) -> None:
    """A TTL'd memory disappears from Redis, and its index entries go at the next search."""
    ns = f"ttl:{uuid4().hex[:10]}"
    backend = RedisSearchBackend(redis_server.url, namespace=ns)
    payload, terms = encode({"content": "fleeting thought"})
    await backend.put("u1:s1:k", payload, 0.15, document=Document(terms))
    fleeting = INDEXING.query("fleeting")
    assert [hit[:2] for hit in await backend.search(fleeting, 5, None)] == [
        ("u1:s1:k", payload.encode())
    ]

    async def gone() -> bool:
        return await backend.search(fleeting, 5, None) == []

    await eventually(gone)

    async def swept() -> bool:
        # The replica drops the memory at its deadline; Redis's own sets are swept by the next
        # scripts (a search's catch-up sweeps too). Then only the partition's facts and the
        # expired key's tombstone (which keeps its version) remain.
        await backend.search(fleeting, 5, None)
        left[:] = await namespace_keys(redis_server.url, ns)
        return all(map(bookkeeping, left))

    left: list[bytes] = []
    try:
        await eventually(swept)
    except AssertionError:
        raise AssertionError(f"left behind: {left}") from None
    assert await backend.size() == 0
    await backend.clear()
    await backend.aclose()


async def test_a_due_deadline_whose_value_lives_on_is_kept(redis_server: RedisServer) -> None:
    """The sweep trusts Redis's own expiry: a value still there keeps its recency entry."""
    ns = f"due:{uuid4().hex[:10]}"
    backend = RedisSearchBackend(redis_server.url, namespace=ns)
    payload, terms = encode({"content": "lasting thought"})
    await backend.put("k", payload, 60, document=Document(terms))
    raw = aioredis.Redis.from_url(redis_server.url)
    base = f"{ns}:{{{ns}#0}}:"
    await raw.zadd(base + "x", {"k": 0})  # the deadline here says due; Redis says 60 s left
    await backend.search(INDEXING.query("lasting"), 5, None)  # a catch-up sweeps
    assert await raw.zscore(base + "r", "k") is not None
    assert (await raw.zscore(base + "x", "k") or 0) > 0
    assert await backend.size() == 1
    await raw.aclose()
    await backend.clear()
    await backend.aclose()


async def test_garbage_values_read_as_misses_and_are_counted(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Not-JSON, not-a-dict or wrong-type values read as misses, logged without their content."""
    ns = f"garbage:{uuid4().hex[:10]}"
    memory = MemoryPrimitive(redis_server.url, namespace=ns)
    await memory.add("u1:s1:ok", {"content": "fine value"})
    await memory.add("u1:s1:bad", {"content": "fine value too"})
    raw = aioredis.Redis.from_url(redis_server.url)
    base = f"{ns}:{{{ns}#0}}:v:"
    await raw.set(base + "u1:s1:bad", b"\xff not json SECRET-CONTENT")
    await raw.set(base + "u1:s1:list", b"[1, 2]")
    await raw.hset(base + "u1:s1:hash", "f", "v")
    with caplog.at_level(logging.WARNING):
        assert await memory.get("u1:s1:bad") is None
        assert await memory.get("u1:s1:list") is None
        assert await memory.get("u1:s1:hash") is None
        assert await memory.search("fine") == [{"content": "fine value"}]
    assert "SECRET-CONTENT" not in caplog.text
    assert "not a JSON object" in caplog.text
    await memory.clear()
    await raw.aclose()
    await memory.aclose()


@pytest.mark.parametrize(
    "key", ["with space", "ünïcödé:κλειδί", "braces:{tag}:x", "star*:?[x]", "a:b:c:d:e", "日本"]
)
async def test_any_characters_in_keys(redis_server: RedisServer, key: str) -> None:
    """Keys with spaces, unicode, braces and glob characters work, including as scopes."""
    memory = MemoryPrimitive(redis_server.url, namespace=f"keys:{uuid4().hex[:10]}")
    await memory.add(key, {"content": "odd key"})
    assert await memory.get(key) == {"content": "odd key"}
    scope = key.rsplit(":", 1)[0] if ":" in key else key
    assert await memory.search("odd", scope=scope) == [{"content": "odd key"}]
    assert await memory.delete(key) is True
    assert await memory.size() == 0
    await memory.aclose()


async def test_a_one_megabyte_value(redis_server: RedisServer) -> None:
    """A 1 MB value is stored, read back equal, and searchable."""
    memory = MemoryPrimitive(redis_server.url, namespace=f"big:{uuid4().hex[:10]}")
    value = {"content": " ".join(f"word{i % 5000}" for i in range(120_000)) + " needle"}
    assert len(str(value)) > 1_000_000
    await memory.add("big", value)
    assert await memory.get("big") == value
    assert await memory.search("needle") == [value]
    await memory.clear()
    await memory.aclose()


async def test_apply_keeps_order_across_a_clear(redis_server: RedisServer) -> None:
    """A Clear in the middle of a replay removes only what came before it."""
    backend = RedisSearchBackend(redis_server.url, namespace=f"apply:{uuid4().hex[:10]}")
    p1, t1 = encode({"content": "one"})
    p2, t2 = encode({"content": "two"})
    await backend.apply(
        [Put("a", p1, None, Document(t1)), Put("b", p1, None, Document(t1)), Clear(),
         Put("c", p2, None, Document(t2)), Put("a", p2, None, Document(t2)), Delete("c")]
    )  # fmt: skip
    assert await backend.get("a") == p2.encode()
    assert await backend.get("b") is None
    assert await backend.get("c") is None
    assert await backend.size() == 1
    await backend.clear()
    await backend.aclose()


async def test_unreachable_server_fails_fast_and_typed() -> None:
    """Nothing listening: BackendUnavailableError, not a hang or a redis-py exception."""
    backend = RedisSearchBackend(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    async with asyncio.timeout(10):  # a hang guard
        with pytest.raises(BackendUnavailableError, match="unavailable"):
            await backend.get("k")
    await backend.aclose()


async def test_scripts_are_reloaded_after_a_restart(redis_server_factory: Any) -> None:
    """A restarted server has no scripts: the next write loads them again transparently."""
    server: RedisServer = redis_server_factory()
    backend = RedisSearchBackend(server.url, namespace="noscript")
    payload, terms = encode({"content": "durable"})
    await backend.put("k", payload, None, document=Document(terms))
    server.restart()
    # The pooled connection died with the server: retried once on a fresh one (no data kept).
    assert await backend.get("k") is None
    await backend.put("k", payload, None, document=Document(terms))
    found = await backend.search(INDEXING.query("durable"), 5, None)
    assert [hit[:2] for hit in found] == [("k", payload.encode())]
    await backend.aclose()


def test_one_memory_across_event_loops_closed_in_each(redis_server: RedisServer) -> None:
    """Closed at the end of each asyncio.run, a MemoryPrimitive reconnects on the next loop."""
    memory = MemoryPrimitive(redis_server.url, namespace=f"loops:{uuid4().hex[:10]}")

    async def first() -> None:
        async with memory:
            await memory.add("k", {"content": "first loop"})

    async def second() -> Any:
        async with memory:
            value = await memory.get("k")
            await memory.clear()
            return value

    asyncio.run(first())
    assert asyncio.run(second()) == {"content": "first loop"}
    assert memory.using_redis


def test_one_memory_across_event_loops_without_closing(redis_server: RedisServer) -> None:
    """Not closed between asyncio.run calls, it still works: a new client for the new loop.

    The first loop's connections cannot be closed once that loop is gone (asyncio warns about
    them when they are collected), so this runs in its own process; the guide says to use
    ``async with`` or ``aclose()`` in each loop.
    """
    import subprocess
    import sys
    import textwrap

    code = f"""
        import asyncio
        from tta_dev_primitives import MemoryPrimitive
        memory = MemoryPrimitive({redis_server.url!r}, namespace="loops:{uuid4().hex[:10]}")
        asyncio.run(memory.add("k", {{"content": "first loop"}}))
        value = asyncio.run(memory.get("k"))
        asyncio.run(memory.clear())
        asyncio.run(memory.aclose())
        print(value, memory.using_redis)
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'content': 'first loop'} True"


async def test_glob_characters_in_a_namespace_do_not_widen_clear(
    redis_server: RedisServer,
) -> None:
    """clear() on namespace 'n*' leaves namespace 'nx' alone."""
    suffix = uuid4().hex[:8]
    star = MemoryPrimitive(redis_server.url, namespace=f"g{suffix}*")
    other = MemoryPrimitive(redis_server.url, namespace=f"g{suffix}x")
    await star.add("k", {"v": 1})
    await other.add("k", {"v": 2})
    await star.clear()
    assert await other.get("k") == {"v": 2}
    await other.clear()
    await star.aclose()
    await other.aclose()


@pytest.mark.parametrize(
    ("url", "match"),
    [("http://h", "scheme"), ("redis://", "host"), ("redis://h/abc", "database"),
     ("redis://:pw@h:99999", "Port")],
)  # fmt: skip
def test_bad_urls_are_value_errors_with_the_password_hidden(url: str, match: str) -> None:
    """A malformed URL fails at construction, naming the problem, never showing a password."""
    with pytest.raises(ValueError, match=match) as info:
        MemoryPrimitive(url)
    assert "pw" not in str(info.value)


ACL_COMMANDS = " ".join(documented_acl())  # exactly docs/production.md's


async def acl_user(server: RedisServer, keys: str) -> str:
    """Create user 'tta' with the documented commands on ``keys``; its URL."""
    admin = aioredis.Redis.from_url(server.url)
    await admin.execute_command(
        "ACL", "SETUSER", "tta", "on", ">tta-secret", "resetkeys", keys, "-@all",
        *ACL_COMMANDS.split(),
    )  # fmt: skip
    await admin.aclose()
    return f"redis://tta:tta-secret@127.0.0.1:{server.port}/0"


async def test_the_documented_acl_is_enough(redis_server_factory: Any) -> None:
    """A user with only the documented commands, on the namespace's keys, never falls back."""
    url = await acl_user(redis_server_factory(), "~tta:acl:*")
    memory = MemoryPrimitive(url, namespace="tta:acl")
    await memory.add("u1:s1:a", {"content": "least privilege"}, ttl=60)
    await memory.add("u1:s1:b", {"content": "privilege two"})
    assert await memory.get("u1:s1:a") == {"content": "least privilege"}
    assert len(await memory.search("privilege", scope="u1:s1")) == 2
    assert len(await memory.search("")) == 2
    assert await memory.delete("u1:s1:b") is True
    assert await memory.size() == 1
    assert [key async for key, _, _ in memory.items()] == ["u1:s1:a"]  # export, stats
    await memory.clear()
    assert memory.using_redis
    assert memory.get_backend_info()["degraded"] is False
    await memory.aclose()


async def test_a_database_the_server_lacks_is_refused(redis_server: Any) -> None:
    """A URL's database number past the server's ``databases`` (16 by default) is a refusal
    naming it, not an outage and not a bare error; nothing is kept or journalled."""
    memory = MemoryPrimitive(f"redis://127.0.0.1:{redis_server.port}/99", namespace="tta")
    with pytest.raises(BackendRefusedError, match="database number"):
        await memory.add("k", {"content": "refused"})
    with pytest.raises(BackendRefusedError, match="database number"):
        await memory.search("refused")
    info = memory.get_backend_info()
    assert (info["degraded"], info["journal_size"]) == (False, 0)
    await memory.aclose()


async def test_a_user_without_the_namespace_keys_is_refused(redis_server_factory: Any) -> None:
    """NOPERM (keys outside the ACL) is no outage: the add raises, nothing is kept or journalled."""
    url = await acl_user(redis_server_factory(), "~other:*")
    memory = MemoryPrimitive(url, namespace="tta")
    with pytest.raises(BackendRefusedError, match="NOPERM"):
        await memory.add("k", {"content": "refused"})
    with pytest.raises(BackendRefusedError):
        await memory.get("k")
    info = memory.get_backend_info()
    assert (info["degraded"], info["journal_size"]) == (False, 0)
    await memory.aclose()
