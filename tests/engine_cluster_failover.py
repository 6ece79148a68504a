"""A master failover under the Query Engine on a cluster, run as its own process by
test_query_engine_cluster.py (redis-py's cluster client drops a dead node without closing its
sockets, and their collection must not surface in other tests).

Prints one JSON line: how many of 40 memories a search found before the kill and after the
replica took over, and which engine served the last search.
"""

from __future__ import annotations

import asyncio
from uuid import uuid4

import redis

from query_engine_server import start_redis_stack_cluster
from redis_server import LocalCluster, print_report
from tta_dev_primitives import MemoryPrimitive


async def scenario(cluster: LocalCluster) -> dict[str, object]:
    memory = MemoryPrimitive(
        cluster.url, namespace=f"efail:{uuid4().hex[:8]}", search_engine="redis",
        redis_timeout=5, recovery_interval=0.1, max_recovery_interval=0.5,
    )  # fmt: skip
    for user in range(40):
        await memory.add(f"u{user}:s1:t1", {"content": f"user {user} booked a flight"})
    before = len(await memory.search("booked flight", limit=100))
    for node in cluster.master_nodes():  # the replicas have every document before the kill
        redis.Redis(port=node.port).execute_command("WAIT", 1, 10_000)
    victim = next(n for n in cluster.master_nodes() if n.port != cluster.nodes[0].port)
    victim.kill()
    await asyncio.to_thread(cluster.wait_failover, victim, 30)
    after, errors = 0, []
    for _ in range(300):  # bounded: about 30 s
        try:
            after = len(await memory.search("booked flight", limit=100))
        except Exception as exc:  # the client is still finding the new layout
            errors.append(type(exc).__name__)
        if after == 40 and memory.using_redis:
            break
        await asyncio.sleep(0.1)
    engine = memory.get_backend_info()["search_engine"]
    await memory.aclose()
    return {"before": before, "after": after, "engine": engine, "errors": errors[:5]}


def main() -> None:
    started = start_redis_stack_cluster(replicas=1)
    if isinstance(started, str):
        raise SystemExit(started)
    print_report(started[0], scenario)


if __name__ == "__main__":
    main()
