"""CLIENT KILL on every master of a Redis Cluster while workers add and search: how many fall back.

Run: ``.venv/bin/python benchmarks/stress_client_kill.py [--gap 2] [--kills 30] [--workers 8]``
(starts a throwaway 3-master cluster on loopback).

Each worker is its own ``MemoryPrimitive`` (a process's worth of clients) adding a turn and
searching its user's scope with a question, in a loop; every ``--gap`` seconds every master
kills all normal clients (as a managed cluster's idle ``timeout`` or an operator does). A
killed connection is retried once on a fresh one (docs/production.md, "Connections Redis
closed"); what is counted is the workers that fell back to in-process serving anyway, and the
errors their logs gave.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections import Counter
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import LocalCluster, find_redis_server
from tta_dev_primitives import MemoryPrimitive

fallbacks: Counter[str] = Counter()


class _Fallbacks(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("memory backend unavailable"):
            fallbacks[message.rsplit("unavailable: ", 1)[-1][:120]] += 1


async def worker(url: str, w: int, stop: asyncio.Event) -> int:
    memory = MemoryPrimitive(url, namespace="stress:kill", redis_timeout=2)
    n = 0
    while not stop.is_set():
        await memory.add(f"u{w}:s1:t{n}", {"content": f"turn {n} about the garage roof"})
        await memory.search("what did we say about the garage roof?", scope=f"u{w}", limit=5)
        n += 1
        await asyncio.sleep(0)
    await memory.aclose()
    return n


async def main(args: argparse.Namespace) -> None:
    binary = find_redis_server()
    if binary is None:
        raise SystemExit("redis-server is not installed")
    cluster = LocalCluster(binary).start()
    logging.getLogger("tta_dev_primitives").addHandler(_Fallbacks())
    try:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(worker(cluster.url, w, stop)) for w in range(args.workers)]
        for _ in range(args.kills):
            await asyncio.sleep(args.gap)
            for node in cluster.master_nodes():
                redis.Redis(port=node.port).execute_command(
                    "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"
                )
        stop.set()
        turns = sum(await asyncio.gather(*tasks))
    finally:
        cluster.stop()
    print(f"{args.kills} kills every {args.gap:g} s, {args.workers} workers, {turns:,} turns")
    print(f"fallbacks: {sum(fallbacks.values())}  {dict(fallbacks)}")
    print("client kill stress done")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between kills")
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--workers", type=int, default=8)
    asyncio.run(main(parser.parse_args()))
