"""A master failover under write traffic, run as its own process by test_redis_cluster.py.

Prints one JSON line: errors raised by calls, whether the replica took over, how many distinct
keys were written, how many a fresh reader cannot find, and the namespace's size afterwards.
"""

from __future__ import annotations

import asyncio
import sys
from uuid import uuid4

from redis_server import LocalCluster, print_report
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.stores._redis.backend import RedisBackend


async def scenario(cluster: LocalCluster) -> dict[str, object]:
    ns = f"failover:{uuid4().hex[:8]}"
    memory = MemoryPrimitive(
        cluster.url, namespace=ns, redis_timeout=0.5, recovery_interval=0.1,
        max_recovery_interval=0.5, max_size=10_000,
    )  # fmt: skip
    written: set[str] = set()
    errors: list[str] = []
    failed_over = False

    async def writer(w: int) -> None:
        for i in range(40):
            key = f"user{w}:s{i % 4}:{i}"
            try:
                await memory.add(key, {"content": f"write {w} {i}"})
                written.add(key)
            except Exception as exc:  # any exception is a failure of the library
                errors.append(repr(exc))
            await asyncio.sleep(0)  # no pause: the kill lands mid-burst, replicas lagging

    async def chaos() -> None:
        nonlocal failed_over
        await asyncio.sleep(0.03)
        victim = next(n for n in cluster.master_nodes() if n.port != cluster.nodes[0].port)
        victim.kill()
        await asyncio.to_thread(cluster.wait_failover, victim, 30)
        failed_over = True

    await asyncio.gather(chaos(), *(writer(w) for w in range(20)))
    for _ in range(300):  # replay, bounded: about 30 s
        if await memory.flush() and memory.using_redis:
            break
        await asyncio.sleep(0.1)
    await memory.aclose()

    # Verify against Redis itself: a backend raises when Redis cannot answer, where a
    # MemoryPrimitive would fall back and read its (empty) in-process store as "missing".
    reader = RedisBackend(cluster.url, namespace=ns, timeout=10.0)
    missing = [key for key in sorted(written) if await reader.get(key) is None]
    size = await reader.size()
    await reader.clear()
    await reader.aclose()
    return {"errors": errors, "failed_over": failed_over, "written": len(written),
            "missing": len(missing), "size": size}  # fmt: skip


def main() -> None:
    print_report(LocalCluster(sys.argv[1], masters=3, replicas=1).start(), scenario)


if __name__ == "__main__":
    main()
