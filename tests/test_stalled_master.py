"""One master of a real Redis Cluster stalled (SIGSTOP, its replica too) while the others serve
(``cluster-require-full-coverage no``): no call waits much past ``redis_timeout`` (API.md: no
operation blocks longer than about ``redis_timeout`` on an unreachable or stalled server).

Review R30 found single adds taking 4-40 s with ``redis_timeout=1``: every write set up the
Query Engine first (FT.INFO to every master, the stalled one taking the whole timeout), the
writes waiting on that set-up's lock each tried again in turn, and calls waited for a replay's
last batch with no bound. Asserted by what each call waited for, not by how long
(``SetUps``: a stopwatch bound fails on a busy machine, where a timeout is rightly extended by
the time the loop spent elsewhere), and that every call returned and nothing it wrote is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

from conftest import IN_CI, eventually, namespace, replayed
from redis_server import LocalCluster
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import UnsentWritesError

pytestmark = pytest.mark.redis

TIMEOUT = 1.0


class SetUps:
    """Counts the Query Engine set-ups started (discoveries: what asks every master), and how
    many each call that prepared the engine saw start while it waited (``spans``): its own,
    and at most the one under way when it came. Before the fix a write waiting on the set-up
    lock ran one more after each failure, a timeout each (the twelfth of twelve waited through
    twelve)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from tta_dev_primitives.stores._redis.query_engine import QueryEngine

        self.started = 0
        self.spans: list[int] = []
        discover, prepare = QueryEngine._discover, QueryEngine.prepare

        async def counted_discover(engine: QueryEngine, *args: Any, **kwargs: Any) -> None:
            self.started += 1
            await discover(engine, *args, **kwargs)

        async def counted_prepare(engine: QueryEngine, *args: Any, **kwargs: Any) -> None:
            before = self.started
            try:
                await prepare(engine, *args, **kwargs)
            finally:
                self.spans.append(self.started - before)

        monkeypatch.setattr(QueryEngine, "_discover", counted_discover)
        monkeypatch.setattr(QueryEngine, "prepare", counted_prepare)


@pytest.fixture(scope="module")
def partial_cluster(redis_binary: str) -> Iterator[LocalCluster]:
    """Three masters with a replica each; a master that fails leaves the others serving."""
    cluster = LocalCluster(redis_binary, masters=3, replicas=1).start()
    for node in cluster.nodes:
        cluster.info(node, "config", "set", "cluster-require-full-coverage", "no")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def partial_engine_cluster() -> Iterator[LocalCluster]:
    """As ``partial_cluster``, every node with the Query Engine: a set-up there asks every
    master for its index, the stalled one too (skipped without it, failed under CI=true)."""
    from query_engine_server import start_redis_stack_cluster

    started = start_redis_stack_cluster(replicas=1)
    if isinstance(started, str):
        if IN_CI:
            pytest.fail(f"CI=true: no Redis Cluster with the Query Engine: {started}")
        pytest.skip(started)
    cluster = started[0]
    for node in cluster.nodes:
        cluster.info(node, "config", "set", "cluster-require-full-coverage", "no")
    yield cluster
    cluster.stop()


def _nodes(cluster: LocalCluster) -> list[list[str]]:
    """CLUSTER NODES as seen by the URL's node, one field list per node."""
    return [
        line.split() for line in cluster.info(cluster.nodes[0], "cluster", "nodes").splitlines()
    ]


def _port(fields: list[str]) -> int:
    return int(fields[1].split("@")[0].rsplit(":", 1)[1])


@contextlib.contextmanager
def one_master_stalled(cluster: LocalCluster) -> Iterator[int]:
    """A master the URL does not name, and its replica, stalled for the block (its port is
    yielded); resumed however the block ends, and the cluster whole again after."""
    url_port = cluster.nodes[0].port
    nodes = _nodes(cluster)
    masters = [f for f in nodes if "master" in f[2] and "fail" not in f[2] and len(f) > 8]
    for victim in masters:
        group = {_port(victim)} | _replicas_of(cluster, _port(victim))
        if url_port not in group:
            break
    else:
        raise AssertionError("no master apart from the URL's node")
    stalled = [node for node in cluster.nodes if node.port in group]
    for node in stalled:
        node.stall()
    try:
        yield _port(victim)
    finally:
        for node in stalled:
            node.resume()
        cluster.wait_ok(60)


def _replicas_of(cluster: LocalCluster, port: int) -> set[int]:
    """The ports of the replicas of the master at ``port``, each by its own ROLE: one node's
    CLUSTER NODES, right after the cluster was created, may still list the replicas as masters
    without slots (their roles not gossiped yet), and a replica it missed was left running and
    took over (review R38: about half of the fresh clusters; the test then saw a failover)."""
    replicas = set()
    for node in cluster.nodes:
        if node.proc is None or node.proc.poll() is not None:
            continue
        with redis.Redis(port=node.port, socket_timeout=10) as client:
            role = client.execute_command("ROLE")
        if role[0] in (b"slave", "slave") and int(role[2]) == port:
            replicas.add(node.port)
    return replicas


def _owner(cluster: LocalCluster, ns: str, key: str) -> int:
    """The port of the master that serves ``key``'s partition (by the cluster's slot map)."""
    from redis.crc import key_slot

    from tta_dev_primitives.stores._redis.layout import CLUSTER_PARTITIONS, Layout

    slot = key_slot(Layout.facts(Layout(ns, CLUSTER_PARTITIONS).base(key)).encode())
    with redis.Redis(port=cluster.nodes[0].port) as client:
        for low, high, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if low <= slot <= high:
                return int(master[1])
    raise AssertionError(f"slot {slot} has no master")


def _users_by_master(
    cluster: LocalCluster, ns: str, victim: int, count: int
) -> tuple[list[str], list[str]]:
    """Of users ``u0``.. (``count``), those whose partition the master at port ``victim``
    serves, and the others."""
    users = [f"u{i}" for i in range(count)]
    on_victim = [user for user in users if _owner(cluster, ns, f"{user}:s1:x") == victim]
    return on_victim, [user for user in users if user not in on_victim]


async def _in_redis(url: str, ns: str, keys: list[str]) -> list[str | None]:
    """Each key's content as another process reads it from Redis while a master is stalled
    (the replica engine asks nothing of the stalled one). A reader that met "The cluster is
    down" (a busy machine: a node slow to answer the others' pings within the test clusters'
    1.5 s node timeout) and so served in-process is made again."""
    for _ in range(20):
        reader = MemoryPrimitive(url, namespace=ns, search_engine="replica", redis_timeout=10)
        try:
            found = await asyncio.gather(*(reader.get(key) for key in keys))
            if not reader.get_backend_info()["degraded"]:
                return [value and value["content"] for value in found]
        finally:
            await reader.aclose()
        await asyncio.sleep(0.5)
    raise AssertionError("no reader found the cluster up in 20 tries")


async def _index_made_elsewhere(url: str, ns: str, content: str) -> None:
    """Another process, before the stall, writes ``u0:s1:warm`` (``content``): it makes the
    namespace's Query Engine index, as a deployment's earlier workers have."""
    maker = MemoryPrimitive(url, namespace=ns, redis_timeout=10.0)
    try:
        await maker.add("u0:s1:warm", {"content": content})
    finally:
        await maker.aclose()


async def _all_there(url: str, ns: str, expected: dict[str, str]) -> None:
    """Another process finds every memory of ``expected`` (key -> content) in Redis."""
    reader = MemoryPrimitive(url, namespace=ns, redis_timeout=10.0)
    try:
        found = await asyncio.gather(*(reader.get(key) for key in expected))
        assert [value and value["content"] for value in found] == list(expected.values())
        assert reader.using_redis
        await reader.clear()
    finally:
        await reader.aclose()


@contextlib.asynccontextmanager
async def _closed_if_it_fails(memory: MemoryPrimitive) -> AsyncIterator[None]:
    """If the block fails, ``memory`` is closed (its unsent writes let go): the failure is what
    counts, not the close's ``UnsentWritesError``."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(UnsentWritesError):
            await memory.aclose()
        raise


async def _replayed_and_all_there(
    memory: MemoryPrimitive, url: str, ns: str, expected: dict[str, str]
) -> None:
    """Once the master is back: ``memory``'s journal replayed, ``memory`` closed, and every
    memory of ``expected`` found in Redis by another process."""
    try:
        await replayed(memory)
    finally:
        await memory.aclose()
    await _all_there(url, ns, expected)


@pytest.mark.parametrize("engine", ["replica", "auto"])
async def test_a_fresh_process_writes_to_serving_masters_with_one_stalled(
    partial_cluster: LocalCluster, engine: str
) -> None:
    """A fresh process's write to a partition of a serving master lands in Redis while
    another master is stalled. With ``search_engine="replica"`` a write asks nothing of the
    Query Engine; with ``"auto"`` on a cluster without it, the first master to say it has
    none is the verdict. (Both set the engine up first, FT.INFO on every master in turn: the
    stalled one took the whole timeout, and the write was journalled as an outage; with
    ``"auto"`` every replay failed so too, and nothing reached Redis until it was back: R38.)"""
    ns = namespace()
    url = partial_cluster.url
    with one_master_stalled(partial_cluster) as victim:
        key = next(k for k in (f"u{i}:s1:t" for i in range(100))
                   if _owner(partial_cluster, ns, k) != victim)  # fmt: skip
        # A long timeout: the write must not be journalled for a slow machine's sake.
        memory = MemoryPrimitive(url, namespace=ns, search_engine=engine, redis_timeout=5.0)
        try:
            async with asyncio.timeout(60):  # hang guard
                await memory.add(key, {"content": "lands"})
            info = memory.get_backend_info()
            assert memory.using_redis, info
            assert info["journal_size"] == 0, info
        finally:
            await memory.aclose()
    await _all_there(url, ns, {key: "lands"})


@pytest.mark.parametrize(
    ("servers", "engine"),
    [("partial_cluster", "auto"), ("partial_cluster", "replica"),
     ("partial_engine_cluster", "auto")],
)  # fmt: skip
async def test_concurrent_adds_of_a_fresh_process_each_return_within_the_timeout(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, servers: str, engine: str
) -> None:
    """A process that starts while a master is stalled: twelve adds at once, over partitions
    of every master, each wait through at most two Query Engine set-ups (none with the replica
    engine; on a cluster with the engine each set-up waits for the stalled master), and all
    are in Redis once it is back. (They waited on the set-up in turn, each trying it again for
    a whole timeout: the twelfth returned after about twelve.)"""
    partial_cluster: LocalCluster = request.getfixturevalue(servers)
    set_ups = SetUps(monkeypatch)
    ns = namespace()
    url = partial_cluster.url
    keys = [f"u{i}:s1:t" for i in range(12)]
    expected = {key: f"note {key}" for key in keys}
    with one_master_stalled(partial_cluster) as victim:
        assert any(_owner(partial_cluster, ns, key) == victim for key in keys)
        memory = MemoryPrimitive(url, namespace=ns, search_engine=engine, redis_timeout=TIMEOUT)
        async with _closed_if_it_fails(memory):
            async with asyncio.timeout(120):  # hang guard
                await asyncio.gather(
                    *(memory.add(key, {"content": text}) for key, text in expected.items())
                )
            # Every add returned, none after more than the set-up under way and its own.
            assert max(set_ups.spans, default=0) <= (0 if engine == "replica" else 2), set_ups.spans
            assert memory.get_backend_info()["journal_size"] > 0  # the stalled one's, at least
    await _replayed_and_all_there(memory, url, ns, expected)


async def test_a_busy_worker_s_calls_stay_bounded_through_replays_while_a_master_is_stalled(
    partial_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review's worker: a fresh process adding to and searching many users' partitions
    while a master is stalled, its journal replayed again and again (the replay's last batch
    holding writes for many partitions). No call to prepare the Query Engine, the replay's
    included, waits through more than two set-ups (one add took 40 s with a 1 s timeout: the
    batch's writes each set the engine up in turn); every add is in Redis once the master is
    back."""
    set_ups = SetUps(monkeypatch)
    ns = namespace()
    url = partial_cluster.url
    expected: dict[str, str] = {}
    with one_master_stalled(partial_cluster):
        memory = fast_memory(url, ns)
        async with _closed_if_it_fails(memory):
            deadline = time.monotonic() + 8 * TIMEOUT
            n = 0
            async with asyncio.timeout(180):  # hang guard
                while time.monotonic() < deadline:
                    n += 1
                    key = f"u{n % 32}:s1:t{n}"
                    expected[key] = f"apple banana {n}"
                    await memory.add(key, {"content": expected[key]})
                    await memory.search("apple", scope=f"u{n % 32}")
                    await asyncio.sleep(0.02)
            assert set_ups.started > 0  # (the engine was set up meanwhile)
            assert max(set_ups.spans) <= 2, set_ups.spans
    await _replayed_and_all_there(memory, url, ns, expected)


def fast_memory(url: str, ns: str, **options: Any) -> MemoryPrimitive:
    """A memory that probes (and replays) often: many replays while the master is stalled."""
    return MemoryPrimitive(
        url, namespace=ns, redis_timeout=TIMEOUT, recovery_interval=0.05,
        max_recovery_interval=0.2, **options,
    )  # fmt: skip


async def test_writes_to_the_serving_masters_are_replayed_while_another_master_is_stalled(
    partial_cluster: LocalCluster,
) -> None:
    """One write to a stalled master's partition puts the store in its outage; the writes made
    then to partitions of the masters that answer are journalled with it. Each replay's chunk
    holds that write and times out, and the chunk's other writes, applied by the masters that
    answered, were marked "maybe stored" beside it and kept journalled: the replay landed none
    while the master was stalled, and past the cap writers' writes were dropped (review R38:
    4,041 of 4,540 acknowledged; of the first 2,000 only 199 in Redis). Each write applied
    leaves the journal now: only the stalled master's stays, and the others are in Redis."""
    ns = namespace()
    url = partial_cluster.url
    memory = fast_memory(url, ns)
    await memory.add("u0:s1:warm", {"content": "warm"})  # (the Query Engine set up)
    with one_master_stalled(partial_cluster) as victim:
        stalled_users, serving_users = _users_by_master(partial_cluster, ns, victim, 200)
        stalled, serving = stalled_users[0], serving_users[:40]
        expected = {f"{user}:s1:t": f"note {user}" for user in serving}
        async with _closed_if_it_fails(memory):
            async with asyncio.timeout(120):  # hang guard
                await memory.add(f"{stalled}:s1:first", {"content": "on the stalled master"})
                assert memory.get_backend_info()["degraded"]
                for key, text in expected.items():
                    await memory.add(key, {"content": text})
                # Replays go on in the background (the probes that meet the stalled node fail).
                await eventually(lambda: memory.get_backend_info()["journal_size"] == 1, 30)
            assert await _in_redis(url, ns, list(expected)) == list(expected.values())
            assert memory.get_backend_info()["journal_dropped"] == 0
    await _replayed_and_all_there(
        memory, url, ns, {**expected, f"{stalled}:s1:first": "on the stalled master"}
    )


async def test_the_serving_masters_writes_land_past_replay_chunks_of_a_stalled_master_s(
    partial_cluster: LocalCluster,
) -> None:
    """The journal's oldest writes, more than a replay chunk's (``_REPLAY_CHUNK``), even more
    than a batch's, are all on the stalled master: each replay still lands the writes to the
    masters that answer, the same keys written again round after round (each round's land
    while the master stays stalled). Before, every replay's first chunk timed out on the
    stalled master and landed nothing else (review R40). Once it is back, every key holds its
    last write, none dropped, dead or duplicated."""
    from tta_dev_primitives.stores._hybrid import REPLAY_BATCH
    from tta_dev_primitives.stores._redis.backend import _REPLAY_CHUNK

    ns = namespace()
    url = partial_cluster.url
    memory = fast_memory(url, ns)
    await memory.add("u0:s1:warm", {"content": "warm"})  # (the Query Engine set up)
    with one_master_stalled(partial_cluster) as victim:
        stalled_users, serving_users = _users_by_master(partial_cluster, ns, victim, 300)
        serving = serving_users[:60]
        on_stalled = [f"{stalled_users[i % len(stalled_users)]}:s1:k{i}"
                      for i in range(REPLAY_BATCH + _REPLAY_CHUNK)]  # fmt: skip
        on_serving = [f"{user}:s1:t" for user in serving]
        expected: dict[str, str] = {}
        async with _closed_if_it_fails(memory):
            async with asyncio.timeout(240):  # hang guard
                for round_ in range(3):
                    # The stalled master's first, then the others': the journal's head is
                    # the stalled master's, more than a batch of it.
                    for key in on_stalled:
                        expected[key] = f"round {round_} of {key}"
                        await memory.add(key, {"content": expected[key]})
                    assert memory.get_backend_info()["degraded"]
                    for key in on_serving:
                        expected[key] = f"round {round_} of {key}"
                        await memory.add(key, {"content": expected[key]})
                    # Replays go on in the background; each lands the serving masters' writes.
                    await eventually(
                        lambda: memory.get_backend_info()["journal_size"] == len(on_stalled), 60
                    )
                    assert await _in_redis(url, ns, on_serving) == [
                        expected[key] for key in on_serving
                    ]
            info = memory.get_backend_info()
            assert info["journal_dropped"] == 0, info
            assert info["dead_letters"] == 0, info
    try:
        await replayed(memory)
        assert await memory.size() == 1 + len(expected)  # (nothing twice)
        assert memory.get_backend_info()["journal_dropped"] == 0
    finally:
        await memory.aclose()
    await _all_there(url, ns, {"u0:s1:warm": "warm", **expected})


async def test_the_store_stays_in_its_outage_through_replays_while_a_master_is_stalled(
    partial_cluster: LocalCluster,
) -> None:
    """A journal smaller than a replay batch, its one write on the stalled master: every
    replay's probe is answered (by the masters that answer), and its batch fails. The store
    reads ``degraded`` at every moment of several replays, so callers are not sent to wait on
    the stalled master, nor a checkpointer made with ``resume_in_outage=False`` told Redis is
    up. (Each replay handed the store back before its only batch was sent, on the probe
    alone: ``degraded`` read False for a ``redis_timeout`` once a probe; review R43.)"""
    ns = namespace()
    url = partial_cluster.url
    memory = fast_memory(url, ns)
    await memory.add("u0:s1:warm", {"content": "warm"})  # (the Query Engine set up)
    with one_master_stalled(partial_cluster) as victim:
        stalled_users, _ = _users_by_master(partial_cluster, ns, victim, 100)
        key = f"{stalled_users[0]}:s1:t"
        async with _closed_if_it_fails(memory):
            async with asyncio.timeout(120):  # hang guard
                await memory.add(key, {"content": "on the stalled master"})
                replays, recovering, up = 0, False, 0
                while replays < 4:
                    info = memory.get_backend_info()
                    up += not info["degraded"]
                    replays += recovering and not info["recovering"]
                    recovering = info["recovering"]
                    await asyncio.sleep(0.002)
            assert up == 0, f"degraded read False in {up} samples over {replays} replays"
            assert memory.get_backend_info()["journal_size"] == 1
    await _replayed_and_all_there(memory, url, ns, {key: "on the stalled master"})


@pytest.mark.parametrize("engine", ["auto", "redis"])
async def test_a_process_started_during_a_stall_lands_its_writes_on_a_cluster_with_the_engine(
    partial_engine_cluster: LocalCluster, engine: str
) -> None:
    """A namespace whose Query Engine index another process made: a process started while a
    master is stalled cannot set the engine up (it asks every master), but its writes need
    none of it (their scripts keep documents where the partition says the index is). The
    first write's set-up fails and it is journalled; from then on writes and the replay's
    puts go on without one, so the masters that answer get theirs while the stall lasts.
    (Every replay's puts waited for a set-up and failed: none landed until the master came
    back; review R43.)"""
    ns = namespace()
    url = partial_engine_cluster.url
    await _index_made_elsewhere(url, ns, "warm")
    with one_master_stalled(partial_engine_cluster) as victim:
        stalled_users, serving_users = _users_by_master(partial_engine_cluster, ns, victim, 100)
        serving = [f"{user}:s1:t" for user in serving_users[:10]]
        expected = {key: f"note {key}" for key in [*serving, f"{stalled_users[0]}:s1:t"]}
        memory = fast_memory(url, ns, search_engine=engine)
        async with _closed_if_it_fails(memory):
            async with asyncio.timeout(120):  # hang guard
                for key, text in expected.items():
                    await memory.add(key, {"content": text})
                # Replays go on in the background: only the stalled master's write stays.
                await eventually(lambda: memory.get_backend_info()["journal_size"] == 1, 60)
            assert await _in_redis(url, ns, serving) == [expected[key] for key in serving]
            assert memory.get_backend_info()["journal_dropped"] == 0
    await _replayed_and_all_there(memory, url, ns, {"u0:s1:warm": "warm", **expected})


async def test_past_the_cap_the_stalled_master_s_writes_are_dropped_and_the_others_land(
    partial_cluster: LocalCluster,
) -> None:
    """A stalled master's writes cannot be sent until it is back; the others' are sent at the
    next batch. Writes past ``max_journal`` to both: the cap drops the stalled master's (its
    partition held by the replays, which go on trying it), every one counted, and none of the
    masters' that answer, whose writes all land. Before, it dropped the oldest whatever their
    master (review R43: 91% of the answering masters' writes lost, 5,000-add bursts)."""
    cap = 1000
    ns = namespace()
    url = partial_cluster.url
    memory = fast_memory(url, ns, max_journal=cap)
    await memory.add("u0:s1:warm", {"content": "warm"})  # (the Query Engine set up)
    with one_master_stalled(partial_cluster) as victim:
        stalled_users, serving_users = _users_by_master(partial_cluster, ns, victim, 300)
        stalled, serving = stalled_users[0], serving_users[:50]
        on_stalled: dict[str, str] = {f"{stalled}:s1:first": "first"}
        on_serving: dict[str, str] = {f"{serving[0]}:s1:first": "first"}
        async with _closed_if_it_fails(memory):
            async with asyncio.timeout(240):  # hang guard
                for key, text in [*on_stalled.items(), *on_serving.items()]:
                    await memory.add(key, {"content": text})
                # A replay held the stalled master's partition and landed the other write.
                await eventually(lambda: memory.get_backend_info()["journal_size"] == 1, 30)
                # Four times the cap on the stalled master, half the cap on the others (a
                # write to them after every eighth), while replays go on in the background.
                for i in range(4 * cap):
                    key = f"{stalled}:s1:k{i}"
                    on_stalled[key] = f"note {i}"
                    await memory.add(key, {"content": on_stalled[key]})
                    if i % 8 == 0:
                        key = f"{serving[i // 8 % len(serving)]}:s1:k{i}"
                        on_serving[key] = f"note {i}"
                        await memory.add(key, {"content": on_serving[key]})
                # The cap is lifted while a replay's first batch waits on the stalled master
                # (it may answer); once that batch fails, the next write brings it back.
                extra = 0
                while memory.get_backend_info()["journal_dropped"] == 0:
                    key = f"{stalled}:s1:extra{extra}"
                    on_stalled[key] = f"extra {extra}"
                    await memory.add(key, {"content": on_stalled[key]})
                    extra += 1
                    await asyncio.sleep(0.05)

                unlanded: list[str] = []

                async def all_landed() -> bool:
                    found = await _in_redis(url, ns, list(on_serving))
                    unlanded[:] = [k for k, v in zip(on_serving, found, strict=True) if v is None]
                    return found == list(on_serving.values())

                try:
                    await eventually(all_landed, 60)  # while the master is still stalled
                except AssertionError:
                    info = memory.get_backend_info()
                    raise AssertionError(
                        f"{len(unlanded)} of the {len(on_serving)} writes to the masters that "
                        f"answer not in Redis; dropped {info['journal_dropped']}"
                    ) from None
    try:
        await replayed(memory)
        dropped = memory.get_backend_info()["journal_dropped"]
    finally:
        await memory.aclose()
    assert await _in_redis(url, ns, list(on_serving)) == list(on_serving.values())
    found = await _in_redis(url, ns, list(on_stalled))
    missing = [key for key, text in zip(on_stalled, found, strict=True) if text is None]
    # The stalled master's writes past the cap were dropped, each counted, none in Redis.
    assert len(missing) == dropped > 0, (len(missing), dropped)
    assert all(text in (None, on_stalled[key]) for key, text in zip(on_stalled, found, strict=True))


async def test_a_process_started_during_a_stall_searches_without_leaving_redis(
    partial_engine_cluster: LocalCluster,
) -> None:
    """On a cluster with the Query Engine, a process started while a master is stalled cannot
    set the engine up; its searches are served in-process meanwhile (``NotServedNow``), the
    store staying on Redis: its writes to the masters that answer go straight there. (Each
    search waited for a set-up, a whole timeout, and put the store in its outage, which the
    next replay ended: 13 times in 20 s, review R46.)"""
    ns = namespace()
    url = partial_engine_cluster.url
    await _index_made_elsewhere(url, ns, "warm apple")
    with one_master_stalled(partial_engine_cluster) as victim:
        _, serving_users = _users_by_master(partial_engine_cluster, ns, victim, 100)
        memory = fast_memory(url, ns)
        async with _closed_if_it_fails(memory):
            async with asyncio.timeout(120):  # hang guard
                user = serving_users[0]
                await memory.add(f"{user}:s1:first", {"content": "apple"})  # (journalled)
                await eventually(lambda: not memory.get_backend_info()["degraded"], 60)
                outages = 0
                for i in range(10):
                    await memory.search("apple", scope=user)
                    outages += memory.get_backend_info()["degraded"]
                    await memory.add(f"{user}:s1:t{i}", {"content": f"apple {i}"})
            assert outages == 0
            assert memory.get_backend_info()["journal_size"] == 0
    await _replayed_and_all_there(
        memory, url, ns, {f"{serving_users[0]}:s1:t{i}": f"apple {i}" for i in range(10)}
    )
