"""README: "on masters with replicas each write waits for one replica, so a failover loses
nothing"; production.md: "every add and delete also waits (WAIT 1 ...) until a replica has it".

redis-py learns a cluster's replicas from its slot map, read when the process connects, and
Redis leaves a replica out of CLUSTER SLOTS until it has replicated something (a new cluster,
a replica just attached; a failed master coming back as the new master's replica is the common
case). A process that connected then never waited for any replica, for as long as it ran; and
one that read the map again still skipped the wait for the first writes of a new cluster, which
a master killed then lost (``test_master_failover_loses_no_writes``, once in a full run).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from uuid import uuid4

import pytest
import redis as redis_sync

from conftest import eventually
from redis_server import LocalCluster
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.stores._redis.replication import confirm, replicas_in_sync

pytestmark = pytest.mark.redis


@pytest.fixture
def cluster_with_replicas(redis_binary: str) -> Iterator[LocalCluster]:
    cluster = LocalCluster(redis_binary, masters=3, replicas=1).start()
    yield cluster
    cluster.stop()


def replicas_listed(cluster: LocalCluster) -> int:
    """How many replicas the cluster's slot map (CLUSTER SLOTS) shows."""
    client = redis_sync.Redis(port=cluster.nodes[0].port)
    try:
        return sum(len(entry) - 3 for entry in client.execute_command("CLUSTER", "SLOTS"))
    finally:
        client.close()


def waits_served(cluster: LocalCluster) -> int:
    """WAIT calls the cluster's nodes have served."""
    return sum(node.calls("wait") for node in cluster.nodes)


async def test_every_write_waits_for_a_replica_from_the_first(
    cluster_with_replicas: LocalCluster,
) -> None:
    """On a new cluster the slot map lists no replica (none has replicated anything yet), but
    each master has one in sync: the first write, and each after it, waits for it."""
    cluster = cluster_with_replicas
    memory = MemoryPrimitive(cluster.url, namespace=f"test:{uuid4().hex[:8]}", redis_timeout=5)
    try:
        await memory.add("u0:s0:first", {"content": "first"})
        assert waits_served(cluster) > 0  # (it may have loaded the script first: two)
        for i in range(12):  # keys over every master
            before = waits_served(cluster)
            await memory.add(f"u{i}:s0:turn", {"content": f"turn {i}"})
            # One WAIT, or two where the write's master had not run the script yet: it is
            # loaded there alone (a stalled master elsewhere must not hold the write) and the
            # write sent again, with its WAIT.
            assert waits_served(cluster) in (before + 1, before + 2), f"write {i}: no WAIT"
        assert memory.using_redis
        await memory.clear()
    finally:
        await memory.aclose()


async def test_without_role_a_replica_listed_after_the_process_connected_is_waited_for(
    cluster_with_replicas: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis user without ``+role`` (production.md's cluster ACL before it named it): writes
    still work, a warning says what is missing, and the slot map, read again, finds replicas."""
    cluster = cluster_with_replicas
    for node in cluster.nodes:  # ACL users are per node
        admin = redis_sync.Redis(port=node.port)
        admin.execute_command("ACL", "SETUSER", "norole", "on", ">pw", "~*", "+@all", "-role")
        admin.close()
    url = f"redis://norole:pw@127.0.0.1:{cluster.nodes[0].port}/0"
    memory = MemoryPrimitive(url, namespace=f"test:{uuid4().hex[:8]}", redis_timeout=5)
    try:
        with caplog.at_level(logging.WARNING, logger="tta_dev_primitives.memory"):
            await written_while_replicas_appear(cluster, memory)
        assert "refused ROLE" in caplog.text
        assert "pw@" not in caplog.text
    finally:
        await memory.aclose()


async def test_without_role_concurrent_first_writes_each_wait_for_a_listed_replica(
    cluster_with_replicas: LocalCluster,
) -> None:
    """Once the slot map lists each master's replica, a fresh process without ``+role`` sends
    40 writes at once: each waits. When ROLE came first (to catch a replica the map lists
    during its full sync), the writes in flight as it was refused read the map once between
    them, and those after the first read skipped their WAIT: 3-15 of 40 in a review."""
    import asyncio

    cluster = cluster_with_replicas
    for node in cluster.nodes:
        admin = redis_sync.Redis(port=node.port)
        admin.execute_command("ACL", "SETUSER", "norole", "on", ">pw", "~*", "+@all", "-role")
        admin.close()
    await replicas_appear(cluster)
    warm = MemoryPrimitive(cluster.url, namespace=f"test:{uuid4().hex[:8]}", redis_timeout=5)
    for i in range(30):  # the write script loaded on every master (NOSCRIPT resends: more WAITs)
        await warm.add(f"u{i}:s0:t", {"content": f"{i}"})
    await warm.aclose()
    url = f"redis://norole:pw@127.0.0.1:{cluster.nodes[0].port}/0"
    memory = MemoryPrimitive(url, namespace=f"test:{uuid4().hex[:8]}", redis_timeout=5)
    try:
        before = waits_served(cluster)
        await asyncio.gather(*(memory.add(f"u{i}:s0:t", {"content": f"{i}"}) for i in range(40)))
        assert waits_served(cluster) - before == 40
        assert memory.using_redis
    finally:
        await memory.aclose()


@pytest.mark.parametrize(
    ("reply", "replicas"),
    [
        ([b"master", 0, [[b"127.0.0.1", b"7001", b"0"]]], 1),
        (["master", 5, [["h", "1", "5"], ["h", "2", "5"]]], 2),
        ([b"master", 0, []], 0),
        ([b"slave", b"127.0.0.1", 7000, b"connected", 0], 0),
        (b"garbage", 0),
        (None, 0),
        ([b"master", 0], 0),
        ([b"master", 0, b"x"], 0),
    ],
)
def test_a_role_reply_counts_only_a_masters_replicas(reply: object, replicas: int) -> None:
    """A reply of another shape (a proxy's, a replica's) means no replica to wait for."""
    assert replicas_in_sync(reply) == replicas


async def replicas_appear(cluster: LocalCluster) -> None:
    """Write on every master (30 keys over 3 masters), as an admin, until Redis lists each
    master's replica in the slot map (it lists one only once it has replicated something)."""
    client = redis_sync.RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    for i in range(30):
        client.set(f"warm:{i}", "x")
    client.close()

    def listed() -> bool:
        return replicas_listed(cluster) == 3

    await eventually(listed, within=30)


async def written_while_replicas_appear(cluster: LocalCluster, memory: MemoryPrimitive) -> None:
    await memory.add("u0:s0:first", {"content": "connected"})  # the slot map: no replica yet
    await replicas_appear(cluster)
    written = 0

    async def waited() -> bool:
        nonlocal written
        written += 1
        await memory.add(f"u{written}:s0:turn", {"content": f"turn {written}"})
        return waits_served(cluster) > 0

    await eventually(waited, within=15)
    assert memory.using_redis
    await memory.clear()


@pytest.mark.parametrize("acked", [0, b"0", b"OK", None, "x" * 100, [1]])
def test_a_wait_reply_that_confirms_nothing_fails_the_write(acked: object) -> None:
    """0 (no replica in time) is a timeout; anything else not a count (a proxy's answer) is
    not Redis's: both count as an outage, so the hybrid journals the write."""
    with pytest.raises((redis_sync.exceptions.TimeoutError, redis_sync.exceptions.InvalidResponse)):
        confirm(acked)
    confirm(1)
    confirm(b"2")
