"""Error replies a real Redis sends while it is up: what each means for the memory's promises.

A reply that means "not now" (MISCONF after a failed save, NOREPLICAS under
``min-replicas-to-write``, BUSY while another client's script runs, NOSCRIPT after a script
flush) is an outage, whether it comes back for one command or for one command of a pipeline
(redis-py prefixes the latter with ``Command # N (...) of pipeline caused error:``): the call is
served in-process, writes are journalled, and a replay that meets it stops and keeps the journal.
It never turns journalled writes into dead letters. Waits are hang guards, never timing
assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis import exceptions as rexc

from conftest import Factory, eventually, fast_recovery, namespace, replayed, tcp_relay
from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.stores._base import Write

pytestmark = pytest.mark.redis


async def _refuse_writes_for_a_failed_save(client: aioredis.Redis) -> str:
    """Make the server answer writes (and PING) with MISCONF, as after a failed BGSAVE: its
    working directory is removed under it. Returns the directory to restore."""
    was = (await client.config_get("dir"))["dir"]
    gone = tempfile.mkdtemp(prefix="tta-gone-")
    await client.config_set("save", "3600 1")
    await client.config_set("stop-writes-on-bgsave-error", "yes")
    await client.config_set("dir", gone)
    os.rmdir(gone)
    await client.execute_command("BGSAVE", "SCHEDULE")

    async def refusing() -> bool:
        info = await client.info("persistence")
        return info["rdb_last_bgsave_status"] == "err" and not info["rdb_bgsave_in_progress"]

    await eventually(refusing, within=30)
    return str(was)


async def _save_again(client: aioredis.Redis, directory: str) -> None:
    """Undo ``_refuse_writes_for_a_failed_save``: a save that succeeds lifts MISCONF."""
    await client.config_set("dir", directory)
    await client.execute_command("BGSAVE", "SCHEDULE")

    async def saved() -> bool:
        info = await client.info("persistence")
        return info["rdb_last_bgsave_status"] == "ok" and not info["rdb_bgsave_in_progress"]

    await eventually(saved, within=30)
    await client.config_set("save", "")


def test_a_key_that_reads_like_redis_py_s_prefix_does_not_decide_the_reply() -> None:
    """The command's text in redis-py's prefix holds the user's key: a key made to look like
    the prefix must not pass for Redis's reply (an outage taken for a refusal, or back)."""
    from tta_dev_primitives.stores._redis.errors import reply

    key = "u1:x) of pipeline caused error: LOADING"
    message = f"Command # 2 (EVALSHA 0f1e 1 {key} v) of pipeline caused error: OOM no room"
    assert reply(message) == "OOM no room"
    assert reply("MISCONF cannot save") == "MISCONF cannot save"


def _raised(code: str, filename: str) -> AttributeError:
    """The ``AttributeError`` that ``code`` raises when run as the code of ``filename``."""
    try:
        exec(compile(code, filename, "exec"), {})
    except AttributeError as exc:
        return exc
    raise AssertionError(f"{code!r} raised nothing")


def test_only_redis_py_s_cluster_routing_failing_on_a_missing_node_is_an_outage() -> None:
    """An ``AttributeError`` on ``None`` raised in redis-py's cluster module is its routing
    failing on a node its slot map lacks (an ASK to a master added since): an outage. The same
    error raised anywhere else (parsing a garbled reply, in this library or in redis-py's
    parsers), or on another object, is not: it stays a ``BackendError`` saying the reply
    could not be read."""
    import redis._parsers.helpers
    import redis.asyncio.cluster
    import redis.cluster

    from tta_dev_primitives.stores._redis.errors import unknown_node

    for routing in (redis.asyncio.cluster.__file__, redis.cluster.__file__):
        assert routing is not None
        assert unknown_node(_raised("None.execute_command('ASKING')", routing))
        assert not unknown_node(_raised("(7).execute_command('ASKING')", routing))
    elsewhere = (redis._parsers.helpers.__file__, __file__)
    for file in elsewhere:
        assert file is not None
        assert not unknown_node(_raised("None.decode()", file))
    assert not unknown_node(ValueError("not an AttributeError"))


async def test_a_replay_while_replicas_are_missing_keeps_every_journalled_write(
    redis_server_factory: Factory,
) -> None:
    """``min-replicas-to-write 1`` and the replica not back yet after a restart: PING answers,
    every write gets NOREPLICAS. The replay must keep the journal (not set it aside as dead
    letters) and land it once a replica is connected; a live add meanwhile is journalled too."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url)
    await memory.add("u1:s1:warm", {"content": "before the restart"})
    server.kill()
    for i in range(5):
        await memory.add(f"u1:s1:{i}", {"content": f"outage note {i}"})
    await memory.delete("u1:s1:warm")
    server.extra = ("--min-replicas-to-write", "1")
    server.start()
    await memory.flush()  # a replay against NOREPLICAS
    info = memory.get_backend_info()
    assert info["dead_letters"] == 0, info["dead_letter_log"]
    assert info["journal_size"] == 6
    await memory.add("u1:s1:live", {"content": "written while no replica is connected"})
    redis_server_factory(extra=("--replicaof", "127.0.0.1", str(server.port)))
    async with asyncio.timeout(120):
        await replayed(memory)
    reader = fast_recovery(server.url, memory._store.remote.namespace)  # type: ignore[attr-defined]
    for i in range(5):
        assert await reader.get(f"u1:s1:{i}") == {"content": f"outage note {i}"}
    assert await reader.get("u1:s1:live") == {"content": "written while no replica is connected"}
    assert await reader.get("u1:s1:warm") is None
    assert memory.get_backend_info()["dead_letters"] == 0
    await reader.aclose()
    await memory.clear()
    await memory.aclose()


async def test_writes_refused_mid_replay_stay_journalled_until_redis_takes_them(
    redis_server_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save fails while a long journal replays (its own writes trigger it, say): the next
    batch's pipeline gets MISCONF. That is Redis refusing writes for now, not refusing these
    writes' data: the journal keeps them, and they land once saves work again."""
    server = redis_server_factory(extra=("--enable-protected-configs", "yes"))
    admin = aioredis.Redis.from_url(server.url)
    memory = fast_recovery(server.url)
    await memory.add("u1:s1:warm", {"content": "before"})
    with server.stalled():
        for i in range(1200):  # three batches of the replay
            await memory.add(f"u1:s1:{i}", {"content": f"outage note {i}"})
    assert memory.get_backend_info()["journal_size"] == 1200
    remote = memory._store.remote  # type: ignore[attr-defined]
    real_apply = remote.apply
    directory: list[str] = []

    async def apply_then_fail_a_save(writes: Sequence[Write], **options: Any) -> None:
        await real_apply(writes, **options)
        if not directory:  # after the first batch has landed
            directory.append(await _refuse_writes_for_a_failed_save(admin))

    monkeypatch.setattr(remote, "apply", apply_then_fail_a_save)
    try:
        await memory.flush()
        info = memory.get_backend_info()
        assert directory, "the replay never ran"
        assert info["dead_letters"] == 0, info["dead_letter_log"][:3]
        assert info["journal_size"] == 700
        assert info["degraded"] is True
    finally:
        if directory:
            await _save_again(admin, directory[0])
    async with asyncio.timeout(120):
        await replayed(memory)
    reader = fast_recovery(server.url, remote.namespace)
    assert await reader.size() == 1201
    assert await reader.get("u1:s1:1199") == {"content": "outage note 1199"}
    await reader.aclose()
    await admin.aclose()
    await memory.clear()
    await memory.aclose()


@contextlib.asynccontextmanager
async def _busy(server: RedisServer) -> Any:
    """Another client runs an endless script: past ``busy-reply-threshold`` (100 ms here) the
    server answers every other command with BUSY until ``SCRIPT KILL``."""
    admin = aioredis.Redis.from_url(server.url)
    blocker = aioredis.Redis.from_url(server.url)
    threshold = (await admin.config_get("busy-reply-threshold"))["busy-reply-threshold"]
    await admin.config_set("busy-reply-threshold", 100)
    script = asyncio.create_task(blocker.eval("while true do end", 0))

    async def busy() -> bool:
        try:
            await admin.ping()
        except rexc.ResponseError as exc:
            return str(exc).startswith("BUSY")
        return False

    try:
        await eventually(busy, within=30)
        yield
    finally:

        async def killed() -> bool:
            with contextlib.suppress(rexc.ResponseError):  # NOTBUSY: it has ended
                await admin.script_kill()
            return script.done()

        await eventually(killed, within=30)
        with contextlib.suppress(rexc.ResponseError):
            await script  # "Script killed by user"
        await admin.config_set("busy-reply-threshold", threshold)
        await admin.aclose()
        await blocker.aclose()


async def test_a_query_engine_search_while_another_script_runs_is_served_in_process(
    redis_query_engine: RedisServer,
) -> None:
    """While another client's script holds Redis (BUSY to everyone else), a search is served
    in-process like any call during an outage; it does not raise."""
    memory = MemoryPrimitive(
        redis_query_engine.url, namespace=namespace(), search_engine="redis", redis_timeout=10.0,
        recovery_interval=0.05, max_recovery_interval=0.2,
    )  # fmt: skip
    for i in range(3):
        await memory.add(f"u1:s1:{i}", {"content": f"busy note {i}"})
    assert len(await memory.search("note")) == 3
    async with _busy(redis_query_engine):
        assert len(await memory.search("note")) == 3
        assert len(await memory.search("note", scope="u1:s1")) == 3
    async with asyncio.timeout(60):
        await replayed(memory)
    assert len(await memory.search("note")) == 3
    await memory.clear()
    await memory.aclose()


async def test_a_failover_behind_a_fixed_address_reaches_the_new_primary(
    redis_server_factory: Factory,
) -> None:
    """A managed endpoint's failover (a DNS name or floating address that now leads to the
    new primary): connections opened before it still reach the old primary, now a replica
    answering READONLY. They must be dropped, so that new ones reach the new primary; kept,
    every write was journalled, and every replay refused, for as long as they lived."""
    old = redis_server_factory()
    new = redis_server_factory(extra=("--replicaof", "127.0.0.1", str(old.port)))
    target = [old.port]
    async with tcp_relay(lambda: target[0]) as url:
        memory = fast_recovery(url)
        old_admin = aioredis.Redis.from_url(old.url)
        new_admin = aioredis.Redis.from_url(new.url)
        try:
            for i in range(3):
                await memory.add(f"u1:s1:{i}", {"content": f"before the failover {i}"})
            assert len(await memory.search("failover")) == 3

            async def in_sync() -> bool:
                return int(await new_admin.dbsize()) == int(await old_admin.dbsize())

            await eventually(in_sync, within=30)
            # The failover: the replica is promoted, the old primary follows it, and the
            # address now leads to the new one.
            await new_admin.execute_command("REPLICAOF", "NO", "ONE")
            await old_admin.execute_command("REPLICAOF", "127.0.0.1", str(new.port))
            target[0] = new.port
            for i in range(3, 6):
                await memory.add(f"u1:s1:{i}", {"content": f"after the failover {i}"})
            async with asyncio.timeout(60):
                await replayed(memory)
            reader = MemoryPrimitive(new.url, namespace=memory.get_backend_info()["namespace"])
            for i in range(6):
                assert await reader.get(f"u1:s1:{i}") is not None, i
            assert len(await reader.search("failover", limit=10)) == 6
            await reader.aclose()
            await memory.clear()
        finally:
            await memory.aclose()
            await old_admin.aclose()
            await new_admin.aclose()
