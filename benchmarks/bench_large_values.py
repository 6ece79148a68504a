"""How long a large memory stalls the event loop: while one is added (or read back by another
process's replica), how late does a request waiting on the same loop get served?

A web worker serves many requests on one loop. Analysing an 8 MiB memory is 0.6-2 s of Python;
done on the loop, every other request waits that long. Ours analyses a large memory on a worker
thread (``memory._prepared``, ``OFF_LOOP_BYTES``); the peer is the same analysis on the loop,
which is what every version before did, in the same run. "late" is how much later than asked a
task sleeping 1 ms wakes (p99 and max over the add), the measure of a stalled loop.

    nice -n 5 .venv/bin/python benchmarks/bench_large_values.py [--quick] [--redis]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _timing import bench_main, table
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.memory._prepared import prepare_now
from tta_dev_primitives.memory._values import encode_value
from tta_dev_primitives.search._indexing import Indexing

ROUNDS = 3


def values(scale: float) -> dict[str, dict[str, Any]]:
    """The large memories: English prose, Chinese with and without punctuation, and a value
    of many small objects (a tool call's JSON result)."""
    rng = random.Random(7)
    words = [f"word{i}" for i in range(50_000)] + ["the", "garden", "tomato", "basil"]
    zh = [chr(rng.randint(0x4E00, 0x4E00 + 3000)) for _ in range(4000)]
    n = int(800_000 * scale)
    return {
        "English, 7 MiB": {"content": " ".join(rng.choice(words) for _ in range(n))},
        "Chinese sentences, 5 MiB": {
            "content": "".join(
                "".join(rng.choice(zh) for _ in range(rng.randint(8, 30))) + "。"
                for _ in range(int(90_000 * scale))
            )
        },
        "Chinese, one run, 5 MiB": {
            "content": "".join(rng.choice(zh) for _ in range(int(1_800_000 * scale)))
        },
        "150,000 small objects": {
            "items": [{"id": i, "name": f"item {i}"} for i in range(int(150_000 * scale))]
        },
    }


async def lateness(work: Awaitable[Any]) -> tuple[float, float, float]:
    """(seconds ``work`` took, p99 and max ms by which a 1 ms sleeper woke late meanwhile)."""
    late: list[float] = []
    done = False

    async def sleeper() -> None:
        while not done:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            late.append((time.perf_counter() - start - 0.001) * 1e3)

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0.01)
    late.clear()
    start = time.perf_counter()
    await work
    took = time.perf_counter() - start
    done = True
    await task
    ordered = sorted(late) or [0.0]
    return took, ordered[int(0.99 * (len(ordered) - 1))], ordered[-1]


async def on_the_loop(value: dict[str, Any]) -> None:
    """The peer: the same checks and analysis, on the loop (as before), then the add."""
    prepare_now(Indexing(), value, text=False)
    await asyncio.sleep(0)


async def read_on_the_loop(payload: str) -> None:
    """The peer of a replica's catch-up: the stored JSON decoded and analysed on the loop."""
    Indexing().payload_terms(payload)
    await asyncio.sleep(0)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    scale = 0.05 if args.quick else 1.0
    rows: list[dict[str, Any]] = []
    server = None
    if args.redis:
        from redis_server import RedisServer, find_redis_server

        binary = find_redis_server()
        if binary is None:
            raise SystemExit("--redis needs redis-server")
        server = RedisServer(binary).start()
    try:
        for name, value in values(scale).items():
            memory = MemoryPrimitive()
            ours, peer = [], []
            for i in range(ROUNDS):
                ours.append(await lateness(memory.add(f"u:s:{i}", value)))
                peer.append(await lateness(on_the_loop(value)))
            row = {"value": name, "where": "in-process add"}
            for label, runs in (("ours", ours), ("loop", peer)):
                row[f"{label}_s"] = statistics.median(r[0] for r in runs)
                row[f"{label}_p99_ms"] = statistics.median(r[1] for r in runs)
                row[f"{label}_max_ms"] = statistics.median(r[2] for r in runs)
            rows.append(row)
            if server is not None:
                rows.append(await replica_row(server.url, name, value))
    finally:
        if server is not None:
            server.stop()
    return {"rows": rows, "scale": scale}


async def replica_row(url: str, name: str, value: dict[str, Any]) -> dict[str, Any]:
    """Another process's large memory read back into a replica: its first search after."""
    ours, peer = [], []
    for i in range(ROUNDS):
        ns = f"bench-large-{time.time_ns()}"
        writer = MemoryPrimitive(url, namespace=ns, search_engine="replica", redis_timeout=30)
        reader = MemoryPrimitive(url, namespace=ns, search_engine="replica", redis_timeout=30)
        await reader.search("warm")
        await writer.add(f"u:s:{i}", value)
        ours.append(await lateness(reader.search("garden")))
        payload = encode_value(value)
        peer.append(await lateness(read_on_the_loop(payload)))
        await writer.clear()
        for m in (writer, reader):
            await m.aclose()
    row: dict[str, Any] = {"value": name, "where": "replica catch-up"}
    for label, runs in (("ours", ours), ("loop", peer)):
        row[f"{label}_s"] = statistics.median(r[0] for r in runs)
        row[f"{label}_p99_ms"] = statistics.median(r[1] for r in runs)
        row[f"{label}_max_ms"] = statistics.median(r[2] for r in runs)
    return row


def report(figures: dict[str, Any]) -> None:
    headers = ["value", "where", "ours s", "on loop s", "ours late p99/max ms",
               "on loop late p99/max ms", "max late ours/loop"]  # fmt: skip
    rows = [
        [r["value"], r["where"], r["ours_s"], r["loop_s"],
         f"{r['ours_p99_ms']:.1f} / {r['ours_max_ms']:.1f}",
         f"{r['loop_p99_ms']:.1f} / {r['loop_max_ms']:.1f}",
         f"{r['ours_max_ms'] / max(r['loop_max_ms'], 1e-3):.3f}x"]
        for r in figures["rows"]
    ]  # fmt: skip
    print(table(headers, rows))
    print("large values done")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", action="store_true", help="also a replica's catch-up")


if __name__ == "__main__":
    bench_main(__doc__ or "", run, report, add_arguments)
