"""Issue 19 on real redis-server processes: a write that returns normally is stored (or
journalled for a replay that can succeed), no read goes back in time, and nothing that is not
an outage is treated as one.

Refusals (ACL, OOM, WRONGTYPE) raise; clock skew cannot swallow writes; stale replays are
reported and their in-process copies dropped; bursts and dead connections do not fall back; an
``allkeys-*`` or ``volatile-*`` eviction policy is warned about. Waits are hang guards, never
timing assertions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from conftest import (
    Factory,
    copies_dropped,
    documented_acl_rules,
    eventually,
    fast_recovery,
    fill_until_refused,
    namespace,
    replayed,
    tcp_relay,
)
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import (
    BackendRefusedError,
    StaleWriteError,
    UnsentWritesError,
)
from tta_dev_primitives.stores import _copies, _versions
from tta_dev_primitives.stores._redis.backend import RedisBackend
from tta_dev_primitives.testing import capture_spans

pytestmark = pytest.mark.redis

# -- item 4: permanent refusals are not outages -------------------------------------------------


async def test_the_documented_acl_runs_the_full_workload_on_database_1(
    redis_server_factory: Factory,
) -> None:
    """Exactly the documented ACL, on database 1: every operation, and a replay after an outage."""
    server = redis_server_factory(extra=("--user", "tta", *documented_acl_rules("tta-secret")))
    url = f"redis://tta:tta-secret@127.0.0.1:{server.port}/1"
    memory = fast_recovery(url, "tta:memory")
    await memory.add("u1:s1:a", {"content": "least privilege"}, ttl=60)
    await memory.add("u1:s1:b", {"content": "privilege two"})
    assert await memory.get("u1:s1:a") == {"content": "least privilege"}
    assert len(await memory.search("privilege", scope="u1:s1")) == 2
    assert await memory.delete("u1:s1:b") is True
    assert await memory.size() == 1
    assert [key async for key, _, _ in memory.items()] == ["u1:s1:a"]
    assert await memory.touch("u1:s1:a", 600) is True
    assert await memory.touch("u1:s1:a", None) is True
    assert [k for k, _ in (await memory.list_memories("u1")).items] == ["u1:s1:a"]
    assert await memory.search("privilege", min_score=0.0) == [{"content": "least privilege"}]
    await memory.add("u2:s1:a", {"content": "another user"})
    assert await memory.forget("u2") == 1
    await memory.clear()
    assert await memory.size() == 0
    assert memory.using_redis
    server.kill()  # an outage: journalled, then replayed as the same user on database 1
    await memory.add("u1:s1:c", {"content": "written during the outage"})
    await memory.delete("u1:s1:a")
    assert memory.get_backend_info()["journal_size"] == 2
    server.start()
    await replayed(memory)
    admin = aioredis.Redis.from_url(f"redis://127.0.0.1:{server.port}/1")
    assert await admin.dbsize() > 0
    await admin.aclose()
    other = MemoryPrimitive(url, namespace="tta:memory")
    assert await other.get("u1:s1:c") == {"content": "written during the outage"}
    assert await other.search("outage") == [{"content": "written during the outage"}]
    await other.aclose()
    assert memory.get_backend_info()["dead_letters"] == 0
    await memory.clear()
    await memory.aclose()


async def test_an_acl_without_one_command_raises_and_journals_nothing(
    redis_server_factory: Factory,
) -> None:
    """A user that may not run TIME (the write scripts use it): add raises; nothing is kept."""
    server = redis_server_factory()
    admin = aioredis.Redis.from_url(server.url)
    await admin.execute_command("ACL", "SETUSER", "notime", "on", ">pw", "~*", "+@all", "-time")
    memory = fast_recovery(f"redis://notime:pw@127.0.0.1:{server.port}/0")
    with pytest.raises(BackendRefusedError, match="permission"):
        await memory.add("u1:s1:k", {"content": "refused"})
    info = memory.get_backend_info()
    assert (info["degraded"], info["journal_size"]) == (False, 0)
    # Nothing kept in-process either: an outage read must not find what Redis never stored.
    with server.stalled():
        assert await memory.get("u1:s1:k") is None
    assert await admin.dbsize() == 0
    await admin.aclose()
    await memory.aclose()


@pytest.mark.parametrize(("suffix", "named"), [("n", ""), ("r", ""), ("x", ""), ("g", "memory:")])
async def test_garbage_in_our_own_keys_raises_and_names_the_key(
    redis_server_factory: Factory, suffix: str, named: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A metadata key of the wrong type: adds raise (not journalled), naming the fix (also in
    a namespace whose name holds "memory", as the default's does: it read as Redis being
    full), and a warning names the key and says calls are refused, not served in-process."""
    server = redis_server_factory()
    ns = named + namespace()
    admin = aioredis.Redis.from_url(server.url)
    name = f"{ns}:{{{ns}#0}}:{suffix}"
    await admin.set(name, "garbage")
    memory = fast_recovery(server.url, namespace=ns)
    with pytest.raises(BackendRefusedError, match="WRONGTYPE") as refused:
        await memory.add("u1:s1:0", {"content": "note 0"})
    assert "holds another type" in str(refused.value)
    assert "full" not in str(refused.value)
    info = memory.get_backend_info()
    assert (info["degraded"], info["journal_size"]) == (False, 0)
    assert await admin.exists(f"{ns}:{{{ns}#0}}:v:u1:s1:0") == 0  # refused before any change
    warnings = [r.getMessage() for r in caplog.records if name in r.getMessage()]
    assert warnings
    assert all("refused" in w and "in-process" not in w for w in warnings)
    await admin.delete(name)  # the operator fixes it: writes work again
    await admin.aclose()
    await memory.add("u1:s1:0", {"content": "note 0"})
    assert await memory.size() == 1
    await memory.clear()
    await memory.aclose()


# -- item 2: OOM is not an outage ----------------------------------------------------------------


async def test_a_full_redis_refuses_adds_while_reads_deletes_and_clears_run(
    redis_server_factory: Factory,
) -> None:
    """Under maxmemory + noeviction: add raises; get, search and size read Redis; delete and
    clear free memory; then adds work again. Nothing is journalled."""
    server = redis_server_factory(extra=("--maxmemory", "4mb", "--maxmemory-policy", "noeviction"))
    memory = fast_recovery(server.url)
    filler = "x" * 2000
    last, error = await fill_until_refused(memory, "u1:s1:")
    assert "full" in str(error)
    info = memory.get_backend_info()
    assert (info["degraded"], info["journal_size"]) == (False, 0)
    assert await memory.get("u1:s1:0") == {"content": "note 0", "pad": filler}
    assert await memory.get(f"u1:s1:{last}") is None  # the refused add left nothing
    assert len(await memory.search("note", limit=3)) == 3
    assert await memory.size() == last
    assert memory.using_redis
    assert await memory.delete("u1:s1:0") is True
    await memory.clear()
    assert await memory.size() == 0
    await memory.add("u1:s1:again", {"content": "room again"})
    assert await memory.get("u1:s1:again") == {"content": "room again"}
    assert memory.get_backend_info()["degraded"] is False
    await memory.clear()
    await memory.aclose()


async def test_aclose_says_how_many_writes_are_unsent(
    redis_server_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """Closed during an outage with 3 journalled writes: UnsentWritesError says 3 (after closing
    everything), the log says it too, and they are counted as dropped (never silently)."""
    server = redis_server_factory()
    memory = fast_recovery(server.url)
    await memory.add("warm", {"v": 0})
    server.kill()
    for i in range(3):
        await memory.add(f"k{i}", {"v": i})
    with pytest.raises(UnsentWritesError, match="3 writes") as caught:
        await memory.aclose()
    assert caught.value.unsent == 3
    remote = memory._store.remote
    assert isinstance(remote, RedisBackend)
    assert remote.connection._loops == {}  # closed before raising: nothing leaks
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("3 writes" in message and "unsent" in message for message in errors)
    assert memory.get_backend_info()["journal_dropped"] == 3


async def test_leaving_async_with_on_an_error_keeps_that_error(
    redis_server_factory: Factory,
) -> None:
    """An exception that ends an ``async with`` during an outage is the one raised; the unsent
    writes are still logged and counted. Leaving it normally raises UnsentWritesError."""
    server = redis_server_factory()
    server.kill()
    memories: list[MemoryPrimitive] = []

    async def session(error: Exception | None) -> None:
        async with fast_recovery(server.url) as memory:
            memories.append(memory)
            await memory.add("k", {"v": 1})
            if error is not None:
                raise error

    with pytest.raises(KeyError, match="boom"):
        await session(KeyError("boom"))
    assert memories[0].get_backend_info()["journal_dropped"] == 1
    with pytest.raises(UnsentWritesError, match="1 write journalled"):
        await session(None)


# -- item 1: clock skew cannot swallow writes ----------------------------------------------------


async def test_a_clock_60s_ahead_neither_swallows_nor_blocks_writes(
    redis_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After writes and a clear from a process 60 s ahead, another process's updates, deletes
    and clear all take effect (before: they returned normally and changed nothing)."""
    ns = namespace()
    real = _versions.wall_ns
    monkeypatch.setattr(_versions, "wall_ns", lambda: real() + 60 * 10**9)
    ahead = MemoryPrimitive(redis_server.url, namespace=ns)
    for i in range(20):
        await ahead.add(f"u1:s1:{i}", {"by": "ahead"})
    await ahead.delete("u1:s1:19")
    monkeypatch.setattr(_versions, "wall_ns", real)  # its clock keeps the versions it issued
    normal = MemoryPrimitive(redis_server.url, namespace=ns)
    for i in range(10):
        await normal.add(f"u1:s1:{i}", {"by": "normal"})
    await normal.delete("u1:s1:10")
    await normal.add("u1:s1:19", {"by": "normal"})
    assert await normal.get("u1:s1:0") == {"by": "normal"}
    assert await normal.get("u1:s1:10") is None
    assert await normal.get("u1:s1:19") == {"by": "normal"}
    assert await normal.size() == 19
    # A clear from the process that is behind removes what the one ahead wrote.
    fresh = MemoryPrimitive(redis_server.url, namespace=ns)
    await ahead.add("u1:s1:late", {"by": "ahead"})
    await fresh.clear()
    assert await normal.size() == 0
    # And a clear from the one ahead does not block the others' writes for 60 s.
    await ahead.clear()
    for i in range(50):
        await fresh.add(f"u2:s1:{i}", {"by": "fresh"})
    assert await normal.size() == 50
    assert normal.get_backend_info()["stale_writes"] == 0  # each was retried and applied
    await normal.clear()
    for memory in (ahead, normal, fresh):
        await memory.aclose()


WRITER = """
import asyncio, json, random, sys, time
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import StaleWriteError
from tta_dev_primitives.stores import _copies, _versions
from tta_dev_primitives.stores._redis.backend import RedisBackend

url, ns, name, skew, seed = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
real = _versions.wall_ns
_versions.wall_ns = lambda: real() + int(skew * 1e9)

async def main():
    memory = MemoryPrimitive(url, namespace=ns, redis_timeout=5.0)
    await memory.size()
    print("ready", flush=True)
    sys.stdin.readline()
    rng = random.Random(seed)
    log = []
    for i in range(300):
        key = f"k{rng.randrange(8)}"
        roll = rng.random()
        op = "clear" if (name == "ahead" and i == 150) else ("delete" if roll < 0.25 else "add")
        value = f"{name}-{i}"
        start = time.monotonic()
        try:
            if op == "add":
                await memory.add(key, {"v": value})
            elif op == "delete":
                await memory.delete(key)
            else:
                await memory.clear()
            ok = True
        except StaleWriteError:
            ok = False
        log.append([start, time.monotonic(), op, key, value, ok])
        if rng.random() < 0.3:
            await asyncio.sleep(0)
    assert not memory.get_backend_info()["degraded"]
    print(json.dumps(log), flush=True)
    await memory.aclose()

asyncio.run(main())
"""


async def test_three_processes_one_60s_ahead_the_last_acknowledged_write_wins(
    redis_server: Any,
) -> None:
    """Three OS processes, one with its clock 60 s ahead, write, delete and clear the same keys
    concurrently: each key ends with a change no other acknowledged change followed."""
    ns = namespace()
    procs = []
    for name, skew, seed in (("ahead", 60.0, "1"), ("p1", 0.0, "2"), ("p2", -0.5, "3")):
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WRITER,
                redis_server.url,
                ns,
                name,
                str(skew),
                seed,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        )
    logs: list[list[Any]] = []
    try:
        async with asyncio.timeout(120):  # hang guard
            for proc in procs:
                assert proc.stdout is not None
                assert (await proc.stdout.readline()).strip() == b"ready"
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(b"go\n")
                await proc.stdin.drain()
            for proc in procs:
                assert proc.stdout is not None
                logs.extend(json.loads(await proc.stdout.readline()))
                assert await proc.wait() == 0
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    reader = MemoryPrimitive(redis_server.url, namespace=ns)
    acked = [entry for entry in logs if entry[5]]
    assert len(acked) > 800  # the few StaleWriteErrors are the only errors allowed
    for k in range(8):
        key = f"k{k}"
        changes = [e for e in acked if e[2] == "clear" or e[3] == key]
        # The last acknowledged changes: those no other change started after they returned.
        last = [e for e in changes if not any(o[0] > e[1] for o in changes)]
        allowed = [None if e[2] != "add" else {"v": e[4]} for e in last]
        assert await reader.get(key) in allowed, (key, last)
    await reader.clear()
    await reader.aclose()


# -- item 5: reads never go back in time --------------------------------------------------------


async def test_a_replayed_stale_write_is_reported_and_never_read_back(
    redis_server_factory: Factory,
) -> None:
    """A's journalled write loses to B's newer one on replay: counted, a memory.stale span
    attribute, and A's outage reads no longer serve it."""
    server = redis_server_factory()
    ns = namespace()
    a = fast_recovery(server.url, ns)
    await a.add("k", {"v": "A1"})
    server.stall()
    await a.add("k", {"v": "A2"})  # times out: journalled
    assert a.get_backend_info()["journal_size"] == 1
    server.resume()
    b = MemoryPrimitive(server.url, namespace=ns)
    await b.add("k", {"v": "B"})  # newer than A's journalled write
    with capture_spans() as spans:
        await replayed(a)
    assert a.get_backend_info()["stale_writes"] == 1
    recover = [s for s in spans if s.name == "memory.recover" and s.attributes]
    assert any(s.attributes.get("memory.stale") is True for s in recover if s.attributes)
    with server.stalled():
        assert await a.get("k") is None  # not A2, which Redis rejected
    await replayed(a)
    assert await a.get("k") == {"v": "B"}
    await b.clear()
    await a.aclose()
    await b.aclose()


async def test_what_another_process_deleted_or_overwrote_is_not_served_in_an_outage(
    redis_server_factory: Factory,
) -> None:
    """B deletes A's memory ("forget my address") and overwrites another; A's search feed sees
    it; in A's next outage neither the deleted nor the old value is served."""
    server = redis_server_factory()
    ns = namespace()
    a = fast_recovery(server.url, ns)
    b = MemoryPrimitive(server.url, namespace=ns)
    await a.add("u1:s1:addr", {"content": "my address is 1 Main Street"})
    await a.add("u1:s1:pet", {"content": "my pet is a cat"})
    assert len(await a.search("")) == 2  # the search replica now follows the feed
    await b.delete("u1:s1:addr")
    await b.add("u1:s1:pet", {"content": "my pet is a dog"})
    assert await a.search("address") == []
    with server.stalled():
        assert await a.get("u1:s1:addr") is None
        assert await a.search("address") == []
        assert await a.get("u1:s1:pet") != {"content": "my pet is a cat"}
    await replayed(a)
    await b.clear()
    await a.aclose()
    await b.aclose()


async def test_an_idle_process_serves_nothing_another_forgot_in_a_later_outage(
    redis_server_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writes a user's memories and searches them, then makes no call (an idle worker, a
    serverless instance between requests); B forgets the user; then Redis stalls. A's copy
    was last checked before the forget, so A served all 20 forgotten memories for the whole
    outage. A copy not checked within ``VOUCHED_FOR`` seconds of the outage is not served."""
    monkeypatch.setattr(_copies, "VOUCHED_FOR", 0.5)  # (3 s as shipped)
    server = redis_server_factory()
    ns = namespace()
    a = fast_recovery(server.url, ns)
    b = MemoryPrimitive(server.url, namespace=ns)
    try:
        for i in range(20):
            await a.add(f"u7:s1:{i}", {"content": f"my home address is {i} Elm Street"})
        assert len(await a.search("address Elm Street", limit=20, scope="u7")) == 20
        await asyncio.sleep(0.8)  # no call (or a frozen process: nothing runs either way)
        assert await b.forget("u7") == 20
        with server.stalled():
            # The outage's first call, a write: journalled, and kept when the copy is dropped.
            await a.add("u7:s2:0", {"content": "a new turn, in the outage"})
            assert a.get_backend_info()["degraded"]
            assert await a.get("u7:s1:3") is None
            assert await a.search("address Elm Street", limit=20, scope="u7") == []
            assert await a.search("new turn", scope="u7") == [
                {"content": "a new turn, in the outage"}
            ]
        await replayed(a)
    finally:
        await b.clear()
        await a.aclose()
        await b.aclose()


@pytest.mark.parametrize("search", ["never", "one user"])
async def test_a_process_that_follows_no_feed_drops_what_others_changed(
    redis_server_factory: Factory, search: str
) -> None:
    """A process whose replica does not cover a key (it never searches, or searches one user)
    still learns, from Redis's versions, that another process deleted or overwrote it: its next
    outage serves neither the deleted memory nor the old value."""
    server = redis_server_factory()
    ns = namespace()
    a = fast_recovery(server.url, ns)
    b = MemoryPrimitive(server.url, namespace=ns)
    await a.add("u1:s1:addr", {"content": "my address is 1 Main Street"})
    await a.add("u1:s1:pet", {"content": "my pet is a cat"})
    await a.add("u1:s1:kept", {"content": "my name is Ann"})
    if search == "one user":
        assert await a.search("name", scope="u2") == []  # a replica of another user only
    await b.delete("u1:s1:addr")
    await b.add("u1:s1:pet", {"content": "my pet is a dog"})
    await copies_dropped(a, "u1:s1:addr", "u1:s1:pet")
    assert a.get_backend_info()["copies_dropped"] == 2
    with server.stalled():
        assert await a.get("u1:s1:addr") is None
        assert await a.search("address") == []
        assert await a.get("u1:s1:pet") != {"content": "my pet is a cat"}
        assert await a.get("u1:s1:kept") == {"content": "my name is Ann"}  # its own, unchanged
    await replayed(a)
    await b.clear()
    await a.aclose()
    await b.aclose()


async def test_the_check_never_drops_what_this_process_is_writing(
    redis_server_factory: Factory,
) -> None:
    """Rewrites racing the background checks (for 2.5 s, several checks) keep this process's
    newest value of every key in its copy: an outage read finds each one."""
    server = redis_server_factory()
    memory = fast_recovery(server.url, max_size=5_000)
    latest: dict[str, int] = {}
    deadline = time.monotonic() + 2.5
    round_ = 0
    while time.monotonic() < deadline:
        round_ += 1
        await asyncio.gather(*(memory.add(f"u{i % 7}:s1:{i}", {"v": round_}) for i in range(300)))
        latest.update({f"u{i % 7}:s1:{i}": round_ for i in range(300)})
    assert memory._store.copies.checked > 0  # type: ignore[attr-defined]
    assert memory._store.copies.dropped == 0  # type: ignore[attr-defined]
    with server.stalled():
        for key, value in latest.items():
            assert await memory.get(key) == {"v": value}, key
    await replayed(memory)
    await memory.clear()
    await memory.aclose()


async def test_a_touch_after_another_process_overwrote_drops_the_old_copy(
    redis_server_factory: Factory,
) -> None:
    """A's touch gives the key A's version without changing B's newer value: A's copy of its
    older value goes at once (its check would now think it current)."""
    server = redis_server_factory()
    ns = namespace()
    a = fast_recovery(server.url, ns)
    b = MemoryPrimitive(server.url, namespace=ns)
    await a.add("k", {"v": "old"})
    await b.add("k", {"v": "theirs"})
    assert await a.touch("k", 600) is True
    with server.stalled():
        assert await a.get("k") != {"v": "old"}
    await replayed(a)
    assert await a.get("k") == {"v": "theirs"}
    await b.clear()
    await a.aclose()
    await b.aclose()


async def test_gets_during_a_replay_never_drop_the_replayed_copies(
    redis_server_factory: Factory,
) -> None:
    """Checks are not run while a replay lands this process's journalled writes (a check could
    read a key's version just before its write lands): every outage write stays in the copy."""
    server = redis_server_factory()
    memory = fast_recovery(server.url, max_size=5_000)
    await memory.add("warm", {"v": 0})
    with server.stalled():
        for i in range(600):
            await memory.add(f"u{i % 5}:s1:{i}", {"v": i})

    async def done() -> bool:
        await asyncio.gather(*(memory.get(f"u{i % 5}:s1:{i}") for i in range(0, 600, 7)))
        return await memory.flush() and memory.using_redis

    await eventually(done, within=60)
    await asyncio.sleep(1.1)
    await memory.size()  # a check after the replay: every key is this process's
    assert memory.get_backend_info()["copies_dropped"] == 0
    with server.stalled():
        for i in range(600):
            assert await memory.get(f"u{i % 5}:s1:{i}") == {"v": i}
    await replayed(memory)
    await memory.clear()
    await memory.aclose()


async def test_a_cache_drops_an_entry_another_process_cleared(
    redis_server_factory: Factory,
) -> None:
    """CachePrimitive shares the check: during an outage it does not serve an output another
    process's clear() removed from Redis."""
    from tta_dev_primitives import CachePrimitive, WorkflowContext

    server = redis_server_factory()
    ns = namespace()
    calls: list[str] = []

    async def answer(text: str, ctx: WorkflowContext) -> str:
        calls.append(text)
        return f"answer {len(calls)}"

    a = CachePrimitive(answer, lambda text, ctx: text, backend=server.url, namespace=ns,
                       redis_timeout=0.5)  # fmt: skip
    b = CachePrimitive(answer, lambda text, ctx: text, backend=server.url, namespace=ns)
    ctx = WorkflowContext()
    assert await a.execute("q", ctx) == "answer 1"
    await b.clear()
    store = a._store  # type: ignore[attr-defined]

    async def dropped() -> bool:
        await store.size()  # a call Redis answers
        return await store.local.get("q") is None

    await eventually(dropped, within=30)
    with server.stalled():
        assert await a.execute("q", ctx) == "answer 2"  # recomputed, not the cleared output
    await a.aclose()
    await b.aclose()


async def test_a_get_from_redis_replaces_what_this_process_had(
    redis_server_factory: Factory,
) -> None:
    """After A reads B's newer value from Redis, A's outage read does not return A's older one."""
    server = redis_server_factory()
    ns = namespace()
    a = fast_recovery(server.url, ns)
    b = MemoryPrimitive(server.url, namespace=ns)
    await a.add("k", {"v": "old"})
    await b.add("k", {"v": "new"})
    assert await a.get("k") == {"v": "new"}
    with server.stalled():
        assert await a.get("k") != {"v": "old"}
    await replayed(a)
    await b.clear()
    await a.aclose()
    await b.aclose()


# -- item 7: bursts and restarts are not outages ------------------------------------------------


async def test_a_burst_behind_a_blocked_loop_is_not_an_outage(
    redis_server_factory: Factory,
) -> None:
    """3,000 concurrent adds while the loop is blocked past redis_timeout: Redis had answered,
    so nothing falls back and every add is in Redis."""
    server = redis_server_factory()
    # Generous: load alone must not fail it; the loop is blocked past this timeout on purpose.
    memory = MemoryPrimitive(server.url, namespace=namespace(), redis_timeout=3.0)
    await memory.add("warm", {"v": 0})

    async def block_the_loop() -> None:
        await asyncio.sleep(0.02)  # the adds are in flight now
        time.sleep(4.0)  # noqa: ASYNC251 (on purpose: the loop is busy elsewhere)

    async with asyncio.timeout(120):  # hang guard
        await asyncio.gather(
            block_the_loop(), *(memory.add(f"k{i}", {"v": i}) for i in range(3000))
        )
    info = memory.get_backend_info()
    assert (info["degraded"], info["journal_size"]) == (False, 0)
    other = MemoryPrimitive(server.url, namespace=memory.namespace)
    assert await other.size() == 3001
    await other.aclose()
    await memory.clear()
    await memory.aclose()


@pytest.mark.parametrize("how", ["client kill", "restart"])
async def test_a_dead_connection_is_retried_once_not_an_outage(
    redis_server_factory: Factory, how: str
) -> None:
    """After CLIENT KILL or a server restart (AOF kept the data), the next calls are served
    by Redis on fresh connections: no fallback, no miss."""
    server = redis_server_factory(appendonly=True)
    memory = fast_recovery(server.url)
    await asyncio.gather(*(memory.add(f"k{i}", {"v": i}) for i in range(20)))  # pool a few
    if how == "restart":
        server.restart()
    else:
        admin = aioredis.Redis.from_url(server.url)
        await admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        await admin.aclose()
    values = await asyncio.gather(*(memory.get(f"k{i}") for i in range(20)))
    assert values == [{"v": i} for i in range(20)]
    info = memory.get_backend_info()
    assert (info["backend"], info["degraded"]) == ("redis", False)
    await memory.clear()
    await memory.aclose()


async def test_dead_connections_on_a_cluster_are_retried_once_not_an_outage(
    redis_cluster: Any,
) -> None:
    """CLIENT KILL on every master (as a managed cluster's idle ``timeout`` does): the next
    calls, on every node, are served by Redis on fresh connections. The cluster client was not
    retried, and every process fell back to in-process serving (a review, 3 of 3 runs)."""
    memory = fast_recovery(redis_cluster.url)
    keys = [f"u{i}:s{i}:k" for i in range(40)]  # (over all three masters)
    await asyncio.gather(*(memory.add(key, {"content": f"note {key}"}) for key in keys))
    assert len(await memory.search("note", limit=100, scope="u1")) == 1
    for node in redis_cluster.master_nodes():
        admin = aioredis.Redis.from_url(node.url)
        await admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        await admin.aclose()
    values = await asyncio.gather(*(memory.get(key) for key in keys))
    assert values == [{"content": f"note {key}"} for key in keys]
    await memory.add("u1:s1:more", {"content": "note more"})
    assert len(await memory.search("note", limit=100, scope="u1")) == 2
    info = memory.get_backend_info()
    assert (info["backend"], info["degraded"], info["journal_size"]) == ("redis", False, 0)
    await memory.clear()
    await memory.aclose()


# -- item 3: eviction ----------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["allkeys-lru", "noeviction", "volatile-lru", "volatile-ttl"])
async def test_an_evicting_policy_is_warned_about_once(
    redis_server_factory: Factory, policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    """maxmemory-policy allkeys-* or volatile-* (which evicts memories added with a ttl, review
    R14): one warning naming the policy and the fix; noeviction: none."""
    server = redis_server_factory(extra=("--maxmemory", "64mb", "--maxmemory-policy", policy))
    caplog.set_level(logging.WARNING, logger="tta_dev_primitives.memory")
    memory = MemoryPrimitive(server.url, namespace=namespace())
    for i in range(3):
        await memory.add(f"k{i}", {"v": i})
        await memory.get(f"k{i}")
    warnings = [r.getMessage() for r in caplog.records if "maxmemory-policy" in r.getMessage()]
    if policy != "noeviction":
        assert len(warnings) == 1
        assert policy in warnings[0]
        assert "noeviction" in warnings[0]
        assert ("ttl" in warnings[0]) is policy.startswith("volatile")
    else:
        assert warnings == []
    await memory.clear()
    await memory.aclose()


async def test_a_policy_check_cut_off_is_made_again_on_the_next_connect(
    redis_server_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """The first connect's INFO memory loses its connection: the memory falls back, and the
    connect that recovers checks the policy then (the warning is not lost), still once."""
    server = redis_server_factory(
        extra=("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")
    )
    cut = asyncio.Event()  # set once the first INFO memory has been cut off

    def first_info_memory(chunk: bytes) -> bool:
        if not cut.is_set() and b"memory" in chunk.lower() and b"INFO" in chunk:
            cut.set()
            return True
        return False

    caplog.set_level(logging.WARNING, logger="tta_dev_primitives.memory")
    async with tcp_relay(lambda: server.port, first_info_memory) as url:
        memory = fast_recovery(url)
        try:
            async with asyncio.timeout(30):
                await memory.add("k0", {"v": 0})
                assert cut.is_set()
                await replayed(memory)
                for i in range(1, 4):
                    await memory.add(f"k{i}", {"v": i})
                assert memory.get_backend_info()["backend"] == "redis"
            warnings = [
                r.getMessage() for r in caplog.records if "maxmemory-policy" in r.getMessage()
            ]
            assert len(warnings) == 1
            assert "allkeys-lru" in warnings[0]
            await memory.clear()
        finally:
            await memory.aclose()


async def test_a_live_write_that_loses_after_its_retry_raises_stale(redis_server: Any) -> None:
    """A newer change that the retry cannot pass (a version this clock cannot read) is reported:
    StaleWriteError, counted, and the in-process copy dropped."""
    ns = namespace()
    memory = MemoryPrimitive(redis_server.url, namespace=ns)
    await memory.add("k", {"v": "first"})
    raw = aioredis.Redis.from_url(redis_server.url)
    await raw.hset(f"{ns}:{{{ns}#0}}:w", "k", "z" * 24)  # newer than any hex version
    with pytest.raises(StaleWriteError) as raised:
        await memory.add("k", {"v": "lost"})
    assert raised.value.newer == "z" * 24
    assert memory.get_backend_info()["stale_writes"] == 1
    assert await memory.get("k") == {"v": "first"}  # Redis kept the newer change's value
    await raw.aclose()
    await memory.clear()
    await memory.aclose()


async def test_concurrent_calls_of_one_process_keep_their_call_order(redis_server: Any) -> None:
    """add, delete, add of each key, all in flight at once: the last call wins, as called;
    arriving out of order is not another process's change, so nothing is retried or reported."""
    memory = MemoryPrimitive(redis_server.url, namespace=namespace())
    keys = [f"u1:s1:{i}" for i in range(50)]
    await asyncio.gather(
        *(memory.add(k, {"v": 1}) for k in keys),
        *(memory.delete(k) for k in keys),
        *(memory.add(k, {"v": 3}) for k in keys),
    )
    assert [await memory.get(k) for k in keys] == [{"v": 3}] * 50
    assert memory.get_backend_info()["stale_writes"] == 0
    await memory.clear()
    await memory.aclose()
