"""MemoryPrimitive on Redis against raw redis.asyncio GET/SET on the same server, same run.

Run: ``.venv/bin/python benchmarks/bench_redis.py`` (starts its own throwaway redis-server on
a free loopback port; ``--quick`` for a smoke run, ``--json PATH`` to save the figures).

- get/add per call, sequential and with 50 concurrent callers, against raw GET/SET of the same
  JSON payloads (ours also indexes every add for search, in the same round trip);
- search p50/p99 over 10k and 100k memories in Redis, global and scoped, against the design
  document's original approach on Redis (values only, no index: SCAN, GET every value, match);
- replay throughput after an outage (writes journalled while the server is down);
- worst call latency while the server is stalled with SIGSTOP, against ``redis_timeout``.

*Questions on Redis* (``--question-size``, default 100000; ``--quick``: 2000; 0 skips it;
``--questions-only`` skips the sections above): real conversation turns (``_corpus.py``)
loaded through ``MemoryPrimitive(url, namespace=..., redis_timeout=...)``, ``add`` gathered
200 at a time, on a fresh server; then ~200 natural-language questions (``--questions``),
``search(question, limit=10)`` unscoped and scoped to one user (~500 memories):

- client p50/p95/p99 (one task);
- server time per search: the sum of its top-level calls in ``SLOWLOG`` (threshold 0, reset
  before the run; a script's inner commands, logged under client ``?:0``, are left out), the
  part in scripts from ``INFO commandstats`` (EVALSHA/FCALL usec), the longest single call;
- a bystander: while 4 tasks search at once, another process sends ``GET somekey`` every
  5 ms: its p50/p99/max;
- fallbacks during the run (``tta.memory.fallbacks`` via an OpenTelemetry SDK reader, and
  searches after which ``memory.using_redis`` was False);
- server time per add (slow log over the last 5,000 adds) and bytes per memory
  (``used_memory`` delta / memories).

The same turns and questions then go to RediSearch (``_redis_stack.py``: a server from PyPI
wheels, skipped with a message if absent, or with ``--no-redisearch``): HASH per turn with an
``FT.CREATE`` TEXT index on ``content`` (and a TAG ``user`` for the scope), ``HSET`` cost and
bytes the same way, and ``FT.SEARCH`` of the question's words OR-ed, minus RediSearch's own
stop words (which it ignores anyway).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from _corpus import load_turns, long_query, questions
from _peers import query_words
from _redis_stack import start_redis_stack
from _timing import bench_main, percentiles, table
from bench_memory import make_memories, pick_queries

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from redis_server import RedisServer, find_redis_server
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.memory._values import encode_value
from tta_dev_primitives.stores._base import Put
from tta_dev_primitives.stores._redis.backend import RedisBackend


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


async def replay(memory: MemoryPrimitive, within: float) -> None:
    """Flush ``memory``'s journal into Redis, trying until it is all there or ``within`` s."""
    deadline = time.perf_counter() + within
    while not (await memory.flush() and memory.using_redis):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the journal did not replay within {within} s")
        await asyncio.sleep(0.05)


async def bench_outage(binary: str, writes: int, stall_s: float = 3.0) -> dict[str, float]:
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
        deadline = time.perf_counter() + stall_s
        i = 0
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            await stalled.add(f"k{i}", {"content": "during stall"})
            await stalled.get(f"k{i}")
            worst = max(worst, time.perf_counter() - start)
            i += 1
        server.resume()
        # The stall's writes replay once the server answers again; on a busy machine the first
        # try may still time out, and aclose() makes only one more.
        await replay(stalled, within=60)
        await memory.aclose()
        await stalled.aclose()
        return {"journalled_writes": writes, "replay_s": replay_s,
                "replay_writes_per_s": writes / replay_s, "stall_timeout_s": timeout,
                "stall_worst_call_s": worst, "stall_calls": i}  # fmt: skip
    finally:
        server.stop()


def report(figures: dict[str, Any]) -> None:
    if "calls" in figures:
        report_synthetic(figures)
    if "questions" in figures:
        report_questions(figures["questions"])


def report_synthetic(figures: dict[str, Any]) -> None:
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


# -- questions on Redis: real conversation turns, natural-language questions --------------------


def _words(text: str) -> set[str]:
    return set(text.split())


SERVER_SIDE_IGNORED = {"info", "config", "slowlog", "ping", "client", "hello", "command", "select"}

BYSTANDER = r"""
import json, select, sys, time
import redis
client = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]))
client.set("bystander:somekey", "x")
print("ready", flush=True)
samples, tick = [], time.perf_counter()
while True:  # one GET at least, however late this process is scheduled on a loaded machine
    start = time.perf_counter()
    client.get("bystander:somekey")
    samples.append((time.perf_counter() - start) * 1e3)
    if select.select([sys.stdin], [], [], 0)[0] or len(samples) >= 200_000:
        break
    tick += 0.005
    time.sleep(max(0.0, tick - time.perf_counter()))
print(json.dumps(samples), flush=True)
"""


class Bystander:
    """Another process (its own redis-py client) that sends ``GET somekey`` every 5 ms."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", BYSTANDER, str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.proc.stdout.readline()  # "ready"

    def stop(self) -> dict[str, float]:
        out, _ = self.proc.communicate("stop\n", timeout=60)
        samples = json.loads(out.strip().splitlines()[-1])
        p = pct(samples)
        return {"gets": len(samples), "p50_ms": p["p50"], "p99_ms": p["p99"],
                "max_ms": max(samples)}  # fmt: skip


def pct(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {"p50": statistics.median(ordered), "p95": at(0.95), "p99": at(0.99)}


async def command_stats(raw: aioredis.Redis) -> dict[str, tuple[int, int]]:
    """``{command: (calls, usec)}`` from ``INFO commandstats``, lower-case names."""
    info = await raw.info("commandstats")
    return {name.removeprefix("cmdstat_").lower(): (int(v["calls"]), int(v["usec"]))
            for name, v in info.items()}  # fmt: skip


def stats_delta(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], ignore: set[str]
) -> dict[str, dict[str, int]]:
    out = {}
    for name, (calls, usec) in after.items():
        c0, u0 = before.get(name, (0, 0))
        if calls > c0 and name not in ignore and name.split("|")[0] not in ignore:
            out[name] = {"calls": calls - c0, "usec": usec - u0}
    return out


async def slowlog_top_level(raw: aioredis.Redis, ignore: set[str]) -> list[tuple[int, str]]:
    """``(microseconds, command)`` of the top-level calls in the slow log, which is then reset.

    The slow log also holds the commands that a script runs (client ``?:0``, the script
    engine's): they are left out, since the script's own entry includes them.
    """
    entries = await raw.slowlog_get(SLOWLOG_LEN)
    await raw.slowlog_reset()
    out = []
    for entry in entries:
        command = entry["command"]
        command = command.decode(errors="replace") if isinstance(command, bytes) else command
        inner = entry.get("client_address") in (b"?:0", "?:0")
        if not inner and command.split(" ", 1)[0].lower() not in ignore:
            out.append((int(entry["duration"]), command[:60]))
    return out


SLOWLOG_LEN = 512
SCRIPT_COMMANDS = ("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro")


def script_usec(used: dict[str, dict[str, int]]) -> int:
    """Server time in scripts (EVALSHA/FCALL...): each includes the commands it runs."""
    return sum(v["usec"] for k, v in used.items() if k in SCRIPT_COMMANDS)


async def cpu_s(raw: aioredis.Redis) -> float:
    """The server's main-thread CPU seconds (user + system) so far."""
    cpu = await raw.info("cpu")
    if "used_cpu_user_main_thread" in cpu:
        return float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


async def latency_start(raw: aioredis.Redis) -> None:
    """LATENCY monitor from now on: every command of 1 ms or more (whole ms)."""
    await raw.config_set("latency-monitor-threshold", 1)
    await raw.execute_command("LATENCY", "RESET")


async def latency_longest_ms(raw: aioredis.Redis) -> float:
    """The longest command since ``latency_start`` (ms, whole ms; 0: none of 1 ms or more)."""
    latest = await raw.execute_command("LATENCY", "LATEST")
    await raw.config_set("latency-monitor-threshold", 0)
    longest = 0.0
    for event in latest:
        name = event[0].decode() if isinstance(event[0], bytes) else str(event[0])
        if name in ("command", "fast-command"):
            longest = max(longest, float(event[3]))
    return longest


async def timed_load(
    raw: aioredis.Redis, turns: list[tuple[str, dict[str, Any]]], add_chunk: Any
) -> dict[str, Any]:
    """Load in chunks of 200: rate, server CPU per add, time in scripts per add, bytes.

    Server time per add is the server's main-thread CPU time over the load (nothing else runs
    on that server) divided by the adds: it includes reading the requests, which is real cost.
    """
    n = len(turns)
    mem0 = (await raw.info("memory"))["used_memory"]
    before, cpu0 = await command_stats(raw), await cpu_s(raw)
    await latency_start(raw)
    start = time.perf_counter()
    for i in range(0, n, 200):
        await add_chunk(turns[i : i + 200])
    load_s = time.perf_counter() - start
    cpu1 = await cpu_s(raw)
    used = stats_delta(before, await command_stats(raw), SERVER_SIDE_IGNORED)
    longest = await latency_longest_ms(raw)
    mem1 = (await raw.info("memory"))["used_memory"]
    return {
        "load_s": load_s, "adds_per_s": n / load_s,
        "server_us_per_add": (cpu1 - cpu0) * 1e6 / n,
        "script_us_per_add": script_usec(used) / n,
        "longest_add_call_ms": longest,
        "add_commands": used, "bytes_per_memory": (mem1 - mem0) / n,
    }  # fmt: skip


class FallbackCounter:
    """``tta.memory.fallbacks`` through an OpenTelemetry SDK reader, when the SDK is there."""

    reader: Any = None

    @classmethod
    def install(cls) -> None:
        if cls.reader is not None:
            return
        try:
            from opentelemetry import metrics
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        except ImportError:
            return
        cls.reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[cls.reader]))

    @classmethod
    def count(cls) -> int | None:
        if cls.reader is None:
            return None
        data = cls.reader.get_metrics_data()
        total = 0
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == "tta.memory.fallbacks":
                        total += sum(int(p.value) for p in metric.data.data_points)
        return total


async def run_questions(
    call: Any, qs: list[str], users: list[str | None], concurrency: int
) -> list[float]:
    """Client milliseconds per question, ``concurrency`` tasks sharing the list."""
    queue = list(reversed(list(zip(qs, users, strict=True))))
    samples: list[float] = []

    async def worker() -> None:
        while queue:
            q, user = queue.pop()
            start = time.perf_counter()
            await call(q, user)
            samples.append((time.perf_counter() - start) * 1e3)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


async def measure_engine(
    raw: aioredis.Redis, port: int, call: Any, qs: list[str], users: list[str | None],
    after_each: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Three passes over the questions.

    1. One task: client latency, server main-thread CPU and time in scripts (commandstats).
    2. One task, slow log at threshold 0, read and reset after each search: the search's
       top-level calls, their total server time and the longest single call (a separate pass:
       logging every command a script runs would slow the first one down).
    3. Four tasks at once while another process sends ``GET`` every 5 ms.
    """
    ignore = SERVER_SIDE_IGNORED
    before, cpu0 = await command_stats(raw), await cpu_s(raw)
    samples, hits = [], 0
    for q, user in zip(qs, users, strict=True):
        start = time.perf_counter()
        hits += await call(q, user)
        samples.append((time.perf_counter() - start) * 1e3)
        if after_each is not None:
            after_each()
    cpu1 = await cpu_s(raw)
    used = stats_delta(before, await command_stats(raw), ignore)
    p = pct(samples)

    await raw.config_set("slowlog-max-len", SLOWLOG_LEN)
    await raw.config_set("slowlog-log-slower-than", 0)
    await raw.slowlog_reset()
    calls, total_us, longest = 0, 0, (0, "")
    for q, user in zip(qs, users, strict=True):
        await call(q, user)
        if after_each is not None:
            after_each()
        logged = await slowlog_top_level(raw, ignore)
        calls += len(logged)
        total_us += sum(us for us, _ in logged)
        longest = max([longest, *logged])
    await raw.config_set("slowlog-log-slower-than", 10_000)
    await raw.config_set("slowlog-max-len", 128)

    result: dict[str, Any] = {
        "searches": len(qs), "p50_ms": p["p50"], "p95_ms": p["p95"], "p99_ms": p["p99"],
        "mean_hits": hits / len(qs), "server_cpu_ms_per_search": (cpu1 - cpu0) * 1e3 / len(qs),
        "script_ms_per_search": script_usec(used) / 1e3 / len(qs),
        "server_ms_per_search": total_us / 1e3 / len(qs),
        "server_calls_per_search": calls / len(qs),
        "server_commands": used, "longest_server_call_ms": longest[0] / 1e3,
        "longest_server_command": longest[1],
    }  # fmt: skip
    bystander = Bystander(port)
    try:
        concurrent = await run_questions(call, qs, users, 4)
        if after_each is not None:
            after_each()
    finally:
        result["bystander"] = bystander.stop()
    c = pct(concurrent)
    result["concurrent4"] = {"p50_ms": c["p50"], "p99_ms": c["p99"], "searches": len(concurrent)}
    return result


async def bench_redis_questions(
    binary: str, n: int, count: int, redis_timeout: float, redisearch: bool
) -> dict[str, Any]:
    corpus = load_turns(n)
    qs = questions(corpus, count)
    users = [f"u{(i * 37) % corpus.users}" for i in range(len(qs))]
    result: dict[str, Any] = {"memories": n, "corpus": corpus.source, "real_corpus": corpus.real,
                              "corpus_notes": corpus.notes, "questions": len(qs),
                              "redis_timeout_s": redis_timeout}  # fmt: skip
    FallbackCounter.install()
    server = RedisServer(binary).start()
    try:
        raw = aioredis.Redis.from_url(server.url)
        result["server"] = (await raw.info("server"))["redis_version"]
        memory = MemoryPrimitive(server.url, namespace="bench:questions",
                                 redis_timeout=redis_timeout)  # fmt: skip

        async def add_chunk(chunk: list[tuple[str, dict[str, Any]]]) -> None:
            # ``add`` 200 at a time, gathered: the client pipelines them on its connections.
            await asyncio.gather(*(memory.add(k, v) for k, v in chunk))

        ours = await timed_load(raw, corpus.turns, add_chunk)
        fallbacks_before = FallbackCounter.count()
        flips = 0
        # A process's first search loads the replica of the namespace's index: timed apart.
        start = time.perf_counter()
        await memory.search("warm up", limit=10)
        ours["first_search_s"] = time.perf_counter() - start
        text = long_query(corpus, 1_000_000)
        start = time.perf_counter()
        await memory.search(text, limit=10)
        ours["long_query"] = {"bytes": len(text.encode()),
                              "ms": (time.perf_counter() - start) * 1e3}  # fmt: skip

        def check() -> None:
            nonlocal flips
            if not memory.using_redis:
                flips += 1

        for scope_name in ("unscoped", "user"):
            scoped = users if scope_name == "user" else [None] * len(qs)

            async def ask(q: str, user: str | None) -> Any:
                return len(await memory.search(q, limit=10, scope=user))

            ours[scope_name] = await measure_engine(raw, server.port, ask, qs, scoped, check)
        counted = FallbackCounter.count()
        ours["fallbacks"] = (
            counted - fallbacks_before if counted is not None and fallbacks_before is not None
            else None
        )  # fmt: skip
        ours["searches_not_on_redis"] = flips
        ours["backend_after"] = memory.get_backend_info()["backend"]
        result["ours"] = ours
        await memory.clear()
        await memory.aclose()
        await raw.aclose()
    finally:
        server.stop()
    if redisearch:
        result["redisearch"] = await bench_redisearch(corpus.turns, qs, users)
    return result


REDISEARCH_STOP_WORDS = frozenset(
    _words("a is the an and are as at be but by for if in into it no not of on or such that their")
    | _words("then there these they this to was will with")
)


def redisearch_query(question: str, user: str | None) -> str | None:
    """OR of the question's words minus RediSearch's own stop words, which it would ignore
    anyway (RediSearch 2.10 crashes on an OR query that starts with two of them); the other
    common words stay, as the other engines get them. ``@user:{u17}`` for a scope."""
    words = [w for w in query_words(question) if w not in REDISEARCH_STOP_WORDS]
    if not words:
        return None
    text = "(" + "|".join(words) + ")"
    return text if user is None else f"@user:{{{user}}} {text}"


async def bench_redisearch(
    turns: list[tuple[str, dict[str, Any]]], qs: list[str], users: list[str]
) -> dict[str, Any]:
    """The same turns in RediSearch (HASH + FT.CREATE TEXT on content), the same questions."""
    started = start_redis_stack()
    if isinstance(started, str):
        return {"skipped": started}
    server, described = started
    try:
        raw = aioredis.Redis.from_url(server.url)
        await raw.execute_command(
            "FT.CREATE", "idx", "ON", "HASH", "PREFIX", "1", "m:",
            "SCHEMA", "content", "TEXT", "user", "TAG",
        )  # fmt: skip

        async def add_chunk(chunk: list[tuple[str, dict[str, Any]]]) -> None:
            async with raw.pipeline(transaction=False) as pipe:
                for key, value in chunk:
                    fields = {"role": value["role"], "content": value["content"],
                              "user": key.split(":", 1)[0]}  # fmt: skip
                    pipe.hset(f"m:{key}", mapping=fields)
                await pipe.execute()

        out: dict[str, Any] = {"server": described, **await timed_load(raw, turns, add_chunk)}
        for scope_name in ("unscoped", "user"):
            scoped: list[str | None] = list(users) if scope_name == "user" else [None] * len(qs)

            async def ask(q: str, user: str | None) -> Any:
                query = redisearch_query(q, user)
                if query is None:
                    return 0
                found = await raw.execute_command(
                    "FT.SEARCH", "idx", query, "SCORER", "BM25", "RETURN", "1", "content",
                    "LIMIT", "0", "10",
                )  # fmt: skip
                if isinstance(found, dict):  # RESP3
                    return len(found.get(b"results", found.get("results", [])))
                return (len(found) - 1) // 2

            out[scope_name] = await measure_engine(raw, server.port, ask, qs, scoped)
        await raw.aclose()
        return out
    finally:
        server.stop()


def report_questions(q: dict[str, Any]) -> None:
    print(f"\n== questions on Redis: {q['questions']} natural-language questions over "
          f"{q['memories']:,} conversation turns, limit=10 ==")  # fmt: skip
    print(f"corpus: {q['corpus']}; {'; '.join(q['corpus_notes'])}")
    o = q["ours"]
    engines = [("ours", f"redis-server {q['server']}", o)]
    rs = q.get("redisearch")
    if rs and "skipped" not in rs:
        engines.append(("RediSearch", rs["server"], rs))
    for name, server, e in engines:
        scripts = (f", of which in scripts {e['script_us_per_add']:.1f} us"
                   if e["script_us_per_add"] else "")  # fmt: skip
        longest = e["longest_add_call_ms"]
        longest_text = f"{longest:.0f} ms" if longest else "under 1 ms"
        print(f"{name} on {server}: load {e['adds_per_s']:,.0f} adds/s (chunks of 200); server "
              f"time per add {e['server_us_per_add']:.1f} us (main-thread CPU){scripts}; "
              f"longest add call {longest_text} (LATENCY); {e['bytes_per_memory']:,.0f} B per "
              f"memory (used_memory)")  # fmt: skip
    rows = []
    for name, _, e in engines:
        for scope in ("unscoped", "user"):
            s = e[scope]
            rows.append([name, scope, s["mean_hits"], s["p50_ms"], s["p95_ms"], s["p99_ms"],
                         s["server_cpu_ms_per_search"], s["script_ms_per_search"],
                         s["server_ms_per_search"], s["server_calls_per_search"],
                         s["longest_server_call_ms"],
                         s["concurrent4"]["p50_ms"], s["concurrent4"]["p99_ms"],
                         s["bystander"]["p50_ms"], s["bystander"]["p99_ms"],
                         s["bystander"]["max_ms"]])  # fmt: skip
    print("client ms, 1 task: p50/p95/p99; server ms per search: main-thread CPU (INFO cpu), "
          "in scripts (INFO commandstats EVALSHA/FCALL usec),")  # fmt: skip
    print("and the sum of its top-level calls with their number and the longest single call "
          "(SLOWLOG at threshold 0, read after each search);")  # fmt: skip
    print(
        "then 4 tasks at once while another process sends GET every 5 ms: the searches' "
        "p50/p99 and that bystander's GET p50/p99/max, ms:"
    )
    print(table(["engine", "scope", "hits", "p50", "p95", "p99", "CPU/search", "in scripts",
                 "calls ms", "calls", "longest call", "4 tasks p50", "p99", "GET p50",
                 "GET p99", "GET max"], rows))  # fmt: skip
    print(f"ours: first search in a process (loads the replica of {q['memories']:,} memories) "
          f"{o['first_search_s']:.2f} s; one {o['long_query']['bytes']:,}-byte query "
          f"{o['long_query']['ms']:.1f} ms")  # fmt: skip
    fallbacks = "n/a (no OpenTelemetry SDK)" if o["fallbacks"] is None else o["fallbacks"]
    print(f"fallbacks during the run: {fallbacks} (tta.memory.fallbacks); searches after which "
          f"memory.using_redis was False: {o['searches_not_on_redis']}; redis_timeout="
          f"{q['redis_timeout_s']} s")  # fmt: skip
    if rs and "skipped" in rs:
        print(f"RediSearch peer skipped: {rs['skipped']}")
    elif rs:
        print("RediSearch: HASH + FT.CREATE (content TEXT, user TAG), FT.SEARCH of the question's "
              "words OR-ed (its own stop words dropped), SCORER BM25, TIMEOUT 0")  # fmt: skip
    for name, _, e in engines:
        u = e["unscoped"]
        cmds = ", ".join(f"{k} {v['calls']:,}" for k, v in sorted(u["server_commands"].items()))
        print(f"{name}: INFO commandstats calls for {u['searches']} unscoped searches (with the "
              f"commands scripts run): {cmds}")  # fmt: skip


async def run(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    binary = find_redis_server()
    if binary is None:
        raise SystemExit("redis-server is not installed (scripts/test installs it)")
    figures: dict[str, Any] = {}
    if not args.questions_only:
        server = RedisServer(binary).start()
        try:
            calls = await bench_calls(server.url, 500 if quick else 3_000, 2 if quick else 5)
            sizes = [2_000] if quick else [10_000, 100_000]
            search = [await bench_search(server.url, n, quick) for n in sizes]
        finally:
            server.stop()
        # --quick: the stall still outlasts redis_timeout (0.5 s) three times over
        outage = await bench_outage(binary, 500 if quick else 10_000, 1.5 if quick else 3.0)
        figures.update(calls=calls, search=search, outage=outage)
    size = args.question_size
    if size is None:
        size = 2_000 if quick else 100_000
    if size:
        count = args.questions or (20 if quick else 200)
        figures["questions"] = await bench_redis_questions(
            binary, size, count, args.redis_timeout, not args.no_redisearch
        )
    return figures


def main() -> None:
    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--question-size", type=int, default=None,
                            help="turns for the questions section (default 100000; --quick: "
                                 "2000; 0 skips it)")  # fmt: skip
        parser.add_argument(
            "--questions",
            type=int,
            default=None,
            help="how many questions (default 200; --quick: 20)",
        )
        parser.add_argument(
            "--redis-timeout",
            type=float,
            default=1.0,
            help="redis_timeout for the questions (the library's 1 s; a slower search falls back)",
        )
        parser.add_argument(
            "--questions-only",
            action="store_true",
            help="skip the synthetic sections (calls, search, outage)",
        )
        parser.add_argument("--no-redisearch", action="store_true", help="skip the RediSearch peer")

    bench_main(__doc__ or "", run, report, arguments)


if __name__ == "__main__":
    main()
