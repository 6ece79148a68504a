"""How much work a Query Engine backfill costs when several workers start it at once.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_backfill_workers.py --size 100000``.

A namespace written with ``search_engine="replica"`` (``--size`` chitchat turns, the benchmarks'
bulk path) is moved to the engine by workers with ``search_engine="auto"``: each searches once
for one user and waits until the engine answers. Measured for 1 worker and for ``--workers`` at
once, each from the same state (the backfill's progress reset, its documents kept): wall time
until all answer in the engine, the workers' CPU, Redis's CPU and bytes sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))

WORKER = r"""
import asyncio, json, sys, time
from tta_dev_primitives import MemoryPrimitive
async def main():
    m = MemoryPrimitive(sys.argv[1], namespace=sys.argv[2], search_engine="auto")
    t0, c0 = time.perf_counter(), time.process_time()
    await m.search_items("what did you say about the garden last week", 10, scope="u3")
    await m._store.remote.index.engine.wait_backfill()
    while m.get_backend_info()["search_engine"] != "redis":
        await asyncio.sleep(0.2)
        await m.search_items("what did you say about the garden last week", 10, scope="u3")
    print(json.dumps({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}))
    await m.aclose()
asyncio.run(main())
"""


async def main(args: argparse.Namespace) -> None:
    import redis.asyncio as aioredis

    import bench_scaleout as bs
    from _corpus import load_turns
    from bench_redis import cpu_s
    from query_engine_server import start_redis_stack
    from redis_server import RedisServer

    started = start_redis_stack()
    if isinstance(started, str):
        raise SystemExit(started)
    server: RedisServer = started[0]
    ns = bs.namespace("replica")
    try:
        raw = aioredis.Redis.from_url(server.url, socket_timeout=600)
        await bs.load_ours(server.url, "replica", load_turns(args.size).turns)
        facts = [key async for key in raw.scan_iter(match=f"{ns}:*}}:n")]

        async def run(workers: int) -> dict[str, float]:
            for key in facts:  # the backfill from the start again (documents kept)
                await raw.hdel(key, "ftdone", "ftnext")
                await raw.delete(key[: -len(b"n")] + b"fb")  # a lease, if there is one
            cpu0, sent0 = await cpu_s(raw), await bs.sent_bytes(raw)
            t0 = time.perf_counter()
            procs = [subprocess.Popen([sys.executable, "-c", WORKER, server.url, ns],  # noqa: ASYNC220
                                      stdout=subprocess.PIPE, text=True)
                     for _ in range(workers)]  # fmt: skip
            outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
            sent = (await bs.sent_bytes(raw) - sent0) / 2**20
            return {"workers": workers, "wall_s": round(time.perf_counter() - t0, 1),
                    "worker_cpu_s": round(sum(o["cpu_s"] for o in outs), 1),
                    "redis_cpu_s": round(await cpu_s(raw) - cpu0, 1),
                    "redis_sent_mb": round(sent, 1)}  # fmt: skip

        await run(1)  # writes the documents
        for workers in (1, args.workers):
            print(json.dumps({"memories": args.size, **await run(workers)}), flush=True)
        await raw.aclose()
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=4)
    asyncio.run(main(parser.parse_args()))
