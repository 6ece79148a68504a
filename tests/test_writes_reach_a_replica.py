"""A write that returns has reached a replica, when its master has one: a failover (a cluster's,
or a managed primary's) cannot lose it.

WAIT counts the writes of the connection it is sent on, and redis-py's cluster pools hand
connections out in turn: after a burst had opened several, a WAIT sent apart from its write
went out on another connection and returned at once, whatever the replica had (the cluster
test below). A standalone primary never waited at all (the standalone tests; its pool hands
the last connection back, so they show that it waits, not where). And the write and its WAIT
must reach the same master when the slot map is stale (the routing tests, from a review). Each
stalls a replica (SIGSTOP): a write must then fail (and the hybrid journal it), not return.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import pytest
import redis as redis_sync
from redis.asyncio.cluster import RedisCluster

from conftest import eventually, fast_recovery, replayed, tcp_relay
from redis_server import LocalCluster, RedisServer, free_port
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import BackendUnavailableError
from tta_dev_primitives.stores._base import Put
from tta_dev_primitives.stores._redis.backend import RedisBackend
from tta_dev_primitives.stores._redis.layout import Layout
from tta_dev_primitives.stores._redis.replication import REPLICA_RECHECK

pytestmark = pytest.mark.redis


def replica_of(primary: RedisServer, make: Callable[..., RedisServer]) -> RedisServer:
    """A replica of ``primary`` (standalone), once it is in sync."""
    replica = make(extra=("--replicaof", "127.0.0.1", str(primary.port)))
    client = redis_sync.Redis(port=primary.port)
    try:
        for _ in range(400):
            if client.execute_command("ROLE")[2]:
                break
            time.sleep(0.05)
        assert client.execute_command("ROLE")[2], "the replica did not come in sync"
    finally:
        client.close()
    return replica


async def caught_up(primary: RedisServer) -> None:
    """Wait until the replica of ``primary``, resumed, has acknowledged everything (ROLE: its
    offset is the master's), so that what follows does not time out on a busy machine."""
    client = redis_sync.Redis(port=primary.port)

    def done() -> bool:
        _, offset, replicas = client.execute_command("ROLE")
        return bool(replicas) and all(int(r[2]) >= int(offset) for r in replicas)

    try:
        await eventually(done, within=30)
    finally:
        client.close()


@pytest.fixture
def primary_and_replica(
    redis_server_factory: Callable[..., RedisServer],
) -> Iterator[tuple[RedisServer, RedisServer]]:
    # No diskless-sync delay (5 s by default): the replica is in sync at once.
    primary = redis_server_factory(extra=("--repl-diskless-sync-delay", "0"))
    replica = replica_of(primary, redis_server_factory)
    yield primary, replica
    replica.resume()


async def burst_then_stalled_write(backend: RedisBackend, replica: RedisServer, key: str) -> None:
    """40 writes at once (the pool opens connections), then one more with the replica stalled:
    it must raise, not return."""
    await asyncio.gather(*(backend.put(f"u{i}:s:{i}", b'"x"') for i in range(40)))
    with replica.stalled():
        # WAIT gives up at 0.8 of the call's timeout; on a busy machine the call's own bound
        # may come first ("no reply within"). Either way the write raises.
        with pytest.raises(BackendUnavailableError, match=r"WAIT|replica|timed out|no reply"):
            await backend.put(key, b'"y"')
        with pytest.raises(BackendUnavailableError):
            await backend.delete(key)


async def test_a_write_returns_only_once_the_replica_has_it(
    primary_and_replica: tuple[RedisServer, RedisServer],
) -> None:
    primary, replica = primary_and_replica
    backend = RedisBackend(primary.url, namespace=f"t:{uuid4().hex[:8]}", timeout=2.0)
    try:
        before = primary.calls("wait")
        await backend.put("u0:s0:a", b'"first"')
        assert primary.calls("wait") > before  # from the first (which may load the script first)
        before = primary.calls("wait")
        await backend.put("u0:s0:a", b'"second"')
        assert primary.calls("wait") == before + 1  # one WAIT a write
        await burst_then_stalled_write(backend, replica, "u0:s0:b")
        await caught_up(primary)
        await backend.put("u0:s0:c", b'"after"')  # the replica is back: writes return again
        assert await backend.get("u0:s0:c") == b'"after"'
        await backend.clear()
    finally:
        await backend.aclose()


async def test_a_replayed_chunk_returns_only_once_the_replica_has_it(
    primary_and_replica: tuple[RedisServer, RedisServer],
) -> None:
    """The journal's replay (one pipeline per chunk) drops what it replayed once it returns."""
    primary, replica = primary_and_replica
    backend = RedisBackend(primary.url, namespace=f"t:{uuid4().hex[:8]}", timeout=2.0)
    try:
        await asyncio.gather(*(backend.put(f"u{i}:s:{i}", b'"x"') for i in range(40)))
        writes = [Put(f"u0:s:{i}", b'"r"') for i in range(5)]
        with replica.stalled(), pytest.raises(BackendUnavailableError):
            await backend.apply(writes)
        await caught_up(primary)
        before = primary.calls("wait")
        await backend.apply(writes)
        assert primary.calls("wait") == before + 1  # one WAIT after the chunk's writes
        await backend.clear()
    finally:
        await backend.aclose()


async def test_a_memory_journals_a_write_no_replica_confirmed_and_replays_it(
    primary_and_replica: tuple[RedisServer, RedisServer],
) -> None:
    """Through the public API: the write returns (journalled), and is stored once the replica
    answers again, nothing lost."""
    primary, replica = primary_and_replica
    ns = f"t:{uuid4().hex[:8]}"
    memory = MemoryPrimitive(primary.url, namespace=ns, redis_timeout=2.0,
                             recovery_interval=0.1, max_recovery_interval=0.5)  # fmt: skip
    try:
        await asyncio.gather(*(memory.add(f"u{i}:s:{i}", {"v": i}) for i in range(40)))
        assert memory.using_redis
        with replica.stalled():
            await memory.add("u0:s:late", {"content": "kept"})
            assert not memory.using_redis  # told: it is journalled, not yet in Redis
        await replayed(memory)
        reader = redis_sync.Redis(port=replica.port)
        try:
            await eventually(lambda: any(b"late" in k for k in reader.keys(f"*{ns}*")), 10)
        finally:
            reader.close()
        assert await memory.get("u0:s:late") == {"content": "kept"}
        await memory.clear()
    finally:
        await memory.aclose()


async def test_a_write_waiting_on_a_master_demoted_under_it_is_journalled(
    primary_and_replica: tuple[RedisServer, RedisServer],
) -> None:
    """A master demoted while a write waits there for its replica (WAIT 1) answers the WAIT
    ``UNBLOCKED ... (master -> replica?)``, as in a cluster's ``CLUSTER FAILOVER TAKEOVER``:
    an outage, so the write returns journalled and is replayed once a master serves (a review
    found it raised ``BackendError``, though the docs promise a failover falls back)."""
    primary, replica = primary_and_replica
    ns = f"t:{uuid4().hex[:8]}"
    # A long timeout: the write is still waiting on its replica when the master is demoted.
    memory = MemoryPrimitive(primary.url, namespace=ns, redis_timeout=30.0,
                             recovery_interval=0.1, max_recovery_interval=0.5)  # fmt: skip
    admin = redis_sync.Redis(port=primary.port)
    try:
        await memory.add("u0:s:first", {"content": "stored"})
        assert memory.using_redis
        with replica.stalled():
            add = asyncio.create_task(memory.add("u0:s:late", {"content": "kept"}))

            def waiting() -> bool:
                return any(c.get("cmd") == "wait" for c in admin.client_list())

            await eventually(waiting, within=20)
            # Demoted: a replica of a server that is not there (it stays one until told).
            admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
            async with asyncio.timeout(60):  # a hang guard
                await add  # returns: journalled, not raised
            assert not memory.using_redis
            assert memory.get_backend_info()["journal_size"] == 1
            admin.execute_command("REPLICAOF", "NO", "ONE")
        await replayed(memory)
        await eventually(lambda: any(b"late" in k for k in admin.keys(f"*{ns}*")), 10)
        assert await memory.get("u0:s:late") == {"content": "kept"}
        await memory.clear()
    finally:
        admin.close()
        await memory.aclose()


@pytest.mark.parametrize(("written", "touched"), [(None, 60.0), (60.0, None)])
async def test_a_replayed_write_that_had_landed_keeps_a_later_touch(
    primary_and_replica: tuple[RedisServer, RedisServer],
    written: float | None,
    touched: float | None,
) -> None:
    """A write that reached the primary but no replica in time returns journalled; another
    process then touches the memory (a new deadline, or none), and the touch returns True.
    The replay of the write, which had landed, must not undo that touch: it changes nothing
    (it used to set the write's own deadline again, deleting a memory the touch had kept)."""
    primary, replica = primary_and_replica
    ns = f"t:{uuid4().hex[:8]}"
    # 2 s timeouts, as the file's others: in a parallel run the warm write's WAIT missed 0.8 s.
    writer = fast_recovery(
        primary.url, ns, redis_timeout=2.0, recovery_interval=3600, max_recovery_interval=3600
    )  # replays when flushed, not before
    other = MemoryPrimitive(primary.url, namespace=ns, redis_timeout=2.0)
    raw = redis_sync.Redis(port=primary.port)
    try:
        await writer.add("u1:s1:warm", {"content": "connected, scripts loaded"})
        assert writer.using_redis
        with replica.stalled():
            await writer.add("u1:s1:k", {"content": "kept"}, ttl=written)
            assert not writer.using_redis  # journalled: no replica confirmed it
        (name,) = [k for k in raw.keys(f"*{ns}*u1:s1:k") if b":v:" in k]  # it reached Redis
        await caught_up(primary)
        assert await other.touch("u1:s1:k", touched)
        deadline = raw.pttl(name)
        await replayed(writer)  # the write again
        assert await other.get("u1:s1:k") == {"content": "kept"}
        if touched is None:
            assert deadline == raw.pttl(name) == -1  # kept for good, as the touch said
        else:
            assert 0 < raw.pttl(name) <= deadline  # the touch's deadline, not none
    finally:
        raw.close()
        await other.clear()
        await other.aclose()
        await writer.aclose()


async def test_a_managed_primary_killed_mid_burst_loses_no_write(
    primary_and_replica: tuple[RedisServer, RedisServer],
) -> None:
    """A managed endpoint's crash failover: 20 writers, the primary SIGKILLed 30 ms in, its
    replica promoted and the address moved to it. Every add returned (the hybrid journals what
    Redis did not take); afterwards the new primary holds every one of them. A write the old
    primary acknowledged and never sent on would be missing. (On loopback a replica is rarely
    behind when the kill lands, so without the wait this passed 4 runs of 4: the README's
    promise end to end. The stalled-replica tests above are the ones that fail without it.)"""
    old, new = primary_and_replica
    target = [old.port]
    async with tcp_relay(lambda: target[0]) as url:
        memory = fast_recovery(url)
        written: list[str] = []

        async def writer(w: int) -> None:
            for i in range(40):
                await memory.add(f"user{w}:s{i % 4}:{i}", {"content": f"write {w} {i}"})
                written.append(f"user{w}:s{i % 4}:{i}")
                await asyncio.sleep(0)  # the kill lands mid-burst

        async def failover() -> None:
            await asyncio.sleep(0.03)
            old.kill()
            admin = redis_sync.Redis(port=new.port)
            try:
                admin.execute_command("REPLICAOF", "NO", "ONE")
            finally:
                admin.close()
            target[0] = new.port

        try:
            await asyncio.gather(failover(), *(writer(w) for w in range(20)))
            async with asyncio.timeout(60):
                await replayed(memory)
            ns = memory.get_backend_info()["namespace"]
        finally:
            await memory.aclose()
    reader = RedisBackend(new.url, namespace=ns, timeout=10.0)
    try:
        missing = [key for key in written if await reader.get(key) is None]
        assert len(written) == 800
        assert missing == []
        assert await reader.size() == 800
    finally:
        await reader.aclose()


def replica_of_master(cluster: LocalCluster, port: int) -> RedisServer:
    """The live replica of the cluster's master on ``port``."""
    for node in cluster.nodes:
        if node.proc is None or node.proc.poll() is not None:
            continue
        client = redis_sync.Redis(port=node.port)
        try:
            role = client.execute_command("ROLE")
        finally:
            client.close()
        if role[0] == b"slave" and role[2] == port:
            return node
    raise AssertionError(f"master {port} has no live replica")


def slots_of(backend: RedisBackend, admin: redis_sync.RedisCluster, keys: list[str]) -> list[Any]:
    """(key, slot, master port) of each key's value."""
    found = []
    for key in keys:
        name = Layout.value_in(backend.layout.base(key), key)
        found.append((key, admin.keyslot(name), admin.get_node_from_key(name).port))
    return found


@pytest.fixture
def cluster_with_replicas(redis_binary: str) -> Iterator[LocalCluster]:
    cluster = LocalCluster(redis_binary, masters=3, replicas=1).start()
    yield cluster
    for node in cluster.nodes:
        node.resume()
    cluster.stop()


async def test_on_a_cluster_a_write_returns_only_once_the_replica_has_it(
    cluster_with_replicas: LocalCluster,
) -> None:
    cluster = cluster_with_replicas
    backend = RedisBackend(cluster.url, namespace=f"t:{uuid4().hex[:8]}", timeout=2.0)
    try:
        await backend.put("u0:s:y", b'"first"')  # connects: the slot map is known
        admin = redis_sync.RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
        try:
            ((_, _, master_port),) = slots_of(backend, admin, ["u0:s:y"])
        finally:
            admin.close()
        await burst_then_stalled_write(backend, replica_of_master(cluster, master_port), "u0:s:y")
    finally:
        await backend.aclose()


async def test_a_write_after_a_due_slot_map_refresh_waits_where_it_landed(
    cluster_with_replicas: LocalCluster,
) -> None:
    """Another process resharded 6 slots from master X to Y. Reads of 5 of them get MOVED,
    and the fifth makes redis-py refresh its slot map before its next command: the write to
    the sixth, whose WAIT was decided for X, was then routed to Y by the new map, and the
    WAIT on X counted nothing. With Y's replica stalled it returned normally (found by a
    review); it must fail."""
    cluster = cluster_with_replicas
    backend = RedisBackend(cluster.url, namespace=f"t:{uuid4().hex[:8]}", timeout=2.0)
    admin = redis_sync.RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        await backend.put("u0:s0:k", b'"connect"')
        placed = slots_of(backend, admin, [f"u{i}:s{i}:k" for i in range(400)])
        x_port = placed[0][2]
        keys = list({slot: key for key, slot, port in placed if port == x_port}.values())[:6]
        assert len(keys) == 6
        for key in keys:
            await backend.put(key, b'"before"')
        y = next(n for n in cluster.master_nodes() if n.port != x_port)
        for _, slot, _ in slots_of(backend, admin, keys):
            cluster.move_slot(slot, y)
        with replica_of_master(cluster, y.port).stalled():
            for key in keys[:5]:
                assert await backend.get(key) == b'"before"'
            await asyncio.sleep(1.5)  # redis-py's refresh is due (at most once a second)
            with pytest.raises(BackendUnavailableError):
                await backend.put(keys[5], b'"after"')
    finally:
        admin.close()
        await backend.aclose()


async def test_a_write_moved_from_a_master_alone_to_one_with_a_replica_waits(
    cluster_with_replicas: LocalCluster,
) -> None:
    """Master X lost its replica (the process wrote there without waiting), then X's slot
    moved to Y, which has one. The next write is answered MOVED: redis-py used to follow it to
    Y silently, without a WAIT. With Y's replica stalled it must fail (found by a review)."""
    cluster = cluster_with_replicas
    admin = redis_sync.RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    ns = f"t:{uuid4().hex[:8]}"
    backend = RedisBackend(cluster.url, namespace=ns, timeout=2.0)
    try:
        await backend.put("u0:s0:k", b'"x"')
        ((_, slot, x_port),) = slots_of(backend, admin, ["u0:s0:k"])
        await backend.aclose()
        replica_of_master(cluster, x_port).kill()

        def alone() -> bool:  # the slot map leaves a failed replica out
            client = redis_sync.Redis(port=x_port)
            try:
                rows = client.execute_command("CLUSTER", "SLOTS")
            finally:
                client.close()
            return all(len(row) == 3 for row in rows if row[0] <= slot <= row[1])

        await eventually(alone, within=30)
        backend = RedisBackend(cluster.url, namespace=ns, timeout=2.0)  # a fresh slot map
        await backend.put("u0:s0:k", b'"alone"')  # ROLE on X: no replica, no WAIT
        y = next(n for n in cluster.master_nodes() if n.port != x_port)
        cluster.move_slot(slot, y)
        with replica_of_master(cluster, y.port).stalled(), pytest.raises(BackendUnavailableError):
            await backend.put("u0:s0:k", b'"on y"')
    finally:
        admin.close()
        await backend.aclose()


def refused_role(chunk: bytes) -> bytes:
    """A proxy's answer to ROLE (Envoy's, say) in place of a master's reply."""
    return re.sub(
        rb"^\*3\r\n\$6\r\nmaster\r\n:\d+\r\n\*0\r\n",
        b"-ERR unsupported command 'role'\r\n", chunk,
    )  # fmt: skip


async def test_a_proxy_that_refuses_role_leaves_writes_working(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Only NOPERM and "unknown command" were taken as ROLE refused; any other refusal was
    raised, and failed every write (found by a review). Now writes go on, without waiting,
    and a warning says why."""
    caplog.set_level(logging.WARNING, logger="tta_dev_primitives.memory")
    async with tcp_relay(lambda: redis_server.port, reply=refused_role) as url:
        backend = RedisBackend(url, namespace=f"t:{uuid4().hex[:8]}", timeout=2.0)
        try:
            await backend.put("u0:s0:a", b'"x"')
            await backend.put("u0:s0:b", b'"y"')
            assert await backend.get("u0:s0:a") == b'"x"'
            await backend.clear()
        finally:
            await backend.aclose()
    assert "refused ROLE" in caplog.text


async def test_a_primary_alone_is_asked_for_replicas_about_once_a_second(
    redis_server: RedisServer,
) -> None:
    """ROLE's answer is kept ``REPLICA_RECHECK`` seconds: writes do not pay a round trip each
    to learn that there is nothing to wait for."""
    backend = RedisBackend(redis_server.url, namespace=f"t:{uuid4().hex[:8]}", timeout=2.0)
    try:
        before = redis_server.calls("role")
        began = time.monotonic()
        for i in range(300):
            await backend.put(f"u0:s0:{i}", b'"x"')
        elapsed = time.monotonic() - began
        asked = redis_server.calls("role") - before
        assert 1 <= asked <= elapsed / REPLICA_RECHECK + 2
        await backend.clear()
    finally:
        await backend.aclose()


async def test_the_cluster_client_never_resends_a_pipeline(redis_cluster: LocalCluster) -> None:
    """A write and its WAIT stay together only if redis-py never resends a pipeline itself: a
    resend routes each command anew (the script by its key, WAIT to any master, which answers
    at once). A second review reproduced that with one retry; this pins zero."""
    backend = RedisBackend(redis_cluster.url, namespace=f"t:{uuid4().hex[:8]}")
    try:
        await backend.put("u0:s0:a", b'"x"')

        async def client_of(client: Any) -> Any:
            return client

        client = await backend.connection.call(client_of)
        assert isinstance(client, RedisCluster)
        assert client.retry.get_retries() == 0
    finally:
        await backend.aclose()


async def test_a_replica_the_slot_map_lists_before_it_is_in_sync_does_not_fail_writes(
    redis_cluster: LocalCluster,
) -> None:
    """A reshard that moved all of a master's slots made it, as Redis does
    (``cluster-allow-replica-migration``), a replica of the master that took its last slot;
    the slot map listed it at once, during its full sync (``bench_reshard.py --slots 5461
    --search-engine redis``). Writes there went by the map's count, sent ``WAIT 1``, got 0 and
    failed as an outage, replays too: the process closed degraded with tens of thousands of
    writes unsent. The master's ``ROLE`` lists only replicas in sync; here the map lists one
    that ROLE does not."""
    backend = RedisBackend(redis_cluster.url, namespace=f"t:{uuid4().hex[:8]}", timeout=2.0)
    admin = redis_sync.RedisCluster(host="127.0.0.1", port=redis_cluster.nodes[0].port)
    try:
        await backend.put("u0:s0:k", b'"connect"')
        ((_, slot, port),) = slots_of(backend, admin, ["u0:s0:k"])

        async def client_of(client: Any) -> Any:
            return client

        client = await backend.connection.call(client_of)
        owner, other = sorted(client.get_primaries(), key=lambda node: node.port != port)[:2]
        assert owner.port == port
        client.nodes_manager.slots_cache[slot] = [owner, other]  # as redis-py left it
        await asyncio.sleep(REPLICA_RECHECK + 0.1)  # the last ROLE answer has gone stale
        await backend.put("u0:s0:k", b'"after"')
        assert await backend.get("u0:s0:k") == b'"after"'
    finally:
        admin.close()
        await backend.aclose()
