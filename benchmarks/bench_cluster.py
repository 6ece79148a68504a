"""MemoryPrimitive on a 3-master Redis Cluster against standalone Redis, same machine, same run.

Run: ``.venv/bin/python benchmarks/bench_cluster.py`` (starts a throwaway standalone server and
a 3-master cluster on loopback; ``--quick`` for a smoke run, ``--json PATH`` to save figures).

Reports per-call get/add, search p50/p99 (global fans out to every partition; a session scope
touches one shard), the namespace's memories per master, and Redis memory per stored memory.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from _timing import bench_main, percentiles, table
from bench_memory import make_memories, pick_queries

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import LocalCluster, RedisServer, find_redis_server
from tta_dev_primitives import MemoryPrimitive


async def used_memory(urls: list[str]) -> int:
    total = 0
    for url in urls:
        client = aioredis.Redis.from_url(url)
        total += int((await client.info("memory"))["used_memory"])
        await client.aclose()
    return total


async def measure(url: str, node_urls: list[str], n: int, quick: bool) -> dict[str, Any]:
    rng = random.Random(11)
    items, _ = make_memories(n, rng)
    # A slow reply on a busy machine (the test suite runs this) is not an outage to measure:
    # the clear at the end, a page per call, failed part-way under the 1 s default.
    memory = MemoryPrimitive(url, namespace="bench:cluster", max_size=10, redis_timeout=10)
    await memory.add("warm", {"content": "up"})
    before = await used_memory(node_urls)
    start = time.perf_counter()
    for key, value in items:
        await memory.add(key, value)
    add_us = (time.perf_counter() - start) / n * 1e6
    bytes_per_memory = (await used_memory(node_urls) - before) / n
    sample = [k for k, _ in rng.sample(items, min(2_000, n))]
    start = time.perf_counter()
    for key in sample:
        await memory.get(key)
    get_us = (time.perf_counter() - start) / len(sample) * 1e6
    queries = pick_queries(items, rng, 20 if quick else 60)
    search = []
    for qtype in ("rare-term", "two-word", "prefix"):
        for scope_name, scope in (("global", None), ("session", "u17:s0")):
            samples = []
            for q in queries[qtype]:
                start = time.perf_counter()
                await memory.search(q, 5, scope=scope)
                samples.append((time.perf_counter() - start) * 1e3)
            p50, p99 = percentiles(samples)
            search.append({"query": qtype, "scope": scope_name, "p50_ms": p50, "p99_ms": p99})
    history_us = await history_read_us(memory, 20 if quick else 100)
    info = memory.get_backend_info()
    await memory.clear()
    await memory.aclose()
    return {"topology": info["topology"], "add_us": add_us, "get_us": get_us,
            "history_us": history_us, "redis_bytes_per_memory": bytes_per_memory,
            "search": search}  # fmt: skip


async def history_read_us(memory: MemoryPrimitive, reads: int) -> float:
    """Median microseconds to read a LangChain chat history's latest 10 of 40 messages, as an
    agent does before each turn."""
    from langchain_core.messages import AIMessage, HumanMessage

    from tta_dev_primitives.integrations.langchain import MemoryChatMessageHistory

    history = MemoryChatMessageHistory(memory, "u17:chat", max_messages=10)
    for i in range(20):
        await history.aadd_messages([HumanMessage(f"question {i}"), AIMessage(f"answer {i}")])
    samples = []
    for _ in range(reads):
        start = time.perf_counter()
        await history.aget_messages()
        samples.append((time.perf_counter() - start) * 1e6)
    return percentiles(samples)[0]


async def spread(cluster: LocalCluster, n_keys: int, sessions: int) -> list[int]:
    memory = MemoryPrimitive(cluster.url, namespace="bench:spread", max_size=10, redis_timeout=10)
    for i in range(n_keys):
        session = i % sessions
        await memory.add(f"user{session % 10}:session{session}:{i}", {"content": f"turn {i}"})
    counts = []
    for node in cluster.master_nodes():
        client = aioredis.Redis.from_url(node.url)
        keys = [k async for k in client.scan_iter(match="bench:spread:*:v:*", count=1000)]
        counts.append(len(keys))
        await client.aclose()
    await memory.clear()
    await memory.aclose()
    return counts


async def run(quick: bool) -> dict[str, Any]:
    binary = find_redis_server()
    if binary is None:
        raise SystemExit("redis-server is not installed (scripts/test installs it)")
    n = 1_000 if quick else 20_000
    spread_keys = 300 if quick else 1_000
    server = RedisServer(binary).start()
    cluster = LocalCluster(binary, masters=3).start()
    try:
        standalone = await measure(server.url, [server.url], n, quick)
        clustered = await measure(cluster.url, [m.url for m in cluster.master_nodes()], n, quick)
        counts = await spread(cluster, spread_keys, 100)
    finally:
        server.stop()
        cluster.stop()
    return {"memories": n, "standalone": standalone, "cluster": clustered, "spread": counts,
            "spread_keys": spread_keys}  # fmt: skip


def report(f: dict[str, Any]) -> None:
    s, c = f["standalone"], f["cluster"]
    print(f"{f['memories']:,} memories; per call, microseconds:")
    print(table(["", "standalone", "cluster", "x"], [
        ["add", s["add_us"], c["add_us"], c["add_us"] / s["add_us"]],
        ["get", s["get_us"], c["get_us"], c["get_us"] / s["get_us"]],
        ["chat history, latest 10 of 40 (p50)", s["history_us"], c["history_us"],
         c["history_us"] / s["history_us"]],
        ["Redis bytes per memory", s["redis_bytes_per_memory"], c["redis_bytes_per_memory"],
         c["redis_bytes_per_memory"] / s["redis_bytes_per_memory"]],
    ]))  # fmt: skip
    print("\nsearch p50 / p99, milliseconds:")
    headers = ["query", "scope", "standalone p50", "cluster p50", "standalone p99", "cluster p99"]
    rows = [[a["query"], a["scope"], a["p50_ms"], b["p50_ms"], a["p99_ms"], b["p99_ms"]]
            for a, b in zip(s["search"], c["search"], strict=True)]  # fmt: skip
    print(table(headers, rows))
    total = sum(f["spread"])
    shares = ", ".join(f"{n} ({n / total:.0%})" for n in f["spread"])
    print(f"\n{f['spread_keys']:,} memories over 100 sessions, per master: {shares}")


def main() -> None:
    bench_main(__doc__ or "", lambda args: run(args.quick), report)


if __name__ == "__main__":
    main()
