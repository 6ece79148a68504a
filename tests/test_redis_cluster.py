"""MemoryPrimitive on a real Redis Cluster: detection, spread over shards, failover."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
import redis.asyncio as aioredis

from conftest import IN_CI, eventually, fast_recovery, namespace, replayed
from redis_server import LocalCluster, run_report
from tta_dev_primitives import MemoryPrimitive

pytestmark = pytest.mark.redis


async def keys_per_master(cluster: LocalCluster, namespace: str) -> list[int]:
    """How many of the namespace's memory values each master holds."""
    counts = []
    for node in cluster.master_nodes():
        client = aioredis.Redis.from_url(node.url)
        pattern = f"{namespace}:*:v:*"
        counts.append(len([k async for k in client.scan_iter(match=pattern, count=1000)]))
        await client.aclose()
    return counts


#: These tests are about where memories land, not timeouts: on a machine busy enough (load 20 on
#: 2 cores) a 1 s default turned adds into journalled outage writes, not yet in Redis when counted.
PATIENT: dict[str, Any] = {"redis_timeout": 10.0}


async def test_a_cluster_is_detected_with_no_other_change(redis_cluster: LocalCluster) -> None:
    """The same URL form works; get_backend_info says cluster with its node count."""
    memory = MemoryPrimitive(redis_cluster.url, namespace=f"detect:{uuid4().hex[:8]}", **PATIENT)
    try:
        await memory.add("u1:s1:a", {"content": "on a cluster"})
        info = memory.get_backend_info()
        assert info["backend"] == "redis"
        assert info["topology"] == "cluster"
        assert info["nodes"] == 3
        await memory.clear()
    finally:
        await memory.aclose()


async def test_a_namespace_spreads_over_every_master(redis_cluster: LocalCluster) -> None:
    """1,000 memories over 100 sessions: each of the 3 masters holds at least 20% of them."""
    ns = f"spread:{uuid4().hex[:8]}"
    memory = MemoryPrimitive(redis_cluster.url, namespace=ns, max_size=2_000, **PATIENT)
    try:
        for i in range(1_000):
            session = i % 100
            await memory.add(f"user{session % 10}:session{session}:{i}", {"content": f"turn {i}"})
        counts = await keys_per_master(redis_cluster, ns)
        assert sum(counts) == 1_000
        assert min(counts) >= 200, counts
        assert await memory.size() == 1_000
        found = await memory.search("turn", limit=1_000, scope="user3:session13")
        assert len(found) == 10
        await memory.clear()
        assert sum(await keys_per_master(redis_cluster, ns)) == 0
    finally:
        await memory.aclose()


async def test_clear_on_a_cluster_spares_other_namespaces(redis_cluster: LocalCluster) -> None:
    """clear() walks every shard but removes only its own namespace."""
    a = MemoryPrimitive(redis_cluster.url, namespace=f"a:{uuid4().hex[:8]}", **PATIENT)
    b = MemoryPrimitive(redis_cluster.url, namespace=f"b:{uuid4().hex[:8]}", **PATIENT)
    for i in range(50):
        await a.add(f"u{i}:s:{i}", {"v": i})
        await b.add(f"u{i}:s:{i}", {"v": i})
    await a.clear()
    assert await a.size() == 0
    assert await b.size() == 50
    await b.clear()
    await a.aclose()
    await b.aclose()


def test_master_failover_loses_no_writes(redis_binary: str) -> None:
    """Kill a master mid-traffic: calls keep returning, the replica takes over, nothing is lost.

    Runs in its own process (``cluster_failover.py``): redis-py's cluster client drops a dead
    node without closing its sockets, and their collection must not surface in other tests.
    """

    report = run_report("cluster_failover.py", redis_binary)
    assert report["errors"] == []
    assert report["failed_over"] is True
    assert report["written"] >= 700
    assert report["missing"] == 0
    assert report["size"] == report["written"]


def test_the_master_the_url_names_can_die(redis_binary: str) -> None:
    """Kill the master whose address is the URL, and keep it down: once its replica took over,
    a memory made before recovers from the other nodes it knew (its journal replayed, later
    writes on Redis), nothing lost; a fresh memory that knows only the dead node serves
    in-process (an outage, said at aclose), and one told of a live node too serves from Redis.

    A review found every process degraded until the dead node came back (a new client always
    began at the URL's node). Own process: see ``test_master_failover_loses_no_writes``."""

    report = run_report("cluster_seed_failover.py", redis_binary)
    assert report["failed_over"] is True
    assert report["recovered"] is True, report
    assert (report["journal_after"], report["unsent"]) == (0, 0), report
    assert report["written"] == 90
    assert report["missing"] == 0
    assert (report["alone_using_redis"], report["alone_backend"]) == (False, "in-memory")
    assert report["alone_close"] == "UnsentWritesError(1)"
    assert report["listed_using_redis"] is True
    assert report["listed_topology"] == "cluster"
    assert report["listed_found"] is True
    assert report["listed_reads_old"] is True


def test_a_url_may_name_several_nodes_of_a_cluster() -> None:
    """``redis://h1:p1,h2:p2/0``: every node is known, the rest of the URL is each one's, the
    password is hidden, and a malformed node is refused at construction."""
    from tta_dev_primitives.exceptions import InvalidArgumentError
    from tta_dev_primitives.stores._urls import check_redis_url, cluster_nodes, redact_url

    url = "rediss://app:s3cretQZ@h1:7000,[::1]:7001,h3/0?ssl_cert_reqs=none"
    assert check_redis_url(url) == url
    assert cluster_nodes(url) == (
        "rediss://app:s3cretQZ@h1:7000/0?ssl_cert_reqs=none",
        [("h1", 7000), ("::1", 7001), ("h3", 6379)],
    )
    assert redact_url(url) == "rediss://app:***@h1:7000,[::1]:7001,h3/0?ssl_cert_reqs=none"
    assert cluster_nodes("redis://h1:7000/0") == ("redis://h1:7000/0", [])
    for bad in ("redis://h1:7000,h2:x/0", "redis://h1:7000,,h2/0", "redis://h1:7000,h2:0/0"):
        with pytest.raises(InvalidArgumentError, match="cluster node"):
            check_redis_url(bad)
    assert MemoryPrimitive(url).get_backend_info()["url"] == redact_url(url)


async def test_several_nodes_that_are_not_a_cluster_are_refused(
    redis_server_factory: Any,
) -> None:
    """A URL naming several standalone servers is wrong, not down: the call raises
    ``BackendRefusedError`` and nothing is journalled as if it would reach Redis later."""
    from tta_dev_primitives.exceptions import BackendRefusedError

    a, b = redis_server_factory(), redis_server_factory()
    memory = MemoryPrimitive(f"redis://127.0.0.1:{a.port},127.0.0.1:{b.port}/0")
    with pytest.raises(BackendRefusedError, match="several nodes"):
        await memory.add("u1:s1:a", {"content": "nowhere"})
    assert memory.get_backend_info()["journal_size"] == 0
    await memory.aclose()


def test_cluster_info_before_connecting_says_unknown(redis_cluster: LocalCluster) -> Any:
    """Before the first call nothing is known about the server; nothing is claimed."""
    memory = MemoryPrimitive(redis_cluster.url)
    assert memory.get_backend_info()["topology"].startswith("unknown")


def _partition_slot(cluster: LocalCluster, ns: str, key: str) -> tuple[int, str, Any]:
    """The slot of ``key``'s partition, its base, and a master that does not own it."""
    import redis
    from redis.crc import key_slot

    from tta_dev_primitives.stores._redis.layout import CLUSTER_PARTITIONS, Layout

    base = Layout(ns, CLUSTER_PARTITIONS).base(key)
    slot = key_slot(Layout.facts(base).encode())
    others = [
        n for n in cluster.master_nodes()
        if not redis.Redis(port=n.port).execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
    ]  # fmt: skip
    return slot, base, others[0]


async def _ten_turns(cluster: LocalCluster, ns: str) -> tuple[MemoryPrimitive, int, Any, str]:
    """Ten turns of ``u1:s1``; the memory, their partition's slot, a master that does not own
    it, and the partition's base."""
    memory = MemoryPrimitive(cluster.url, namespace=ns)
    for i in range(10):
        await memory.add(f"u1:s1:{i}", {"content": f"turn {i} about tea"})
    slot, base, target = _partition_slot(cluster, ns, "u1:s1:0")
    return memory, slot, target, base


def _first_half(base: str) -> list[str]:
    """A resharding stopped halfway: the partition's facts and feeds moved, its values not."""
    from tta_dev_primitives.stores._redis.layout import FACTS, HEAD, LIVE

    return [base + FACTS, base + HEAD, base + LIVE, base + LIVE + ":u1"]


async def _assert_whole(cluster: LocalCluster, ns: str, expected: dict[str, str]) -> None:
    """A fresh process finds exactly ``expected`` (key -> content): by get, size, listing and
    search, with nothing journalled."""
    fresh = MemoryPrimitive(cluster.url, namespace=ns)
    for key, content in expected.items():
        assert await fresh.get(key) == {"content": content}, key
    assert await fresh.size() == len(expected)
    listed = (await fresh.list_memories("u1", limit=100)).items
    assert sorted(k for k, _ in listed) == sorted(expected)
    coffee = sorted(k for k, c in expected.items() if "coffee" in c)
    assert sorted(h.key for h in await fresh.search_scored("coffee", scope="u1")) == coffee
    info = fresh.get_backend_info()
    assert (info["journal_size"], info["dead_letters"]) == (0, 0)
    await fresh.clear()
    await fresh.aclose()


@pytest.fixture(scope="module")
def replicated_cluster(redis_binary: str) -> Iterator[LocalCluster]:
    """A cluster whose masters have a replica each: its writes are pipelined with WAIT 1, and
    a redirection (MOVED, ASK) comes back to the library instead of redis-py following it."""
    cluster = LocalCluster(redis_binary, masters=3, replicas=1).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["masters alone", "masters with replicas"])
def resharded(request: pytest.FixtureRequest) -> LocalCluster:
    alone = request.param == "masters alone"
    cluster: LocalCluster = request.getfixturevalue(
        "redis_cluster" if alone else "replicated_cluster"
    )
    return cluster


async def test_a_new_turn_during_a_half_done_resharding_does_not_split_its_partition(
    resharded: LocalCluster,
) -> None:
    """A resharding (``redis-cli --cluster reshard``) moves a partition's keys a batch at a
    time while turns are added. A new turn halfway returns normally; the move then completes
    without finding keys of the same name on the new master (BUSYKEY: the write made the
    partition's facts and feeds anew there, beside the ones still on their way), and a fresh
    process finds the turn, with size, listing and search agreeing."""
    from conftest import namespace

    ns = namespace()
    memory, slot, target, base = await _ten_turns(resharded, ns)
    with resharded.migrating(slot, target) as move:
        move.move(_first_half(base))
        await memory.add("u1:s1:new", {"content": "coffee during the move"})
        move.finish()  # BUSYKEY if the write made the partition's keys anew on the new master
    assert await memory.flush()
    await memory.aclose()
    expected = {f"u1:s1:{i}": f"turn {i} about tea" for i in range(10)}
    await _assert_whole(resharded, ns, {**expected, "u1:s1:new": "coffee during the move"})


async def test_a_delete_and_an_update_during_a_half_done_resharding_return_normally(
    resharded: LocalCluster,
) -> None:
    """Halfway through the move of a partition, deleting one of its memories and rewriting
    another (their values still on the old master, the partition's facts on the new one) is
    not an error for the caller: Redis cannot serve that slot's scripts until the move ends,
    an outage like TRYAGAIN; both are served in-process and land once the move is done."""
    from conftest import namespace

    ns = namespace()
    memory, slot, target, base = await _ten_turns(resharded, ns)
    with resharded.migrating(slot, target) as move:
        move.move(_first_half(base))
        await memory.delete("u1:s1:3")
        await memory.add("u1:s1:4", {"content": "coffee instead of tea"})
        move.finish()
    assert await memory.flush()
    await memory.aclose()
    expected = {f"u1:s1:{i}": f"turn {i} about tea" for i in range(10) if i != 3}
    await _assert_whole(resharded, ns, {**expected, "u1:s1:4": "coffee instead of tea"})


async def test_calls_during_a_short_slot_move_wait_for_it_instead_of_falling_back(
    resharded: LocalCluster,
) -> None:
    """A resharding moves a partition's slot while another process reads and writes it: a
    write (its script names keys on both masters: TRYAGAIN, or an ASK the library does not
    follow), a delete, and a get of a memory whose value has moved (ASK, then redirections
    that do not settle) are sent again until the move ends, within the call's timeout. They
    fell back before, and the whole process with them: 96% of the gets of existing memories
    answered None during a 4,000-slot reshard (bench_reshard.py). Here each is served by
    Redis, nothing is journalled, and a fresh process finds every change."""
    from tta_dev_primitives.stores._redis.layout import Layout

    ns = namespace()
    writer, slot, target, base = await _ten_turns(resharded, ns)
    await writer.aclose()
    other = MemoryPrimitive(resharded.url, namespace=ns, redis_timeout=10)
    assert await other.get("u1:s1:0") == {"content": "turn 0 about tea"}  # connected
    with resharded.migrating(slot, target) as move:
        move.move([*_first_half(base), Layout.value_in(base, "u1:s1:2")])
        calls = asyncio.gather(
            other.get("u1:s1:2"),
            other.add("u1:s1:new", {"content": "coffee during the move"}),
            other.delete("u1:s1:3"),
        )
        # Longer than redis-py's own TRYAGAIN retries (16 tries, 50 ms apart from the 9th).
        await asyncio.sleep(1.0)
        assert not calls.done()
        await asyncio.to_thread(move.finish)
        got, _, deleted = await calls
    assert got == {"content": "turn 2 about tea"}
    assert deleted is True
    info = other.get_backend_info()
    assert other.using_redis, info["last_error"]
    assert (info["journal_size"], info["degraded"], info["last_error"]) == (0, False, None)
    await other.aclose()
    expected = {f"u1:s1:{i}": f"turn {i} about tea" for i in range(10) if i != 3}
    await _assert_whole(resharded, ns, {**expected, "u1:s1:new": "coffee during the move"})


async def test_a_slot_move_that_outlasts_a_call_fails_that_call_alone(
    resharded: LocalCluster,
) -> None:
    """A write whose slot stays half-moved past its timeout is an outage for that call. Its
    failure used to drop the connection's cluster client, closing it under every other call
    in flight: their replies were lost ("Connection closed by server") and they failed too,
    through ``bench_reshard.py --search-engine redis``. The client is sound (its nodes
    serve): a call in flight on another slot now gets its answer."""
    from redis.crc import key_slot

    from tta_dev_primitives.exceptions import BackendUnavailableError
    from tta_dev_primitives.stores._redis.backend import RedisBackend

    ns = namespace()
    writer, slot, target, base = await _ten_turns(resharded, ns)
    await writer.aclose()
    backend = RedisBackend(resharded.url, namespace=ns, timeout=0.5)
    admin = aioredis.RedisCluster.from_url(resharded.url)
    try:
        assert await backend.get("u1:s1:0") is not None  # connected
        queue = next(q for i in range(200) if key_slot((q := f"t:q{i}").encode()) != slot)

        async def in_flight(client: Any) -> Any:  # a reply that waits on the server
            return await client.blpop([queue], timeout=20)

        flight = asyncio.ensure_future(backend.connection.call(in_flight, bounded=False))
        with resharded.migrating(slot, target) as move:
            move.move(_first_half(base))
            with pytest.raises(BackendUnavailableError, match="still being resharded"):
                await backend.put("u1:s1:new", b'"during the move"')
            await admin.lpush(queue, "answer")
            assert list(await flight) == [queue.encode(), b"answer"]
            move.finish()
    finally:
        await admin.aclose()
        await backend.aclose()


async def test_a_write_after_a_resharding_it_did_not_see_lands_on_the_new_owner(
    resharded: LocalCluster,
) -> None:
    """Another process moved the partition's slot while this one was idle: its slot map still
    names the old owner, whose MOVED reply sends the write on (on masters with replicas, the
    library follows it itself: the write and its WAIT go in one pipeline). The write returns
    normally, from Redis, and a fresh process finds it."""
    from conftest import namespace

    ns = namespace()
    memory, slot, target, _ = await _ten_turns(resharded, ns)
    with resharded.migrating(slot, target) as move:
        move.finish()
    await memory.add("u1:s1:moved", {"content": "coffee after the move"})
    assert memory.using_redis
    assert memory.get_backend_info()["journal_size"] == 0
    await memory.aclose()
    expected = {f"u1:s1:{i}": f"turn {i} about tea" for i in range(10)}
    await _assert_whole(resharded, ns, {**expected, "u1:s1:moved": "coffee after the move"})


def _cluster_for(engine: str, redis_binary: str) -> LocalCluster:
    """A cluster of its own (a master is added to it): plain Redis for the replica engine, the
    Query Engine on every node for ``"redis"`` (skipped without it, failed under CI=true)."""
    if engine == "replica":
        return LocalCluster(redis_binary, masters=3).start()
    from query_engine_server import start_redis_stack_cluster

    started = start_redis_stack_cluster()
    if isinstance(started, str):
        if IN_CI:
            pytest.fail(f"CI=true: no Redis Cluster with the Query Engine: {started}")
        pytest.skip(started)
    return started[0]


@pytest.mark.parametrize("engine", ["replica", "redis"])
async def test_a_slot_moving_to_a_master_added_since_the_slot_map_is_an_outage(
    redis_binary: str, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A master is added to the cluster (``redis-cli --cluster add-node``) and a partition's
    slot begins moving to it. The old owner answers the partition's commands with ASK, naming
    a node this client's slot map does not have (it owns no slot yet), and redis-py failed on
    it inside its routing (``AttributeError`` on ``None``): a get and a search, scoped or not,
    raised ``BackendError`` ("a reply this library cannot read"). Now it is an outage, as
    ``TRYAGAIN`` is: each returns normally, served in-process (a memory each, so that each
    meets Redis, not an outage another call found); a write then is journalled, and once the
    slot is the new master's it is replayed and a fresh process finds everything there.
    (Each call is sent again for its whole timeout first, as the move may end meanwhile.)"""
    from tta_dev_primitives.stores import _copies

    # The copies stay vouched for across adding the master and the timeouts (an idle
    # process's copy is dropped in an outage: test_acked_writes).
    monkeypatch.setattr(_copies, "VOUCHED_FOR", 600.0)
    cluster = _cluster_for(engine, redis_binary)
    try:
        ns = namespace()
        calls = ("get", "search", "scoped")
        memories = {
            call: fast_recovery(cluster.url, ns, search_engine=engine, redis_timeout=2)
            for call in calls
        }
        tea = sorted(f"u1:s1:{i}" for i in range(10))
        for memory in memories.values():  # each holds its own copies: its in-process answers
            for i in range(10):
                await memory.add(f"u1:s1:{i}", {"content": f"turn {i} about tea"})
            found = await memory.search_scored("tea", 20, scope="u1")  # warm
            assert sorted(h.key for h in found) == tea
            assert memory.get_backend_info()["search_engine"].startswith(engine)
        slot, _, _ = _partition_slot(cluster, ns, "u1:s1:0")
        new = cluster.add_master()
        with cluster.migrating(slot, new) as move:
            move.move(move.keys_left())  # every key there: the old owner answers ASK
            assert move.keys_left() == []
            async with asyncio.timeout(60):  # a hang guard; each waits out its timeout first
                got, scoped, unscoped = await asyncio.gather(
                    memories["get"].get("u1:s1:3"),
                    memories["scoped"].search_scored("tea", 20, scope="u1"),
                    memories["search"].search_scored("tea", 20),
                )
                await memories["get"].add("u1:s1:new", {"content": "coffee during the move"})
            assert got == {"content": "turn 3 about tea"}
            assert sorted(h.key for h in scoped) == sorted(h.key for h in unscoped) == tea
            for call, memory in memories.items():
                assert not memory.using_redis, call
                assert "does not know" in memory.get_backend_info()["last_error"], call
            move.finish()
        for memory in memories.values():
            await replayed(memory)
            assert await memory.get("u1:s1:new") == {"content": "coffee during the move"}
            await memory.aclose()
        expected = {f"u1:s1:{i}": f"turn {i} about tea" for i in range(10)}
        await _assert_whole(cluster, ns, {**expected, "u1:s1:new": "coffee during the move"})
    finally:
        cluster.stop()


async def test_a_write_after_a_planned_failover_reaches_the_new_master(redis_binary: str) -> None:
    """``CLUSTER FAILOVER`` of a replica: a process's next writes to its master's slots meet
    MOVED (its slot map is stale), then NOSCRIPT on the promoted node (scripts are not
    replicated). Both are cured in turn and the writes return from Redis, not journalled (a
    review: 28-49 adds served in-process for 0.3-0.5 s on each planned failover)."""
    cluster = LocalCluster(redis_binary, masters=3, replicas=1).start()
    memory = MemoryPrimitive(cluster.url, namespace=namespace(), **PATIENT)
    try:
        cluster.wait_replicas_in_sync()
        for i in range(30):
            await memory.add(f"u{i}:s1:before", {"content": f"turn {i}"})
        replica = next(
            n for n in cluster.nodes if "role:slave" in cluster.info(n, "info", "replication")
        )
        me = f"127.0.0.1:{replica.port}@"

        def everyone_sees_it_master() -> bool:  # (gossip: every node's slot map agrees)
            return all(
                "master" in line.split()[2]
                for node in cluster.nodes
                for line in cluster.info(node, "cluster", "nodes").splitlines()
                if line.split()[1].startswith(me)
            )

        for _ in range(3):  # (a manual failover that times out is asked for again)
            assert cluster.info(replica, "cluster", "failover").strip() == "OK"
            with contextlib.suppress(AssertionError):
                await eventually(everyone_sees_it_master, within=15)
                break
        assert everyone_sees_it_master()
        cluster.wait_ok()
        for i in range(30):  # (a third of them on the promoted master's slots)
            await memory.add(f"u{i}:s1:after", {"content": f"turn {i}"})
            assert memory.using_redis, memory.get_backend_info()["last_error"]
        assert memory.get_backend_info()["journal_size"] == 0
    finally:
        await memory.aclose()
        cluster.stop()
