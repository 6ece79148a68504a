"""A Redis Cluster resharded under traffic: what readers, writers and searchers see meanwhile.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_reshard.py`` (``--quick`` for a smoke run;
``--size``, ``--slots``, ``--processes``; ``--replicas 1`` for masters with a replica each;
``--new-master`` to move the slots to a master added just before, as ``redis-cli --cluster
add-node`` then ``reshard`` do; ``--search-engine redis`` for masters with the Query Engine,
searched in it; ``--pipeline`` keys a ``MIGRATE``, 10 by default as in redis-cli).

A 3-master cluster on loopback (the system's ``redis-server``), ``--size`` chat turns loaded
into one namespace, then ``--processes`` worker processes each run 4 readers (``get`` of a
loaded memory: another process wrote it, so an in-process answer is ``None``), 2 writers
(``add`` of new turns) and 2 searchers (a question scoped to one user), for ``--before``
seconds, then while ``redis-cli --cluster reshard`` moves ``--slots`` slots. The peer is raw
redis-py: one process whose cluster client ``GET``s plain keys loaded beside ours, the same
rate of readers, counting what raises.

Per phase: calls, ``get``s answered ``None`` for a memory that exists, calls served in-process
(the process had fallen back), ``get`` p50/p99, the longest call, errors raised into the
caller; afterwards each
worker flushes (its dead letters, stale writes and last fallback's error are reported) and a
fresh process counts the namespace's memories against those loaded and written. Nothing is
asserted.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))

from _children import start_all  # noqa: E402
from _timing import bench_main, percentiles, table  # noqa: E402

READERS, WRITERS, SEARCHERS = 4, 2, 2
LOAD_AT_ONCE = 64


async def worker() -> None:
    """One process: readers, writers and searchers on its own memory, phase by phase."""
    from redis.asyncio.cluster import RedisCluster

    from tta_dev_primitives import MemoryPrimitive

    spec = json.loads(sys.stdin.readline())
    keys: list[str] = spec["keys"]
    raw = spec["kind"] == "raw"
    if raw:
        client: Any = RedisCluster.from_url(spec["url"])
        await client.get(keys[0])
    else:
        memory = MemoryPrimitive(spec["url"], namespace=spec["ns"], search_engine=spec["engine"])
        await memory.get(keys[0])
    phase = "before"
    stats: dict[str, dict[str, Any]] = {}

    def count(name: str, n: int = 1) -> None:
        row = stats.setdefault(phase, {"get_ms": []})
        row[name] = row.get(name, 0) + n

    def took(start: float) -> None:
        """The longest call of the phase it ended in (ms)."""
        row = stats.setdefault(phase, {"get_ms": []})
        row["longest_ms"] = max(row.get("longest_ms", 0.0), (time.perf_counter() - start) * 1000)

    async def reads(n: int) -> None:
        i = n * 7919
        while phase != "stop":
            key = keys[i % len(keys)]
            i += 13
            start = time.perf_counter()
            try:
                found = await (client.get(key) if raw else memory.get(key))
            except Exception:
                count("errors")
                await asyncio.sleep(0.01)
                continue
            took(start)
            stats.setdefault(phase, {"get_ms": []})["get_ms"].append(
                (time.perf_counter() - start) * 1000
            )
            count("gets")
            count("none", found is None)
            count("in_process", not raw and not memory.using_redis)
            await asyncio.sleep(0)  # (a get served in-process never suspends)

    written: list[str] = []

    async def writes(n: int) -> None:
        i = 0
        while phase != "stop":
            i += 1
            key = f"u{(spec['index'] * 31 + n * 7 + i) % spec['users']}:w{spec['index']}:{n}-{i}"
            start = time.perf_counter()
            try:
                await memory.add(key, {"role": "user", "content": f"new turn {i} about coffee"})
            except Exception:
                count("errors")
                continue
            took(start)
            written.append(key)
            count("adds")
            count("in_process", not memory.using_redis)
            await asyncio.sleep(0)

    async def searches(n: int) -> None:
        i = n
        while phase != "stop":
            i += 1
            start = time.perf_counter()
            try:
                await memory.search(spec["questions"][i % len(spec["questions"])],
                                    scope=f"u{i % spec['users']}")  # fmt: skip
            except Exception:
                count("errors")
                continue
            took(start)
            count("searches")
            count("in_process", not memory.using_redis)
            await asyncio.sleep(0)

    print(json.dumps("ready"), flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # go
    jobs = [reads(n) for n in range(READERS)]
    if not raw:
        jobs += [writes(n) for n in range(WRITERS)] + [searches(n) for n in range(SEARCHERS)]
    tasks = [asyncio.create_task(job) for job in jobs]
    for _ in ("during", "stop"):
        phase = json.loads(await asyncio.to_thread(sys.stdin.readline))["phase"]
    await asyncio.gather(*tasks)
    result: dict[str, Any] = {"phases": {}}
    for name, row in stats.items():
        p50, p99 = percentiles(row.pop("get_ms") or [0.0])
        result["phases"][name] = {**row, "get_p50": p50, "get_p99": p99}
    if raw:
        await client.aclose()
    else:
        result["flushed"] = await memory.flush()
        info = memory.get_backend_info()
        result.update({name: info[name] for name in ("dead_letters", "stale_writes")})
        result["last_error"] = info["last_error"]
        result["written"] = len(written)
        result["degraded_at_end"] = info["degraded"]
        await memory.aclose()
    print(json.dumps(result), flush=True)


async def load(url: str, ns: str, size: int, engine: str) -> tuple[list[str], list[str], int]:
    """``size`` chat turns into ``ns``, plain copies for the raw peer: keys, questions, users.
    With the Query Engine, searched until its index is whole."""
    from redis.asyncio.cluster import RedisCluster

    from _corpus import load_turns, questions
    from tta_dev_primitives import MemoryPrimitive

    corpus = load_turns(size)
    memory = MemoryPrimitive(url, namespace=ns, redis_timeout=10, search_engine=engine)
    gate = asyncio.Semaphore(LOAD_AT_ONCE)

    async def put(key: str, value: dict[str, Any]) -> None:
        async with gate:
            await memory.add(key, value)

    await asyncio.gather(*(put(k, v) for k, v in corpus.turns))
    while engine == "redis":
        await memory.search("coffee")
        if memory.get_backend_info()["search_engine"] == "redis":
            break
        await asyncio.sleep(0.5)  # the engine's backfill is under way
    await memory.aclose()
    raw = RedisCluster.from_url(url)
    for start in range(0, size, 1000):
        async with raw.pipeline(transaction=False) as pipe:
            for key, value in corpus.turns[start : start + 1000]:
                pipe.set(f"raw:{key}", value["content"])
            await pipe.execute()
    await raw.aclose()
    return [k for k, _ in corpus.turns], questions(corpus, 50), corpus.users


def reshard(cluster: Any, slots: int, to_new: bool, pipeline: int) -> tuple[float, str]:
    """Move ``slots`` slots from the first master to another (a new one if ``to_new``),
    ``pipeline`` keys a ``MIGRATE``."""
    import redis

    masters = cluster.master_nodes()
    source = masters[0]
    target = cluster.add_master() if to_new else masters[1]
    ids = {}
    for node in (source, target):
        with redis.Redis(port=node.port) as c:
            ids[node.port] = c.execute_command("CLUSTER", "MYID").decode()
    start = time.monotonic()
    subprocess.run(
        [cluster.cli, "--cluster", "reshard", f"127.0.0.1:{source.port}",
         "--cluster-from", ids[source.port], "--cluster-to", ids[target.port],
         "--cluster-slots", str(slots), "--cluster-pipeline", str(pipeline), "--cluster-yes"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900,
    )  # fmt: skip
    return time.monotonic() - start, f"127.0.0.1:{target.port}" + (" (added)" if to_new else "")


async def run(args: Any) -> dict[str, Any]:
    from redis_server import LocalCluster, find_redis_server
    from tta_dev_primitives import MemoryPrimitive

    if args.quick:
        args.size, args.slots, args.processes, args.before = 1_000, 200, 2, 0.5
    if args.search_engine == "redis":
        from query_engine_server import start_redis_stack_cluster

        started = start_redis_stack_cluster(3, args.replicas)
        if isinstance(started, str):
            raise SystemExit(f"no Redis with the Query Engine: {started}")
        cluster = started[0]
    else:
        binary = find_redis_server()
        if binary is None:
            raise SystemExit("no redis-server: install Debian's redis-server package")
        cluster = LocalCluster(binary, masters=3, replicas=args.replicas).start()
    try:
        ns = "reshard"
        keys, questions, users = await load(cluster.url, ns, args.size, args.search_engine)
        spec = {"url": cluster.url, "ns": ns, "questions": questions, "users": users,
                "engine": args.search_engine}  # fmt: skip
        specs = [{**spec, "kind": "ours", "index": i, "keys": keys}
                 for i in range(args.processes)]  # fmt: skip
        specs.append({**spec, "kind": "raw", "index": 0, "keys": [f"raw:{k}" for k in keys]})
        children = await asyncio.to_thread(start_all, __file__, specs)
        for child in children:
            child.go({})
        await asyncio.sleep(args.before)
        for child in children:
            child.go({"phase": "during"})
        took, target = await asyncio.to_thread(
            reshard, cluster, args.slots, args.new_master, args.pipeline
        )
        for child in children:
            child.go({"phase": "stop"})
        results = [await asyncio.to_thread(child.result) for child in children]
        # Every turn written, read back by a fresh process (a count from Redis itself).
        fresh = MemoryPrimitive(cluster.url, namespace=ns, redis_timeout=10)
        stored = await fresh.size()
        await fresh.aclose()
    finally:
        cluster.stop()
    return {
        "size": args.size, "slots": args.slots, "processes": args.processes,
        "replicas": args.replicas, "target": target, "reshard_s": took, "results": results,
        "stored": stored, "search_engine": args.search_engine, "pipeline": args.pipeline,
    }  # fmt: skip


def report(figures: dict[str, Any]) -> None:
    print(
        f"{figures['size']:,} memories, {figures['slots']:,} slots moved to {figures['target']} "
        f"({figures.get('pipeline', 10)} keys a MIGRATE) in {figures['reshard_s']:.1f} s; "
        f"{figures['processes']} processes of ours "
        f"({READERS} readers, {WRITERS} writers, {SEARCHERS} searchers each) and one raw "
        f"redis-py process ({READERS} readers); masters with {figures['replicas']} replica(s)"
        + ("; searched in the Query Engine" if figures.get("search_engine") == "redis" else "")
    )
    rows = []
    for phase in ("before", "during"):
        for kind in ("ours", "raw"):
            runs = [r["phases"].get(phase, {}) for r in figures["results"]]
            runs = [p for p, r in zip(runs, figures["results"], strict=True)
                    if ("written" in r) == (kind == "ours")]  # fmt: skip
            gets = sum(p.get("gets", 0) for p in runs)
            calls = gets + sum(p.get("adds", 0) + p.get("searches", 0) for p in runs)
            none = sum(p.get("none", 0) for p in runs)
            rows.append([
                phase, kind, gets, f"{none} ({none / max(gets, 1):.1%})",
                sum(p.get("adds", 0) for p in runs), sum(p.get("searches", 0) for p in runs),
                f"{sum(p.get('in_process', 0) for p in runs) / max(calls, 1):.1%}",
                max((p.get("get_p50", 0.0) for p in runs), default=0.0),
                max((p.get("get_p99", 0.0) for p in runs), default=0.0),
                max((p.get("longest_ms", 0.0) for p in runs), default=0.0),
                sum(p.get("errors", 0) for p in runs),
            ])  # fmt: skip
    headers = ["phase", "side", "gets", "None of existing", "adds", "searches",
               "served in-process", "get p50 ms", "get p99 ms", "longest call ms",
               "errors raised"]  # fmt: skip
    print(table(headers, rows))
    ours = [r for r in figures["results"] if "written" in r]
    written = sum(r["written"] for r in ours)
    print(
        f"afterwards: {written:,} turns written, {figures['stored'] - figures['size']:,} found "
        f"by a fresh process ({figures['size'] + written - figures['stored']:,} missing); "
        f"flushed {all(r['flushed'] for r in ours)}; dead letters "
        f"{sum(r['dead_letters'] for r in ours)}, stale {sum(r['stale_writes'] for r in ours)}; "
        f"degraded at the end: {sum(r['degraded_at_end'] for r in ours)} processes"
    )
    for error in sorted({r["last_error"] for r in ours if r["last_error"]}):
        print(f"  a process's last fallback: {error}")
    print("reshard benchmark done")


def main() -> None:
    if sys.argv[1:] == ["--worker"]:
        asyncio.run(worker())
        return

    def arguments(parser: Any) -> None:
        parser.add_argument("--size", type=int, default=20_000, help="memories loaded")
        parser.add_argument("--slots", type=int, default=4_000, help="slots moved")
        parser.add_argument("--processes", type=int, default=4, help="worker processes of ours")
        parser.add_argument("--replicas", type=int, default=0, help="replicas per master")
        parser.add_argument("--before", type=float, default=3.0, help="seconds before the move")
        parser.add_argument(
            "--new-master", action="store_true", help="move the slots to a master added just before"
        )
        parser.add_argument(
            "--pipeline",
            type=int,
            default=10,
            help="keys a MIGRATE (redis-cli's --cluster-pipeline)",
        )
        parser.add_argument("--search-engine", choices=("auto", "redis"), default="auto",
                            help="redis: search in the Query Engine")  # fmt: skip

    bench_main(__doc__ or "", run, report, arguments)


if __name__ == "__main__":
    main()
