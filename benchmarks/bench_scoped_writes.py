"""A warm search scoped to one user while other users write: one Redis against a Redis Cluster.

Run: ``.venv/bin/python benchmarks/bench_scoped_writes.py`` (starts its own throwaway
redis-server and a 3-master cluster; ``--quick`` for a smoke run, ``--json PATH`` to save).

``--users`` users (default 200) each hold 20 memories over 5 sessions (``u<n>:s<m>:<i>``). One
process (``search_engine="replica"``, the only engine on Redis without modules) has searched
every user once, so it keeps a per-user replica of each. Then, ``--rounds`` times: another
process writes ``W`` memories of random users, and the first searches one random user with
a natural question. A per-user replica reads each partition where its own user's head moved
since its last search (production.md, "On a cluster"); before user heads it read every
partition whose head moved, and other users' writes moved most of a cluster's 64. Reported:
that search's p50 and p90 for each ``W``.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _timing import bench_main, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import LocalCluster, RedisServer, find_redis_server
from tta_dev_primitives import MemoryPrimitive

QUESTION = "what did we say about the tea we had last week"


async def scoped_under_writes(url: str, users: int, rounds: int, writes: int) -> dict[str, Any]:
    """p50 / p90 (ms) of one user's search after ``writes`` writes of random users."""
    ns = f"bench:scoped-writes:{writes}"
    options: dict[str, Any] = {"namespace": ns, "redis_timeout": 5.0, "max_size": 100_000}
    searcher = MemoryPrimitive(url, search_engine="replica", **options)
    writer = MemoryPrimitive(url, **options)
    try:
        for user in range(users):
            for i in range(20):
                await writer.add(
                    f"u{user}:s{i % 5}:{i}", {"content": f"user {user} turn {i} about tea"}
                )
        for user in range(users):  # a per-user replica each, as a worker that served them
            await searcher.search(QUESTION, limit=5, scope=f"u{user}")
        rng = random.Random(writes)
        times: list[float] = []
        for n in range(rounds):
            for w in range(writes):
                user = rng.randrange(users)
                await writer.add(
                    f"u{user}:s{rng.randrange(5)}:w{n}.{w}", {"content": f"more tea {n} {w}"}
                )
            start = time.perf_counter()
            await searcher.search(QUESTION, limit=5, scope=f"u{rng.randrange(users)}")
            times.append((time.perf_counter() - start) * 1e3)
        ordered = sorted(times)
        return {
            "writes_between": writes,
            "p50_ms": statistics.median(ordered),
            "p90_ms": ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))],
        }
    finally:
        await writer.clear()
        await searcher.aclose()
        await writer.aclose()


async def run(args: Any) -> dict[str, Any]:
    binary = find_redis_server()
    if binary is None:
        raise SystemExit("needs redis-server on PATH")
    users = 20 if args.quick else args.users
    rounds = 5 if args.quick else args.rounds
    spread = [0, 20] if args.quick else [0, 20, 100]
    figures: dict[str, Any] = {"users": users, "rounds": rounds, "rows": []}
    for kind in ("one Redis", "cluster, 3 masters"):
        server: Any = RedisServer(binary) if kind == "one Redis" else LocalCluster(binary)
        server.start()
        try:
            for writes in spread:
                row = await scoped_under_writes(server.url, users, rounds, writes)
                figures["rows"].append({"server": kind, **row})
        finally:
            server.stop()
    return figures


def report(figures: dict[str, Any]) -> None:
    print(
        f"a warm search scoped to one of {figures['users']} users (per-user replicas), "
        f"after W writes of random users; {figures['rounds']} searches each"
    )
    rows = [
        [r["server"], str(r["writes_between"]), f"{r['p50_ms']:.2f}", f"{r['p90_ms']:.2f}"]
        for r in figures["rows"]
    ]
    print(table(["server", "W", "p50 ms", "p90 ms"], rows))
    print("scoped writes done")


def add_arguments(parser: Any) -> None:
    parser.add_argument("--users", type=int, default=200, help="users in the namespace")
    parser.add_argument("--rounds", type=int, default=100, help="searches per row")


if __name__ == "__main__":
    bench_main(__doc__ or "", run, report, add_arguments)
