"""README: "on masters with replicas each write waits for one replica, so a failover loses
nothing"; production.md: "every add and delete also waits (WAIT 1 ...) until a replica has it".

redis-py learns a cluster's replicas from its slot map, read when the process connects, and
Redis leaves a replica out of CLUSTER SLOTS until it has replicated something (a new cluster,
a replica just attached; a failed master coming back as the new master's replica is the common
case). A process that connected then never waited for any replica, for as long as it ran.
"""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest
import redis as redis_sync

from conftest import eventually
from redis_server import LocalCluster
from tta_dev_primitives import MemoryPrimitive

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
    total = 0
    for node in cluster.nodes:
        client = redis_sync.Redis(port=node.port)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        total += int(stats.get("cmdstat_wait", {}).get("calls", 0))
    return total


async def test_a_replica_listed_after_the_process_connected_is_waited_for(
    cluster_with_replicas: LocalCluster,
) -> None:
    cluster = cluster_with_replicas
    memory = MemoryPrimitive(cluster.url, namespace=f"test:{uuid4().hex[:8]}", redis_timeout=5)
    try:
        await written_while_replicas_appear(cluster, memory)
    finally:
        await memory.aclose()


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
