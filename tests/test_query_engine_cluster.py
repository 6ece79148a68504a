"""The Query Engine on a Redis Cluster without a coordinator: an index on every master.

What is promised (docs/production.md, "Standalone or cluster"): a search asks every master and
merges their hits, or only the master of a scope that names one partition; a failover or a new
layout is found by the next search, which makes the indexes it lacks.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from conftest import IN_CI, before_the_embedder_record, namespace
from redis_server import LocalCluster, run_report
from tta_dev_primitives import MemoryPrimitive

pytestmark = pytest.mark.redis

#: Seconds a call may take: none of these tests is about timeouts, and on a machine loaded by
#: other work a clear's page past 1 s failed one (``IncompleteOperationError``).
LOADED = 10.0


def _ft_searches(cluster: LocalCluster) -> dict[int, int]:
    """``FT.SEARCH`` calls each live master has served so far."""
    counts = {}
    for node in cluster.master_nodes():
        stats = redis.Redis(port=node.port).info("commandstats")
        counts[node.port] = int(stats.get("cmdstat_FT.SEARCH", {}).get("calls", 0))
    return counts


async def test_every_master_has_an_index_and_a_search_merges_them(
    redis_query_engine_cluster: LocalCluster,
) -> None:
    """Memories of 60 users spread over all masters; one unscoped search finds every match."""
    memory = MemoryPrimitive(
        redis_query_engine_cluster.url,
        namespace=namespace(),
        search_engine="redis",
        redis_timeout=LOADED,
    )
    for user in range(60):
        await memory.add(f"u{user}:s1:t1", {"content": f"user {user} parked the car"})
        await memory.add(f"u{user}:s1:t2", {"content": f"user {user} went hiking"})
    found = await memory.search_scored("parked car", limit=100)
    assert sorted(h.key for h in found) == sorted(f"u{u}:s1:t1" for u in range(60))
    assert memory.get_backend_info()["search_engine"] == "redis"
    for node in redis_query_engine_cluster.master_nodes():
        names = redis.Redis(port=node.port).execute_command("FT._LIST")
        assert any(name.decode().startswith(memory.namespace + ":idx2:{") for name in names)
    await memory.clear()
    await memory.aclose()


async def test_a_scope_in_one_partition_asks_only_its_master(
    redis_query_engine_cluster: LocalCluster,
) -> None:
    """A session's search asks one master; a user's (all partitions) asks all."""
    memory = MemoryPrimitive(
        redis_query_engine_cluster.url,
        namespace=namespace(),
        search_engine="redis",
        redis_timeout=LOADED,
    )
    for session in range(12):
        await memory.add(f"u1:s{session}:t1", {"content": f"session {session} about tea"})
    await memory.search("tea")  # the index is made and checked before the counts start
    before = _ft_searches(redis_query_engine_cluster)
    assert [h.key for h in await memory.search_scored("tea", scope="u1:s3")] == ["u1:s3:t1"]
    after = _ft_searches(redis_query_engine_cluster)
    # One FT.SEARCH on that master: the candidates (all its matches, so counted among them).
    assert sorted(after[p] - before[p] for p in after) == [0, 0, 1]
    assert len(await memory.search("tea", limit=20, scope="u1")) == 12
    again = _ft_searches(redis_query_engine_cluster)
    assert all(again[p] - after[p] == 1 for p in again)
    await memory.clear()
    await memory.aclose()


def test_after_a_failover_searches_find_every_memory_in_the_engine() -> None:
    """A master is killed; once its replica took over, a search finds all 40 memories, in the
    engine (the replica has the index and its documents).

    Runs in its own process (``engine_cluster_failover.py``), as the plain cluster's failover
    test does, so the dead node's sockets are not collected inside another test.
    """

    from query_engine_server import find_redis_stack

    found = find_redis_stack()
    if isinstance(found, str):
        if IN_CI:
            pytest.fail(f"CI=true: no Redis with the Query Engine: {found}", pytrace=False)
        pytest.skip(found)
    report = run_report("engine_cluster_failover.py", timeout=240)
    assert report["before"] == 40
    assert report["after"] == 40, report
    assert report["engine"] == "redis"


async def test_a_partition_moved_to_another_master_still_ranks_as_in_process(
    redis_query_engine_cluster: LocalCluster,
) -> None:
    """A resharding moves a partition (its memories, documents and running totals) to another
    master under a client that still maps it to the old one: the per-master scripts there
    refuse its keys, the search reads them through the cluster client, and keys and scores stay
    in-process's, unscoped and for one user."""
    from redis.crc import key_slot

    from test_query_engine_ranking import assert_ranks_alike, corpus
    from tta_dev_primitives.stores._redis.layout import CLUSTER_PARTITIONS, Layout

    cluster = redis_query_engine_cluster
    local = MemoryPrimitive(max_size=10_000)
    remote = MemoryPrimitive(
        cluster.url, namespace=namespace(), search_engine="redis", redis_timeout=LOADED
    )
    for key, text in corpus():
        for memory in (local, remote):
            await memory.add(key, {"content": text})
    await assert_ranks_alike(local, remote, ["u1"])  # the client learns the layout first
    base = Layout(remote.namespace, CLUSTER_PARTITIONS).base("u1:s1:0")
    slot = key_slot(Layout.facts(base).encode())
    holders = [
        n for n in cluster.master_nodes()
        if redis.Redis(port=n.port).execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
    ]  # fmt: skip
    assert len(holders) == 1
    cluster.move_slot(slot, next(n for n in cluster.master_nodes() if n is not holders[0]))
    await assert_ranks_alike(local, remote, ("u1", None))
    assert remote.get_backend_info()["search_engine"] == "redis"
    await remote.clear()
    for memory in (local, remote):
        await memory.aclose()


async def test_a_user_without_scripts_searches_each_master_command_by_command(
    redis_query_engine_cluster: LocalCluster,
) -> None:
    """A searching user that may not run scripts (an ACL without ``EVAL``) still searches in
    the engine: each master's commands one by one, the terms and totals through the cluster
    client, with in-process's keys and scores."""
    from test_query_engine_ranking import assert_ranks_alike, corpus

    cluster = redis_query_engine_cluster
    for node in cluster.master_nodes():
        redis.Redis(port=node.port).execute_command(
            "ACL", "SETUSER", "noscripts", "on", ">noscripts-pw", "~*", "+@all",
            "-eval", "-evalsha", "-eval_ro", "-evalsha_ro",
        )  # fmt: skip
    ns = namespace()
    local = MemoryPrimitive(max_size=10_000)
    writer = MemoryPrimitive(cluster.url, namespace=ns, search_engine="redis", redis_timeout=LOADED)
    for key, text in corpus():
        for memory in (local, writer):
            await memory.add(key, {"content": text})
    await writer.search("apple")  # the index is whole
    url = cluster.url.replace("redis://", "redis://noscripts:noscripts-pw@")
    reader = MemoryPrimitive(url, namespace=ns, search_engine="redis", redis_timeout=LOADED)
    await assert_ranks_alike(local, reader)
    assert reader.get_backend_info()["search_engine"] == "redis"
    await writer.clear()
    for memory in (local, writer, reader):
        await memory.aclose()


async def test_writes_during_a_half_done_resharding_rank_as_in_process_once_it_ends(
    redis_query_engine_cluster: LocalCluster,
) -> None:
    """A resharding moves a partition's keys a batch at a time while it is written to: halfway
    (its facts, feeds and per-user totals on the new master, its values and documents not), a
    new memory and a delete return normally; the move completes (no BUSYKEY: nothing was made
    anew on the new master), and a fresh process's engine search ranks as in-process, with the
    partition's running totals whole."""
    from redis.crc import key_slot

    from test_query_engine_ranking import assert_ranks_alike, corpus
    from tta_dev_primitives.stores._redis import layout

    cluster = redis_query_engine_cluster
    ns = namespace()
    local = MemoryPrimitive(max_size=10_000)
    remote = MemoryPrimitive(cluster.url, namespace=ns, search_engine="redis", redis_timeout=LOADED)
    for key, text in corpus():
        for memory in (local, remote):
            await memory.add(key, {"content": text})
    await assert_ranks_alike(local, remote, ["u1"])  # the index is whole
    base = layout.Layout(ns, layout.CLUSTER_PARTITIONS).base("u1:s1:1")
    slot = key_slot(layout.Layout.facts(base).encode())
    target = next(
        n for n in cluster.master_nodes()
        if not redis.Redis(port=n.port).execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)
    )  # fmt: skip
    with cluster.migrating(slot, target) as move:
        halfway = (layout.FACTS, layout.HEAD, layout.LIVE, "r:u1", layout.SEGMENT_TOTALS)
        move.move([base + name for name in halfway])
        for memory in (local, remote):
            await memory.add("u1:s1:new", {"content": "apple river apple during the move"})
            await memory.delete("u1:s1:1")
        move.finish()  # BUSYKEY if a write made the partition's keys anew on the new master
    assert await remote.flush()
    await remote.aclose()
    fresh = MemoryPrimitive(cluster.url, namespace=ns, search_engine="redis", redis_timeout=LOADED)
    await assert_ranks_alike(local, fresh, (None, "u1", "u1:s1"))
    assert fresh.get_backend_info()["search_engine"] == "redis"
    await fresh.clear()
    for memory in (local, fresh):
        await memory.aclose()


def _vector_sizes(cluster: LocalCluster, name: str) -> list[list[int]]:
    """The vector field's size in each master's index of namespace ``name``."""
    sizes = []
    for node in cluster.master_nodes():
        client = redis.Redis(port=node.port, protocol=2)
        for index in client.execute_command("FT._LIST"):
            if index.decode().startswith(name + ":"):
                info = client.execute_command("FT.INFO", index)
                fields = dict(zip(info[::2], info[1::2], strict=True))[b"attributes"]
                sizes.append([int(f[f.index(b"dim") + 1]) for f in fields if b"dim" in f])
    return sizes


@pytest.mark.parametrize("plain_first", [False, True], ids=["create", "alter"])
async def test_two_embedders_meeting_a_new_namespace_give_every_master_one_vector_size(
    redis_query_engine_cluster: LocalCluster, plain_first: bool
) -> None:
    """A rolling deploy to a model of another size: an old and a new process meet a new
    namespace at once (or add the vector field to an index made without one at once). Each
    master's index got the size of whichever process reached it first (R35: 1 in 5-25 tries),
    and the other side's searches by meaning then raised the engine's "query vector blob
    size ... does not match" for good. Now one size is agreed on first."""

    def embedder(size: int) -> Any:
        def embed(texts: list[str]) -> list[list[float]]:
            return [[1.0 + len(t) % 3] + [0.5] * (size - 1) for t in texts]

        return embed

    async def one(name: str, size: int) -> list[str]:
        # (Processes of a version before the embedder record, which now refuses the second
        # embedder at its first write: the claim still decides the index's size for them, and
        # for a process that searches by meaning before any vector is written.)
        memory = before_the_embedder_record(MemoryPrimitive(
            redis_query_engine_cluster.url, namespace=name, redis_timeout=LOADED,
            embed=embedder(size), dims=size,
        ))  # fmt: skip
        await memory.add(f"u1:s:{size}", {"content": "no peanuts in my snack"})
        found = [key for key, _ in await memory.search_items("snack", mode="semantic")]
        await memory.aclose()
        return found

    for _ in range(20):
        name = namespace()
        if plain_first:
            plain = MemoryPrimitive(redis_query_engine_cluster.url, namespace=name,
                                    redis_timeout=LOADED)  # fmt: skip
            await plain.add("u0:p:0", {"content": "plain"})
            await plain.search("plain")
            await plain.aclose()

        answers = await asyncio.gather(one(name, 6), one(name, 8))
        assert all(answers), answers
        assert len({tuple(s) for s in _vector_sizes(redis_query_engine_cluster, name)}) == 1
        cleanup = MemoryPrimitive(redis_query_engine_cluster.url, namespace=name,
                                  redis_timeout=LOADED)  # fmt: skip
        await cleanup.clear()
        await cleanup.aclose()
