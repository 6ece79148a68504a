"""1,000,000 memories loaded as a user would (``MemoryPrimitive.add``), then searched.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_million.py --size 1000000`` (Query Engine
server from the wheels; ``--plain``: the system's redis-server, replica mode only).

The library has no bulk-add API: the documented ways in are ``add`` and the CLI's ``import``
(which awaits one ``add`` after another). This loads with ``--concurrency`` adds in flight in
one process, the library's default ``redis_timeout``, and a bystander ``GET`` every 5 ms, then
runs ``bench_scaleout``'s phases (warm, cold, 8 at once, readers + writer) with the readers
and the burst scoped to one user each, as a web worker serving one user would search. After
each phase it prints the server's ``SLOWLOG`` and ``LATENCY LATEST``. Figures go to stdout as
JSON lines; nothing is written to results/ (paste what is worth keeping).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))

import bench_scaleout as bs  # noqa: E402
from tta_dev_primitives import MemoryPrimitive  # noqa: E402


def emit(phase: str, **figures: Any) -> None:
    print(json.dumps({"phase": phase, "at": time.strftime("%H:%M:%S"), **figures},
                     default=str), flush=True)  # fmt: skip


async def server_state(raw: Any, phase: str, reset: bool = True) -> None:
    """Slow commands and latency spikes since the last call (then reset both)."""
    slow = await raw.execute_command("SLOWLOG", "GET", "10")
    latest = await raw.execute_command("LATENCY", "LATEST")
    rows = []
    for entry in slow:
        cmd = [a.decode(errors="replace")[:40] if isinstance(a, bytes) else str(a)
               for a in entry[3][:4]]  # fmt: skip
        rows.append({"us": entry[2], "cmd": " ".join(cmd)})
    emit(f"{phase}: server", slowlog_len=await raw.execute_command("SLOWLOG", "LEN"),
         slowlog_top=sorted(rows, key=lambda r: -r["us"])[:6],
         latency_latest=[[x.decode() if isinstance(x, bytes) else x for x in row]
                         for row in latest])  # fmt: skip
    if reset:
        await raw.execute_command("SLOWLOG", "RESET")
        await raw.execute_command("LATENCY", "RESET")


async def used_memory(raw: Any) -> int:
    return int((await raw.info("memory"))["used_memory"])


async def load_public(url: str, port: int, mode: str, turns: list[tuple[str, dict[str, Any]]],
                      concurrency: int, raw: Any) -> dict[str, Any]:  # fmt: skip
    """Every turn through ``MemoryPrimitive.add``, ``concurrency`` at a time, default timeout."""
    from bench_redis import Bystander

    memory = MemoryPrimitive(url, namespace=bs.namespace(mode), search_engine=mode)
    before = await used_memory(raw)
    bystander = Bystander(port)
    queue = iter(turns)
    done = 0
    slowest = 0.0
    fallen = 0

    async def adder() -> None:
        nonlocal done, slowest, fallen
        for key, value in queue:
            t0 = time.perf_counter()
            await memory.add(key, value)
            slowest = max(slowest, time.perf_counter() - t0)
            done += 1
            if not memory.using_redis:
                fallen += 1

    start = time.perf_counter()
    tasks = [asyncio.ensure_future(adder()) for _ in range(concurrency)]
    last = 0
    while not all(t.done() for t in tasks):
        await asyncio.sleep(1)
        if done - last >= 100_000 or all(t.done() for t in tasks):
            last = done
            emit("load progress", mode=mode, done=done, seconds=round(time.perf_counter() - start),
                 used_memory_mb=round(await used_memory(raw) / 2**20),
                 slowest_add_ms=round(slowest * 1e3), adds_while_fallen_back=fallen,
                 info=memory.get_backend_info().get("search_engine"))  # fmt: skip
    for t in tasks:
        t.result()
    seconds = time.perf_counter() - start
    got = bystander.stop()
    flushed = await memory.flush()
    info = memory.get_backend_info()
    await memory.aclose()
    after = await used_memory(raw)
    out = {"mode": mode, "memories": len(turns), "seconds": round(seconds, 1),
           "per_s": round(len(turns) / seconds), "slowest_add_ms": round(slowest * 1e3, 1),
           "adds_while_fallen_back": fallen, "flushed": flushed,
           "journal": info.get("journal_size", info.get("journal")),
           "bystander_get": got, "used_memory_delta_mb": round((after - before) / 2**20, 1),
           "bytes_per_memory": round((after - before) / len(turns))}  # fmt: skip
    emit("load", **out)
    return out


async def first_searches(raw: Any, url: str, port: int, mode: str, qs: list[str],
                         users: list[str], count: int) -> None:  # fmt: skip
    """Right after the load: ``count`` fresh processes' first searches (one user each, the
    default timeout, at once), then one fresh process's first unscoped search."""
    from bench_redis import Bystander

    bystander = Bystander(port)
    specs = [bs.spec(url, mode, "burst", [qs[i % len(qs)]], [users[i % len(users)]],
                     bs.DEFAULT_TIMEOUT) for i in range(count)]  # fmt: skip
    results = await asyncio.to_thread(lambda: bs.children(specs, {}))
    got = bystander.stop()
    emit("first scoped searches after the load", processes=count,
         engines=sorted({r["engine"] for r in results}),
         wall_ms=[round(r["wall_ms"]) for r in results],
         rss_mb=[round(r["rss_mb"]) for r in results],
         fallbacks=sum(r["fallbacks"] for r in results), bystander_get=got)  # fmt: skip
    await server_state(raw, "first scoped searches")
    if not any(r["engine"] != "redis" for r in results):
        return
    c = await bs.cold(raw, url, mode, qs[1], None)
    emit("cold unscoped while the index builds", **c)
    await server_state(raw, "cold unscoped while building")


async def until_ready(
    raw: Any, url: str, port: int, mode: str, qs: list[str], users: list[str]
) -> None:
    """One process searches (one user) every second until the engine answers; meanwhile an
    add every 100 ms (its slowest) and a bystander GET."""
    from bench_redis import Bystander

    memory = MemoryPrimitive(url, namespace=bs.namespace(mode), search_engine=mode)
    writer = MemoryPrimitive(url, namespace=bs.namespace(mode), search_engine=mode)
    bystander = Bystander(port)
    start = time.perf_counter()
    slowest_add, adds, searches, slowest_search = 0.0, 0, 0, 0.0
    stop = asyncio.Event()

    async def write() -> None:
        nonlocal slowest_add, adds
        while not stop.is_set():
            t0 = time.perf_counter()
            await writer.add(f"u0:late:{adds}", {"role": "user", "content": "late turn"})
            slowest_add = max(slowest_add, time.perf_counter() - t0)
            adds += 1
            await asyncio.sleep(0.1)

    task = asyncio.ensure_future(write())
    engine = ""
    try:
        while time.perf_counter() - start < 1800:
            t0 = time.perf_counter()
            await memory.search_items(
                qs[searches % len(qs)], 10, scope=users[searches % len(users)]
            )
            slowest_search = max(slowest_search, time.perf_counter() - t0)
            searches += 1
            engine = memory.get_backend_info()["search_engine"]
            if engine == "redis":
                break
            await asyncio.sleep(1)
    finally:
        stop.set()
        await task
    got = bystander.stop()
    emit("until the engine answers", seconds=round(time.perf_counter() - start, 1),
         engine=engine, searches=searches, slowest_search_ms=round(slowest_search * 1e3),
         adds=adds, slowest_add_ms=round(slowest_add * 1e3, 1), bystander_get=got)  # fmt: skip
    await memory.aclose()
    await writer.aclose()
    await server_state(raw, "until ready")


async def main(args: argparse.Namespace) -> None:
    import redis.asyncio as aioredis

    from _corpus import load_turns, questions
    from query_engine_server import start_redis_stack
    from redis_server import RedisServer

    if args.plain:
        server = RedisServer("/usr/bin/redis-server").start()
        modes = ["replica"]
    else:
        started = start_redis_stack()
        if isinstance(started, str):
            raise SystemExit(started)
        server, described = started
        emit("server", described=described)
        modes = ["redis", "raw"]
    try:
        url, port = server.url, server.port
        raw = aioredis.Redis.from_url(url, socket_timeout=3600)
        await raw.config_set("slowlog-log-slower-than", 10_000)  # 10 ms
        await raw.config_set("slowlog-max-len", 1024)
        await raw.config_set("latency-monitor-threshold", 10)
        if args.listpack_value:  # a tuning production.md suggests for short memories
            await raw.config_set("hash-max-listpack-value", args.listpack_value)
            emit("config", hash_max_listpack_value=args.listpack_value)
        corpus = load_turns(args.size)
        emit("corpus", source=corpus.source, users=corpus.users, notes=corpus.notes)
        qs = questions(corpus, args.questions, sample=min(args.size, 100_000))
        users = [f"u{(i * 37) % corpus.users}" for i in range(len(qs))]
        emit("baseline", used_memory_mb=round(await used_memory(raw) / 2**20))
        await load_public(url, port, modes[0], corpus.turns, args.concurrency, raw)
        await server_state(raw, "load")
        await first_searches(raw, url, port, modes[0], qs, users, args.burst)
        if not args.plain:
            await until_ready(raw, url, port, modes[0], qs, users)
        if "raw" in modes:
            before = await used_memory(raw)
            t = await bs.load_raw(raw, corpus.turns)
            emit(
                "raw load",
                seconds=round(t, 1),
                bytes_per_memory=round((await used_memory(raw) - before) / args.size),
            )
            for name in (bs.namespace("redis") + ":idx2", bs.RAW_INDEX):
                while True:
                    info = await raw.execute_command("FT.INFO", name)
                    d = info if isinstance(info, dict) else dict(
                        zip(info[::2], info[1::2], strict=False))  # fmt: skip
                    d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
                    if str(d.get("indexing", 0)) in ("0", "b'0'"):
                        break
                    await asyncio.sleep(0.2)  # (a 2,000-turn index is done in a moment)
                emit("ft.info", index=name, **{k: (v.decode() if isinstance(v, bytes)
                     else v) for k, v in d.items() if k in (
                     "num_docs", "num_terms", "inverted_sz_mb", "doc_table_size_mb",
                     "offset_vectors_sz_mb", "key_table_size_mb", "total_index_memory_sz_mb",
                     "hash_indexing_failures")})  # fmt: skip
            await server_state(raw, "raw load")
        emit("info", used_memory_mb=round(await used_memory(raw) / 2**20),
             dbsize=await raw.dbsize())  # fmt: skip
        warmed, engines = await bs.warm_side_by_side(url, modes, qs, users)
        for mode in modes:
            emit("warm", mode=mode, engine=engines[mode],
                 **{k: {"p50": round(v["p50_ms"], 2), "p99": round(v["p99_ms"], 2)}
                    for k, v in warmed[mode].items()})  # fmt: skip
        await server_state(raw, "warm")
        for mode in modes:
            scopes = [(label, user) for label, user in (("user", users[2]), ("unscoped", None))
                      if not (label == "unscoped" and mode == "replica"
                              and args.skip_unscoped_replica)]  # fmt: skip
            found = await bs.colds(
                raw, url, mode, [(qs[1 if user is None else 2], user) for _, user in scopes]
            )
            for (label, _), c in zip(scopes, found, strict=True):
                emit("cold", mode=mode, scope=label, **c)
        await server_state(raw, "cold")
        n = args.burst_questions
        for mode in modes:
            for label, scoped in (("user", users[:n]), ("unscoped", None)):
                if label == "unscoped" and mode == "replica":
                    continue  # each process would load the whole namespace: see cold
                ref = warmed[mode][label]["answers"][:n]
                b = await bs.burst(port, url, mode, qs[:n], ref, args.burst, scoped)
                emit("burst", mode=mode, scope=label, **b)
                await server_state(raw, f"burst {mode} {label}")
        ns = argparse.Namespace(readers=args.readers, writers=1, duration=args.duration,
                                write_rate=args.write_rate, reader_users=users)  # fmt: skip
        for mode in modes:
            st = await bs.steady(raw, url, mode, qs, corpus.texts[:500], ns)
            emit("steady (readers scoped to a user)", mode=mode, **st)
            await server_state(raw, f"steady {mode}")
        emit("end", used_memory_mb=round(await used_memory(raw) / 2**20))
        await raw.aclose()
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--burst", type=int, default=8)
    parser.add_argument("--burst-questions", type=int, default=3)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--write-rate", type=float, default=10.0)
    parser.add_argument("--skip-unscoped-replica", action="store_true")
    parser.add_argument(
        "--listpack-value",
        type=int,
        default=0,
        help="set the server's hash-max-listpack-value first (0: leave it)",
    )
    asyncio.run(main(parser.parse_args()))
