"""Forgetting one user among many (issue 20): ``forget("u0")`` of 50,000 memories among 1,000,000.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_forget.py`` (``--size``, default 1,000,000;
``--user``, the forgotten user's memories, default 50,000; ``--modes replica,redis``;
``--quick``: 5,000 and 500). Needs RediSearch from the dev extra for mode ``redis``
(``_redis_stack.py``); ``replica`` runs on the same server with ``search_engine="replica"``.

Per mode, on one server: the memories are loaded in bulk (the backend's pipelined ``apply``,
keys ``u<n>:s<m>:t<i>``, the user ``u0`` spread over 40 sessions, the rest over 5,000 users);
a reader process-alike (its own ``MemoryPrimitive``) searches ``u0`` first, so it holds what a
warm worker holds; then ``forget("u0")`` runs while a bystander ``GET``s another key in a loop.

Reported: forget's wall time and rate, Redis main-thread CPU it cost (``INFO cpu``), the
bystander's p50/p99/max, and then, from the warm reader and from a fresh process-alike: ``u0``
keys still readable (of 200 sampled), hits of a scoped and an unscoped search for ``u0``'s
words, what ``list_memories("u0")`` returns, and the namespace's size (it must drop by exactly
the user's memories). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _timing import bench_main, percentiles
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.memory._values import encode_value
from tta_dev_primitives.stores._base import Document, Put

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import RedisServer

CHUNK = 5_000
OTHERS = 5_000
WORDS = ["garden", "tea", "train", "paris", "dog", "piano", "storm", "bread", "chess", "river"]


def rows(size: int, user: int) -> list[tuple[str, dict[str, Any]]]:
    """``user`` memories of u0 among ``size``, in a shuffled but seeded order."""
    rng = random.Random(20261203)
    out = [(f"u0:s{i % 40}:t{i}", {"content": f"my {WORDS[i % 10]} note number {i}"})
           for i in range(user)]  # fmt: skip
    out += [
        (f"u{1 + i % OTHERS}:s{i % 7}:t{i}", {"content": f"their {WORDS[i % 10]} turn {i}"})
        for i in range(size - user)
    ]
    rng.shuffle(out)
    return out


async def load(memory: MemoryPrimitive, turns: list[tuple[str, dict[str, Any]]]) -> float:
    backend = memory._store.remote
    assert backend is not None
    indexing, clock = memory._indexing, memory._store.versions
    await memory.search("warm up", 1)  # the Query Engine index exists before the writes
    start = time.perf_counter()
    for s in range(0, len(turns), CHUNK):
        chunk = turns[s : s + CHUNK]
        await backend.apply(
            [
                Put(k, encode_value(v), None, Document(indexing.terms(v)), clock.next())
                for k, v in chunk
            ]
        )
    return time.perf_counter() - start


async def cpu(raw: Any) -> float:
    info = await raw.info("cpu")
    return float(info["used_cpu_sys_main_thread"]) + float(info["used_cpu_user_main_thread"])


async def check(memory: MemoryPrimitive, sample: list[str]) -> dict[str, Any]:
    readable = sum([await memory.get(key) is not None for key in sample])
    scoped = await memory.search("my garden note", limit=100, scope="u0")
    unscoped = await memory.search_items("my garden note", limit=1000)
    listed = await memory.list_memories("u0", limit=100)
    return {
        "readable_of_sample": readable,
        "scoped_hits": len(scoped),
        "unscoped_u0_hits": sum(key.startswith("u0:") for key, _ in unscoped),
        "listed": len(listed.items),
        "size": await memory.size(),
    }


async def run_mode(url: str, mode: str, size: int, user: int) -> dict[str, Any]:
    import redis
    import redis.asyncio as aioredis

    ns = f"forget:{mode}"
    options: dict[str, Any] = {"namespace": ns, "search_engine": mode, "redis_timeout": 30}
    writer = MemoryPrimitive(url, **options)
    turns = rows(size, user)
    loaded = await load(writer, turns)
    reader = MemoryPrimitive(url, **options)
    warm_hits = len(await reader.search("my garden note", limit=100, scope="u0"))
    sample = [key for key, _ in turns if key.startswith("u0:")][:200]
    raw = aioredis.Redis.from_url(url)
    bystander_key = next(key for key, _ in turns if not key.startswith("u0:"))
    stop = threading.Event()
    gets: list[float] = []
    name = writer._store.remote.layout.value(bystander_key)  # type: ignore[union-attr]

    def bystander() -> None:
        """Another client of the same Redis, in its own thread: what forget costs others."""
        client = redis.Redis.from_url(url)
        while True:  # one GET at least, even when forget returns before this thread runs
            t = time.perf_counter()
            client.get(name)
            gets.append((time.perf_counter() - t) * 1000)
            if stop.is_set():
                break
            time.sleep(0.002)
        client.close()

    before = await cpu(raw)
    thread = threading.Thread(target=bystander)
    thread.start()
    start = time.perf_counter()
    removed = await writer.forget("u0")
    seconds = time.perf_counter() - start
    stop.set()
    thread.join()
    redis_cpu = await cpu(raw) - before
    p50, p99 = percentiles(gets)
    fresh = MemoryPrimitive(url, **options)
    out = {
        "loaded_s": round(loaded, 1), "removed": removed, "forget_s": round(seconds, 2),
        "per_s": round(removed / seconds), "redis_cpu_s": round(redis_cpu, 2),
        "bystander_get_ms": {"p50": round(p50, 2), "p99": round(p99, 2),
                             "max": round(max(gets), 2), "n": len(gets)},
        "warm_reader_hits_before": warm_hits,
        "warm_reader_after": await check(reader, sample),
        "fresh_process_after": await check(fresh, sample),
        "expected_size": size - user,
        "engine": fresh.get_backend_info()["search_engine"],
    }  # fmt: skip
    await writer.clear()
    for m in (writer, reader, fresh):
        await m.aclose()
    await raw.aclose()
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from _redis_stack import find_redis_stack

    size, user = (5_000, 500) if args.quick else (args.size, args.user)
    found = find_redis_stack()
    if isinstance(found, str):
        raise SystemExit(found)
    binary, module, described = found
    server = RedisServer(binary, extra=("--loadmodule", module, "TIMEOUT", "0")).start()
    try:
        modes = {mode: await run_mode(server.url, mode, size, user)
                 for mode in args.modes.split(",")}  # fmt: skip
    finally:
        server.stop()
    return {"size": size, "user": user, "server": described, "modes": modes}


def report(f: dict[str, Any]) -> None:
    print(f"forget one user's {f['user']:,} memories among {f['size']:,}; {f['server']}")
    for mode, r in f["modes"].items():
        g = r["bystander_get_ms"]
        print(f"\n{mode}: loaded in {r['loaded_s']} s; forget removed {r['removed']:,} in "
              f"{r['forget_s']} s ({r['per_s']:,}/s), Redis CPU {r['redis_cpu_s']} s; bystander "
              f"GET p50 {g['p50']} ms, p99 {g['p99']} ms, max {g['max']} ms ({g['n']} GETs); "
              f"searched by {r['engine']}")  # fmt: skip
        print(f"  warm reader before: {r['warm_reader_hits_before']} hits for u0")
        for who in ("warm_reader_after", "fresh_process_after"):
            c = r[who]
            print(f"  {who}: readable {c['readable_of_sample']}/200, scoped hits "
                  f"{c['scoped_hits']}, unscoped u0 hits {c['unscoped_u0_hits']}, listed "
                  f"{c['listed']}, size {c['size']:,} "
                  f"(expected {r['expected_size']:,})")  # fmt: skip


def main() -> None:
    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--size", type=int, default=1_000_000)
        parser.add_argument("--user", type=int, default=50_000)
        parser.add_argument("--modes", default="replica,redis")

    bench_main(__doc__ or "", run, report, arguments)


if __name__ == "__main__":
    main()
