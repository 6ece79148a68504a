"""Bulk operations on Redis (clear, items/export): bounded pages that finish, or say how far."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import uuid4

import pytest
import redis.asyncio as aioredis

from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import BackendUnavailableError, IncompleteOperationError
from tta_dev_primitives.stores import Put
from tta_dev_primitives.stores._redis.backend import RedisBackend
from tta_dev_primitives.stores._redis.connection import Connection
from tta_dev_primitives.stores._redis.layout import PARTITIONS_AT_ONCE

pytestmark = pytest.mark.redis

MANY = 200_000


async def load(url: str, namespace: str, count: int, *, prefix: str = "u:s:") -> None:
    """``count`` memories written straight into the layout (partition 0), pipelined."""
    base = f"{namespace}:{{{namespace}#0}}:"
    client = aioredis.Redis.from_url(url)
    seq = 1_700_000_000_000_000
    for start in range(0, count, 10_000):
        keys = [f"{prefix}{i}" for i in range(start, min(count, start + 10_000))]
        pipe = client.pipeline(transaction=False)
        pipe.mset({base + "v:" + key: json.dumps({"n": key}) for key in keys})
        pipe.zadd(base + "r", {key: seq + i for i, key in enumerate(keys, start)})
        await pipe.execute()
    await client.hset(base + "n", mapping={"seq": str(seq + count), "epoch": str(seq)})
    await client.aclose()


async def count_keys(url: str, namespace: str) -> int:
    client = aioredis.Redis.from_url(url)
    found = 0
    async for _ in client.scan_iter(match=f"{namespace}:*", count=5000):
        found += 1
    await client.aclose()
    return found


#: Per-call timeout for the 200k tests: generous, so that load alone cannot fail them; that the
#: pages are bounded is checked by counting the calls instead (``counted``).
TIMEOUT = 10.0
#: Memories a page may hold for these tests to pass: many fewer than MANY.
PAGE_BOUND = 1_000


def counted(backend: RedisBackend) -> list[int]:
    """Count ``backend``'s calls to Redis: ``[calls]``, updated in place."""
    original: Callable[..., Awaitable[Any]] = backend.connection.call
    made = [0]

    async def call(work: Any, **options: Any) -> Any:
        made[0] += 1
        return await original(work, **options)

    backend.connection.call = call  # type: ignore[method-assign]
    return made


def kill_after(backend: RedisBackend, server: RedisServer, calls: int) -> None:
    """Make the server die just before ``backend``'s ``calls``-th call to Redis."""
    original: Callable[..., Awaitable[Any]] = backend.connection.call
    made = 0

    async def call(work: Any, **options: Any) -> Any:
        nonlocal made
        made += 1
        if made == calls:
            server.kill()
        return await original(work, **options)

    backend.connection.call = call  # type: ignore[method-assign]


@pytest.mark.parametrize("versioned", [False, True])
async def test_clear_of_200k_memories_completes(redis_server: RedisServer, versioned: bool) -> None:
    """clear() of 200,000 memories removes them all, in bounded pages (one call each)."""
    namespace = f"bulk{uuid4().hex[:8]}"
    await load(redis_server.url, namespace, MANY)
    backend = RedisBackend(redis_server.url, namespace=namespace, timeout=TIMEOUT)
    calls = counted(backend)
    try:
        async with asyncio.timeout(300):
            assert await backend.size() == MANY
            await backend.clear(version="0000000000000001-zz" if versioned else "")
            assert await backend.size() == 0
    finally:
        await backend.aclose()
    assert calls[0] >= MANY // PAGE_BOUND
    leftover = await count_keys(redis_server.url, namespace)
    # A versioned clear keeps the partition's facts (its clear mark), its head, the head's mark
    # and epoch (``h``, ``hm``, ``hg``); no memory is left, nor any user's head.
    assert leftover == (4 if versioned else 0)


async def test_clear_through_memory_primitive_completes(redis_server: RedisServer) -> None:
    """MemoryPrimitive.clear() on 200,000 memories in Redis: none left, no fallback, in bounded
    pages."""
    namespace = f"bulk{uuid4().hex[:8]}"
    await load(redis_server.url, namespace, MANY)
    memory = MemoryPrimitive(redis_server.url, namespace=namespace, redis_timeout=TIMEOUT)
    assert isinstance(memory._store.remote, RedisBackend)
    calls = counted(memory._store.remote)
    try:
        async with asyncio.timeout(300):
            await memory.clear()
            assert memory.using_redis
            assert await memory.size() == 0
    finally:
        await memory.aclose()
    assert calls[0] >= MANY // PAGE_BOUND
    client = aioredis.Redis.from_url(redis_server.url)
    values = [k async for k in client.scan_iter(match=f"{namespace}:*:v:*", count=5000)]
    await client.aclose()
    assert values == []


@pytest.mark.parametrize("versioned", [False, True])
async def test_an_interrupted_clear_raises_saying_how_far_it_got(
    redis_server_factory: Callable[..., RedisServer], versioned: bool
) -> None:
    """A clear whose server dies part-way raises IncompleteOperationError with the count done."""
    server = redis_server_factory()
    await load(server.url, "ns", 5_000)
    backend = RedisBackend(server.url, namespace="ns", timeout=1.0)
    assert await backend.size() == 5_000
    kill_after(backend, server, 4)
    async with asyncio.timeout(30):
        with pytest.raises(IncompleteOperationError) as caught:
            await backend.clear(version="0000000000000001-zz" if versioned else "")
    error = caught.value
    assert 0 < error.done < 5_000 + 10
    assert f"cleared {error.done:,}" in str(error)
    assert "before Redis stopped answering" in str(error)
    assert isinstance(error.__cause__, BackendUnavailableError)
    await backend.aclose()


async def test_a_clear_that_never_reached_redis_stays_unavailable(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """A clear that removed nothing is plain unavailability (the hybrid journals it)."""
    server = redis_server_factory()
    backend = RedisBackend(server.url, namespace="ns", timeout=1.0)
    await backend.probe()
    server.kill()
    async with asyncio.timeout(30):
        with pytest.raises(BackendUnavailableError):
            await backend.clear(version="0000000000000001-zz")
    await backend.aclose()


async def test_memory_clear_interrupted_part_way_raises_to_the_caller(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """Through MemoryPrimitive, a half-done clear raises rather than being journalled as done."""
    server = redis_server_factory()
    await load(server.url, "ns", 5_000)
    memory = MemoryPrimitive(server.url, namespace="ns", redis_timeout=1.0)
    assert await memory.size() == 5_000
    remote = memory._store.remote
    assert isinstance(remote, RedisBackend)
    # After the newest-version check, the embedder record's removal, the mark and a page.
    kill_after(remote, server, 5)
    async with asyncio.timeout(30):
        with pytest.raises(IncompleteOperationError, match="before Redis stopped answering"):
            await memory.clear()
    assert memory._store.journal_size == 0  # not journalled as if it were done
    await memory.aclose()


async def test_items_reads_every_memory_in_pages(redis_server: RedisServer) -> None:
    """items() (export) lists all of 200,000 memories, in bounded pages (one call each)."""
    namespace = f"bulk{uuid4().hex[:8]}"
    await load(redis_server.url, namespace, MANY)
    backend = RedisBackend(redis_server.url, namespace=namespace, timeout=TIMEOUT)
    calls = counted(backend)
    seen = 0
    try:
        async with asyncio.timeout(300):
            async for key, payload, ttl in backend.items():
                assert json.loads(payload) == {"n": key}
                assert ttl is None
                seen += 1
            listed = calls[0]
            await backend.clear()
    finally:
        await backend.aclose()
    assert seen == MANY
    assert listed >= MANY // PAGE_BOUND


async def test_interrupted_items_raise_saying_how_many_were_read(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """An export whose server dies part-way raises with the number of memories read."""
    server = redis_server_factory()
    await load(server.url, "ns", 3_000)
    backend = RedisBackend(server.url, namespace="ns", timeout=1.0)
    await backend.probe()
    kill_after(backend, server, 3)
    seen = 0

    async def export() -> None:
        nonlocal seen
        async for _ in backend.items():
            seen += 1

    async with asyncio.timeout(30):
        with pytest.raises(IncompleteOperationError) as caught:
            await export()
    assert caught.value.done == seen > 0
    assert f"read {seen:,} memories" in str(caught.value)
    await backend.aclose()


KEYS_WITH_LAYOUT_TEXT = ["a}:v:b", "u1:s1}:v:x", "}:v:", "x:y:}:v:r", "u:s:}:r", "u:s:{ns#0}:v:z"]


@pytest.mark.parametrize("partitions", [1, 8])
async def test_keys_containing_layout_text_list_exactly(
    redis_server: RedisServer, partitions: int
) -> None:
    """Keys containing '}:v:' (or other layout text) are listed, counted and exported exactly."""
    namespace = f"odd{uuid4().hex[:8]}"
    backend = RedisBackend(redis_server.url, namespace=namespace, partitions=partitions)
    for key in KEYS_WITH_LAYOUT_TEXT:
        await backend.put(key, json.dumps({"k": key}), ttl=100.0 if "r" in key else None)
    listed = {key: (payload, ttl) async for key, payload, ttl in backend.items()}
    assert sorted(listed) == sorted(KEYS_WITH_LAYOUT_TEXT)
    for key, (payload, ttl) in listed.items():
        assert json.loads(payload) == {"k": key}
        assert (ttl is not None and 0 < ttl <= 100.0) if "r" in key else ttl is None
    assert await backend.size() == len(KEYS_WITH_LAYOUT_TEXT)
    await backend.clear()
    assert [k async for k, _, _ in backend.items()] == []
    await backend.aclose()


async def test_cli_stats_and_export_with_layout_text_in_keys(
    redis_server: RedisServer, tmp_path: Any
) -> None:
    """The CLI's stats and export work on keys containing '}:v:'."""
    from tta_dev_primitives.cli import main

    namespace = f"odd{uuid4().hex[:8]}"
    memory = MemoryPrimitive(redis_server.url, namespace=namespace)
    for key in KEYS_WITH_LAYOUT_TEXT:
        await memory.add(key, {"k": key})
    await memory.aclose()
    out = tmp_path / "out.jsonl"
    common = ["--redis-url", redis_server.url, "--namespace", namespace]
    code = await asyncio.to_thread(main, ["memory", "export", str(out), *common])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(row["key"] for row in rows) == sorted(KEYS_WITH_LAYOUT_TEXT)
    code = await asyncio.to_thread(main, ["memory", "stats", "--json", *common])
    assert code == 0


async def test_paged_clear_and_items_on_a_cluster(redis_cluster: Any) -> None:
    """On a cluster, items() pages every partition and an unversioned clear scans every shard."""
    namespace = f"cl{uuid4().hex[:8]}"
    backend = RedisBackend(redis_cluster.url, namespace=namespace)
    keys = [f"u{i}:s{i % 7}:{i}" for i in range(1_200)] + KEYS_WITH_LAYOUT_TEXT
    await backend.apply([Put(key, json.dumps({"k": key})) for key in keys])
    async with asyncio.timeout(60):
        listed = sorted([key async for key, _, _ in backend.items()])
        assert listed == sorted(keys)
        await backend.clear()
        assert [key async for key, _, _ in backend.items()] == []
        assert await backend.size() == 0
    await backend.aclose()


def test_cli_clear_interrupted_part_way_reports_how_far_it_got(
    redis_server_factory: Callable[..., RedisServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`clear --yes` whose Redis dies part-way says how many it cleared, with status 1."""
    from tta_dev_primitives.cli import main

    server = redis_server_factory()
    asyncio.run(load(server.url, "ns", 5_000))
    original = Connection.run_script
    pages = 0

    async def script(self: Connection, name: str, keys: list[str], args: list[Any]) -> Any:
        nonlocal pages
        pages += 1
        if pages == 4:
            server.kill()
        return await original(self, name, keys, args)

    monkeypatch.setattr(Connection, "run_script", script)
    code = main(["memory", "clear", "--yes", "--redis-url", server.url, "--namespace", "ns"])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert "before Redis stopped answering" in err
    assert len(err.strip().splitlines()) == 1


async def test_items_lists_a_memory_rewritten_while_it_walks(memory: Any) -> None:
    """memory.md: ``items()`` lists every memory there from its start to its end, where a
    ``list_memories`` loop misses one rewritten while it pages. 600 memories (two pages of a
    Redis partition's walk on one server); after the first is read, one not yet read is
    rewritten and another touched: both still come, the rewrite with its new value last."""
    for i in range(600):
        await memory.add(f"u1:s1:{i:03d}", {"content": f"turn {i}"})
    seen: list[tuple[str, Any]] = []
    async for key, value, _ in memory.items():
        if not seen:
            await memory.add("u1:s1:300", {"content": "rewritten"})
            await memory.touch("u1:s1:301", 3600)
        seen.append((key, value))
    keys = {key for key, _ in seen}
    assert keys == {f"u1:s1:{i:03d}" for i in range(600)}
    last = [v for k, v in seen if k == "u1:s1:300"][-1]
    # On Redis the walk meets the rewrite again; in-process it read a snapshot.
    on_redis = memory.get_backend_info()["redis_configured"]
    assert last == ({"content": "rewritten"} if on_redis else {"content": "turn 300"})
    assert await memory.get("u1:s1:300") == {"content": "rewritten"}


async def test_an_operation_over_a_cluster_s_partitions_keeps_a_few_calls_in_flight(
    redis_cluster: Any,
) -> None:
    """A forget's marks, a size and a clear over 64 partitions keep at most
    ``PARTITIONS_AT_ONCE`` calls in flight: a forget sent all 64 at once, and on a busy machine
    the last replies came past the timeout, so a healthy cluster was taken for down (a review:
    p99 1.0-1.6 s against a 1 s timeout, each time the process fell back)."""
    namespace = f"bulk{uuid4().hex[:8]}"
    backend = RedisBackend(redis_cluster.url, namespace=namespace, timeout=30)
    original: Callable[..., Awaitable[Any]] = backend.connection.call
    flight = {"now": 0, "most": 0}

    async def call(work: Any, **options: Any) -> Any:
        flight["now"] += 1
        flight["most"] = max(flight["most"], flight["now"])
        try:
            return await original(work, **options)
        finally:
            flight["now"] -= 1

    try:
        await backend.apply([Put(f"u{i}:s{i}:k", '{"n": 1}') for i in range(200)])
        assert backend.partitions == 64
        backend.connection.call = call  # type: ignore[method-assign]
        for operation in (
            lambda: backend.forget_mark("u7", "0000000000000001-zz"),
            backend.size,
            lambda: backend.clear(version="ffffffffffffffff-zz"),
        ):
            flight["most"] = 0
            await operation()
            assert 1 < flight["most"] <= PARTITIONS_AT_ONCE
        assert await backend.size() == 0
    finally:
        backend.connection.call = original  # type: ignore[method-assign]
        await backend.clear()
        await backend.aclose()
