"""What waiting for a replica costs a write: MemoryPrimitive's add against raw redis-py's SET,
each on a primary alone and on a primary with a replica in sync, same machine, same run.

Run: ``.venv/bin/python benchmarks/bench_replicated_writes.py`` (starts throwaway servers on
loopback; ``--quick`` for a smoke run, ``--json PATH`` to save figures).

On a primary with a replica every add is sent with ``WAIT 1`` in one pipeline, and returns once
the replica has it. The peer is redis-py doing the same by hand (``SET`` then ``WAIT 1`` on one
connection) and doing without (``SET`` alone, which a failover may lose). Writes are chat turns
of ~200 bytes, one at a time and from 16 tasks at once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from _timing import bench_main, percentiles, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import RedisServer, find_redis_server
from tta_dev_primitives import MemoryPrimitive

TEXT = "I moved to Lisbon last spring and I still cannot find a decent bagel anywhere near " * 2


async def latencies(write: Callable[[int], Awaitable[object]], n: int, tasks: int) -> list[float]:
    """Milliseconds per write, ``n`` writes spread over ``tasks`` concurrent tasks."""
    samples: list[float] = []

    async def worker(start: int) -> None:
        for i in range(start, n, tasks):
            began = time.perf_counter()
            await write(i)
            samples.append((time.perf_counter() - began) * 1e3)

    await asyncio.gather(*(worker(t) for t in range(tasks)))
    return samples


async def measure(url: str, n: int, replicated: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    memory = MemoryPrimitive(url, namespace="bench:wait", max_size=10, redis_timeout=10)
    raw = aioredis.Redis.from_url(url)
    await memory.add("warm", {"content": "up"})

    async def ours(i: int) -> None:
        await memory.add(f"u{i % 50}:s{i % 7}:{i}", {"role": "user", "content": TEXT})

    async def raw_set(i: int) -> None:
        await raw.set(f"raw:{i}", TEXT)

    async def raw_set_wait(i: int) -> None:
        async with raw.pipeline(transaction=False) as pipe:
            pipe.set(f"raw:{i}", TEXT)
            pipe.execute_command("WAIT", 1, 8000)
            await pipe.execute()

    for tasks in (1, 16):
        peers = [("ours", ours), ("raw SET", raw_set)]
        if replicated:  # (alone, WAIT 1 would wait its whole timeout)
            peers.append(("raw SET+WAIT", raw_set_wait))
        for name, write in peers:
            await latencies(write, 200, tasks)  # warm: pools, scripts
            figures[f"{name}/{tasks}"] = percentiles(await latencies(write, n, tasks))
    if not memory.using_redis:
        raise RuntimeError("the memory fell back during the benchmark: figures are not Redis's")
    await memory.clear()
    await memory.aclose()
    await raw.flushdb()
    await raw.aclose()
    return figures


async def in_sync(port: int) -> None:
    """Wait until the primary on ``port`` lists its replica (ROLE lists replicas in sync)."""
    check = aioredis.Redis(port=port)
    for _ in range(600):
        if (await check.execute_command("ROLE"))[2]:
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError("the replica did not come in sync")
    await check.aclose()


async def run(args: Any) -> dict[str, Any]:
    binary = find_redis_server()
    if binary is None:
        raise SystemExit("redis-server is not installed")
    n = 1_000 if args.quick else 10_000
    alone = RedisServer(binary).start()
    primary = RedisServer(binary, extra=("--repl-diskless-sync-delay", "0")).start()
    replica = RedisServer(binary, extra=("--replicaof", "127.0.0.1", str(primary.port))).start()
    try:
        await in_sync(primary.port)
        return {"writes": n, "alone": await measure(alone.url, n, False),
                "with replica": await measure(primary.url, n, True)}  # fmt: skip
    finally:
        for server in (replica, primary, alone):
            server.stop()


def report(figures: dict[str, Any]) -> None:
    print(f"{figures['writes']:,} writes of ~{len(TEXT)} bytes, p50 / p99 ms")
    rows = []
    for setup in ("alone", "with replica"):
        got = figures[setup]
        for tasks in (1, 16):
            ours, bare = got[f"ours/{tasks}"], got[f"raw SET/{tasks}"]
            peer = got.get(f"raw SET+WAIT/{tasks}")
            rows.append(
                [
                    setup,
                    tasks,
                    f"{ours[0]:.3f} / {ours[1]:.3f}",
                    f"{bare[0]:.3f} / {bare[1]:.3f}",
                    "-" if peer is None else f"{peer[0]:.3f} / {peer[1]:.3f}",
                    f"{ours[0] / (bare if peer is None else peer)[0]:.2f}x",
                ]
            )
    print(table(["primary", "tasks", "ours add", "raw SET", "raw SET+WAIT",
                 "ours / raw (SET+WAIT with a replica)"], rows))  # fmt: skip
    print("replicated writes done")


if __name__ == "__main__":
    bench_main(__doc__ or "", run, report)
