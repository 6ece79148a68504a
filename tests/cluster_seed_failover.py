"""The master the URL names dies: run as its own process by test_redis_cluster.py.

Prints one JSON line: whether the replica took over, whether a memory made before the kill
recovered (its journal replayed, ``using_redis`` True) while the killed node stayed down, how
many of its writes a reader cannot find, what a fresh memory with only the dead node's URL does,
and whether one given the dead node and a live one (``redis://dead,live``) serves from Redis.
"""

from __future__ import annotations

import asyncio
import sys
from uuid import uuid4

from redis_server import LocalCluster, print_report
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import UnsentWritesError
from tta_dev_primitives.stores._redis.backend import RedisBackend

OPTIONS = {"redis_timeout": 0.5, "recovery_interval": 0.1, "max_recovery_interval": 0.5}


async def recovered(memory: MemoryPrimitive, attempts: int = 150) -> bool:
    """Whether ``memory`` replays its journal and serves from Redis within ``attempts`` tries."""
    for _ in range(attempts):
        if await memory.flush() and memory.using_redis:
            return True
        await asyncio.sleep(0.1)
    return False


async def scenario(cluster: LocalCluster) -> dict[str, object]:
    ns = f"seed:{uuid4().hex[:8]}"
    seed = cluster.nodes[0]
    assert seed in cluster.master_nodes(), "the URL's node must be a master"
    await asyncio.to_thread(cluster.wait_replicas_in_sync)
    memory = MemoryPrimitive(cluster.url, namespace=ns, max_size=10_000, **OPTIONS)
    written = []
    for i in range(30):  # over many partitions: some on the seed's slots
        written.append(f"user{i}:s{i}:a")
        await memory.add(written[-1], {"content": f"before the kill {i}"})
    # On Redis before the kill. (On a loaded machine a replica can miss a write's WAIT within
    # the 0.5 s timeout, a fallback that is not this test's: its journal is replayed first.)
    assert await recovered(memory)
    seed.kill()
    for i in range(30):
        written.append(f"user{i}:s{i}:b")
        await memory.add(written[-1], {"content": f"after the kill {i}"})
    await asyncio.to_thread(cluster.wait_failover, seed, 30)
    report: dict[str, object] = {"failed_over": True}
    report["recovered"] = await recovered(memory)
    for i in range(30):  # and later writes go to Redis, with the seed still down
        written.append(f"user{i}:s{i}:c")
        await memory.add(written[-1], {"content": f"after the failover {i}"})
    report["journal_after"] = memory.get_backend_info()["journal_size"]
    try:
        await memory.aclose()
        report["unsent"] = 0
    except UnsentWritesError as exc:  # (before the fix: every write since the kill)
        report["unsent"] = exc.unsent

    live = next(n for n in cluster.master_nodes() if n is not seed)
    reader = RedisBackend(live.url, namespace=ns, timeout=10.0)
    report["written"] = len(written)
    report["missing"] = len([k for k in written if await reader.get(k) is None])

    # A fresh process that knows only the dead node: an outage, served in-process, its write
    # journalled; lost at aclose (no journal_path), and said so.
    alone = MemoryPrimitive(cluster.url, namespace=ns, **OPTIONS)
    await alone.add("fresh:s:1", {"content": "only the dead seed"})
    report["alone_using_redis"] = alone.using_redis
    report["alone_backend"] = alone.get_backend_info()["backend"]
    try:
        await alone.aclose()
        report["alone_close"] = "closed"
    except UnsentWritesError as exc:
        report["alone_close"] = f"UnsentWritesError({exc.unsent})"

    # Given another node too, a fresh process serves from Redis.
    both = f"redis://127.0.0.1:{seed.port},127.0.0.1:{live.port}"
    listed = MemoryPrimitive(both, namespace=ns, **OPTIONS)
    await listed.add("fresh:s:2", {"content": "the dead seed and a live node"})
    report["listed_using_redis"] = listed.using_redis
    report["listed_topology"] = listed.get_backend_info()["topology"]
    report["listed_found"] = await reader.get("fresh:s:2") is not None
    report["listed_reads_old"] = await listed.get(written[0]) is not None
    await listed.aclose()

    await reader.clear()
    await reader.aclose()
    return report


def main() -> None:
    print_report(LocalCluster(sys.argv[1], masters=3, replicas=1).start(), scenario)


if __name__ == "__main__":
    main()
