"""A cold search scoped to one user: a per-user replica against the namespace's, same run.

Run: ``.venv/bin/python benchmarks/bench_scope_replicas.py`` (starts its own throwaway
redis-server; ``--quick`` for a smoke run, ``--json PATH`` to save the figures).

The namespace holds ``--size`` short memories (default 100,000) of 200 users (``u<n>:s<m>:<i>``).
Each row is a fresh process-like backend's first search scoped to one user (~500 memories):
wall time, bytes Redis sent (``INFO stats`` ``total_net_output_bytes``) and memories the
replica keeps. ``namespace replica`` is the previous behaviour (``scope_replicas=False``).

Then the memory a process's per-user replicas take at their cap (100,000 memories): one
backend searches every user of a second namespace of ``--size`` chitchat turns (``_corpus``,
~550 a user), and what that allocates (``tracemalloc``) is reported per memory held; with what
Python's garbage collector sees of it: the objects it tracks per memory held, the full
collections while the replicas fill (each scans every tracked object: the pauses a search
waits out) and one full collection at the cap.
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from _timing import bench_main, table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import RedisServer, find_redis_server
from tta_dev_primitives.memory._values import encode_value
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.stores import Put
from tta_dev_primitives.stores._redis.backend import RedisBackend
from tta_dev_primitives.stores._redis.search import RedisSearchBackend

WORDS = ["car", "garage", "brakes", "maria", "hiking", "trip", "dinner", "paris", "dog", "rain"]


async def sent_bytes(client: aioredis.Redis) -> int:
    stats: dict[str, Any] = await client.info("stats")
    return int(stats["total_net_output_bytes"])


async def cold_scoped(url: str, ns: str, per_user: bool, users: int) -> dict[str, Any]:
    """One fresh backend per user searched; medians over the users tried."""
    indexing = Indexing()
    query = indexing.query("dinner in paris with maria, or the car in the garage?")
    raw = aioredis.Redis.from_url(url)
    times, sent, held = [], [], []
    for user in range(users):
        backend = RedisSearchBackend(url, namespace=ns, timeout=30, scope_replicas=per_user)
        await backend.probe()
        before = await sent_bytes(raw)
        start = time.perf_counter()
        found = await backend.search(query, 10, f"u{user}")
        times.append(time.perf_counter() - start)
        sent.append(await sent_bytes(raw) - before)
        assert found, "no hits"
        replicas = backend.index.replicas
        assert replicas is not None
        held.append(sum(len(r.index) for r in replicas))
        await backend.aclose()
    await raw.aclose()
    times.sort()
    sent.sort()
    return {"ms": times[len(times) // 2] * 1000, "bytes": sent[len(sent) // 2], "held": max(held)}


async def at_the_cap(url: str, size: int) -> dict[str, Any]:
    """Per-user replicas of every user of ``size`` chitchat turns, in one backend: the memory
    allocated per memory they hold (numpy and the scripts loaded before measuring)."""
    from _corpus import load_turns

    corpus = load_turns(size)
    ns = "bench:scopes:chat"
    loader = RedisBackend(url, namespace=ns, timeout=60)
    for start in range(0, size, 2000):
        await loader.apply([Put(k, encode_value(v)) for k, v in corpus.turns[start : start + 2000]])
    await loader.aclose()
    query = Indexing().query("what do you like to do on the weekends?")
    backend = RedisSearchBackend(url, namespace=ns, timeout=30, scope_replicas=True)
    await backend.search(query, 5, "u0")
    gc.collect()
    tracked = len(gc.get_objects())
    pauses: list[float] = []
    gc.callbacks.append(_full_collections(pauses))
    tracemalloc.start()  # what Python and numpy allocate: not blurred by memory freed before
    before = tracemalloc.get_traced_memory()[0]
    for user in range(1, corpus.users):
        await backend.search(query, 5, f"u{user}")
    gc.callbacks.pop()
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    tracked = len(gc.get_objects()) - tracked
    start = time.perf_counter()
    gc.collect()
    full = time.perf_counter() - start
    replicas = backend.index.replicas
    assert replicas is not None
    held = sum(len(r.index) for r in replicas)
    await backend.aclose()
    return {
        "users": corpus.users - 1,
        "held": held,
        "bytes_per_memory": grown / max(held, 1),
        "tracked_per_memory": tracked / max(held, 1),
        "full_collections": len(pauses),
        "longest_collection_ms": max(pauses, default=0.0) * 1000,
        "full_collection_ms": full * 1000,
    }


def _full_collections(pauses: list[float]) -> Any:
    """A ``gc.callbacks`` entry appending each full (generation 2) collection's duration."""
    started = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                pauses.append(time.perf_counter() - started[0])

    return timed


async def run(args: Any) -> dict[str, Any]:
    size = 4_000 if args.quick else args.size
    binary = find_redis_server()
    if binary is None:
        raise SystemExit("redis-server is not installed")
    server = RedisServer(binary).start()
    try:
        ns = "bench:scopes"
        loader = RedisBackend(server.url, namespace=ns, timeout=60)
        for start in range(0, size, 2000):
            await loader.apply(
                [
                    Put(
                        f"u{i % 200}:s{i % 7}:{i}",
                        encode_value(
                            {"content": f"{WORDS[i // 200 % 10]} {WORDS[i // 7 % 10]} {i}"}
                        ),
                    )
                    for i in range(start, min(start + 2000, size))
                ]
            )
        await loader.aclose()
        tries = 1 if args.quick else 3
        await cold_scoped(server.url, ns, False, 1)  # warm-up: imports, script loads
        return {
            "size": size,
            "per_user": await cold_scoped(server.url, ns, True, tries),
            "namespace": await cold_scoped(server.url, ns, False, tries),
            "cap": await at_the_cap(server.url, size),
        }
    finally:
        server.stop()


def report(figures: dict[str, Any]) -> None:
    per, whole = figures["per_user"], figures["namespace"]
    print(f"cold search scoped to one user, {figures['size']:,} memories of 200 users")
    rows = [
        [name, f"{f['ms']:.1f}", f"{f['bytes'] / 1024:,.0f}", f"{f['held']:,}"]
        for name, f in (("per-user replica", per), ("namespace replica", whole))
    ]
    print(table(["replica", "ms", "KB from Redis", "memories held"], rows))
    print(f"per-user / namespace time: {per['ms'] / whole['ms']:.3f}x")
    cap = figures["cap"]
    print(
        f"per-user replicas of {cap['users']} users' chitchat turns, {cap['held']:,} memories "
        f"held: {cap['bytes_per_memory'] / 1024:.2f} KB of process memory per memory"
    )
    print(
        f"garbage collector: {cap['tracked_per_memory']:.2f} tracked objects per memory held; "
        f"{cap['full_collections']} full collections while filling, the longest "
        f"{cap['longest_collection_ms']:.0f} ms; one at the cap {cap['full_collection_ms']:.0f} ms"
    )
    print("scope replicas done")


def add_arguments(parser: Any) -> None:
    parser.add_argument("--size", type=int, default=100_000, help="memories in the namespace")


if __name__ == "__main__":
    bench_main(__doc__ or "", run, report, add_arguments)
