"""MemoryPrimitive on a real Redis Cluster: detection, spread over shards, failover."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
import redis.asyncio as aioredis

from redis_server import LocalCluster
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


async def test_a_cluster_is_detected_with_no_other_change(redis_cluster: LocalCluster) -> None:
    """The same URL form works; get_backend_info says cluster with its node count."""
    memory = MemoryPrimitive(redis_cluster.url, namespace=f"detect:{uuid4().hex[:8]}")
    await memory.add("u1:s1:a", {"content": "on a cluster"})
    info = memory.get_backend_info()
    assert info["backend"] == "redis"
    assert info["topology"] == "cluster"
    assert info["nodes"] == 3
    await memory.clear()
    await memory.aclose()


async def test_a_namespace_spreads_over_every_master(redis_cluster: LocalCluster) -> None:
    """1,000 memories over 100 sessions: each of the 3 masters holds at least 20% of them."""
    ns = f"spread:{uuid4().hex[:8]}"
    memory = MemoryPrimitive(redis_cluster.url, namespace=ns, max_size=2_000)
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
    await memory.aclose()


async def test_clear_on_a_cluster_spares_other_namespaces(redis_cluster: LocalCluster) -> None:
    """clear() walks every shard but removes only its own namespace."""
    a = MemoryPrimitive(redis_cluster.url, namespace=f"a:{uuid4().hex[:8]}")
    b = MemoryPrimitive(redis_cluster.url, namespace=f"b:{uuid4().hex[:8]}")
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
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("cluster_failover.py")
    result = subprocess.run(
        [sys.executable, "-W", "ignore::ResourceWarning", str(script), redis_binary],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == []
    assert report["failed_over"] is True
    assert report["written"] >= 700
    assert report["missing"] == 0
    assert report["size"] == report["written"]


def test_cluster_info_before_connecting_says_unknown(redis_cluster: LocalCluster) -> Any:
    """Before the first call nothing is known about the server; nothing is claimed."""
    memory = MemoryPrimitive(redis_cluster.url)
    assert memory.get_backend_info()["topology"].startswith("unknown")
