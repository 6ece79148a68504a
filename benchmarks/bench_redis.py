"""MemoryPrimitive on Redis against raw redis.asyncio GET/SET on the same server, same run.

Run: ``.venv/bin/python benchmarks/bench_redis.py`` (starts its own throwaway redis-server on
a free loopback port; ``--quick`` for a smoke run, ``--json PATH`` to save the figures).

- get/add per call, sequential and with 50 concurrent callers, against raw GET/SET of the same
  JSON payloads (ours also indexes every add for search, in the same round trip);
- search p50/p99 over 10k and 100k memories in Redis, global and scoped, against the design
  document's original approach on Redis (values only, no index: SCAN, GET every value, match);
- replay throughput after an outage (writes journalled while the server is down);
- worst call latency while the server is stalled with SIGSTOP, against ``redis_timeout``.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from _timing import bench_main, percentiles, table
from bench_memory import make_memories, pick_queries

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import RedisServer, find_redis_server
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.performance._values import encode_value
from tta_dev_primitives.stores._base import Put
from tta_dev_primitives.stores._redis import RedisBackend


async def timed(calls: list[Any], concurrency: int) -> float:
    """Microseconds per call: sequential when concurrency is 1, else that many at a time."""
    start = time.perf_counter()
    if concurrency == 1:
        for call in calls:
            await call()
    else:
        queue = list(reversed(calls))

        async def worker() -> None:
            while queue:
                await queue.pop()()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.perf_counter() - start) / len(calls) * 1e6


async def bench_calls(url: str, n: int, rounds: int) -> list[dict[str, Any]]:
    """Raw and ours interleaved round by round (this machine is noisy); medians of rounds.

    The raw side is measured twice: bytes only, and with the json.dumps/json.loads that a
    user of raw GET/SET needs to store and read the same dicts.
    """
    items, _ = make_memories(n, random.Random(7))
    raw = aioredis.Redis.from_url(url)
    memory = MemoryPrimitive(url, namespace="bench:calls", max_size=n)
    await memory.add("warm", {"content": "up"})
    await raw.set("warm", "up")
    rows = []

    async def raw_get(key: str) -> Any:
        value = await raw.get(key)
        return None if value is None else json.loads(value)

    for concurrency in (1, 50):
        samples: dict[str, list[float]] = {}
        for r in range(rounds):
            pairs = [(f"{concurrency}:{r}:{k}", v) for k, v in items]
            texts = [(k, json.dumps(v)) for k, v in pairs]
            calls: dict[str, list[Any]] = {
                "raw_set_bytes_us": [lambda k=k, t=t: raw.set("raw:" + k, t) for k, t in texts],
                "raw_set_us": [
                    lambda k=k, v=v: raw.set("raw:" + k, json.dumps(v)) for k, v in pairs
                ],
                "add_us": [lambda k=k, v=v: memory.add(k, v) for k, v in pairs],
                "raw_get_bytes_us": [lambda k=k: raw.get("raw:" + k) for k, _ in pairs],
                "raw_get_us": [lambda k=k: raw_get("raw:" + k) for k, _ in pairs],
                "get_us": [lambda k=k: memory.get(k) for k, _ in pairs],
            }
            for name, batch in calls.items():
                samples.setdefault(name, []).append(await timed(batch, concurrency))
        row: dict[str, Any] = {"concurrency": concurrency}
        row.update({name: statistics.median(values) for name, values in samples.items()})
        row["add_ratio"] = row["add_us"] / row["raw_set_us"]
        row["get_ratio"] = row["get_us"] / row["raw_get_us"]
        rows.append(row)
    assert memory.using_redis
    await memory.clear()
    await raw.flushdb()
    await raw.aclose()
    await memory.aclose()
    return rows


class SeedScan:
    """The original approach on Redis: values only; search reads every value and matches."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client, self.prefix = client, prefix

    async def search(self, query: str, limit: int, scope: str | None) -> list[Any]:
        words = query.lower().split()
        pattern = self.prefix + (scope + ":*" if scope else "*")
        found = []
        async for key in self.client.scan_iter(match=pattern, count=1000):
            value = await self.client.get(key)
            if value and any(w in value.decode().lower() for w in words):
                found.append(json.loads(value))
        return found[-limit:]


async def bench_search(url: str, n: int, quick: bool) -> dict[str, Any]:
    rng = random.Random(n)
    items, _ = make_memories(n, rng)
    backend = RedisBackend(url, namespace=f"bench:search:{n}")
    raw = aioredis.Redis.from_url(url)
    for start in range(0, n, 2000):  # load fast: pipelined replay writes
        chunk = items[start : start + 2000]
        await backend.apply([Put(k, encode_value(v)) for k, v in chunk])
        async with raw.pipeline(transaction=False) as pipe:
            for k, v in chunk:
                pipe.set(f"seed:{n}:" + k, json.dumps(v))
            await pipe.execute()
    await backend.aclose()
    memory = MemoryPrimitive(url, namespace=f"bench:search:{n}", max_size=10)
    seed = SeedScan(raw, f"seed:{n}:")
    queries = pick_queries(items, rng, 20 if quick else 100)
    rows = []
    for qtype, qs in queries.items():
        for scope_name, scope in (("global", None), ("scoped", "u17:s0")):
            samples = []
            for q in qs:
                start = time.perf_counter()
                await memory.search(q, 5, scope=scope)
                samples.append((time.perf_counter() - start) * 1e3)
            p50, p99 = percentiles(samples)
            seed_runs = 1 if (quick or n > 20_000) and scope is None else 3
            seed_ms = []
            for q in qs[:seed_runs]:
                start = time.perf_counter()
                await seed.search(q, 5, scope)
                seed_ms.append((time.perf_counter() - start) * 1e3)
            s50, _ = percentiles(seed_ms)
            rows.append({"query": qtype, "scope": scope_name, "p50_ms": p50, "p99_ms": p99,
                         "seed_ms": s50, "speedup": s50 / p50})  # fmt: skip
    assert memory.using_redis
    await memory.clear()
    await raw.flushdb()
    await raw.aclose()
    await memory.aclose()
    return {"memories": n, "search": rows}


async def bench_outage(binary: str, writes: int) -> dict[str, float]:
    server = RedisServer(binary).start()
    try:
        memory = MemoryPrimitive(server.url, namespace="bench:outage", redis_timeout=0.5,
                                 recovery_interval=0.05, max_recovery_interval=0.1)  # fmt: skip
        await memory.add("warm", {"content": "up"})
        server.kill()
        items, _ = make_memories(writes, random.Random(3))
        for k, v in items:
            await memory.add(k, v)
        server.start()
        await asyncio.sleep(0.15)
        start = time.perf_counter()
        while True:  # the first flush() after the probe delay replays everything
            if await memory.flush() and memory.using_redis:
                break
            await asyncio.sleep(0.01)
        replay_s = time.perf_counter() - start
        # No persistence on this server: the write before the kill is gone; the journal is not.
        assert await memory.size() == writes

        # Stalled server: the worst single call while SIGSTOPped.
        timeout = 0.5
        stalled = MemoryPrimitive(server.url, namespace="bench:stall", redis_timeout=timeout,
                                  recovery_interval=0.2, max_recovery_interval=0.4)  # fmt: skip
        await stalled.add("warm", {"content": "up"})
        server.stall()
        worst = 0.0
        deadline = time.perf_counter() + 3
        i = 0
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await stalled.add(f"k{i}", {"content": "during stall"})
            await stalled.get(f"k{i}")
            worst = max(worst, time.perf_counter() - start)
            i += 1
        server.resume()
        await memory.aclose()
        await stalled.aclose()
        return {"journalled_writes": writes, "replay_s": replay_s,
                "replay_writes_per_s": writes / replay_s, "stall_timeout_s": timeout,
                "stall_worst_call_s": worst, "stall_calls": i}  # fmt: skip
    finally:
        server.stop()


def report(figures: dict[str, Any]) -> None:
    print("per call, microseconds, medians of interleaved rounds (same server, same dicts);")
    print("raw = redis.asyncio GET/SET with json.loads/dumps; (bytes) = without them:")
    print(table(["callers", "SET (bytes)", "raw SET", "add", "x", "GET (bytes)", "raw GET", "get",
                 "x"], [
        [r["concurrency"], r["raw_set_bytes_us"], r["raw_set_us"], r["add_us"], r["add_ratio"],
         r["raw_get_bytes_us"], r["raw_get_us"], r["get_us"], r["get_ratio"]]
        for r in figures["calls"]
    ]))  # fmt: skip
    for s in figures["search"]:
        print(f"\nsearch over {s['memories']:,} memories in Redis, milliseconds:")
        print(table(["query", "scope", "p50", "p99", "seed scan", "x faster"], [
            [r["query"], r["scope"], r["p50_ms"], r["p99_ms"], r["seed_ms"], r["speedup"]]
            for r in s["search"]
        ]))  # fmt: skip
    o = figures["outage"]
    print(f"\nreplay after an outage: {o['journalled_writes']:,} writes in {o['replay_s']:.2f} s "
          f"({o['replay_writes_per_s']:,.0f} writes/s)")  # fmt: skip
    print(f"stalled server (SIGSTOP), redis_timeout={o['stall_timeout_s']} s: worst add+get of "
          f"{o['stall_calls']} = {o['stall_worst_call_s']:.3f} s")  # fmt: skip


async def run(quick: bool) -> dict[str, Any]:
    binary = find_redis_server()
    if binary is None:
        raise SystemExit("redis-server is not installed (scripts/test installs it)")
    server = RedisServer(binary).start()
    try:
        calls = await bench_calls(server.url, 1_000 if quick else 3_000, 2 if quick else 5)
        sizes = [2_000] if quick else [10_000, 100_000]
        search = [await bench_search(server.url, n, quick) for n in sizes]
    finally:
        server.stop()
    outage = await bench_outage(binary, 1_000 if quick else 10_000)
    return {"calls": calls, "search": search, "outage": outage}


def main() -> None:
    bench_main(__doc__ or "", lambda args: run(args.quick), report)


if __name__ == "__main__":
    main()
