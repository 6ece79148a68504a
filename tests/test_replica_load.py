"""A search never answers from a replica it could not load: it waits while pages arrive, or raises.

Real ``redis-server`` processes; cold searchers are real OS processes started at once.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from conftest import Factory, fast_recovery, namespace, replayed
from redis_server import LocalCluster, RedisServer
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import (
    BackendUnavailableError,
    SearchNotReadyError,
    UnsentWritesError,
)
from tta_dev_primitives.memory._values import encode_value
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.stores import Put
from tta_dev_primitives.stores._redis import replica as replica_module
from tta_dev_primitives.stores._redis.backend import RedisBackend
from tta_dev_primitives.stores._redis.replica import Replica
from tta_dev_primitives.stores._redis.search import RedisSearchBackend

pytestmark = pytest.mark.redis

WORDS = ["car", "garage", "brakes", "maria", "hiking", "trip", "dinner", "paris", "dog", "rain"]
QUESTIONS: list[tuple[str, str | None]] = [
    ("when did I fix the brakes on the car", None),
    ("dinner in paris with maria", "u7"),
    ("hiking trip in the rain", "u3:s1"),
    ("garage dog", None),
]


def value(i: int) -> dict[str, Any]:
    """The memory stored under the i-th key: a few words that repeat across users."""
    return {"content": f"{WORDS[i % 10]} {WORDS[i * 7 % 10]} {WORDS[i % 3]} turn {i}"}


def key(i: int) -> str:
    """The i-th key: 40 users, 2 sessions each."""
    return f"u{i % 40}:s{i % 2}:{i}"


async def load(url: str, ns: str, count: int) -> None:
    """Write ``count`` memories straight through the backend (fast, in pipelined pages)."""
    loader = RedisBackend(url, namespace=ns, timeout=30)
    try:
        for start in range(0, count, 1000):
            top = min(start + 1000, count)
            await loader.apply([Put(key(i), encode_value(value(i))) for i in range(start, top)])
    finally:
        await loader.aclose()


async def reference(count: int) -> list[list[list[Any]]]:
    """The in-process answers to QUESTIONS over the same memories, as [[key, score], ...]."""
    memory = MemoryPrimitive(max_size=count + 1)
    for i in range(count):
        await memory.add(key(i), value(i))
    answers = []
    for question, scope in QUESTIONS:
        found = await memory.search_scored(question, 10, scope=scope)
        answers.append([[hit.key, hit.score] for hit in found])
    return answers


SEARCHER = """
    import asyncio, json, sys
    from tta_dev_primitives import MemoryPrimitive

    async def main():
        url, ns, questions = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
        memory = MemoryPrimitive(url, namespace=ns, redis_timeout=1.0)
        answers = []
        for question, scope in questions:
            found = await memory.search_scored(question, 10, scope=scope)
            answers.append([[hit.key, hit.score] for hit in found])
        print(json.dumps({"answers": answers, "on_redis": memory.using_redis}))
        await memory.aclose()

    asyncio.run(main())
"""


async def test_eight_cold_processes_started_at_once_all_answer_in_full(
    redis_server: RedisServer,
) -> None:
    """8 processes search a 20,000-memory namespace at once: each gives the in-process answer.
    (The first page of each load must come within ``redis_timeout``, 1 s, as any call must;
    the pages after it wait on the load budget.)"""
    ns, count = namespace(), 20_000
    await load(redis_server.url, ns, count)
    try:
        code = textwrap.dedent(SEARCHER)
        procs = [
            subprocess.Popen(  # noqa: ASYNC220 (all 8 must start at once, then be awaited)
                [sys.executable, "-c", code, redis_server.url, ns, json.dumps(QUESTIONS)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        outputs = [proc.communicate(timeout=300) for proc in procs]
        expected = await reference(count)
        for proc, (out, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err
            result = json.loads(out)
            assert result["on_redis"], "a cold search fell back"
            for got, want in zip(result["answers"], expected, strict=True):
                assert [hit[0] for hit in got] == [hit[0] for hit in want]
                assert [hit[1] for hit in got] == pytest.approx([hit[1] for hit in want])
    finally:
        cleaner = RedisBackend(redis_server.url, namespace=ns, timeout=30)
        await cleaner.clear()
        await cleaner.aclose()


@pytest.mark.parametrize("before", ["nothing", "an add", "a search"])
async def test_a_search_on_a_stalled_redis_is_served_in_process(
    redis_server_factory: Factory, before: str
) -> None:
    """A stalled Redis (SIGSTOP: connections open, no reply) is an outage for a search as for
    every call, whether the replica was never loaded, or is loaded and only catching up: served
    in-process within ``redis_timeout``, returning normally, however long ``load_timeout`` is
    (a day here: a search that waited on it would hit the hang guard). Resumed, it answers in
    full."""
    server = redis_server_factory()
    ns = namespace()
    await load(server.url, ns, 3000)
    memory = fast_recovery(server.url, ns, redis_timeout=0.3, load_timeout=86_400)
    if before == "an add":
        await memory.add("u1:s1:mine", {"content": "dinner in paris, written here"})
    elif before == "a search":
        assert len(await memory.search("dinner in paris", limit=3000)) > 100
    try:
        with server.stalled():
            async with asyncio.timeout(30):  # a hang guard, far above the 0.3 s bound
                found = await memory.search("dinner in paris", limit=3000)
            assert not memory.using_redis
        # This process's own copies answered: the memory it added, if any.
        assert found == (
            [{"content": "dinner in paris, written here"}] if before == "an add" else []
        )
        await replayed(memory)
        matching = [
            i for i in range(3000) if {"dinner", "paris"} & set(value(i)["content"].split())
        ]
        mine = ["u1:s1:mine"] if before == "an add" else []
        found_keys = {hit.key for hit in await memory.search_scored("dinner in paris", 3000)}
        assert found_keys == {key(i) for i in matching} | set(mine)
    finally:
        await memory.clear()
        await memory.aclose()


@pytest.mark.parametrize("scope", [None, "u7"])
async def test_searches_queued_on_a_stalled_redis_wait_one_timeout_not_one_each(
    redis_server_factory: Factory, scope: str | None
) -> None:
    """Twelve searches at once on one warm replica (one user's, or the namespace's) when Redis
    stalls: they queue for the replica's catch-up, and each used to try Redis again once the
    one before it had timed out, the twelfth after twelve timeouts (24 s here). They now
    share the first one's outage: all are served in-process within about one ``redis_timeout``
    (2 s; the hang guard is 12 s, far below 24 and far above 2)."""
    server = redis_server_factory()
    ns = namespace()
    await load(server.url, ns, 2000)
    memory = fast_recovery(server.url, ns, redis_timeout=2)
    try:
        assert await memory.search("dinner in paris", limit=5, scope=scope)  # warm
        await memory.add("u7:s1:mine", {"content": "dinner in paris, written here"})
        with server.stalled():
            async with asyncio.timeout(12):  # a hang guard
                found = await asyncio.gather(
                    *(memory.search("dinner in paris", limit=5, scope=scope) for _ in range(12))
                )
            assert not memory.using_redis
        # Served in-process: this process's own copy, the memory it added.
        assert found == [[{"content": "dinner in paris, written here"}]] * 12
        await replayed(memory)
        assert {"content": "dinner in paris, written here"} in await memory.search(
            "dinner in paris written here", limit=5, scope=scope
        )
    finally:
        await memory.clear()
        await memory.aclose()


async def test_a_load_that_stops_midway_raises_and_the_next_search_answers_in_full(
    redis_server_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis stalls after the first page of a load: the next page is waited for up to
    ``load_timeout`` (a busy Redis), then the backend raises ``SearchNotReadyError``, an
    outage, never a partial answer; resumed, the next search answers in full."""
    server = redis_server_factory()
    ns = namespace()
    await load(server.url, ns, 3000)  # three pages of 1,000
    indexing = Indexing()
    backend = RedisSearchBackend(
        server.url, namespace=ns, timeout=0.2, load_timeout=0.5, indexing=indexing
    )
    query = indexing.query("dinner in paris")
    applied = Replica._apply

    async def stall_after_the_first_page(self: Replica, *args: Any) -> Any:
        server.stall()
        return await applied(self, *args)

    try:
        await backend.size()  # connected
        monkeypatch.setattr(Replica, "_apply", stall_after_the_first_page)
        try:
            with pytest.raises(SearchNotReadyError, match="load_timeout"):
                await backend.search(query, 5, None)
        finally:
            server.resume()
        monkeypatch.setattr(Replica, "_apply", applied)
        assert issubclass(SearchNotReadyError, BackendUnavailableError)
        found = await backend.search(query, 3000, None)
        matching = [
            i for i in range(3000) if {"dinner", "paris"} & set(value(i)["content"].split())
        ]
        assert {hit[0] for hit in found} == {key(i) for i in matching}
    finally:
        await backend.aclose()


async def test_a_cold_search_on_a_redis_that_is_down_falls_back(
    redis_server_factory: Factory,
) -> None:
    """Redis down (nothing listening) is an outage: served in-process, as every other call."""
    server = redis_server_factory()
    url = server.url
    server.kill()
    memory = MemoryPrimitive(url, namespace=namespace(), redis_timeout=0.5)
    try:
        assert await memory.search("paris") == []  # nothing in this process's copy yet
        assert memory.get_backend_info()["degraded"]
        await memory.add("u1:s1:a", {"content": "dinner in paris"})
        assert [hit.key for hit in await memory.search_scored("paris")] == ["u1:s1:a"]
    finally:
        with pytest.raises(UnsentWritesError):  # the add never reached Redis
            await memory.aclose()


async def test_a_warm_search_with_one_master_of_a_cluster_stalled_is_served_in_process(
    redis_binary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warm replica catches up a few writes in most of a cluster's partitions, and one master
    stalls (SIGSTOP) once the first of those partitions has answered. The stalled master's
    partitions waited ``load_timeout`` each (30 s here), because a page of another partition
    had arrived: 10 s a search with the defaults, in a reviewer's run. The first page of each
    partition now waits ``redis_timeout`` (1 s), as any call does: the search is served
    in-process and returns normally (the hang guard, 15 s, is far above 1 and below 30).
    Resumed, the next searches answer from Redis in full."""
    cluster = LocalCluster(redis_binary, masters=3).start()
    memory = fast_recovery(
        cluster.url, namespace(), search_engine="replica", redis_timeout=1, load_timeout=30
    )
    matching = {
        key(i) for i in range(400) if {"dinner", "paris"} & set(value(i)["content"].split())
    }
    victim = cluster.nodes[1]
    try:
        for i in range(300):
            await memory.add(key(i), value(i))
        assert len(await memory.search("dinner in paris", limit=400)) > 50  # warm
        for i in range(300, 400):
            await memory.add(key(i), value(i))  # a few writes in most partitions
        # One partition at a time, so that nothing is on its way to the victim when it stalls.
        monkeypatch.setattr(replica_module, "PARTITIONS_AT_ONCE", 1)
        applied = Replica._apply
        stalled: list[bool] = []

        async def stall_after_a_first_page(self: Replica, *args: Any) -> Any:
            if not stalled:
                victim.stall()
                stalled.append(True)
            return await applied(self, *args)

        monkeypatch.setattr(Replica, "_apply", stall_after_a_first_page)
        try:
            async with asyncio.timeout(15):  # a hang guard
                found = await memory.search_scored("dinner in paris", 400)
        finally:
            victim.resume()
        monkeypatch.setattr(Replica, "_apply", applied)
        assert not memory.using_redis
        assert {hit.key for hit in found} == matching  # this process's copies answered
        await replayed(memory)
        found = await memory.search_scored("dinner in paris", 400)
        assert memory.using_redis
        assert {hit.key for hit in found} == matching
    finally:
        victim.resume()
        await memory.clear()
        await memory.aclose()
        cluster.stop()
