"""What waiting for replicas costs a write: MemoryPrimitive's add against raw redis-py's SET,
each on a primary alone, with one replica and with two in sync, same machine, same run.

Run: ``.venv/bin/python benchmarks/bench_replicated_writes.py`` (starts throwaway servers on
loopback; ``--quick`` for a smoke run, ``--json PATH`` to save figures).

On a primary with replicas every add is sent with ``WAIT n`` in one pipeline (n: the replicas
``ROLE`` lists in sync), and returns once all of them have it. The peer is redis-py doing the
same by hand (``SET`` then ``WAIT n`` on one connection) and doing without (``SET`` alone, which
a failover may lose). The two-replica primary runs with ``min-replicas-to-write 2``, as
docs/production.md advises for a primary with two replicas (Sentinel), so that the figure is
that of the configuration users are told to deploy. Writes are chat turns of ~200 bytes, one at
a time and from 16 tasks at once.
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


async def measure(url: str, n: int, replicas: int) -> dict[str, Any]:
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
            pipe.execute_command("WAIT", replicas, 8000)
            await pipe.execute()

    for tasks in (1, 16):
        peers = [("ours", ours), ("raw SET", raw_set)]
        if replicas:  # (alone, WAIT 1 would wait its whole timeout)
            peers.append(("raw SET+WAIT", raw_set_wait))
        for name, write in peers:
            await latencies(write, min(200, n // 4), tasks)  # warm: pools, scripts
            figures[f"{name}/{tasks}"] = percentiles(await latencies(write, n, tasks))
    if not memory.using_redis:
        raise RuntimeError("the memory fell back during the benchmark: figures are not Redis's")
    await memory.clear()
    await memory.aclose()
    await raw.flushdb()
    await raw.aclose()
    return figures


async def in_sync(port: int, replicas: int = 1) -> None:
    """Wait until the primary on ``port`` lists ``replicas`` replicas (ROLE lists those in sync)."""
    check = aioredis.Redis(port=port)
    for _ in range(600):
        if len((await check.execute_command("ROLE"))[2]) >= replicas:
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError(f"{replicas} replica(s) did not come in sync")
    await check.aclose()


async def run(args: Any) -> dict[str, Any]:
    binary = find_redis_server()
    if binary is None:
        raise SystemExit("redis-server is not installed")
    n = 400 if args.quick else 10_000
    alone = RedisServer(binary).start()
    primary = RedisServer(binary, extra=("--repl-diskless-sync-delay", "0")).start()
    replica = RedisServer(binary, extra=("--replicaof", "127.0.0.1", str(primary.port))).start()
    primary2 = RedisServer(
        binary, extra=("--repl-diskless-sync-delay", "0", "--min-replicas-to-write", "2")
    ).start()
    replicas2 = [
        RedisServer(binary, extra=("--replicaof", "127.0.0.1", str(primary2.port))).start()
        for _ in range(2)
    ]
    try:
        await in_sync(primary.port)
        await in_sync(primary2.port, 2)
        return {"writes": n, "alone": await measure(alone.url, n, 0),
                "with replica": await measure(primary.url, n, 1),
                "with two replicas": await measure(primary2.url, n, 2)}  # fmt: skip
    finally:
        for server in (*replicas2, primary2, replica, primary, alone):
            server.stop()


def report(figures: dict[str, Any]) -> None:
    print(f"{figures['writes']:,} writes of ~{len(TEXT)} bytes, p50 / p99 ms")
    rows = []
    for setup in ("alone", "with replica", "with two replicas"):
        got = figures.get(setup)
        if got is None:  # (figures saved before the two-replica case)
            continue
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
    print(table(["primary", "tasks", "ours add", "raw SET", "raw SET+WAIT n",
                 "ours / raw (SET+WAIT n with replicas)"], rows))  # fmt: skip
    if "with two replicas" in figures:
        one, two = figures["with replica"], figures["with two replicas"]
        for tasks in (1, 16):
            ours = two[f"ours/{tasks}"][0] / one[f"ours/{tasks}"][0]
            raw = two[f"raw SET+WAIT/{tasks}"][0] / one[f"raw SET+WAIT/{tasks}"][0]
            print(f"two replicas / one, p50, {tasks} task(s): ours {ours:.2f}x, raw {raw:.2f}x")
    print("replicated writes done")


if __name__ == "__main__":
    bench_main(__doc__ or "", run, report)
