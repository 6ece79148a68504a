"""Semantic search at 100k and 1M vectors (384-d): ours in-process and on Redis, and peers.

Run: ``.venv/bin/python benchmarks/bench_vectors.py [--n 100000] [--json PATH]``; ``--quick``
is 3k vectors and 20 questions (the test suite runs it). Peers run in the same process, on the
same vectors and questions:

- vectors: MiniLM (all-MiniLM-L6-v2, offline, ``_embed.py``) embeddings of the first ``--real``
  chitchat turns (``_corpus.py``), cached on disk (``_vectors_data.py``). Past ``--real`` (the
  1M run), copy ``c`` of vector ``i`` is real vector ``i`` plus Gaussian noise of norm ~0.1,
  re-normalised: **synthetic neighbours of real vectors**, said so in the output. Without
  sentence-transformers, random clustered unit vectors (1000 centres plus noise), said so.
- questions: MiniLM embeddings of ``_corpus.questions`` (natural-language questions about the
  turns); the truth is exact top-10 by cosine (a numpy matrix product over all vectors).
- **index**: ``SearchIndex`` directly: fill time, p50/p99, recall@10 vs exact, RSS bytes per
  vector, and the longest single ``add`` or ``search`` while filling (the pause the index
  itself causes an event loop, e.g. at the ANN threshold).
- **memory**: ``MemoryPrimitive(embed=<lookup of the precomputed vectors>)`` in-process,
  ``search_scored(mode="semantic")``: p50/p99, recall@10.
- **redis**: the same on a fresh Debian ``redis-server``: load, then a second
  ``MemoryPrimitive`` (as another process would) whose first search loads its replica (timed,
  with the longest event-loop stall while it does), then p50/p99, server time per search
  (``INFO commandstats`` usec), the longest single server call (``SLOWLOG`` at threshold 0),
  fallbacks (``get_backend_info()["degraded"]`` and ``using_redis`` checked after every
  search), Redis ``used_memory`` delta per vector.
- **redisearch**: RediSearch 2.10 ``FT.CREATE ... VECTOR HNSW`` (FLOAT32, COSINE, defaults
  M=16, EF_CONSTRUCTION=200, EF_RUNTIME=10) on the Redis-Stack-like server of
  ``_redis_stack.py``: index build time, p50/p99 of ``FT.SEARCH KNN 10``, server time,
  ``used_memory`` per vector, recall@10.
- **langgraph**: ``InMemoryStore(index={"dims": 384, "embed": <lookup>})``: p50/p99, recall.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from _timing import bench_main, percentiles, table
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._index import ANN_THRESHOLD, SearchIndex
from tta_dev_primitives.search._indexing import MAX_EMBED_CHARS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

DIM = 384
K = 10
#: RediSearch's query-time candidate list for the second run: our usearch expansion_search.
EF_RUNTIME = 128


def rss() -> int:
    """Resident set size of this process, bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def clustered(n: int, seed: int, centres: Any) -> Any:
    rng = np.random.default_rng(seed)
    x = centres[rng.integers(0, len(centres), n)] + 0.35 * rng.standard_normal((n, DIM))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def perturbed(real: Any, n: int) -> Any:
    """``n`` rows: ``real`` itself, then copies of it with noise of norm ~0.1, re-normalised."""
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    out[: len(real)] = real
    rng = np.random.default_rng(7)
    scale = np.float32(0.1 / np.sqrt(real.shape[1]))
    for start in range(len(real), n, len(real)):
        stop = min(n, start + len(real))
        noise = rng.standard_normal((stop - start, real.shape[1]), dtype=np.float32) * scale
        block = real[: stop - start] + noise
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def dataset(n: int, real_max: int, nq: int, random_only: bool) -> dict[str, Any]:
    """Vectors, texts, question vectors and where they came from."""
    found = None
    if not random_only:
        from _vectors_data import corpus_vectors, question_vectors

        found = corpus_vectors(min(n, real_max))
        asked = question_vectors(min(n, real_max), nq) if found is not None else None
    if found is None or asked is None:
        centres = np.random.default_rng(0).standard_normal((1000, DIM)).astype(np.float32)
        x, q = clustered(n, 1, centres), clustered(nq, 2, centres)
        return {"x": x, "texts": [f"memory {i}" for i in range(n)], "q": q,
                "questions": [f"question {i}" for i in range(nq)],
                "source": "RANDOM clustered unit vectors (1000 centres + noise): "
                          "sentence-transformers or the MiniLM model is not installed"}  # fmt: skip
    real, texts = found
    source = f"MiniLM embeddings of {len(real):,} chitchat turns (real text)"
    x = real
    if n > len(real):
        x = perturbed(real, n)
        texts = texts + [f"{texts[i % len(real)]} #{i // len(real)}"
                         for i in range(len(real), n)]  # fmt: skip
        source += (f"; rows {len(real):,}..{n:,} are those vectors plus Gaussian noise of norm "
                   "~0.1, re-normalised (synthetic neighbours, not real text)")  # fmt: skip
    return {"x": x, "texts": texts, "q": asked[0], "questions": asked[1], "source": source}


def exact_top(x: Any, q: Any, k: int = K) -> list[list[int]]:
    """The exact top-``k`` row numbers of each question by cosine (rows are unit vectors)."""
    out = []
    for qi in q:
        sims = np.empty(len(x), dtype=np.float32)
        for s in range(0, len(x), 200_000):
            np.matmul(x[s : s + 200_000], qi, out=sims[s : s + 200_000])
        top = np.argpartition(-sims, k)[:k]
        out.append(top[np.argsort(-sims[top])].tolist())
    return out


def recall_at(truth: list[list[int]], got: list[list[int]]) -> float:
    return float(np.mean([len(set(t) & set(g)) / len(t) for t, g in zip(truth, got, strict=True)]))


def summary(ms: list[float], truth: list[list[int]], got: list[list[int]]) -> dict[str, Any]:
    p50, p99 = percentiles(ms)
    return {"p50_ms": p50, "p99_ms": p99, "recall10": recall_at(truth, got)}


def row_of(key: str) -> int:
    return int(key.rsplit(":", 1)[1])


def key_of(i: int) -> str:
    return f"u{i % 100}:m:{i}"


# -- ours: the index directly ----------------------------------------------------------------


def bench_index(data: dict[str, Any], truth: list[list[int]], threshold: int) -> dict[str, Any]:
    """Fill a SearchIndex, timing every add and a search every 1000 adds: the longest pause."""
    x, q = data["x"], data["q"]
    gc.collect()
    rss0 = rss()
    index = SearchIndex(ann_threshold=threshold)
    worst_add, worst_add_at, worst_search, worst_search_at = 0.0, 0, 0.0, 0
    probe = Query((), vector=q[0], mode="semantic")
    start = time.perf_counter()
    for i in range(len(x)):
        t0 = time.perf_counter()
        index.add(key_of(i), {}, i, x[i])
        dt = time.perf_counter() - t0
        if dt > worst_add:
            worst_add, worst_add_at = dt, i + 1
        if (i + 1) % 1000 == 0:
            t0 = time.perf_counter()
            index.search(probe, K)
            dt = time.perf_counter() - t0
            if dt > worst_search:
                worst_search, worst_search_at = dt, i + 1
    fill_s = time.perf_counter() - start
    t0 = time.perf_counter()
    index.search(probe, K)  # anything still pending for the graph is done by now
    first_search_ms = (time.perf_counter() - t0) * 1e3
    gc.collect()
    bytes_per_vector = (rss() - rss0) / len(x)
    ms, got = [], []
    for qi in q:
        query = Query((), vector=qi, mode="semantic")
        t0 = time.perf_counter()
        found = index.search(query, K)
        ms.append((time.perf_counter() - t0) * 1e3)
        got.append([row_of(k) for k in found])
    out = summary(ms, truth, got)
    out.update({"fill_s": fill_s, "rss_bytes_per_vector": bytes_per_vector,
                "longest_add_ms": worst_add * 1e3, "longest_add_at": worst_add_at,
                "longest_search_while_filling_ms": worst_search * 1e3,
                "longest_search_at": worst_search_at, "search_after_fill_ms": first_search_ms,
                "ann_threshold": threshold, "graph": index.stats().graph is not None})  # fmt: skip
    del index
    gc.collect()
    return out


# -- ours: MemoryPrimitive, in-process and on Redis ------------------------------------------


def lookup(data: dict[str, Any]) -> Any:
    """An embedding function returning the precomputed vectors of known texts."""
    # MemoryPrimitive embeds at most MAX_EMBED_CHARS of a text: a long turn arrives cut.
    known = {t[:MAX_EMBED_CHARS]: i for i, t in enumerate(data["texts"])}
    known.update({t: i for i, t in enumerate(data["texts"])})
    qknown = {t: i for i, t in enumerate(data["questions"])}
    x, q = data["x"], data["q"]

    def embed(texts: list[str]) -> Any:
        return np.stack([x[known[t]] if t in known else q[qknown[t]] for t in texts])

    return embed


async def fill_memory(memory: MemoryPrimitive, data: dict[str, Any]) -> float:
    start = time.perf_counter()
    texts = data["texts"]
    for s in range(0, len(texts), 200):
        await asyncio.gather(*(memory.add(key_of(i), {"content": texts[i]})
                               for i in range(s, min(len(texts), s + 200))))  # fmt: skip
    return time.perf_counter() - start


async def ask_all(memory: MemoryPrimitive, data: dict[str, Any], check: Any = None
                  ) -> tuple[list[float], list[list[int]]]:  # fmt: skip
    ms, got = [], []
    await memory.search_scored(data["questions"][0], K, mode="semantic")  # warm up
    for question in data["questions"]:
        t0 = time.perf_counter()
        found = await memory.search_scored(question, K, mode="semantic")
        ms.append((time.perf_counter() - t0) * 1e3)
        got.append([row_of(hit.key) for hit in found])
        if check is not None:
            check()
    return ms, got


async def bench_memory(data: dict[str, Any], truth: list[list[int]]) -> dict[str, Any]:
    n = len(data["x"])
    memory = MemoryPrimitive(max_size=n, embed=lookup(data), dims=DIM)
    fill_s = await fill_memory(memory, data)
    ms, got = await ask_all(memory, data)
    await memory.aclose()
    return {**summary(ms, truth, got), "fill_s": fill_s}


class Stalls:
    """The longest gap between 1 ms ticks of the event loop: how long something blocked it."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    def __enter__(self) -> Stalls:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def bench_redis(data: dict[str, Any], truth: list[list[int]], binary: str
                      ) -> dict[str, Any]:  # fmt: skip
    import redis.asyncio as aioredis

    from redis_server import RedisServer

    n = len(data["x"])
    server = RedisServer(binary).start()
    out: dict[str, Any] = {}
    try:
        raw = aioredis.Redis.from_url(server.url)
        out["server"] = (await raw.info("server"))["redis_version"]
        namespace = f"bench:vectors:{uuid.uuid4().hex[:8]}"
        mem0 = (await raw.info("memory"))["used_memory"]
        writer = MemoryPrimitive(server.url, max_size=n, namespace=namespace, redis_timeout=30.0,
                                 embed=lookup(data), dims=DIM)  # fmt: skip
        out["load_s"] = await fill_memory(writer, data)
        out["redis_bytes_per_vector"] = ((await raw.info("memory"))["used_memory"] - mem0) / n
        await writer.aclose()
        # Another process: its first search reads the namespace into its replica.
        memory = MemoryPrimitive(server.url, max_size=n, namespace=namespace, redis_timeout=1.0,
                                 embed=lookup(data), dims=DIM)  # fmt: skip
        with Stalls() as stalls:
            t0 = time.perf_counter()
            await memory.search_scored(data["questions"][0], K, mode="semantic")
            out["replica_load_s"] = time.perf_counter() - t0
        out["replica_load_longest_stall_ms"] = stalls.longest * 1e3
        bad = {"degraded": 0, "not_redis": 0}

        def check() -> None:
            bad["degraded"] += bool(memory.get_backend_info().get("degraded"))
            bad["not_redis"] += not memory.using_redis

        await raw.config_set("slowlog-log-slower-than", 0)
        await raw.config_set("slowlog-max-len", 100_000)
        await raw.slowlog_reset()
        stats0 = await raw.info("commandstats")
        with Stalls() as stalls:
            ms, got = await ask_all(memory, data, check)
        stats1 = await raw.info("commandstats")
        slow = await raw.slowlog_get(100_000)
        await raw.config_set("slowlog-log-slower-than", 10_000)
        usec = sum(int(v["usec"]) - int(stats0.get(k, {}).get("usec", 0))
                   for k, v in stats1.items() if "slowlog" not in k and "config" not in k
                   and "info" not in k)  # fmt: skip
        out.update(summary(ms, truth, got))
        out.update({"server_us_per_search": usec / (len(ms) + 1),
                    "longest_server_call_ms": max((e["duration"] for e in slow
                        if not str(e.get("command", b"")).lower().startswith(("b'slowlog",
                                                                               "b'config"))),
                        default=0) / 1e3,
                    "longest_stall_while_searching_ms": stalls.longest * 1e3,
                    "searches_degraded": bad["degraded"],
                    "searches_not_on_redis": bad["not_redis"],
                    "using_redis_after": memory.using_redis,
                    "degraded_after": bool(memory.get_backend_info().get("degraded"))})  # fmt: skip
        await memory.clear()
        await memory.aclose()
        await raw.aclose()
    finally:
        server.stop()
    return out


# -- peers -----------------------------------------------------------------------------------


async def bench_redisearch(data: dict[str, Any], truth: list[list[int]]) -> dict[str, Any] | str:
    import redis.asyncio as aioredis

    from _redis_stack import start_redis_stack

    started = start_redis_stack()
    if isinstance(started, str):
        return started
    server, described = started
    x, q = data["x"], data["q"]
    out: dict[str, Any] = {"server": described}
    try:
        raw = aioredis.Redis.from_url(server.url)
        mem0 = (await raw.info("memory"))["used_memory"]
        start = time.perf_counter()
        await raw.execute_command(
            "FT.CREATE",
            "vidx",
            "ON",
            "HASH",
            "PREFIX",
            "1",
            "v:",
            "SCHEMA",
            "vec",
            "VECTOR",
            "HNSW",
            "6",
            "TYPE",
            "FLOAT32",
            "DIM",
            str(DIM),
            "DISTANCE_METRIC",
            "COSINE",
        )
        for s in range(0, len(x), 1000):
            pipe = raw.pipeline(transaction=False)
            for i in range(s, min(len(x), s + 1000)):
                pipe.hset(f"v:{i}", "vec", x[i].tobytes())
            await pipe.execute()
        while True:  # HNSW inserts run in the background: wait for the index to be complete
            info = await raw.execute_command("FT.INFO", "vidx")
            if not isinstance(info, dict):
                info = dict(zip(info[::2], info[1::2], strict=False))
            fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in info.items()}
            if int(fields.get("indexing", 0)) == 0 and float(fields.get("percent_indexed", 1)) >= 1:
                break
            await asyncio.sleep(0.05)
        out["build_s"] = time.perf_counter() - start
        out["redis_bytes_per_vector"] = ((await raw.info("memory"))["used_memory"] - mem0) / len(x)
        for ef in (None, EF_RUNTIME):  # RediSearch's default EF_RUNTIME (10), then ours
            out["default" if ef is None else f"ef{ef}"] = await redisearch_queries(
                raw, q, truth, ef
            )
        await raw.aclose()
    finally:
        server.stop()
    return out


async def redisearch_queries(raw: Any, q: Any, truth: list[list[int]], ef: int | None
                             ) -> dict[str, Any]:  # fmt: skip
    """``FT.SEARCH KNN`` for each question: latency, server time, longest call, recall."""
    knn = f"*=>[KNN {K} @vec $B]" if ef is None else f"*=>[KNN {K} @vec $B EF_RUNTIME {ef}]"
    await raw.config_set("slowlog-log-slower-than", 0)
    await raw.config_set("slowlog-max-len", 100_000)
    await raw.slowlog_reset()
    stats0 = await raw.info("commandstats")
    ms, got = [], []
    for qi in q:
        t0 = time.perf_counter()
        reply = await raw.execute_command("FT.SEARCH", "vidx", knn, "PARAMS", "2", "B",
                                          qi.tobytes(), "NOCONTENT", "LIMIT", "0", str(K),
                                          "DIALECT", "2")  # fmt: skip
        ms.append((time.perf_counter() - t0) * 1e3)
        if isinstance(reply, dict):  # RESP3
            results = reply.get(b"results", reply.get("results", []))
            ids = [r.get(b"id", r.get("id")) for r in results]
        else:
            ids = reply[1:]
        got.append([int((k.decode() if isinstance(k, bytes) else k).split(":")[1])
                    for k in ids])  # fmt: skip
    stats1 = await raw.info("commandstats")
    slow = await raw.slowlog_get(100_000)
    await raw.config_set("slowlog-log-slower-than", 10_000)
    key = "cmdstat_FT.SEARCH" if "cmdstat_FT.SEARCH" in stats1 else "cmdstat_ft.search"
    usec = int(stats1[key]["usec"]) - int(stats0.get(key, {}).get("usec", 0))
    out = summary(ms, truth, got)
    out["server_us_per_search"] = usec / len(q)
    out["longest_server_call_ms"] = (
        max((e["duration"] for e in slow if "FT.SEARCH" in str(e["command"]).upper()), default=0)
        / 1e3
    )
    return out


async def bench_langgraph(data: dict[str, Any], truth: list[list[int]], nq: int
                          ) -> dict[str, Any] | str:  # fmt: skip
    try:
        from langgraph.store.memory import InMemoryStore
    except ImportError:
        return "langgraph is not installed (pip install -e '.[langgraph]')"
    embed = lookup(data)
    x = data["x"]

    def embed_lists(texts: list[str]) -> list[list[float]]:
        # Stored texts are "#{row} {text}" (the store would otherwise merge repeated texts).
        return [x[int(t[1:].split(" ", 1)[0])].tolist() if t.startswith("#")
                else embed([t])[0].tolist() for t in texts]  # fmt: skip

    store = InMemoryStore(index={"dims": DIM, "embed": embed_lists, "fields": ["content"]})
    texts = data["texts"]
    start = time.perf_counter()
    for s in range(0, len(texts), 1000):
        await store.abatch([
            __import__("langgraph.store.base", fromlist=["PutOp"]).PutOp(
                ("m",), str(i), {"content": f"#{i} {texts[i]}"})
            for i in range(s, min(len(texts), s + 1000))])  # fmt: skip
    fill_s = time.perf_counter() - start
    ms, got = [], []
    for question in data["questions"][:nq]:
        t0 = time.perf_counter()
        found = await store.asearch(("m",), query=question, limit=K)
        ms.append((time.perf_counter() - t0) * 1e3)
        got.append([int(item.key) for item in found])
    return {**summary(ms, truth[:nq], got), "fill_s": fill_s, "questions": nq}


# -- the run ---------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    n = 3_000 if args.quick else args.n
    nq = 20 if args.quick else args.queries
    data = dataset(n, args.real, nq, args.random)
    t0 = time.perf_counter()
    truth = exact_top(data["x"], data["q"])
    figures: dict[str, Any] = {"n": n, "dims": DIM, "questions": nq, "source": data["source"],
                               "exact_truth_s": time.perf_counter() - t0, "notes": []}  # fmt: skip
    threshold = min(ANN_THRESHOLD, 1000) if args.quick else ANN_THRESHOLD
    figures["index"] = bench_index(data, truth, threshold)
    parts = set(args.only.split(",")) if args.only else {"memory", "redis", "redisearch",
                                                          "langgraph"}  # fmt: skip
    if "memory" in parts:
        figures["memory"] = await bench_memory(data, truth)
    binary = shutil.which("redis-server") or os.environ.get("REDIS_SERVER")
    if "redis" in parts:
        if binary is None:
            figures["notes"].append("skipped redis: no redis-server on PATH")
        else:
            figures["redis"] = await bench_redis(data, truth, binary)
    if "redisearch" in parts:
        found = await bench_redisearch(data, truth)
        if isinstance(found, str):
            figures["notes"].append(f"skipped redisearch: {found}")
        else:
            figures["redisearch"] = found
    if "langgraph" in parts and n <= args.langgraph_max:
        found = await bench_langgraph(data, truth, min(nq, args.langgraph_queries))
        if isinstance(found, str):
            figures["notes"].append(f"skipped langgraph: {found}")
        else:
            figures["langgraph"] = found
    return figures


def report(figures: dict[str, Any]) -> None:
    print(f"{figures['n']:,} vectors x {figures['dims']} dims, {figures['questions']} questions; "
          f"top-{K}, recall@{K} against exact cosine")  # fmt: skip
    print(f"vectors: {figures['source']}\n")
    rows = []
    ix = figures["index"]
    rows.append(["ours: SearchIndex", ix["p50_ms"], ix["p99_ms"], ix["recall10"],
                 ix["fill_s"], "-", ix["rss_bytes_per_vector"], "-"])  # fmt: skip
    if "memory" in figures:
        m = figures["memory"]
        rows.append(["ours: MemoryPrimitive", m["p50_ms"], m["p99_ms"], m["recall10"],
                     m["fill_s"], "-", "-", "-"])  # fmt: skip
    if "redis" in figures:
        r = figures["redis"]
        rows.append(["ours: on Redis", r["p50_ms"], r["p99_ms"], r["recall10"],
                     r["replica_load_s"], r["server_us_per_search"], "-",
                     r["redis_bytes_per_vector"]])  # fmt: skip
    if "redisearch" in figures:
        r = figures["redisearch"]
        for name, run in (
            ("RediSearch HNSW, EF_RUNTIME 10", r["default"]),
            (f"RediSearch HNSW, EF_RUNTIME {EF_RUNTIME}", r[f"ef{EF_RUNTIME}"]),
        ):
            rows.append(
                [
                    name,
                    run["p50_ms"],
                    run["p99_ms"],
                    run["recall10"],
                    r["build_s"],
                    run["server_us_per_search"],
                    "-",
                    r["redis_bytes_per_vector"],
                ]
            )
    if "langgraph" in figures:
        r = figures["langgraph"]
        rows.append([f"LangGraph InMemoryStore ({r['questions']} q)", r["p50_ms"], r["p99_ms"],
                     r["recall10"], r["fill_s"], "-", "-", "-"])  # fmt: skip
    print(table(["engine", "ms p50", "ms p99", "recall@10", "build/load s", "server us/search",
                 "RSS B/vector", "Redis B/vector"], rows))  # fmt: skip
    print(
        "  (build/load s: fill for in-process; the replica's first load for ours on Redis; "
        "FT.CREATE + HSETs until indexed for RediSearch)"
    )
    print(f"\npauses: longest SearchIndex.add {ix['longest_add_ms']:.1f} ms "
          f"(at {ix['longest_add_at']:,} vectors), longest search while filling "
          f"{ix['longest_search_while_filling_ms']:.1f} ms"
          f" (at {ix['longest_search_at']:,}); ANN threshold {ix['ann_threshold']:,}")  # fmt: skip
    if "redis" in figures:
        r = figures["redis"]
        print(f"redis {r['server']}: load {r['load_s']:.1f} s; replica first load "
              f"{r['replica_load_s']:.2f} s, longest event-loop stall meanwhile "
              f"{r['replica_load_longest_stall_ms']:.1f} ms; while searching "
              f"{r['longest_stall_while_searching_ms']:.1f} ms")  # fmt: skip
        print(f"  longest single server call during searches: {r['longest_server_call_ms']:.2f} ms;"
              f" fallbacks during the run: {r['searches_degraded'] + r['searches_not_on_redis']}"
              f" (degraded after: {r['degraded_after']}, using_redis after: "
              f"{r['using_redis_after']})")  # fmt: skip
    if "redisearch" in figures:
        r = figures["redisearch"]
        print(
            f"redisearch ({r['server']}): longest FT.SEARCH "
            f"{r[f'ef{EF_RUNTIME}']['longest_server_call_ms']:.2f} ms"
        )
    for note in figures["notes"]:
        print(f"note: {note}")
    print("\nvectors done")


def main() -> None:
    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--n", type=int, default=100_000, help="vectors (default 100k)")
        parser.add_argument(
            "--real",
            type=int,
            default=100_000,
            help="real MiniLM vectors at most; the rest are perturbed copies",
        )
        parser.add_argument("--queries", type=int, default=200)
        parser.add_argument("--random", action="store_true", help="random clustered vectors")
        parser.add_argument("--only", help="comma-separated: memory,redis,redisearch,langgraph")
        parser.add_argument(
            "--langgraph-max",
            type=int,
            default=100_000,
            help="largest n at which LangGraph's store runs",
        )
        parser.add_argument("--langgraph-queries", type=int, default=50)

    bench_main(__doc__ or "", main_async, report, arguments)


if __name__ == "__main__":
    main()
