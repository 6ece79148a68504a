"""Replaying a long outage journal while the application keeps calling: nobody waits for it.

Run: ``.venv/bin/python benchmarks/bench_outage.py`` (starts a throwaway redis-server on
loopback; ``--quick`` for a smoke run, ``--json PATH`` to save figures).

Kills Redis, journals ``--writes`` distinct writes (100k by default), restarts Redis, then runs
``--callers`` concurrent loops of get/add/search/size until the background replay has drained the
journal. Reports every call's latency (max, p50, p99; the longest of each kind) against the
documented bound ``redis_timeout + 0.2 s``, which gets, adds and sizes keep; a search waits
besides for its replica to read what was replayed. Also the replay's duration and rate, and
the journal's bytes per write.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from _timing import bench_main, percentiles, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import RedisServer, find_redis_server
from tta_dev_primitives import MemoryPrimitive

TIMEOUT = 1.0


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def caller(
    memory: MemoryPrimitive,
    n: int,
    done: asyncio.Event,
    out: list[float],
    slow: list[Any],
    longest: dict[str, float],
) -> None:
    i = 0
    while not done.is_set():
        i += 1
        calls: tuple[Awaitable[object], ...] = (
            memory.get(f"u{i % 50}:s0:{i % n}"),
            memory.add(f"live:{i}", {"content": f"written during the replay {i}"}),
            memory.search("note", 5),
            memory.size(),
        )
        for kind, call in zip(("get", "add", "search", "size"), calls, strict=True):
            start = time.perf_counter()  # (a coroutine runs only when awaited: timed alone)
            await call
            took = time.perf_counter() - start
            out.append(took)
            longest[kind] = max(longest.get(kind, 0.0), took)
            if took > 0.1:
                slow.append((round(took * 1e3), kind, memory.get_backend_info()["journal_size"]))
        await asyncio.sleep(0)


async def run(args: Any) -> dict[str, Any]:
    binary = find_redis_server()
    if binary is None:
        raise SystemExit("redis-server is not installed")
    n = 5_000 if args.quick else args.writes
    server = RedisServer(binary).start()
    try:
        memory = MemoryPrimitive(
            server.url, namespace="bench:outage", redis_timeout=TIMEOUT,
            recovery_interval=0.05, max_recovery_interval=0.2, max_journal=max(n, 100_000),
        )  # fmt: skip
        await memory.add("warm", {"content": "up"})
        await memory.search("")  # an application that searches has its replica already
        server.kill()
        rss_before = rss_mb()
        start = time.perf_counter()
        for i in range(n):
            await memory.add(f"u{i % 50}:s0:{i}", {"content": f"note {i} about the outage"})
        journal_s = time.perf_counter() - start
        info = memory.get_backend_info()
        journal_bytes = info["journal_bytes"]
        dropped = info["journal_dropped"]
        rss_growth = rss_mb() - rss_before
        server.start()
        await asyncio.sleep(0.3)  # past the probe delay
        done = asyncio.Event()
        latencies: list[float] = []
        slow: list[Any] = []
        longest: dict[str, float] = {}
        callers = [
            asyncio.create_task(caller(memory, n, done, latencies, slow, longest))
            for _ in range(args.callers)
        ]
        start = time.perf_counter()
        async with asyncio.timeout(600):
            while True:
                await asyncio.sleep(0.05)
                info = memory.get_backend_info()
                if not info["degraded"]:
                    break
        replay_s = time.perf_counter() - start
        done.set()
        await asyncio.gather(*callers)
        fresh = MemoryPrimitive(server.url, namespace="bench:outage")
        stored = await fresh.size()
        await fresh.clear()
        await fresh.aclose()
        await memory.aclose()
    finally:
        server.stop()
    p50, p99 = percentiles(latencies)
    return {
        "writes": n,
        "journal_s": journal_s,
        "journal_bytes": journal_bytes,
        "journal_bytes_per_write": journal_bytes / n,
        "journal_dropped": dropped,
        "rss_growth_mb": rss_growth,
        "replay_s": replay_s,
        "replay_writes_per_s": n / replay_s,
        "calls": len(latencies),
        "max_ms": max(latencies) * 1e3,
        "max_ms_by_op": {kind: round(took * 1e3, 1) for kind, took in sorted(longest.items())},
        "p50_ms": p50 * 1e3,
        "p99_ms": p99 * 1e3,
        "bound_ms": (TIMEOUT + 0.2) * 1e3,
        "stored_after": stored,
        "slowest": sorted(slow, reverse=True)[:5],
    }


def report(f: dict[str, Any]) -> None:
    print(f"journalled {f['writes']:,} writes in {f['journal_s']:.1f} s while Redis was down; "
          f"journal {f['journal_bytes'] / 1e6:.1f} MB estimated "
          f"({f['journal_bytes_per_write']:.0f} bytes per write, {f['journal_dropped']} dropped), "
          f"process max RSS grew {f['rss_growth_mb']:.0f} MB")  # fmt: skip
    print(f"background replay: {f['replay_s']:.1f} s ({f['replay_writes_per_s']:,.0f} writes/s); "
          f"{f['stored_after']:,} memories in Redis after")  # fmt: skip
    print(table(
        ["calls during replay", "max ms", "p50 ms", "p99 ms", "bound ms"],
        [[f["calls"], f["max_ms"], f["p50_ms"], f["p99_ms"], f["bound_ms"]]],
    ))  # fmt: skip
    print(f"slowest calls (ms, op, journal size after): {f['slowest']}")
    print(f"longest of each kind (ms): {f['max_ms_by_op']}")
    bounded = max(ms for op, ms in f["max_ms_by_op"].items() if op != "search")
    verdict = "within" if bounded <= f["bound_ms"] else "OVER"
    print(f"longest get, add or size {verdict} redis_timeout + 0.2 s")
    print("outage replay done")


def add_arguments(parser: Any) -> None:
    parser.add_argument("--writes", type=int, default=100_000, help="journalled writes")
    parser.add_argument("--callers", type=int, default=8, help="concurrent caller loops")


if __name__ == "__main__":
    bench_main(__doc__ or "", run, report, add_arguments)
