"""How a replica keeps up: only partitions that moved, reloads when Redis went back in time
(also once written to again after), never when a restart lost nothing,
pages bounded by key bytes too, an expiry heap with one live entry per key, and no head left
for a user whose last tombstone in a partition was trimmed.

All against real ``redis-server`` processes (a 3-master cluster for the partition count).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from conftest import Factory, eventually, namespace, replayed
from redis_server import LocalCluster, RedisServer
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import BackendUnavailableError
from tta_dev_primitives.memory._values import encode_value
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.stores import Document, Put
from tta_dev_primitives.stores._redis.backend import RedisBackend
from tta_dev_primitives.stores._redis.search import RedisSearchBackend
from tta_dev_primitives.stores._versions import VersionClock

pytestmark = pytest.mark.redis

INDEXING = Indexing()


async def script_calls(nodes: list[RedisServer]) -> int:
    """Scripts run so far (EVALSHA and EVAL) on these servers, from INFO commandstats."""
    total = 0
    for node in nodes:
        client = aioredis.Redis.from_url(node.url)
        try:
            stats: dict[str, Any] = await client.info("commandstats")
        finally:
            await client.aclose()
        total += sum(
            stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval")
        )
    return total


async def saved(server: RedisServer, raw: aioredis.Redis) -> Path:
    """A copy of what ``SAVE`` writes now: the older snapshot a later restart goes back to."""
    await raw.save()
    snapshot = server.dir / "snapshot.rdb"
    shutil.copy(server.dir / "dump.rdb", snapshot)
    return snapshot


async def restarted(
    server: RedisServer, raw: aioredis.Redis, snapshot: Path | None = None
) -> aioredis.Redis:
    """``server`` killed and started again (from ``snapshot``, if given, as after a crash with
    only an older RDB); ``raw`` closed (its pooled connections are dead) for a new client."""
    server.kill()
    if snapshot is not None:
        shutil.copy(snapshot, server.dir / "dump.rdb")
    server.start()
    await raw.aclose()
    return aioredis.Redis.from_url(server.url)


def memory(i: int) -> Put:
    """A short memory in one of 50 sessions (so it lands in many partitions on a cluster)."""
    return Put(f"u{i % 5}:s{i % 50}:{i}", encode_value({"content": f"note {i} about garage"}))


async def test_a_warm_cluster_search_asks_only_the_partition_that_changed(
    redis_cluster: LocalCluster,
) -> None:
    """After one write, a warm search on a 64-partition cluster runs one CHANGES script.

    (The write goes to a partition that exists: a brand-new one, a new epoch, reloads once.)
    """
    ns = namespace()
    backend = RedisSearchBackend(redis_cluster.url, namespace=ns, timeout=30)
    masters = redis_cluster.master_nodes()
    query = INDEXING.query("garage")
    try:
        await backend.apply([memory(i) for i in range(500)])
        assert backend.partitions == 64
        assert len(await backend.search(query, 1000, None)) == 500  # loaded: every partition
        assert len(await backend.search(query, 1000, None)) == 500  # empty ones got heads
        before = await script_calls(masters)
        assert len(await backend.search(query, 1000, None)) == 500
        assert await script_calls(masters) == before  # nothing moved: heads only
        value = {"content": "one more garage"}
        await backend.put(
            "u1:s1:new", encode_value(value), None, document=Document(INDEXING.terms(value))
        )
        before = await script_calls(masters)
        found = await backend.search(query, 1000, None)
        assert await script_calls(masters) == before + 1
        assert len(found) == 501
        assert "u1:s1:new" in {hit[0] for hit in found}
    finally:
        await backend.clear()
        await backend.aclose()


# A write as the version before per-segment heads made it: it moves the partition's sequence,
# head and the segment's feed, and no segment head (what a rolling upgrade leaves running).
OLDER_VERSION_PUT = """
local base, key, payload, seg = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local t = redis.call('TIME')
local seq = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('HGET', base .. 'n', 'seq') or '0')
if seq <= last then seq = last + 1 end
local s = string.format('%d', seq)
redis.call('HSET', base .. 'n', 'seq', s)
redis.call('SET', base .. 'h', s)
redis.call('SET', base .. 'v:' .. key, payload)
redis.call('ZADD', base .. 'r', s, key)
redis.call('ZADD', base .. 'r:' .. seg, s, key)
return s
"""


async def test_a_warm_scoped_cluster_search_skips_partitions_only_other_users_wrote(
    redis_cluster: LocalCluster,
) -> None:
    """One user's warm replica reads no partition after other users' writes, even where that
    user's memories live (it read each one they touched: 21-25 ms a search on a cluster while
    20-100 others wrote), and exactly the one partition of its own user's write or delete."""
    ns = namespace()
    backend = RedisSearchBackend(redis_cluster.url, namespace=ns, timeout=30)
    masters = redis_cluster.master_nodes()
    query = INDEXING.query("garage")
    try:
        await backend.apply([memory(i) for i in range(500)])  # u0-u4 over 50 sessions
        mine = sorted(memory(i).key for i in range(500) if i % 5 == 1)
        for _ in range(2):  # loaded, then warm
            assert sorted(hit[0] for hit in await backend.search(query, 1000, "u1")) == mine
        # Others write in 200 sessions: nearly every partition, those of u1's sessions too.
        others = [
            Put(f"u{2 + n % 3}:s{n}:x", encode_value({"content": f"garage {n}"}))
            for n in range(200)
        ]
        await backend.apply(others)
        await backend.delete(memory(2).key)
        before = await script_calls(masters)
        assert sorted(hit[0] for hit in await backend.search(query, 1000, "u1")) == mine
        assert await script_calls(masters) == before  # heads only

        value = {"content": "one more garage"}
        await backend.put(
            "u1:s6:new", encode_value(value), None, document=Document(INDEXING.terms(value))
        )
        before = await script_calls(masters)
        found = {hit[0] for hit in await backend.search(query, 1000, "u1")}
        assert await script_calls(masters) == before + 1
        assert found == {*mine, "u1:s6:new"}

        assert await backend.delete(memory(1).key)
        before = await script_calls(masters)
        found = {hit[0] for hit in await backend.search(query, 1000, "u1")}
        assert await script_calls(masters) == before + 1
        assert found == {*mine, "u1:s6:new"} - {memory(1).key}
    finally:
        await backend.clear()
        await backend.aclose()


async def test_a_scoped_replica_reads_what_an_older_version_wrote(
    redis_cluster: LocalCluster,
) -> None:
    """A writer of the version before moves no segment's head: a warm replica of one user
    still finds its writes, also when a newer version's writer wrote in the partition after
    it, and after a clear what the older one wrote is gone from its search too."""
    ns = namespace()
    backend = RedisSearchBackend(redis_cluster.url, namespace=ns, timeout=30)
    raw = aioredis.RedisCluster.from_url(redis_cluster.url)
    query = INDEXING.query("garage")

    async def older_put(key: str, text: str) -> None:
        base = backend.layout.base(key)
        await raw.eval(
            OLDER_VERSION_PUT, 1, base + "n", base, key, encode_value({"content": text}), "u1"
        )

    async def found() -> set[str]:
        return {hit[0] for hit in await backend.search(query, 1000, "u1")}

    try:
        await backend.apply([memory(i) for i in range(500)])
        mine = {memory(i).key for i in range(500) if i % 5 == 1}
        assert await found() == mine
        # An older write, then a newer writer's (another user's session that shares the
        # partition) before the replica looks again: the newer one must not hide the older.
        layout = backend.layout
        taken = {layout.base(key) for key in mine}
        # A session of u1's in a partition where u1 has no other memory, and another user's
        # session that shares that partition.
        session = next(
            f"u1:s{n}" for n in range(100, 10_000) if layout.base(f"u1:s{n}:a") not in taken
        )
        base = layout.base(f"{session}:a")
        other = next(f"u2:s{n}:y" for n in range(10_000) if layout.base(f"u2:s{n}:y") == base)
        await older_put(f"{session}:old", "an older garage")
        await backend.apply([Put(other, encode_value({"content": "garage"}))])
        assert await found() == {*mine, f"{session}:old"}
        await older_put(f"{session}:old2", "another older garage")  # the last write, an older one
        assert await found() == {*mine, f"{session}:old", f"{session}:old2"}
        # The replica last read the partition after a newer write: a clear must still send it
        # there, though the older writes moved no head of u1's that the clear could remove.
        await backend.apply([Put(other, encode_value({"content": "garage again"}))])
        assert await found() == {*mine, f"{session}:old", f"{session}:old2"}
        fresh = RedisSearchBackend(redis_cluster.url, namespace=ns, timeout=30)
        try:  # (another process clears: the clearing one's own replicas start over anyway)
            await fresh.clear(version=VersionClock().next())
            await fresh.apply([memory(i) for i in range(1, 50, 5)])  # u1 again, elsewhere
            # Ranked as a process that never saw the clear ranks: no memory the clear removed
            # stays in the replica's statistics (results leave deleted memories out anyway).
            warm = await backend.search(query, 1000, "u1")
            assert warm == await fresh.search(query, 1000, "u1")
            assert {hit[0] for hit in warm} == {memory(i).key for i in range(1, 50, 5)}
        finally:
            await fresh.aclose()
    finally:
        await raw.aclose()
        await backend.clear()
        await backend.aclose()


async def test_a_user_whose_last_tombstone_is_trimmed_leaves_no_head_and_no_stale_replica(
    redis_cluster: LocalCluster,
) -> None:
    """Once a user's last tombstone in a partition is trimmed (past ``TOMBSTONES``), the user's
    head there goes too, so users who left take no room; and a warm replica of that user, which
    last saw the deleted memory live, neither finds it nor ranks otherwise than a fresh process.

    The partition's other tombstones are made by hand (``TOMBSTONES`` of them, sorted after the
    user's): 100,000 deletes through the library would take minutes."""
    from tta_dev_primitives.stores._redis.layout import HEAD_EPOCH, SEGMENT_HEAD, TOMBS
    from tta_dev_primitives.stores._redis.lua_common import TOMBSTONES

    ns = namespace()
    backend = RedisSearchBackend(redis_cluster.url, namespace=ns, timeout=30)
    writer = RedisSearchBackend(redis_cluster.url, namespace=ns, timeout=30)
    raw = aioredis.RedisCluster.from_url(redis_cluster.url)
    query = INDEXING.query("garage")
    layout = backend.layout
    try:
        await backend.apply([memory(i) for i in range(500)])
        mine = {memory(i).key for i in range(500) if i % 5 == 1}
        taken = {layout.base(key) for key in mine}
        # u1's only memory in a partition, and another user's there.
        gone = next(
            f"u1:s{n}:a" for n in range(100, 10_000) if layout.base(f"u1:s{n}:a") not in taken
        )
        base = layout.base(gone)
        other = next(f"u2:s{n}:y" for n in range(10_000) if layout.base(f"u2:s{n}:y") == base)
        await backend.apply([Put(gone, encode_value({"content": "the garage roof"}))])
        await backend.apply([Put(other, encode_value({"content": "a garage door"}))])
        assert {hit[0] for hit in await backend.search(query, 1000, "u1")} == {*mine, gone}
        assert await writer.delete(gone)  # another process: u1's last feed entry, a tombstone
        score = (await raw.zrange(base + TOMBS, 0, 0, withscores=True))[0][1]
        fillers = {f"~filler:{n}": score for n in range(TOMBSTONES)}  # (sorted after u1's)
        for start in range(0, TOMBSTONES, 20_000):
            chunk = dict(list(fillers.items())[start : start + 20_000])
            await raw.zadd(base + TOMBS, chunk)  # type: ignore[arg-type]
        epoch = await raw.get(base + HEAD_EPOCH)
        assert await raw.exists(base + SEGMENT_HEAD + "u1")
        assert await writer.delete(other)  # its tombstone trims the oldest: u1's
        assert not await raw.exists(base + SEGMENT_HEAD + "u1")
        assert not await raw.exists(base + TOMBS + ":u1")
        assert await raw.get(base + HEAD_EPOCH) != epoch
        warm = await backend.search(query, 1000, "u1")
        assert {hit[0] for hit in warm} == mine
        fresh = RedisSearchBackend(redis_cluster.url, namespace=ns, timeout=30)
        try:
            assert warm == await fresh.search(query, 1000, "u1")
        finally:
            await fresh.aclose()
    finally:
        await raw.aclose()
        await writer.aclose()
        await backend.clear()
        await backend.aclose()


async def test_a_partition_behind_the_replica_is_reloaded(redis_server_factory: Factory) -> None:
    """Redis restarted from an older snapshot: search finds again what get returns."""
    server = redis_server_factory()
    ns = namespace()
    raw = aioredis.Redis.from_url(server.url)
    backend = RedisSearchBackend(server.url, namespace=ns, timeout=30)
    query = INDEXING.query("garage")
    try:
        await backend.apply([memory(i) for i in range(100)])
        snapshot = await saved(server, raw)
        for i in range(100):
            await backend.delete(memory(i).key)
        await backend.apply([memory(100)])
        assert [hit[0] for hit in await backend.search(query, 1000, None)] == [memory(100).key]
        raw = await restarted(server, raw, snapshot)

        async def reconnected() -> bool:  # pooled connections to the old process are dead
            try:
                await backend.probe()
            except BackendUnavailableError:
                return False
            return True

        await eventually(reconnected)
        assert await backend.get(memory(7).key) is not None  # Redis has the old memories again
        found = await backend.search(query, 1000, None)
        assert sorted(hit[0] for hit in found) == sorted(memory(i).key for i in range(100))
    finally:
        await raw.aclose()
        await backend.aclose()


@pytest.mark.parametrize("scope", [None, "u1"])
@pytest.mark.parametrize("writer", ["another process", "the searching process"])
async def test_a_write_after_a_restart_from_an_older_snapshot_reloads_the_replica(
    redis_server_factory: Factory, scope: str | None, writer: str
) -> None:
    """Restarted from an older snapshot and then written to, the partition's last sequence is
    past what the replica read, and its epoch is the snapshot's: search still finds what
    Redis holds again, and not what it lost (a review found 15 of 21 and a stale rewrite)."""
    server = redis_server_factory()
    ns = namespace()
    raw = aioredis.Redis.from_url(server.url)
    memory = MemoryPrimitive(server.url, namespace=ns, search_engine="replica", redis_timeout=10)
    other = MemoryPrimitive(server.url, namespace=ns, search_engine="replica", redis_timeout=10)
    try:
        for i in range(20):
            await memory.add(f"u1:s1:k{i:02}", {"content": f"alpha note {i}"})
        snapshot = await saved(server, raw)
        for i in range(20, 30):
            await memory.add(f"u1:s1:k{i:02}", {"content": f"alpha note {i}"})
        for i in range(5):
            assert await memory.delete(f"u1:s1:k{i:02}")
        await memory.add("u1:s1:k05", {"content": "rewritten beta"})
        assert len(await memory.search("alpha note", limit=100, scope=scope)) == 24
        raw = await restarted(server, raw, snapshot)
        assert await raw.exists(f"{ns}:doesnotexist") == 0  # the server answers

        writing = other if writer == "another process" else memory
        await writing.add("u1:s2:fresh", {"content": "alpha fresh"})
        await replayed(writing)  # (the write may have met a dead pooled connection: an outage)
        await replayed(memory)

        expected = sorted([f"u1:s1:k{i:02}" for i in range(20)] + ["u1:s2:fresh"])
        found = await finds(memory, "alpha", scope, expected)
        assert {"content": "alpha note 5"} in found  # the rewrite was lost with the snapshot
        assert await memory.search("beta", limit=10, scope=scope) == []
    finally:
        await raw.aclose()
        await other.aclose()
        await memory.aclose()


@pytest.mark.parametrize("scope", [None, "u1"])
async def test_hot_keys_written_again_after_an_older_snapshot_do_not_hide_it(
    redis_server_factory: Factory, scope: str | None
) -> None:
    """The replica's newest reads were 8 writes of one key, written again after the restart
    (a session's state, say): the witnesses are distinct keys spread over what was read, so
    the lost memories still show (a review: 19 of 20 found, and a lost rewrite, before)."""
    server = redis_server_factory()
    ns = namespace()
    raw = aioredis.Redis.from_url(server.url)
    memory = MemoryPrimitive(server.url, namespace=ns, search_engine="replica", redis_timeout=10)
    try:
        for i in range(20):
            await memory.add(f"u1:s1:k{i:02}", {"content": f"alpha note {i}"})
        snapshot = await saved(server, raw)
        for i in range(20, 30):
            await memory.add(f"u1:s1:k{i:02}", {"content": f"alpha note {i}"})
        await memory.add("u1:s1:k05", {"content": "rewritten beta"})
        for turn in range(8):
            await memory.add("u1:state", {"content": f"state {turn}"})
            await memory.search("alpha note", limit=100, scope=scope)
        raw = await restarted(server, raw, snapshot)
        await memory.add("u1:state", {"content": "state after"})
        await replayed(memory)
        await finds(memory, "alpha note", scope, [f"u1:s1:k{i:02}" for i in range(20)])
        assert await memory.search("rewritten beta", limit=10, scope=scope) == []
    finally:
        await raw.aclose()
        await memory.aclose()


@pytest.mark.parametrize("scope", [None, "u1"])
async def test_records_written_right_after_a_restart_do_not_hide_what_it_lost(
    redis_server_factory: Factory, scope: str | None
) -> None:
    """The replica searched just before a fast restart, and other processes wrote 100 memories
    right after it: every page says which run it was read on, so the check comes before those
    new records are read, and they cannot stand in for the lost ones (a review: all 11 lost
    rewrites still shown, when the run was asked once a second)."""
    server = redis_server_factory()
    ns = namespace()
    raw = aioredis.Redis.from_url(server.url)
    kw: dict[str, Any] = {"namespace": ns, "search_engine": "replica", "redis_timeout": 10}
    memory, other = MemoryPrimitive(server.url, **kw), MemoryPrimitive(server.url, **kw)
    try:
        for i in range(20):
            await other.add(f"u1:s1:k{i:02}", {"content": f"alpha note {i}"})
        assert len(await memory.search("alpha note", limit=100, scope=scope)) == 20
        snapshot = await saved(server, raw)
        for i in range(11):
            await other.add(f"u1:s1:k{i:02}", {"content": f"rewritten beta {i}"})
        assert len(await memory.search("rewritten beta", limit=100, scope=scope)) == 11
        raw = await restarted(server, raw, snapshot)
        await other.add("u1:s2:fresh", {"content": "alpha fresh"})
        await replayed(other)
        await asyncio.gather(
            *(other.add(f"u1:s3:n{i}", {"content": f"new note {i}"}) for i in range(100))
        )
        await replayed(memory)
        assert await memory.search("rewritten beta", limit=100, scope=scope) == []
        expected = sorted([f"u1:s1:k{i:02}" for i in range(20)] + ["u1:s2:fresh"])
        await finds(memory, "alpha", scope, expected)
    finally:
        await raw.aclose()
        await other.aclose()
        await memory.aclose()


@pytest.mark.parametrize("scope", [None, "u1"])
async def test_a_master_that_resynced_from_a_lagging_replica_is_reloaded(
    redis_server_factory: Factory, scope: str | None
) -> None:
    """A master made a replica of a server that lagged (a full resync replaces its data; its
    run_id stays), then promoted back and written to: its replication id changed, so the
    replica checks its witnesses and reloads (a review: 15 of 21 found before)."""
    a, b = redis_server_factory(), redis_server_factory()
    ra, rb = aioredis.Redis.from_url(a.url), aioredis.Redis.from_url(b.url)
    ns = namespace()
    kw: dict[str, Any] = {"namespace": ns, "search_engine": "replica", "redis_timeout": 10}
    memory, writer = MemoryPrimitive(a.url, **kw), MemoryPrimitive(a.url, **kw)
    try:
        # The second sync (a from b) starts at once: a diskless sync waits 5 s by default. The
        # first (b from a) keeps a's 5 s: by then the writer's answer to "has a a replica?"
        # (cached 1 s) is stale, so its writes after b leaves wait for no replica (WAIT 1).
        await rb.config_set("repl-diskless-sync-delay", 0)
        await rb.replicaof("127.0.0.1", a.port)
        for i in range(20):
            await writer.add(f"u1:s1:k{i:02}", {"content": f"alpha note {i}"})

        async def linked(client: aioredis.Redis) -> bool:
            return (await client.info("replication")).get("master_link_status") == "up"

        await eventually(lambda: linked(rb), within=60)  # (after a's 5 s)
        await ra.execute_command("WAIT", 1, 5000)
        assert len(await memory.search("alpha note", limit=100, scope=scope)) == 20
        await rb.replicaof("no", "one")  # b lags from here on
        for i in range(20, 30):
            await writer.add(f"u1:s1:k{i:02}", {"content": f"alpha note {i}"})
        for i in range(5):
            assert await writer.delete(f"u1:s1:k{i:02}")
        await writer.add("u1:s1:k05", {"content": "rewritten beta"})
        assert len(await memory.search("alpha note", limit=100, scope=scope)) == 24
        run_id = (await ra.info("server"))["run_id"]
        await ra.replicaof("127.0.0.1", b.port)  # a full resync: what b lacked is gone
        await eventually(lambda: linked(ra), within=60)
        await ra.replicaof("no", "one")
        assert (await ra.info("server"))["run_id"] == run_id
        await writer.add("u1:s2:fresh", {"content": "alpha fresh"})
        await replayed(writer)
        await replayed(memory)
        expected = sorted([f"u1:s1:k{i:02}" for i in range(20)] + ["u1:s2:fresh"])
        await finds(memory, "alpha", scope, expected)
        assert await memory.search("beta", limit=10, scope=scope) == []
    finally:
        await ra.aclose()
        await rb.aclose()
        await writer.aclose()
        await memory.aclose()


async def test_a_restart_that_lost_nothing_is_not_reloaded(redis_server_factory: Factory) -> None:
    """On a server of another run that holds everything the replica read (a restart from a
    full snapshot; a failover or a resharding alike), a write and a search read that write
    only, not the namespace again."""
    server = redis_server_factory()
    ns = namespace()
    memory = MemoryPrimitive(server.url, namespace=ns, search_engine="replica", redis_timeout=10)
    other = MemoryPrimitive(server.url, namespace=ns, search_engine="replica", redis_timeout=10)
    raw = aioredis.Redis.from_url(server.url)
    try:
        for i in range(0, 2000, 200):
            adds = [
                other.add(f"u{j % 5}:s{j % 50}:{j}", {"content": f"note {j} about garage"})
                for j in range(i, i + 200)
            ]
            await asyncio.gather(*adds)
        assert await other.delete("u2:s7:7")
        assert len(await memory.search("garage", limit=3000)) == 1999
        await raw.save()
        raw = await restarted(server, raw)
        await other.add("u1:s2:fresh", {"content": "fresh garage"})
        await replayed(other)
        await replayed(memory)
        sent: dict[str, Any] = await raw.info("stats")
        assert await memory.search("fresh garage", limit=1) == [{"content": "fresh garage"}]
        after: dict[str, Any] = await raw.info("stats")
        assert len(await memory.search("garage", limit=3000)) == 2000
        read = after["total_net_output_bytes"] - sent["total_net_output_bytes"]
        assert read < 20_000, f"{read} bytes read: the replica loaded the namespace again"
    finally:
        await raw.aclose()
        await other.aclose()
        await memory.aclose()


async def finds(
    memory: MemoryPrimitive, query: str, scope: str | None, expected: list[str]
) -> list[Any]:
    """What ``memory`` finds for ``query`` once it is exactly the memories of ``expected`` (a
    replica asks its server which run it is at most once a second: a restart shows within
    that), or AssertionError."""
    found: list[Any] = []

    async def named() -> bool:
        nonlocal found
        found = await memory.search(query, limit=100, scope=scope)
        return sorted(found_key(m) for m in found) == expected

    await eventually(named, within=10)
    return found


def found_key(value: dict[str, Any]) -> str:
    """The key a test memory of the restart tests was written under, from its content."""
    content = value["content"]
    if content == "alpha fresh":
        return "u1:s2:fresh"
    if content.startswith("state"):
        return "u1:state"
    return f"u1:s1:k{int(content.rsplit(' ', 1)[1]):02}"


async def test_a_page_of_changes_counts_key_bytes(redis_server_factory: Factory) -> None:
    """40 memories with 1 MB keys load in pages of about one key each, not in one call."""
    server = redis_server_factory()
    ns = namespace()
    keys = [f"u{i}:s1:" + "k" * (1 << 20) for i in range(40)]
    loader = RedisBackend(server.url, namespace=ns, timeout=30)
    await loader.apply([Put(key, encode_value({"content": "long key"})) for key in keys])
    await loader.aclose()
    backend = RedisSearchBackend(server.url, namespace=ns, timeout=30)
    try:
        before = await script_calls([server])
        found = await backend.search(INDEXING.query("long key"), 100, None)
        assert sorted(hit[0] for hit in found) == sorted(keys)
        assert await script_calls([server]) - before >= 40
    finally:
        await backend.aclose()


async def test_the_expiry_heap_keeps_one_live_entry_per_key(redis_server: RedisServer) -> None:
    """500 rewrites of 3 keys with a TTL, each followed by a search, leave a small heap."""
    ns = namespace()
    backend = RedisSearchBackend(redis_server.url, namespace=ns, timeout=30)
    query = INDEXING.query("garage")
    try:
        for i in range(500):
            value = {"content": f"garage {i}"}
            document = Document(INDEXING.terms(value))
            await backend.put(f"u1:s1:{i % 3}", encode_value(value), 3600, document=document)
            assert len(await backend.search(query, 10, None)) == min(i + 1, 3)
        replicas = backend.index.replicas
        assert replicas is not None
        assert replicas.full is not None
        assert replicas.full.deadlines <= 2 * 3 + 64
        for i in range(3):
            await backend.delete(f"u1:s1:{i}")
        assert await backend.search(query, 10, None) == []
    finally:
        await backend.clear()
        await backend.aclose()
