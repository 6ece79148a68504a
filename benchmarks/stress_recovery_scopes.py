"""How long a process's recovery (replay + replica catch-up) takes on a Redis Cluster, by how many
per-user (segment) replicas it holds. See benchmarks/results/freshness.md.

One 3-master cluster, no replicas. A namespace of USERS users x 4 sessions x 3 memories. Process
A (a MemoryPrimitive) searches S users scoped (S segment replicas), or once unscoped (the
whole-namespace replica). Then every master is stalled (SIGSTOP) while A makes one write (it
falls back after its 0.5 s timeout: journalled), another memory (C, same process, its own
connections, made after the stall) writes W memories spread over every user while A is
degraded, and A's ``flush()`` (which awaits the recovery: probe, replay, then the replicas'
catch-up) is timed, as are A's next scoped searches.

    PYTHONPATH=<tree>/src python benchmarks/stress_recovery_scopes.py [--users 150] \
        [--scopes 0,50,150,250]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


async def one(url: str, cluster, users: int, scopes: int | str, writes: int, seed: int) -> dict:
    from tta_dev_primitives import MemoryPrimitive

    ns = f"rec{seed}"
    b = MemoryPrimitive(url, namespace=ns)
    sem = asyncio.Semaphore(32)

    async def put(m: MemoryPrimitive, key: str, text: str) -> None:
        async with sem:
            await m.add(key, {"content": text})

    await asyncio.gather(*(put(b, f"u{u}:s{s}:{t}", f"turn {t} of user {u} word{u}x{s}")
                           for u in range(users) for s in range(4) for t in range(3)))  # fmt: skip
    # (No probe before the flush below: its recovery, catch-up included, is what is timed.)
    a = MemoryPrimitive(url, namespace=ns, redis_timeout=0.5, recovery_interval=30)
    await a.add("warm:s0:0", {"content": "warm"})
    if scopes == "full":
        await a.search("turn", scope=None)
    else:
        for u in range(int(scopes)):
            await a.search(f"word{u}x0", scope=f"u{u}")
    # Every master stalled past A's timeout: A's next write falls back (journalled). (A CLIENT
    # KILL no longer does: a dead connection is retried once on a fresh one.)
    masters = cluster.master_nodes()
    for node in masters:
        node.stall()
    try:
        t_fail = time.monotonic()
        await a.add("u0:s9:0", {"content": "written while degraded"})
    finally:
        for node in masters:
            node.resume()
    degraded = not a.using_redis
    c = MemoryPrimitive(url, namespace=ns)  # another process's writes (its own connections,
    for i in range(writes):  # made after the stall), meanwhile, to every user
        await put(c, f"u{i % users}:s{i % 4}:w{i}", f"later write {i}")
    assert c.using_redis
    await c.aclose()
    t0 = time.monotonic()
    ok = await a.flush()
    t_flush = time.monotonic() - t0
    lat = []
    for u in range(min(users, 50)):
        s = time.monotonic()
        await a.search(f"word{u}x1", scope=f"u{u}")
        lat.append(time.monotonic() - s)
    info = {"scopes": scopes, "degraded_after_stall": degraded, "flush_ok": ok,
            "recovery_s": round(t_flush, 2), "since_stall_s": round(time.monotonic() - t_fail, 2),
            "search_after_p50_ms": round(1000 * statistics.median(lat), 1)}  # fmt: skip
    await a.aclose()
    await b.clear()
    await b.aclose()
    return info


def main() -> None:
    from redis_server import LocalCluster, find_redis_server

    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=150)
    ap.add_argument("--scopes", default="0,50,150,250,full")
    ap.add_argument("--writes", type=int, default=1000)
    args = ap.parse_args()
    binary = find_redis_server()
    cluster = LocalCluster(binary, masters=3, replicas=0)
    for node in cluster.nodes:  # (its files stay in the nodes' own temporary directories)
        node.appendonly = False
    cluster.start()
    try:
        for n, scopes in enumerate(args.scopes.split(",")):
            users = max(args.users, int(scopes) if scopes.isdigit() else 0)
            print(asyncio.run(one(cluster.url, cluster, users, scopes, args.writes, n)), flush=True)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
