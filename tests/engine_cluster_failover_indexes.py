"""A master failover leaves its replica with two of the namespace's indexes; the next set-up
keeps one. Run as its own process by test_query_engine_topology.py (as
engine_cluster_failover.py is: the dead node's sockets must not be collected in other tests).

Before the kill the victim master gets a second index of the namespace under another name
whose slot it owns (what a process with a lagging slot map made there), which the replica
holds too. Prints one JSON line: the namespace's indexes on the promoted master before the
next set-up, on every master after it, and what searches found.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import redis
from redis.crc import key_slot

from query_engine_server import start_redis_stack_cluster
from redis_server import LocalCluster, print_report
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.stores._redis.layout import Layout


def indexes(port: int, ns: str) -> list[str]:
    names = redis.Redis(port=port).execute_command("FT._LIST")
    prefix = Layout.index_name(ns) + ":{"
    return sorted(n.decode() for n in names if n.decode().startswith(prefix))


def indexing(port: int, name: str) -> bool:
    info: Any = redis.Redis(port=port).execute_command("FT.INFO", name)
    if not isinstance(info, dict):
        info = dict(zip(info[::2], info[1::2], strict=True))
    return int(float(info.get("indexing", info.get(b"indexing", 0)))) != 0


async def scenario(cluster: LocalCluster) -> dict[str, object]:
    ns = f"efail:{uuid4().hex[:8]}"
    memory = MemoryPrimitive(
        cluster.url, namespace=ns, search_engine="redis",
        redis_timeout=5, recovery_interval=0.1, max_recovery_interval=0.5,
    )  # fmt: skip
    for user in range(40):
        await memory.add(f"u{user}:s1:t1", {"content": f"user {user} booked a flight"})
    before = len(await memory.search("booked flight", limit=100))
    engine: Any = memory._store.remote.index.engine  # type: ignore[union-attr]
    victim = next(n for n in cluster.master_nodes() if n.port != cluster.nodes[0].port)
    kept = next(s.name for s in engine._layout[1] if s.node.port == victim.port)
    extra = next(
        name for n in range(10_000)
        if (name := Layout.master_index_name(ns, n)) != kept
        and redis.Redis(port=victim.port).execute_command(
            "CLUSTER", "COUNTKEYSINSLOT", key_slot(name.encode())) == 0
        and _owns(victim.port, name)
    )  # fmt: skip
    redis.Redis(port=victim.port).execute_command(
        *engine._create_args(extra, engine.bases, engine.dims, True)
    )
    for _ in range(300):
        if not indexing(victim.port, extra):
            break
        await asyncio.sleep(0.1)
    for node in cluster.master_nodes():  # the replicas have every document and index
        redis.Redis(port=node.port).execute_command("WAIT", 1, 10_000)
    victim.kill()
    await asyncio.to_thread(cluster.wait_failover, victim, 30)
    promoted = next(
        n.port for n in cluster.master_nodes() if kept in indexes(n.port, ns)
    )  # fmt: skip
    on_promoted = indexes(promoted, ns)
    after, errors = 0, []
    for _ in range(300):  # bounded: about 30 s
        try:
            after = len(await memory.search("booked flight", limit=100))
        except Exception as exc:  # the client is still finding the new layout
            errors.append(type(exc).__name__)
        # Done once the engine searched the new layout after setting up on it (a search whose
        # own retry found it leaves the set-up to the next one).
        if after == 40 and memory.using_redis and engine.in_use and not engine._stale:
            break
        await asyncio.sleep(0.1)
    engine_name = memory.get_backend_info()["search_engine"]
    per_master = {str(n.port): indexes(n.port, ns) for n in cluster.master_nodes()}
    # A process started now, and one that searched the promoted master all along: the engine.
    fresh = MemoryPrimitive(cluster.url, namespace=ns, search_engine="redis", redis_timeout=5)
    fresh_found = len(await fresh.search("booked flight", limit=100))
    fresh_engine = fresh.get_backend_info()["search_engine"]
    await fresh.aclose()
    await memory.aclose()
    return {
        "before": before, "after": after, "engine": engine_name, "errors": errors[:5],
        "kept": kept, "extra": extra, "on_promoted_before": on_promoted,
        "per_master_after": per_master, "fresh": fresh_found, "fresh_engine": fresh_engine,
    }  # fmt: skip


def _owns(port: int, name: str) -> bool:
    slot = key_slot(name.encode())
    for line in redis.Redis(port=port).execute_command("CLUSTER", "NODES").decode().splitlines():
        fields = line.split()
        if "myself" in fields[2]:
            for part in fields[8:]:
                low, _, high = part.partition("-")
                if not part.startswith("[") and int(low) <= slot <= int(high or low):
                    return True
    return False


def main() -> None:
    started = start_redis_stack_cluster(replicas=1)
    if isinstance(started, str):
        raise SystemExit(started)
    print_report(started[0], scenario)


if __name__ == "__main__":
    main()
