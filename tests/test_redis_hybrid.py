"""MemoryPrimitive on a real redis-server: sharing, isolation, and every fault path.

Servers are real processes; faults are real signals (SIGKILL, SIGSTOP). Waits are correctness
bounds with generous margins (a hang guard), never performance assertions.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import uuid4

import pytest

from conftest import Factory, eventually, fast_recovery, namespace, replayed, run_python
from redis_server import RedisServer, free_port
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import UnsentWritesError
from tta_dev_primitives.testing import capture_spans

pytestmark = pytest.mark.redis


async def recovered(memory: MemoryPrimitive) -> None:
    """Drive probes until the journal is replayed and Redis serves again."""

    async def done() -> bool:
        return (
            await memory.flush()
            and (await memory.get("__probe__") is None)
            and (memory.using_redis)
        )

    await eventually(done, within=15)


# -- sharing -----------------------------------------------------------------------------------


async def test_another_process_sees_gets_searches_updates_and_deletes(
    redis_server: RedisServer,
) -> None:
    """Memories written by one process are read, searched and deleted by another."""
    ns = namespace()
    memory = MemoryPrimitive(redis_server.url, namespace=ns)
    await memory.add("u1:s1:a", {"content": "shared across processes"})
    other = f"""
        import asyncio, json
        from tta_dev_primitives import MemoryPrimitive
        async def main():
            m = MemoryPrimitive({redis_server.url!r}, namespace={ns!r})
            got = await m.get("u1:s1:a")
            found = await m.search("processes", scope="u1")
            await m.add("u1:s1:b", {{"content": "written by the other process"}})
            await m.add("u1:s1:a", {{"content": "updated by the other process"}})
            print(json.dumps([got, found, m.using_redis]))
            await m.aclose()
        asyncio.run(main())
    """
    import json

    got, found, used_redis = json.loads(run_python(other))
    assert got == {"content": "shared across processes"}
    assert found == [{"content": "shared across processes"}]
    assert used_redis is True
    assert await memory.get("u1:s1:b") == {"content": "written by the other process"}
    assert await memory.get("u1:s1:a") == {"content": "updated by the other process"}
    assert await memory.search("other process", limit=5) != []
    run_python(f"""
        import asyncio
        from tta_dev_primitives import MemoryPrimitive
        async def main():
            m = MemoryPrimitive({redis_server.url!r}, namespace={ns!r})
            assert await m.delete("u1:s1:b")
            await m.aclose()
        asyncio.run(main())
    """)
    assert await memory.get("u1:s1:b") is None
    assert await memory.size() == 1
    await memory.clear()
    await memory.aclose()


async def test_namespaces_are_isolated(redis_server: RedisServer) -> None:
    """clear() and size() touch only their own namespace, never the rest of the database."""
    import redis.asyncio as aioredis

    a = MemoryPrimitive(redis_server.url, namespace=namespace())
    b = MemoryPrimitive(redis_server.url, namespace=namespace())
    raw = aioredis.Redis.from_url(redis_server.url)
    await raw.set("unrelated:key", "keep me")
    await a.add("k", {"content": "in a"})
    await b.add("k", {"content": "in b"})
    await a.clear()
    assert await a.get("k") is None
    assert await b.get("k") == {"content": "in b"}
    assert await a.size() == 0
    assert await b.size() == 1
    assert await raw.get("unrelated:key") == b"keep me"
    await b.clear()
    await raw.delete("unrelated:key")
    await raw.aclose()
    await a.aclose()
    await b.aclose()


# -- no Redis at all ---------------------------------------------------------------------------


async def test_unreachable_redis_is_served_in_process() -> None:
    """Nothing listening: every call returns normally from the process, spans say fallback."""
    memory = fast_recovery(f"redis://127.0.0.1:{free_port()}/0")
    with capture_spans() as spans:
        await memory.add("k", {"content": "still works"})
        assert await memory.get("k") == {"content": "still works"}
        assert await memory.search("works") == [{"content": "still works"}]
        assert await memory.delete("k") is True
    assert memory.using_redis is False
    info = memory.get_backend_info()
    assert info["backend"] == "in-memory"
    assert info["redis_configured"] is True
    add = spans.one("memory.add")
    assert add.attributes["memory.fallback"] is True
    assert add.attributes["memory.backend"] == "in_memory"
    assert [e.name for e in add.events] == ["memory.fallback"]
    assert all(s.attributes.get("memory.fallback") for s in spans)
    with pytest.raises(UnsentWritesError, match="1 write"):  # Redis never came: said on close
        await memory.aclose()


# -- kill, restart, stall ----------------------------------------------------------------------


async def test_kill_during_hundreds_of_writers_then_restart_loses_nothing(
    redis_server_factory: Factory,
) -> None:
    """SIGKILL mid-traffic, restart with AOF: every call returned, every write is in Redis."""
    server = redis_server_factory(appendonly=True)
    ns = namespace()
    memory = fast_recovery(server.url, ns)
    writers, per_writer = 200, 15
    killed, restarted = asyncio.Event(), asyncio.Event()
    errors: list[BaseException] = []

    async def writer(w: int) -> None:
        for i in range(per_writer):
            try:
                await memory.add(f"w{w}:s:{i}", {"content": f"writer {w} write {i}", "i": i})
            except BaseException as exc:
                errors.append(exc)
            await asyncio.sleep(0.005 * (w % 5))

    async def chaos() -> None:
        await asyncio.sleep(0.1)
        server.kill()
        killed.set()
        await asyncio.sleep(0.3)
        server.start()
        restarted.set()

    await asyncio.gather(chaos(), *(writer(w) for w in range(writers)))
    assert errors == []
    assert killed.is_set()
    assert restarted.is_set()
    await recovered(memory)
    await memory.aclose()

    count = run_python(f"""
        import asyncio
        import json
        from tta_dev_primitives.stores._redis.backend import RedisBackend
        async def main():
            # Redis itself, not a MemoryPrimitive: it raises rather than fall back.
            m = RedisBackend({server.url!r}, namespace={ns!r}, timeout=10.0)
            def want(w, i):
                return {{"content": f"writer {{w}} write {{i}}", "i": i}}
            async def read(w, i):
                raw = await m.get(f"w{{w}}:s:{{i}}")
                return None if raw is None else json.loads(raw)
            missing = [
                (w, i) for w in range({writers}) for i in range({per_writer})
                if await read(w, i) != want(w, i)
            ]
            print(len(missing), await m.size(), True)
            await m.aclose()
        asyncio.run(main())
    """)
    assert count == f"0 {writers * per_writer} True"


async def test_stalled_redis_never_blocks_a_call_for_long(redis_server_factory: Factory) -> None:
    """SIGSTOP: calls return (from the process) instead of hanging; after SIGCONT, nothing lost."""
    server = redis_server_factory()
    memory = fast_recovery(server.url, redis_timeout=0.3)
    await memory.add("before", {"content": "written before the stall"})
    assert memory.using_redis
    with server.stalled():
        async with asyncio.timeout(10):  # a hang guard, far above the 0.3 s bound
            await memory.add("during", {"content": "written during the stall"})
            assert await memory.get("during") == {"content": "written during the stall"}
            assert await memory.get("before") == {"content": "written before the stall"}
        assert memory.using_redis is False
    await recovered(memory)
    raw = MemoryPrimitive(server.url, namespace=memory.namespace)
    assert await raw.get("during") == {"content": "written during the stall"}
    assert await raw.get("before") == {"content": "written before the stall"}
    await raw.aclose()
    await memory.clear()
    await memory.aclose()


async def test_recovery_replays_in_order_and_adds_an_event(redis_server_factory: Factory) -> None:
    """Outage writes, deletes and overwrites replay in order; the recovering span says so."""
    server = redis_server_factory()
    memory = fast_recovery(server.url)
    await memory.add("a", {"v": 0})
    server.kill()
    await memory.add("a", {"v": 1})
    await memory.add("b", {"v": 1})
    await memory.delete("b")
    await memory.add("a", {"v": 2})
    await memory.add("c", {"v": 3}, ttl=60)
    assert memory.get_backend_info()["journal_size"] == 3  # newest change per key: a, b, c
    server.start()
    with capture_spans() as spans:
        await recovered(memory)
    events = [e for s in spans for e in s.events if e.name == "memory.recovered"]
    assert [e.attributes["memory.replayed_writes"] for e in events] == [3]
    other = MemoryPrimitive(server.url, namespace=memory.namespace)
    assert await other.get("a") == {"v": 2}
    assert await other.get("b") is None
    assert await other.get("c") == {"v": 3}
    await other.aclose()
    await memory.clear()
    await memory.aclose()


async def test_writes_during_replay_are_neither_lost_nor_reordered(
    redis_server_factory: Factory,
) -> None:
    """While a long journal replays, new writes to the same keys still end up last."""
    server = redis_server_factory()
    memory = fast_recovery(server.url)
    await memory.add("warm", {"v": 0})
    server.kill()
    for i in range(3000):
        await memory.add(f"k{i % 100}", {"v": i})
    server.start()
    await asyncio.sleep(0.3)  # past the probe delay: the next call replays

    async def late_writes() -> None:
        for i in range(100):
            await memory.add(f"k{i}", {"v": "late"})
            await asyncio.sleep(0)

    await asyncio.gather(memory.flush(), late_writes())
    await recovered(memory)
    other = MemoryPrimitive(server.url, namespace=memory.namespace)
    assert [await other.get(f"k{i}") for i in range(100)] == [{"v": "late"}] * 100
    await other.aclose()
    await memory.clear()
    await memory.aclose()


async def test_reads_during_an_outage_find_recent_writes(redis_server_factory: Factory) -> None:
    """The in-process copy answers get and search for what this process wrote before it failed."""
    server = redis_server_factory()
    memory = fast_recovery(server.url)
    await memory.add("u1:s1:a", {"content": "remember the milk"})
    server.kill()
    assert await memory.get("u1:s1:a") == {"content": "remember the milk"}
    assert await memory.search("milk", scope="u1") == [{"content": "remember the milk"}]
    assert memory.using_redis is False
    await memory.aclose()


# -- auth and secrets --------------------------------------------------------------------------


async def test_wrong_password_falls_back_with_one_clear_warning(
    redis_server_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused password means in-process service and one warning, never a crash or the secret."""
    server = redis_server_factory(password="right-password")
    url = f"redis://:wrong-password@127.0.0.1:{server.port}/0"
    memory = fast_recovery(url)
    with caplog.at_level(logging.DEBUG, logger="tta_dev_primitives"):
        for i in range(5):
            await memory.add(f"k{i}", {"content": "x"})
        assert await memory.get("k0") == {"content": "x"}
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "unavailable" in warnings[0].getMessage()
    assert "wrong-password" not in caplog.text
    assert memory.using_redis is False
    assert "invalid username-password pair" in memory.get_backend_info()["last_error"]
    with pytest.raises(UnsentWritesError) as lost:
        await memory.aclose()
    assert "wrong-password" not in str(lost.value)
    assert "wrong-password" not in caplog.text  # nor in the unsent-writes error it logs


async def test_a_password_put_right_on_the_server_heals_and_replays(
    redis_server_factory: Factory,
) -> None:
    """Credentials being rotated: while Redis refuses the memory's password, writes are served
    in-process and journalled; once the server takes it, they replay and nothing is lost."""
    import redis.asyncio as redis_asyncio

    server = redis_server_factory(password="old-password")
    ns = namespace()
    memory = fast_recovery(f"redis://:new-password@127.0.0.1:{server.port}/0", ns)
    for i in range(5):
        await memory.add(f"u1:s1:{i}", {"content": f"turn {i}"})
    assert memory.using_redis is False
    admin = redis_asyncio.Redis(port=server.port, password="old-password")
    await admin.config_set("requirepass", "new-password")
    await admin.aclose()
    await replayed(memory)
    reader = MemoryPrimitive(f"redis://:new-password@127.0.0.1:{server.port}/0", namespace=ns)
    for i in range(5):
        assert await reader.get(f"u1:s1:{i}") == {"content": f"turn {i}"}
    await reader.clear()
    await reader.aclose()
    await memory.aclose()


async def test_password_never_appears_in_logs_spans_errors_or_info(
    redis_server_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """With a password in the URL, no log line, span, event, error or info dict contains it."""
    secret = "pa55-" + uuid4().hex
    server = redis_server_factory(password=secret)
    memory = fast_recovery(server.url)
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG), capture_spans() as spans:
        await memory.add("k", {"content": "v"})
        await memory.search("v")
        seen.append(str(memory.get_backend_info()))
        seen.append(repr(memory))
        server.kill()
        await memory.add("k2", {"content": "v"})
        server.start()
        await recovered(memory)
    for span in spans:
        seen.append(str(dict(span.attributes or {})))
        seen.extend(str(dict(e.attributes or {})) for e in span.events)
        seen.append(str(span.status.description))
    seen.append(caplog.text)
    with pytest.raises(ValueError, match="redis") as info:
        MemoryPrimitive(f"redis://:{secret}@127.0.0.1:notaport/0")
    seen.append(str(info.value))
    assert memory.get_backend_info()["url"].count("***") == 1
    assert not [s for s in seen if secret in s]
    await memory.clear()
    await memory.aclose()
