"""The Query Engine's set-up on a Redis Cluster whose layout changes under it.

What is promised (docs/production.md, "On a Redis Cluster"): a failover, resharding or a new
master is found by the next search, which makes the indexes it lacks; each master has its own
index, ``<namespace>:idx2:{<n>}``. A set-up that finds the client's slot map lagging reads it
again and goes on within the call's timeout; one that meets a layout change it cannot settle in
that time is an outage (the caller falls back, the next operation tries again), never a verdict
that the engine is absent;
a verdict of "absent" on a cluster is made again later; and a master keeps one index of the
namespace, not one more per layout change.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.crc import key_slot

from conftest import IN_CI, eventually, found_in_engine, namespace
from redis_server import LocalCluster, run_report
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import BackendRefusedError
from tta_dev_primitives.stores._redis import query_engine
from tta_dev_primitives.stores._redis.layout import Layout

pytestmark = pytest.mark.redis


def _indexes(cluster: LocalCluster, ns: str) -> dict[int, list[str]]:
    """The namespace's per-master indexes on each live master (``FT._LIST``)."""
    found = {}
    for node in cluster.master_nodes():
        names = redis.Redis(port=node.port).execute_command("FT._LIST")
        found[node.port] = sorted(
            n.decode() for n in names if n.decode().startswith(Layout.index_name(ns) + ":{")
        )
    return found


def _engine(memory: MemoryPrimitive) -> Any:
    return memory._store.remote.index.engine  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["redis", "auto"])
async def test_a_slot_moved_between_making_the_index_and_checking_it_is_no_verdict(
    redis_query_engine_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Right after the first set-up made the indexes, the slot of one master's index name
    moves to another master (a failover or resharding in between). The check then finds that
    index missing: not "the engine is absent" (which with "auto" kept the process on a replica
    for good) nor an error with "redis", but an outage; the next operations find the new
    layout and search in the engine, every memory found."""
    cluster = redis_query_engine_cluster
    ns = namespace()
    made = query_engine.QueryEngine._create
    moved: list[tuple[int, Any]] = []

    async def create_then_move(self: Any, client: Any, *args: Any, **kwargs: Any) -> None:
        await made(self, client, *args, **kwargs)
        if not moved:
            shard = self.shards(client)[0]
            slot = key_slot(shard.name.encode())
            owner = next(n for n in cluster.master_nodes() if n.port == shard.node.port)
            other = next(n for n in cluster.master_nodes() if n is not owner)
            cluster.move_slot(slot, other)
            moved.append((slot, owner))

    monkeypatch.setattr(query_engine.QueryEngine, "_create", create_then_move)
    memory = MemoryPrimitive(
        cluster.url, namespace=ns, search_engine=mode,  # type: ignore[arg-type]
        redis_timeout=10, recovery_interval=0.1, max_recovery_interval=0.5,
    )  # fmt: skip
    try:
        for user in range(12):  # (the first add sets the engine up)
            await memory.add(f"u{user}:s1:t1", {"content": f"user {user} bought apples"})
        assert moved
        assert _engine(memory).state != "absent"

        await eventually(lambda: found_in_engine(memory, "apples", 12, limit=50), within=30)
        assert all(len(names) >= 1 for names in _indexes(cluster, ns).values())
        await memory.clear()
    finally:
        await memory.aclose()
        if moved:
            cluster.move_slot(*moved[0])


@pytest.mark.parametrize("mode", ["redis", "auto"])
async def test_a_slot_map_that_lags_the_masters_is_read_again_not_an_outage(
    redis_query_engine_cluster: LocalCluster, mode: str
) -> None:
    """Another client moved the slot of a master's index name after this process read the
    slot map (one of thousands of moves in a reshard). The set-up then found the map lagging
    the masters' own word, and failed over as if Redis were down: during a reshard every
    process served in-process (``bench_reshard.py --search-engine redis``). Now it reads the
    map again and goes on within the call's timeout: Redis serves the add and the search."""
    from tta_dev_primitives.stores._redis.shards import master_index

    cluster = redis_query_engine_cluster
    ns = namespace()
    memory = MemoryPrimitive(
        cluster.url, namespace=ns, search_engine=mode,  # type: ignore[arg-type]
        redis_timeout=5,
    )  # fmt: skip
    admin = redis.RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    moved: tuple[int, Any] | None = None
    try:
        assert await memory.get("u0:s1:t0") is None  # connected: this process has the map
        owner = cluster.master_nodes()[0]
        node = admin.get_node(host="127.0.0.1", port=owner.port)
        slot = key_slot(master_index(admin, ns, node).encode())
        cluster.move_slot(slot, cluster.master_nodes()[1])
        moved = (slot, owner)
        for user in range(12):  # (the first add sets the engine up, on the map it has)
            await memory.add(f"u{user}:s1:t1", {"content": f"user {user} bought plums"})
        assert memory.get_backend_info()["degraded"] is False
        assert memory.get_backend_info()["last_error"] is None

        await eventually(lambda: found_in_engine(memory, "plums", 12, limit=50), within=30)
        assert memory.get_backend_info()["last_error"] is None
        await memory.clear()
    finally:
        admin.close()
        await memory.aclose()
        if moved is not None:
            cluster.move_slot(*moved)


@pytest.mark.parametrize("held_at", ["its start", "the new layout read"])
async def test_a_set_up_on_a_new_layout_holds_no_write_and_a_search_only_its_timeout(
    redis_query_engine_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch, held_at: str
) -> None:
    """Once the engine is set up, a change of masters or slots sets it up again on the new
    layout. That set-up (making the indexes the new layout lacks, waiting for their scan) had
    no bound: during a large reshard every add and search in flight waited on it, 12-40 s
    with ``redis_timeout=1`` (a review). Here it is held: an add goes on without it, served
    by Redis; a search waits at most its timeout, then is served in-process, that search
    alone (a failover of the whole process had every process serve in-process through a
    reshard: R9); once the set-up ends, searches run in the engine again, every memory
    found. Held once it has read the new layout, before it makes the indexes that layout
    names: a search then used those names as if they were whole (a master's new index still
    scanning answers part of its memories), or found one missing and waited for the set-up
    without a bound."""
    import asyncio

    cluster = redis_query_engine_cluster
    ns = namespace()
    memory = MemoryPrimitive(
        cluster.url, namespace=ns, search_engine="redis", redis_timeout=1.0,
        recovery_interval=0.1, max_recovery_interval=0.5,
    )  # fmt: skip
    held = asyncio.Event()
    discover = query_engine.QueryEngine._discover
    moved: tuple[int, Any] | None = None

    async def discover_when_released(self: Any, call: Any, *args: Any, **kwargs: Any) -> None:
        if self.state == "unknown":  # (the first discovery)
            return await discover(self, call, *args, **kwargs)
        if held_at == "its start":
            await held.wait()
            return await discover(self, call, *args, **kwargs)

        async def held_once_read(work: Any) -> Any:
            answer = await call(work)
            if getattr(work, "__func__", None) is query_engine.QueryEngine._infos:
                await held.wait()  # (``shards`` name the new layout's indexes now)
            return answer

        return await discover(self, held_once_read, *args, **kwargs)

    try:
        for user in range(6):
            await memory.add(f"u{user}:s1:t1", {"content": f"user {user} grew figs"})
        assert len(await memory.search("figs", limit=50)) == 6
        assert memory.get_backend_info()["search_engine"] == "redis"
        monkeypatch.setattr(query_engine.QueryEngine, "_discover", discover_when_released)
        shard = _engine(memory)._layout[1][0]
        slot = key_slot(shard.name.encode())
        owner = next(n for n in cluster.master_nodes() if n.port == shard.node.port)
        cluster.move_slot(slot, next(n for n in cluster.master_nodes() if n is not owner))
        moved = (slot, owner)
        remote = memory._store.remote  # type: ignore[union-attr]
        await remote.connection.call(lambda client: client.nodes_manager.initialize())

        add = asyncio.ensure_future(memory.add("u9:s1:t1", {"content": "user 9 grew figs"}))
        await asyncio.wait([add], timeout=30)  # (it waited for the release before)
        assert add.done()
        assert add.exception() is None
        assert not held.is_set()
        assert memory.get_backend_info()["degraded"] is False

        search = asyncio.ensure_future(memory.search("figs", limit=50))
        await asyncio.wait([search], timeout=30)
        assert search.done()
        assert search.exception() is None
        assert not held.is_set()
        assert len(search.result()) == 7  # (this process wrote them: its copy holds them)
        info = memory.get_backend_info()
        assert info["degraded"] is False
        assert info["last_error"] is None
        assert memory.using_redis
        assert await memory.get("u9:s1:t1") == {"content": "user 9 grew figs"}

        held.set()

        await eventually(lambda: found_in_engine(memory, "figs", 7, limit=50), within=30)
        assert memory.get_backend_info()["degraded"] is False
        await memory.clear()
    finally:
        held.set()
        await memory.aclose()
        if moved is not None:
            cluster.move_slot(*moved)


async def test_an_index_dropped_while_the_engine_scans_it_is_made_again(
    redis_query_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index made over documents already written is used once the engine has scanned
    them. Dropped meanwhile (by hand, by another process, by a layout change), the process
    waited for a scan that never ended and searched with its replica for good (found while
    testing R9's finding below). Now the next search sets the engine up again."""
    from tta_dev_primitives.stores._redis.layout import Layout as _Layout

    ns = namespace()
    memory = MemoryPrimitive(redis_query_engine.url, namespace=ns, search_engine="redis")
    admin = redis.Redis(port=redis_query_engine.port)
    set_up = query_engine.QueryEngine._set_up
    drops = []

    async def set_up_then_dropped(self: Any, *args: Any, **kwargs: Any) -> None:
        await set_up(self, *args, **kwargs)
        if not drops:
            drops.append(admin.execute_command("FT.DROPINDEX", _Layout.index_name(ns)))

    try:
        for user in range(5):
            await memory.add(f"u{user}:s1:t1", {"content": f"user {user} picked pears"})
        assert len(await memory.search("pears", limit=50)) == 5
        admin.execute_command("FT.DROPINDEX", _Layout.index_name(ns))  # made again, scanned
        monkeypatch.setattr(query_engine.QueryEngine, "_set_up", set_up_then_dropped)

        async def in_engine() -> bool:
            found = await memory.search("pears", limit=50)
            return len(found) == 5 and memory.get_backend_info()["search_engine"] == "redis"

        await eventually(in_engine, within=30)
        assert drops
        await memory.clear()
    finally:
        admin.close()
        await memory.aclose()


async def test_an_index_missing_again_right_after_its_set_up_serves_that_search_in_process(
    redis_query_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search that finds the index missing sets the engine up again and asks once more.
    Missing again (the layout moving under it, another loop's set-up on an older slot map: R9
    saw it 1-2 times in a few hundred searches while slots moved to a new master), it raised
    ``BackendError('... no such index')`` into the caller. The engine's answer is made to say
    so twice here: that search is served in-process, and the store stays on Redis."""
    from tta_dev_primitives.exceptions import BackendError
    from tta_dev_primitives.stores._redis.search import RedisIndex

    memory = MemoryPrimitive(redis_query_engine.url, namespace=namespace(), search_engine="redis")
    ask = RedisIndex._engine_search
    missing = [2]

    async def missing_twice(self: Any, *args: Any) -> Any:
        if missing[0]:
            missing[0] -= 1
            raise BackendError("Redis error: t:idx2: no such index")
        return await ask(self, *args)

    try:
        for user in range(5):
            await memory.add(f"u{user}:s1:t1", {"content": f"user {user} picked plums"})
        assert len(await memory.search("plums", limit=50)) == 5
        monkeypatch.setattr(RedisIndex, "_engine_search", missing_twice)
        assert len(await memory.search("plums", limit=50)) == 5  # (this process's copy)
        assert missing == [0]
        info = memory.get_backend_info()
        assert (info["degraded"], info["last_error"]) == (False, None)
        assert len(await memory.search("plums", limit=50)) == 5
        assert memory.get_backend_info()["search_engine"] == "redis"
        await memory.clear()
    finally:
        await memory.aclose()


def test_a_set_up_uses_its_own_loops_nodes_when_another_loop_rebound_the_layout(
    redis_query_engine_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One memory serves every event loop (a serverless handler's ``asyncio.run()`` each
    request): a search on one loop rebinds the engine's layout to its client's nodes. One that
    did so while another loop's set-up ran made that set-up's drop of extra indexes use the
    first loop's connections: ``RuntimeError: ... attached to a different loop`` raised into
    an add or a search (R9, 1 of 4 runs while slots moved). The interleaving is made here."""
    import asyncio
    import threading

    cluster = redis_query_engine_cluster
    memory = MemoryPrimitive(cluster.url, namespace=namespace(), search_engine="redis")

    async def first() -> Any:
        for user in range(6):
            await memory.add(f"u{user}:s1:t1", {"content": f"user {user} fed ducks"})
        assert len(await memory.search("ducks", limit=50)) == 6
        return _engine(memory)._layout

    loop = asyncio.new_event_loop()  # another thread's, running throughout
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    others = asyncio.run_coroutine_threadsafe(first(), loop).result(timeout=60)
    infos = query_engine.QueryEngine._infos

    async def infos_then_rebound(self: Any, client: Any) -> Any:
        found = await infos(self, client)
        self._layout = others  # a search on the other loop rebinds it meanwhile
        return found

    async def second() -> None:
        _engine(memory).cleared()  # (found again by the next operation)
        monkeypatch.setattr(query_engine.QueryEngine, "_infos", infos_then_rebound)
        await memory.add("u7:s1:t1", {"content": "user 7 fed ducks"})
        monkeypatch.undo()
        assert len(await memory.search("ducks", limit=50)) == 7
        assert memory.get_backend_info()["last_error"] is None
        await memory.clear()

    try:
        asyncio.run(second())
    finally:
        asyncio.run_coroutine_threadsafe(memory.aclose(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


async def test_an_absent_verdict_on_a_cluster_is_made_again(
    redis_query_engine_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that may not create the index (an ACL without FT.CREATE) searches with a
    replica; once it may (the ACL changed), a later set-up check finds that out and it
    searches in the engine, instead of keeping the replica until it restarts. (The check is
    due after ``RECHECK_ABSENT`` seconds, or at once after a change of masters or slots.)"""
    cluster = redis_query_engine_cluster
    for node in cluster.master_nodes():
        redis.Redis(port=node.port).execute_command(
            "ACL", "SETUSER", "nocreate", "reset", "on", ">nocreate-pw", "~*", "&*", "+@all",
            "-ft.create",
        )  # fmt: skip
    url = cluster.url.replace("redis://", "redis://nocreate:nocreate-pw@")
    # Checked again at every set-up check (not after a minute): no test waits for a clock.
    monkeypatch.setattr(query_engine, "RECHECK_ABSENT", 0.0, raising=False)
    memory = MemoryPrimitive(url, namespace=namespace(), search_engine="auto", redis_timeout=10)
    try:
        for user in range(6):
            await memory.add(f"u{user}:s1:t1", {"content": f"user {user} sold pears"})
        assert len(await memory.search("pears", limit=50)) == 6
        assert memory.get_backend_info()["search_engine"] == "replica"
        assert _engine(memory).state == "absent"
        for node in cluster.master_nodes():
            redis.Redis(port=node.port).execute_command("ACL", "SETUSER", "nocreate", "+ft.create")

        async def in_engine() -> bool:
            found = await memory.search("pears", limit=50)
            return len(found) == 6 and memory.get_backend_info()["search_engine"] == "redis"

        await eventually(in_engine, within=30)
        await memory.clear()
    finally:
        await memory.aclose()
        for node in cluster.master_nodes():
            redis.Redis(port=node.port).execute_command("ACL", "DELUSER", "nocreate")


async def test_a_master_keeps_one_index_and_a_process_on_a_dropped_one_finds_it(
    redis_query_engine_cluster: LocalCluster,
) -> None:
    """A master holding a second index of the namespace (one a process with an older slot
    map named for it, say) keeps one after the next process's set-up: the one named for it
    now. A process that searched the dropped one finds the kept one at its next search, with
    every memory, in the engine."""
    from tta_dev_primitives.stores._redis.shards import Shard

    cluster = redis_query_engine_cluster
    ns = namespace()
    first = MemoryPrimitive(cluster.url, namespace=ns, search_engine="redis", redis_timeout=10)
    second = None
    try:
        engine, kept, extra = await _with_an_extra_index(first, ns)
        masters, shards = engine._layout
        assert len(_indexes(cluster, ns)[kept.node.port]) == 2
        # ``first`` searches the extra one from now on (as the process that made it would).
        engine._layout = (masters, [Shard(kept.node, extra, kept.timeout_ms), *shards[1:]])
        assert len(await first.search("tulips", limit=50)) == 30
        second = MemoryPrimitive(cluster.url, namespace=ns, search_engine="redis")
        assert len(await second.search("tulips", limit=50)) == 30
        assert all(len(names) == 1 for names in _indexes(cluster, ns).values())
        assert _indexes(cluster, ns)[kept.node.port] == [kept.name]
        assert len(await first.search("tulips", limit=50)) == 30
        assert first.get_backend_info()["search_engine"] == "redis"
        assert engine._layout[1][0].name == kept.name
        await first.clear()
    finally:
        await first.aclose()
        if second is not None:
            await second.aclose()


async def test_a_layout_change_a_search_finds_under_way_sets_the_engine_up_again(
    redis_query_engine_cluster: LocalCluster,
) -> None:
    """The masters changed after a search checked the layout and before it asked them (its
    retry of a dead master read the new slot map): the search is answered, and the next one
    sets the engine up again on the new layout, as when it is found first. Without it a
    promoted master kept both indexes its dead master had (every document indexed twice).

    A failover is emulated: the layout the engine last set up on names a master that is gone,
    and the check before the first search finds it unchanged (the slot map read too early)."""
    cluster = redis_query_engine_cluster
    ns = namespace()
    memory = MemoryPrimitive(cluster.url, namespace=ns, search_engine="redis", redis_timeout=10)
    try:
        engine, kept, _ = await _with_an_extra_index(memory, ns)
        masters, shards = engine._layout
        checks = 0

        async def too_early(client: Any) -> bool:
            nonlocal checks
            checks += 1
            return checks == 1 or bool(await unpatched(client))

        unpatched, engine._same_layout = engine._same_layout, too_early
        engine._layout = (("127.0.0.1:1", *masters[1:]), shards)
        assert len(await memory.search("tulips", limit=50)) == 30
        assert checks == 1
        assert len(await memory.search("tulips", limit=50)) == 30
        assert _indexes(cluster, ns)[kept.node.port] == [kept.name]
        assert memory.get_backend_info()["search_engine"] == "redis"
        await memory.clear()
    finally:
        await memory.aclose()


async def _with_an_extra_index(memory: MemoryPrimitive, ns: str) -> tuple[Any, Any, str]:
    """30 memories found in the engine, then a second index of the namespace on the first
    master, under another name whose slot that master owns (what a process with an older slot
    map made there), with the same schema, scanned: the engine, the first shard (the index
    the master keeps) and the extra index's name."""
    for user in range(30):
        await memory.add(f"u{user}:s1:t1", {"content": f"user {user} planted tulips"})
    assert len(await memory.search("tulips", limit=50)) == 30
    engine = _engine(memory)
    kept = engine._layout[1][0]
    node = redis.Redis(port=kept.node.port)
    slots = _slots_of(node)
    extra = next(
        name
        for n in range(10_000)
        if (name := Layout.master_index_name(ns, n)) != kept.name
        and key_slot(name.encode()) in slots
    )
    node.execute_command(*engine._create_args(extra, engine.bases, engine.dims, True))
    await eventually(lambda: _done_indexing(node, extra), within=30)
    return engine, kept, extra


def _slots_of(node: redis.Redis) -> set[int]:
    """The slots a master serves, by its own word."""
    for line in node.execute_command("CLUSTER", "NODES").decode().splitlines():
        fields = line.split()
        if "myself" in fields[2]:
            slots: set[int] = set()
            for part in fields[8:]:
                if not part.startswith("["):
                    low, _, high = part.partition("-")
                    slots.update(range(int(low), int(high or low) + 1))
            return slots
    return set()


def _done_indexing(node: redis.Redis, name: str) -> bool:
    info = node.execute_command("FT.INFO", name)
    if not isinstance(info, dict):
        info = dict(zip(info[::2], info[1::2], strict=True))
    value = info.get("indexing", info.get(b"indexing"))
    return int(float(value)) == 0


def test_after_a_failover_the_promoted_master_keeps_one_index() -> None:
    """A master holding two indexes of the namespace is killed; its replica, promoted, holds
    both (every document indexed twice). A process that was searching before finds the new
    layout at its next search, which leaves one index on every master; it and a process
    started then search in the engine and find all 40 memories.

    Runs in its own process (``engine_cluster_failover_indexes.py``), as the other failover
    tests do."""
    from query_engine_server import find_redis_stack

    found = find_redis_stack()
    if isinstance(found, str):
        if IN_CI:
            pytest.fail(f"CI=true: no Redis with the Query Engine: {found}", pytrace=False)
        pytest.skip(found)
    report = run_report("engine_cluster_failover_indexes.py", timeout=240)
    whole = str(report)  # (a message that is not a string is cut to a line)
    assert report["before"] == 40, whole
    assert report["on_promoted_before"] == sorted([report["kept"], report["extra"]]), whole
    assert report["after"] == 40, whole
    assert report["engine"] == "redis", whole
    assert all(len(names) == 1 for names in report["per_master_after"].values()), whole
    assert [report["kept"]] in report["per_master_after"].values(), whole
    assert (report["fresh"], report["fresh_engine"]) == (40, "redis"), whole


async def test_an_index_refused_for_memory_is_a_refusal_not_a_failure() -> None:
    """search_engine='redis' on a full server (noeviction) where the index is not made yet:
    the search raises BackendRefusedError (OOM: an operator must act), as an add does."""
    from query_engine_server import start_redis_stack

    started = start_redis_stack()
    if isinstance(started, str):
        if IN_CI:
            pytest.fail(f"CI=true: no Redis with the Query Engine: {started}", pytrace=False)
        pytest.skip(started)
    server, _ = started
    raw = aioredis.Redis.from_url(server.url)
    memory = MemoryPrimitive(server.url, search_engine="redis", redis_timeout=10)
    try:
        await raw.set("filler", "x" * 100_000)
        used = (await raw.info("memory"))["used_memory"]
        await raw.config_set("maxmemory-policy", "noeviction")
        await raw.config_set("maxmemory", used - 10_000)
        with pytest.raises(BackendRefusedError, match="could not be created"):
            await memory.search("garden", limit=5)
    finally:
        await raw.config_set("maxmemory", 0)
        await raw.aclose()
        await memory.aclose()
        server.stop()
