"""Cross-process freshness of searches on Redis (replica search engine): see
benchmarks/results/freshness.md (how it works, its variants, results). A stress run, not a test.

The promise under test: a write that RETURNED in any process is seen by every search in any other
process that BEGINS after it returned (found after add/rewrite, with its new text; not found
after delete, expiry, forget, clear; an old token of a rewrite never found).

Runs against whatever ``tta_dev_primitives`` is on PYTHONPATH. The orchestrator starts the servers
(tests/redis_server.py of THIS file's tree: test infrastructure only), spawns worker processes
(this file with ``--worker``), injects faults, and aggregates the workers' result files.

Each worker both writes (its own sessions of every user) and checks (searches for tokens that
OTHER processes wrote). Every op is logged twice to the worker's own JSON-lines file: a start
record flushed before the call is issued and an end record after it returns. A checker decides a
verdict only when it is unambiguous: no op that affects the key (a write of it, a forget of its
session or user, a clear) was in flight when the search began or began before it ended, and the
last such op did not overlap another one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"

SENTENCES = [
    "I went hiking with Maria last weekend near the lake",
    "my cat knocked the coffee mug off the desk again",
    "remind me to renew the passport before the trip to Lisbon",
    "the deployment failed because the Redis password was rotated",
    "we decided to use a cluster with three masters for production",
    "can you summarise the meeting notes from Tuesday",
    "I prefer tea over coffee in the afternoon",
    "the budget for the garden project is two thousand euros",
    "our daughter starts school in September",
    "the flight to Tokyo leaves at seven in the morning",
    "please keep the answers short and to the point",
    "the quarterly report is due on Friday",
    "I am allergic to peanuts and shellfish",
    "the new laptop has thirty two gigabytes of memory",
    "we adopted a puppy called Biscuit",
    "the recipe needs fresh basil and parmesan",
]
TTL_MARGIN = 0.25  # seconds either side of an expiry in which no verdict is made


# --------------------------------------------------------------------------------------------
# the shared log
# --------------------------------------------------------------------------------------------


class Op:
    __slots__ = ("id", "key", "kind", "ok", "p", "redis", "scope", "t0", "t1", "tok", "ttl")

    def __init__(self, rec: dict[str, Any]) -> None:
        self.id = rec["id"]
        self.p = rec["p"]
        self.kind = rec["op"]  # add | del | fses | fuser | clear
        self.key = rec.get("key")
        self.scope = rec.get("scope")
        self.tok = rec.get("tok")
        self.ttl = rec.get("ttl")
        self.t0 = rec["t0"]
        self.t1: float | None = None
        self.ok = True
        self.redis = True


def user_of(key: str) -> str:
    return key.split(":", 1)[0]


def session_of(key: str) -> str:
    return ":".join(key.split(":")[:2])


class Ledger:
    """Every worker's log, read incrementally."""

    def __init__(self, logdir: Path, procs: int) -> None:
        self.files = [logdir / f"log.{p}" for p in range(procs)]
        self.offsets = [0] * procs
        self.bufs = [b""] * procs
        self.ops: dict[str, Op] = {}
        self.by_key: dict[str, list[Op]] = defaultdict(list)
        self.by_scope: dict[str, list[Op]] = defaultdict(list)  # forgets, by scope
        self.clears: list[Op] = []
        self.tok_key: dict[str, str] = {}
        self.keys_of_session: dict[str, set[str]] = defaultdict(set)
        self.done: list[Op] = []  # completed ops in the order seen
        self.inflight: set[str] = set()
        self.recovered: dict[int, list[float]] = defaultdict(list)  # process -> when it was

    def ingest(self) -> None:
        for p, path in enumerate(self.files):
            try:
                with open(path, "rb") as f:
                    f.seek(self.offsets[p])
                    data = f.read()
            except FileNotFoundError:
                continue
            if not data:
                continue
            self.offsets[p] += len(data)
            data = self.bufs[p] + data
            *lines, self.bufs[p] = data.split(b"\n")
            for line in lines:
                if line:
                    self._record(json.loads(line))

    def _record(self, rec: dict[str, Any]) -> None:
        if rec.get("op") == "recovered":  # that process left in-process mode (replayed)
            self.recovered[rec["p"]].append(rec["t0"])
            return
        if "t1" not in rec:  # a start
            op = Op(rec)
            self.ops[op.id] = op
            self.inflight.add(op.id)
            if op.kind in ("add", "del", "touch"):
                self.by_key[op.key].append(op)
                self.keys_of_session[session_of(op.key)].add(op.key)
                if op.kind == "add":
                    self.tok_key[op.tok] = op.key
            elif op.kind in ("fses", "fuser"):
                self.by_scope[op.scope].append(op)
            elif op.kind == "clear":
                self.clears.append(op)
            return
        op = self.ops[rec["id"]]
        op.t1, op.ok, op.redis = rec["t1"], rec["ok"], rec.get("redis", True)
        self.inflight.discard(op.id)
        self.done.append(op)

    def affecting(self, key: str) -> list[Op]:
        return [
            *self.by_key.get(key, ()),
            *self.by_scope.get(session_of(key), ()),
            *self.by_scope.get(user_of(key), ()),
            *self.clears,
        ]

    def token_before(self, key: str, t: float) -> str | None:
        """The token of the last add of ``key`` that completed before ``t``."""
        best = None
        for op in self.by_key.get(key, ()):
            if (op.kind == "add" and op.t1 is not None and op.t1 < t and op.ok
                    and (best is None or op.t1 > best.t1)):  # fmt: skip
                best = op
        return None if best is None else best.tok


def landed(ledger: Ledger, op: Op) -> float | None:
    """When ``op`` reached Redis at the latest: its end, or for a write journalled in an
    outage the end of its writer's replay after it (None: not yet). A search that began
    before then may read the index before the write and its value after it."""
    if op.t1 is None or op.redis:
        return op.t1
    return next((t for t in ledger.recovered.get(op.p, ()) if t > op.t1), None)


def expectation(
    ledger: Ledger, key: str, tok: str, s: float, seen_before: set[str]
) -> tuple[str, bool, Op, float] | None:
    """(kind of the deciding op, expected found?, that op, the earliest time the memory may
    expire: a search for it must end before), or None if ambiguous."""
    ops = ledger.affecting(key)
    done = []
    for op in ops:
        if op.id not in seen_before:
            continue  # started after the search began (or not seen then)
        if op.t1 is None or op.t1 > s:
            return None  # in flight when the search began
        done.append(op)
    if not done:
        return None
    done.sort(key=lambda o: o.t1)
    last = done[-1]
    for op in done[:-1]:
        if op.t1 > last.t0:
            return None  # overlapped the last op: order unknown
    if not last.ok:
        return None
    never = float("inf")
    touch = None
    if last.kind == "touch":  # the add before it says which memory it touched
        if len(done) < 2 or not done[-2].ok or done[-2].kind != "add":
            return None
        if len(done) > 2 and done[-3].t1 > done[-2].t0:
            return None
        touch, last = last, done[-2]
        if last.ttl and touch.t1 >= last.t0 + last.ttl - TTL_MARGIN:
            return None  # it may have expired before the touch
    if last.kind == "add":
        if last.tok != tok:
            return ("rewrite_old", False, touch or last, never)
        if touch is not None:
            if touch.ttl is None:
                return ("touch_persist", True, touch, never)
            if s > touch.t1 + touch.ttl + TTL_MARGIN:
                return ("touch_expired", False, touch, never)
            return ("touch_ttl_live", True, touch, touch.t0 + touch.ttl)
        if last.ttl:
            if s > last.t1 + last.ttl + TTL_MARGIN:
                return ("expired", False, last, never)
            return ("ttl_live", True, last, last.t0 + last.ttl)
        prior = [o for o in ledger.by_key[key] if o.kind == "add" and o is not last]
        return ("rewrite_new" if prior else "add", True, last, never)
    return ({"del": "delete", "fses": "forget_session", "fuser": "forget_user",
             "clear": "clear"}[last.kind], False, last, never)  # fmt: skip


# --------------------------------------------------------------------------------------------
# worker
# --------------------------------------------------------------------------------------------


def b36(n: int, width: int = 6) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    for _ in range(width):
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out


async def worker(args: argparse.Namespace) -> None:
    import logging

    from tta_dev_primitives import MemoryPrimitive

    logging.basicConfig(
        level=logging.WARNING, format=f"%(created).3f p{args.worker} %(name)s %(message)s"
    )
    for name in filter(None, os.environ.get("FRESHNESS_DEBUG", "").split(",")):
        logging.getLogger(name).setLevel(logging.DEBUG)  # e.g. tta_dev_primitives.memory

    p = args.worker
    rnd = random.Random(args.seed * 1000 + p)
    logdir = Path(args.logdir)
    logf = open(logdir / f"log.{p}", "ab", buffering=0)  # noqa: ASYNC230, SIM115 (the worker's log, for its life)
    kwargs: dict[str, Any] = {"namespace": args.namespace, "redis_timeout": args.redis_timeout}
    if args.max_scopes:
        kwargs["max_scopes"] = args.max_scopes
    memory = MemoryPrimitive(args.url, **kwargs)
    ledger = Ledger(logdir, args.procs)
    full = p in args.full_procs  # this process searches unscoped only (the full replica)
    counter = 0
    opn = 0
    live: dict[str, str] = {}  # my keys -> token
    expires: dict[str, float] = {}  # my keys with a TTL -> when (local clock)
    touched: set[str] = set()  # my keys touched since their last add
    turns: Counter[str] = Counter()
    stats: Counter[str] = Counter()
    misses: Counter[str] = Counter()
    samples: list[dict[str, Any]] = []
    all_misses: list[tuple[str, float, float | None]] = []
    lat: dict[str, list[float]] = defaultdict(list)
    last_searched: dict[str, float] = {}
    stop_at = 0.0  # set once the start time is known
    users = [f"u{u}" for u in range(args.users)]
    rr = p * 37  # round-robin position (scopes variant)

    def log(rec: dict[str, Any]) -> None:
        logf.write((json.dumps(rec, separators=(",", ":")) + "\n").encode())

    def new_token() -> str:
        nonlocal counter
        counter += 1
        return f"zq{p}{b36(counter)}7"  # a final digit: no stemming rule applies

    async def run_op(kind: str, call: Any, **fields: Any) -> bool:
        nonlocal opn
        opn += 1
        oid = f"{p}.{opn}"
        log({"id": oid, "p": p, "op": kind, "t0": time.time(), **fields})
        ok = True
        try:
            await call
        except Exception as exc:  # logged: the op's effect is unknown
            ok = False
            stats[f"write_error:{type(exc).__name__}"] += 1
        log({"id": oid, "t1": time.time(), "ok": ok, "redis": memory.using_redis})
        stats[f"write:{kind}"] += 1
        if not memory.using_redis:
            stats["write_while_fallback"] += 1
        return ok

    async def add(key: str, ttl: float | None = None) -> None:
        tok = new_token()
        text = f"{rnd.choice(SENTENCES)} {tok}"
        value = {"role": rnd.choice(["user", "assistant"]), "content": text, "tok_id": tok}
        call = memory.add(key, value, ttl=ttl) if ttl else memory.add(key, value)
        if await run_op("add", call, key=key, tok=tok, ttl=ttl):
            live[key] = tok
            touched.discard(key)
            if ttl:
                expires[key] = time.time() + ttl
            else:
                expires.pop(key, None)

    def my_session(user: str) -> str:
        return f"{user}:s{p}x{rnd.randrange(args.sessions)}"

    def forget_local(prefix: str) -> None:
        for k in [k for k in live if k.startswith(prefix)]:
            live.pop(k)
            expires.pop(k, None)

    async def write_once() -> None:
        user = rnd.choice(users)
        r = rnd.random()
        now = time.time()
        mine = [k for k in live if k.startswith(user + ":") and expires.get(k, 1e18) > now]
        ttl = rnd.uniform(1.5, 3.0) if rnd.random() < args.ttl_share else None
        if r < 0.5 or r >= 0.94 or not mine or (args.no_forget and r >= 0.90):
            ses = my_session(user)
            turns[ses] += 1
            await add(f"{ses}:{turns[ses]:05d}", ttl)
        elif r < 0.72:
            await add(rnd.choice(mine), ttl)  # rewrite: a new token, the old must vanish
        elif r < 0.75:
            fresh = [k for k in mine if k not in touched and expires.get(k, 1e18) > now + 1.0]
            if fresh:
                key = rnd.choice(fresh)
                # a TTL memory made permanent, or a permanent one given a TTL
                new_ttl = None if key in expires else rnd.uniform(1.5, 3.0)
                if await run_op("touch", memory.touch(key, new_ttl), key=key, tok=live[key],
                                ttl=new_ttl):  # fmt: skip
                    touched.add(key)
                    if new_ttl is None:
                        expires.pop(key, None)
                    else:
                        expires[key] = time.time() + new_ttl
        elif r < 0.90:
            key = rnd.choice(mine)
            if await run_op("del", memory.delete(key), key=key, tok=live[key]):
                live.pop(key, None)
                expires.pop(key, None)
        elif r < 0.90 + args.forget_user_share:
            if await run_op("fuser", memory.forget(user), scope=user):
                forget_local(user + ":")
        else:
            ses = session_of(rnd.choice(mine))
            if await run_op("fses", memory.forget(ses), scope=ses):
                forget_local(ses + ":")

    def pick() -> tuple[str, str] | None:
        """(key, token) to search for, preferring other processes' recent ops."""
        nonlocal rr
        done = ledger.done
        if not done:
            return None
        now = time.time()
        if args.round_robin:
            for _ in range(args.users):
                user = users[rr % len(users)]
                rr += 1
                for op in reversed(done[-3000:]):
                    if op.key and user_of(op.key) == user and op.p != p:
                        return target_of(op)
            return None
        recent = done[-400:]
        if args.idle:  # prefer users this process has not searched for 5 s or more
            idle = [o for o in recent if o.p != p and (o.key or o.scope)
                    and now - last_searched.get(user_of(o.key or o.scope), -1e9)
                    >= 5.0]  # fmt: skip
            if idle and rnd.random() < 0.8:
                return target_of(rnd.choice(idle))
        if rnd.random() < 0.15:
            return target_of(rnd.choice(done[-3000:]))
        if rnd.random() < 0.7:
            others = [o for o in recent[-60:] if o.p != p]
            if others:
                return target_of(rnd.choice(others))
        return target_of(rnd.choice(done))

    def target_of(op: Op) -> tuple[str, str] | None:
        if op.kind in ("add", "del", "touch"):
            return op.key, op.tok
        keys: list[str] = []
        if op.kind == "clear":
            keys = list(rnd.sample(list(ledger.by_key), min(5, len(ledger.by_key))))
        else:
            if op.kind == "fses":
                keys = list(ledger.keys_of_session.get(op.scope, ()))
            else:
                keys = [k for s, ks in ledger.keys_of_session.items()
                        if user_of(s) == op.scope for k in ks]  # fmt: skip
        rnd.shuffle(keys)
        for key in keys[:5]:
            tok = ledger.token_before(key, op.t0)
            if tok:
                return key, tok
        return None

    async def check_once() -> None:
        ledger.ingest()
        target = pick()
        if target is None:
            await asyncio.sleep(0.01)
            return
        key, tok = target
        user = user_of(key)
        if full:
            scope, how = None, "unscoped"
        elif rnd.random() < 0.3:
            scope, how = session_of(key), "session"
        else:
            scope, how = user, "user"
        query = f"What did I say about {tok}?" if rnd.random() < 0.3 else tok
        seen_before = set(ledger.ops)
        redis_before = memory.using_redis
        s = time.time()
        try:
            items = await memory.search_items(query, limit=5, scope=scope)
        except Exception as exc:
            stats[f"search_error:{type(exc).__name__}"] += 1
            return
        e = time.time()
        last_searched[user] = e
        lat[how].append(e - s)
        stats[f"search:{how}"] += 1
        hits = [v for _, v in items]
        found = any(h.get("tok_id") == tok for h in hits)
        ledger.ingest()
        # A hit whose value does not hold the searched token: the index held terms the memory
        # no longer has (unless a write of that key ran during the search).
        for hkey, h in items:
            if h.get("tok_id") == tok or tok in str(h.get("content", "")):
                continue
            racing = any(
                op.id not in seen_before or (at := landed(ledger, op)) is None or at > s
                for op in ledger.affecting(hkey)
            )
            stats["stale_hit_racing" if racing else "stale_hit"] += 1
            if not racing:
                label = f"stale_hit:{how}"
                misses[label] += 1
                all_misses.append((label, s, None))
                if len(samples) < 40:
                    samples.append({"label": label, "key": hkey, "tok": tok, "query": query,
                                    "scope": scope, "search_start": s, "search_end": e,
                                    "op_t0": 0, "op_t1": 0, "hit": h})  # fmt: skip
        # any op affecting the key that started after the snapshot makes this ambiguous
        for op in ledger.affecting(key):
            if op.id not in seen_before and op.t0 < e:
                stats["verdict:skipped_concurrent"] += 1
                return
        exp = expectation(ledger, key, tok, s, seen_before)
        if exp is None:
            stats["verdict:skipped_ambiguous"] += 1
            return
        kind, want, op, expiry = exp
        if want and e >= expiry - TTL_MARGIN:
            stats["verdict:skipped_ttl_edge"] += 1
            return
        stats[f"verdict:{kind}"] += 1
        replayed = not op.redis and (at := landed(ledger, op)) is not None and at < s
        if replayed and redis_before and memory.using_redis:
            stats["verdict_of_a_replayed_write"] += 1
        if found == want:
            return
        label = f"{'missing' if want else 'found'}:{kind}:{how}"
        if not (redis_before and memory.using_redis):
            label = "fallback:" + label  # this search was served in-process
        elif not op.redis:  # the write was journalled: judged once its writer had replayed
            label = ("replayed:" if replayed else "fallback:") + label
        misses[label] += 1
        if len(all_misses) < 5000:
            all_misses.append((label, s, op.t1))
        # does a retry see it? (late vs never)
        await asyncio.sleep(0.5)
        try:
            again = await memory.search(query, limit=5, scope=scope)  # (a retry)
            found2 = any(h.get("tok_id") == tok for h in again)
        except Exception as exc:
            found2 = repr(exc)
        if len(samples) < 40:
            samples.append({
                "label": label, "key": key, "tok": tok, "query": query, "scope": scope,
                "search_start": s, "search_end": e, "op": op.kind, "op_id": op.id,
                "op_t0": op.t0, "op_t1": op.t1, "since_op_end": round(s - (op.t1 or 0), 4),
                "hits": [h.get("tok_id") for h in hits], "retry_after_0.5s_found": found2,
            })  # fmt: skip

    class Recovered(logging.Handler):
        """Logs when this process's recovery has replayed its journal (the library's own
        "memory backend recovered" warning, emitted once the last batch landed). Not
        ``using_redis``: that turns True as the last batch is SENT, before Redis has it."""

        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("memory backend recovered"):
                log({"id": f"{p}.rec", "p": p, "op": "recovered", "t0": time.time()})

    logging.getLogger("tta_dev_primitives.memory").addHandler(Recovered())

    async def writer_loop() -> None:
        while time.time() < stop_at:
            await write_once()
            await asyncio.sleep(rnd.uniform(0, args.write_pause))

    async def checker_loop() -> None:
        next_pause = time.time() + rnd.uniform(10, 20)
        while time.time() < stop_at:
            if args.idle and time.time() > next_pause:
                await asyncio.sleep(6.0)  # the whole process idle while others write
                next_pause = time.time() + rnd.uniform(10, 20)
            await check_once()
            await asyncio.sleep(rnd.uniform(0, args.check_pause))

    async def clear_loop() -> None:
        while time.time() < stop_at - 5:
            await asyncio.sleep(rnd.uniform(10, 20))
            if await run_op("clear", memory.clear(), scope=""):
                live.clear()
                expires.clear()

    # preload: one memory in each of my sessions of every user, so each user spreads over many
    # partitions before the run begins
    sem = asyncio.Semaphore(16)

    async def pre(key: str) -> None:
        async with sem:
            await add(key)

    keys = [f"{u}:s{p}x{j}:{0:05d}" for u in users for j in range(args.sessions)]
    await asyncio.gather(*(pre(k) for k in keys))
    for k in keys:
        turns[session_of(k)] = 0
    stats.clear()  # the preload is not counted
    stats["preload_writes"] = len(keys)
    log_ready = logdir / f"ready.{p}"
    log_ready.write_text("1")
    while args.start_at == float("inf"):  # noqa: ASYNC110 (the orchestrator's file, polled)
        await asyncio.sleep(0.05)
    stop_at = args.start_at + args.duration
    while time.time() < args.start_at:  # noqa: ASYNC110 (a start time, polled)
        await asyncio.sleep(0.05)
    tasks = [writer_loop(), *(checker_loop() for _ in range(args.checkers))]
    if args.clear and p == 0:
        tasks.append(clear_loop())
    await asyncio.gather(*tasks)
    info = {}
    try:
        backend = memory.get_backend_info()
        info = {k: backend[k] for k in ("journal_dropped", "evicted") if k in backend}
    except Exception:
        pass
    try:
        await memory.flush()
        await memory.aclose()
    except Exception as exc:
        stats[f"close_error:{type(exc).__name__}"] += 1
    (logdir / f"result.{p}.json").write_text(json.dumps({
        "p": p, "full": full, "stats": stats, "misses": misses, "samples": samples,
        "all_misses": all_misses,
        "lat": lat, "info": info,
    }, default=str))  # fmt: skip


# --------------------------------------------------------------------------------------------
# orchestrator
# --------------------------------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


class Faults(threading.Thread):
    """Injects one kind of fault into a cluster every so often; records the windows."""

    def __init__(self, kind: str, cluster: Any, stop_at: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.kind, self.cluster, self.stop_at = kind, cluster, stop_at
        self.rnd = random.Random(seed)
        self.windows: list[tuple[float, float, str]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        try:
            getattr(self, self.kind)()
        except Exception as exc:
            self.errors.append(repr(exc))

    def failover(self) -> None:
        time.sleep(8)
        while time.time() < self.stop_at - 25:
            masters = [n for n in self.cluster.master_nodes() if n is not self.cluster.nodes[0]]
            victim = self.rnd.choice(masters)
            t0 = time.time()
            victim.kill()
            self.cluster.wait_failover(victim, 30)
            t1 = time.time()
            victim.start()  # comes back as a replica of the promoted one
            self.cluster.wait_ok(30)
            self.cluster.wait_replicas_in_sync(60)
            self.windows.append((t0, t1 + 2.0, f"kill -9 :{victim.port}"))
            time.sleep(self.rnd.uniform(8, 12))

    def clientkill(self) -> None:
        import redis

        while time.time() < self.stop_at - 2:
            time.sleep(self.rnd.uniform(2, 4))
            t0 = time.time()
            for node in self.cluster.master_nodes():
                with redis.Redis(port=node.port) as c:
                    c.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            self.windows.append((t0, time.time() + 1.0, "CLIENT KILL TYPE normal"))

    def reshard(self) -> None:
        import redis

        time.sleep(5)
        while time.time() < self.stop_at - 5:
            masters = self.cluster.master_nodes()
            # a slot holding data (a partition's keys) of the namespace
            src = self.rnd.choice(masters)
            with redis.Redis(port=src.port) as c:
                keys = [k for k in c.scan_iter(count=1000) if b"freshness" in k][:200]
                if not keys:
                    time.sleep(1)
                    continue
                slot = c.execute_command("CLUSTER", "KEYSLOT", self.rnd.choice(keys))
            dst = self.rnd.choice([m for m in masters if m.port != src.port])
            t0 = time.time()
            self.cluster.move_slot(int(slot), dst)
            self.windows.append((t0, time.time() + 1.0, f"slot {slot} -> :{dst.port}"))
            time.sleep(self.rnd.uniform(3, 6))


def orchestrate(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(TESTS))
    from redis_server import LocalCluster, RedisServer, find_redis_server

    binary = find_redis_server()
    assert binary, "no redis-server"
    run_dir = Path(args.dir) / f"run-{int(time.time())}-{os.getpid()}"
    run_dir.mkdir(parents=True)
    replicas = 1 if args.fault == "failover" else args.replicas
    if args.server == "plain":
        server: Any = RedisServer(binary)
        server.dir = run_dir / "plain"
        server.dir.mkdir()
        server.start()
        url, stop = server.url, server.stop
        cluster = None
    else:
        cluster = LocalCluster(binary, masters=3, replicas=replicas)
        for i, node in enumerate(cluster.nodes):
            node.appendonly = args.aof
            os.rmdir(node.dir)  # keep every server's files under the run's directory
            node.dir = run_dir / f"node{i}"
            node.dir.mkdir()
            extra = list(node.extra)
            extra[extra.index("--cluster-config-file") + 1] = str(node.dir / "nodes.conf")
            node.extra = tuple(extra)
        cluster.start()
        url, stop = cluster.url, cluster.stop
    namespace = f"freshness:{os.getpid()}"
    procs = args.procs
    full_procs = list(range(procs - args.full, procs))
    start_at = time.time() + 3600  # set once every worker has preloaded
    env = dict(os.environ)
    workers = []
    t_setup = time.time()
    start_file = run_dir / "start_at"
    try:
        for p in range(procs):
            cmd = [
                sys.executable, "-W", "ignore", str(Path(__file__).resolve()), "--worker", str(p),
                "--url", url, "--namespace", namespace, "--logdir", str(run_dir),
                "--procs", str(procs), "--users", str(args.users), "--sessions",
                str(args.sessions), "--duration", str(args.duration), "--seed", str(args.seed),
                "--start-file", str(start_file), "--full-procs", ",".join(map(str, full_procs)),
                "--ttl-share", str(args.ttl_share), "--checkers", str(args.checkers),
                "--write-pause", str(args.write_pause), "--check-pause", str(args.check_pause),
                "--forget-user-share", str(args.forget_user_share),
                "--max-scopes", str(args.max_scopes), "--redis-timeout", str(args.redis_timeout),
            ]  # fmt: skip
            for flag in ("idle", "round_robin", "clear", "no_forget"):
                if getattr(args, flag):
                    cmd.append("--" + flag.replace("_", "-"))
            penv = dict(env)
            if os.environ.get("OLD_SRC") and p % 2 == 1:  # mixed versions: odd workers, old tree
                penv["PYTHONPATH"] = os.environ["OLD_SRC"]
            err = open(run_dir / f"err.{p}", "w")  # noqa: SIM115 (the worker's, for its life)
            workers.append(subprocess.Popen(cmd, env=penv, stderr=err))
        while not all((run_dir / f"ready.{p}").exists() for p in range(procs)):
            if any(w.poll() not in (None, 0) for w in workers):
                raise RuntimeError("a worker died during preload: see " + str(run_dir))
            if time.time() - t_setup > 300:
                raise RuntimeError("preload took over 300 s")
            time.sleep(0.2)
        start_at = time.time() + 0.5
        start_file.write_text(repr(start_at))
        faults = None
        if args.fault != "none":
            assert cluster is not None, "faults need the cluster"
            faults = Faults(args.fault, cluster, start_at + args.duration, args.seed)
            faults.start()
        for w in workers:
            try:
                w.wait(timeout=args.duration + 240)
            except subprocess.TimeoutExpired:
                w.kill()
        if faults is not None:
            faults.join(timeout=60)
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGKILL)
        nodes = [server] if cluster is None else cluster.nodes
        for i, node in enumerate(nodes):  # the servers' logs outlive their directories
            log = node.dir / "redis.log"
            if log.exists():
                (run_dir / f"redis.{i}.{node.port}.log").write_bytes(log.read_bytes())
        stop()
    windows = faults.windows if faults else []

    def in_window(t: float) -> bool:
        return any(a - 0.5 <= t <= b for a, b, _ in windows)

    stats: Counter[str] = Counter()
    misses: Counter[str] = Counter()
    lat: dict[str, list[float]] = defaultdict(list)
    samples = []
    crashed = []
    for p in range(procs):
        path = run_dir / f"result.{p}.json"
        if not path.exists():
            crashed.append(p)
            continue
        r = json.loads(path.read_text())
        stats.update(r["stats"])
        for s in r["samples"]:
            if in_window(s["search_start"]) or in_window(s["op_t1"] or 0):
                s["label"] = "in_fault_window:" + s["label"]
            samples.append(s)
        for label, t_search, t_op in r["all_misses"]:
            if in_window(t_search) or in_window(t_op or 0):
                label = "in_fault_window:" + label
            misses[label] += 1
        for k, v in r["lat"].items():
            lat[k] += v
    by_window = Counter(k.startswith(("in_fault_window", "fallback")) for k in misses.elements())
    writes = sum(v for k, v in stats.items() if k.startswith("write:"))  # after the preload
    searches = sum(v for k, v in stats.items() if k.startswith("search:"))
    print(f"== {args.server} replicas={replicas} fault={args.fault} procs={procs} "
          f"(unscoped: {full_procs}) users={args.users} sessions/proc={args.sessions} "
          f"idle={args.idle} round_robin={args.round_robin} clear={args.clear} "
          f"duration={args.duration}s dir={run_dir}")  # fmt: skip
    print(
        f"writes {writes}  searches {searches}  misses {sum(misses.values())}"
        f"  (in fault windows or served in-process {by_window[True]}, others {by_window[False]})"
    )
    print("stats:", json.dumps(dict(sorted(stats.items()))))
    print("misses by kind:", json.dumps(dict(sorted(misses.items()))))
    for how in ("user", "session", "unscoped"):
        if lat[how]:
            print(
                f"latency {how}: n={len(lat[how])} p50={1000 * statistics.median(lat[how]):.1f}ms"
                f" p99={1000 * pct(lat[how], 0.99):.1f}ms max={1000 * max(lat[how]):.1f}ms"
            )
    if windows:
        print("fault windows:", [(round(a - start_at, 1), round(b - start_at, 1), w)
                                 for a, b, w in windows])  # fmt: skip
    if faults and faults.errors:
        print("fault injector errors:", faults.errors)
    if crashed:
        print("WORKERS WITHOUT RESULT:", crashed, "see", run_dir)
    for s in samples[:12]:
        s = dict(s, search_start=round(s["search_start"] - start_at, 3),
                 search_end=round(s["search_end"] - start_at, 3),
                 op_t0=round(s["op_t0"] - start_at, 3),
                 op_t1=round((s["op_t1"] or 0) - start_at, 3))  # fmt: skip
        print("  miss:", json.dumps(s))
    (run_dir / "summary.json").write_text(json.dumps({
        "stats": stats, "misses": misses, "samples": samples, "windows": windows}))  # fmt: skip
    return 1 if by_window[False] or crashed else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", choices=("cluster", "plain"), default="cluster")
    ap.add_argument("--replicas", type=int, default=0, help="replicas per master (cluster)")
    ap.add_argument("--aof", action="store_true", help="AOF (appendfsync always) on the nodes")
    ap.add_argument("--fault", choices=("none", "failover", "clientkill", "reshard"),
                    default="none")  # fmt: skip
    ap.add_argument("--procs", type=int, default=6)
    ap.add_argument(
        "--full",
        type=int,
        default=1,
        help="how many of the processes search unscoped (whole-namespace replica)",
    )
    ap.add_argument("--users", type=int, default=150)
    ap.add_argument("--sessions", type=int, default=2, help="sessions per user per process")
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--checkers", type=int, default=2, help="checker tasks per process")
    ap.add_argument("--write-pause", type=float, default=0.02)
    ap.add_argument("--check-pause", type=float, default=0.005)
    ap.add_argument("--ttl-share", type=float, default=0.1)
    ap.add_argument("--forget-user-share", type=float, default=0.005)
    ap.add_argument("--no-forget", action="store_true", help="no forget() calls (A/B)")
    ap.add_argument("--idle", action="store_true", help="idle-gap variant")
    ap.add_argument(
        "--round-robin",
        action="store_true",
        help="checkers walk the users in turn (with --users 300: > MAX_SCOPES)",
    )
    ap.add_argument("--clear", action="store_true", help="process 0 clears every 10-20 s")
    ap.add_argument("--max-scopes", type=int, default=0, help="MemoryPrimitive(max_scopes=)")
    ap.add_argument("--redis-timeout", type=float, default=1.0)
    ap.add_argument("--dir", default=str(Path(tempfile.gettempdir()) / "tta-freshness"))
    # worker side
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--namespace", help=argparse.SUPPRESS)
    ap.add_argument("--logdir", help=argparse.SUPPRESS)
    ap.add_argument("--start-file", help=argparse.SUPPRESS)
    ap.add_argument("--full-procs", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is None:
        sys.exit(orchestrate(args))
    args.full_procs = [int(x) for x in args.full_procs.split(",") if x]

    async def go() -> None:
        # the start time is written once every worker has preloaded
        args.start_at = float("inf")
        task = asyncio.ensure_future(worker(args))
        while args.start_at == float("inf") and not task.done():
            try:
                args.start_at = float(Path(args.start_file).read_text())  # noqa: ASYNC240
            except (FileNotFoundError, ValueError):
                await asyncio.sleep(0.1)
        await task

    asyncio.run(go())


if __name__ == "__main__":
    main()
