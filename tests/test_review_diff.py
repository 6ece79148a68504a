"""Review of the merged branches: where a thread lock, a loop lock and pages applied across
turns of the event loop meet."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import fast_recovery, namespace, threads_at_once
from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives._blocked import alive


@pytest.mark.redis
def test_a_page_left_half_applied_is_not_finished_over_another_threads_newer_one(
    redis_server: RedisServer,
) -> None:
    """Two threads, each with its own event loop, sync one replica at once (its lock is one
    per loop). Thread A applies the first slice of a page whose last record holds 'bravo' for
    a key and yields its loop; the key is rewritten 'charlie' and thread B reads and applies
    the changes from where A got to; then A finishes its page. The replica must not index the
    key by 'bravo' again: nothing would ever read it anew."""
    memory = MemoryPrimitive(redis_server.url, namespace=namespace(), search_engine="replica")
    key = "u1:s1:k"
    paused, go = threading.Event(), threading.Event()

    async def start() -> Any:
        assert await memory.search_scored("anything", limit=3) == []  # (the replica exists)
        for i in range(300):
            await memory.add(f"u1:s0:{i}", {"text": f"filler {i}"})
        await memory.add(key, {"text": "bravo"})
        return memory._store.remote.index  # type: ignore[union-attr]

    index = asyncio.run(start())
    replica = index.replicas.full
    cursor = replica._cursors[replica.bases[0]]
    loaded = cursor.since

    async def pause_mid_page() -> None:
        while True:  # until A's page is partly applied (at a turn its loop is given)
            if cursor.since != loaded:
                break
            await asyncio.sleep(0)
        paused.set()
        go.wait(30)  # (blocks thread A's loop, with the page half applied)

    errors: list[BaseException] = []

    def thread_a() -> None:
        async def run() -> None:
            await asyncio.gather(replica.sync(index._pages()), pause_mid_page())

        try:
            asyncio.run(run())
        except BaseException as exc:  # reported below
            errors.append(exc)

    a = threading.Thread(target=thread_a, daemon=True)
    a.start()
    try:
        assert paused.wait(30)
        asyncio.run(memory.add(key, {"text": "charlie"}))
        b = threading.Thread(target=asyncio.run, args=(replica.sync(index._pages()),), daemon=True)
        b.start()
        b.join(30)
    finally:
        go.set()
        a.join(30)
    assert not errors

    async def searched() -> tuple[list[str], list[str]]:
        try:
            new = [h.key for h in await memory.search_scored("charlie", limit=3)]
            old = [h.key for h in await memory.search_scored("bravo", limit=3)]
            return new, old
        finally:
            await memory.clear()
            await memory.aclose()

    assert asyncio.run(searched()) == ([key], [])


@pytest.mark.redis
def test_a_sync_call_inside_a_loop_whose_journal_writer_is_busy_returns(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """During an outage with a durable journal, a loop's write has started its journal writer
    when a sync call (LangGraph's store allows one inside a running loop) writes too: it runs
    on the portal loop while the first loop waits for it. Its append must not wait for the
    first loop's writer, which cannot finish until the sync call returns."""
    from tta_dev_primitives.integrations.langgraph import MemoryPrimitiveStore

    server = redis_server_factory()
    memory = fast_recovery(server.url, journal_path=tmp_path / "journal")
    store = MemoryPrimitiveStore(memory)

    async def main() -> None:
        await memory.add("u1:s1:0", {"text": "before"})
        server.kill()
        await memory.add("u1:s1:1", {"text": "journalled"})  # (the outage found)
        file = memory._store.journal_file
        assert file is not None
        task = asyncio.create_task(memory.add("u1:s1:2", {"text": "journalled too"}))
        while True:  # until this loop's writer has started
            if alive(file._writer):
                break
            await asyncio.sleep(0)
        store.put(("u1", "s2"), "k", {"text": "a sync write"})  # blocks this loop meanwhile
        await task

    done = threading.Event()

    def run() -> None:
        asyncio.run(main())
        done.set()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(60)  # hang guard only
    assert done.is_set(), "the sync write never returned"
    assert memory.get_backend_info()["journal_size"] == 3
    asyncio.run(memory.aclose())


@pytest.mark.redis
def test_a_journal_restored_by_another_threads_loop_meanwhile_does_not_undo_a_later_write(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """A process starts on a durable journal an earlier one left, Redis still away, and two
    threads (each its own loop) make its first calls at once. Each loop's load lock is its
    own: thread B restores the journal in slices; thread A restores it too, writes a newer
    value of a restored key, and only then does B finish. The newer value must stay."""
    server = redis_server_factory()
    path = tmp_path / "journal"
    first = fast_recovery(server.url, journal_path=path)
    ns = first.namespace

    async def leave_a_journal() -> None:
        await first.add("u1:s1:start", {"text": "connected"})
        server.kill()
        for i in range(600):
            await first.add(f"u1:s1:{i}", {"text": f"old {i}"})
        await first.aclose()  # (the file keeps them for the next process)

    asyncio.run(leave_a_journal())
    memory = fast_recovery(server.url, ns, journal_path=path)
    store = memory._store
    paused, go = threading.Event(), threading.Event()

    async def pause_mid_restore() -> None:
        while True:  # until B's restore has taken in a slice (at a turn it gives its loop)
            if len(store._journal) >= 256 and not store._loaded:
                break
            await asyncio.sleep(0)
        paused.set()
        go.wait(60)  # (blocks thread B's loop, its restore half done)

    errors: list[BaseException] = []

    def thread_b() -> None:
        async def run() -> None:
            await asyncio.gather(memory.get("u1:s1:0"), pause_mid_restore())

        try:
            asyncio.run(run())
        except BaseException as exc:  # reported below
            errors.append(exc)

    b = threading.Thread(target=thread_b, daemon=True)
    b.start()

    async def newer() -> None:
        assert (await memory.get("u1:s1:5")) == {"text": "old 5"}
        await memory.add("u1:s1:5", {"text": "new"})

    wrote = threading.Event()

    def thread_a() -> None:
        try:
            asyncio.run(newer())
        except BaseException as exc:  # reported below
            errors.append(exc)
        wrote.set()

    def a_waits_for_b() -> bool:
        """A's loop holds its load lock while B's load (a task of B's loop) runs."""
        if getattr(store, "_load_task", None) is None:
            return False  # (no load of one loop to wait for: A restores on its own)
        return sum(lock.locked() for lock in list(store._loading._locks.values())) == 2

    a = threading.Thread(target=thread_a, daemon=True)
    try:
        assert paused.wait(60)
        a.start()
        # A either writes at once (its own restore) or waits for B's load (its loop's load
        # lock held); B goes on only then.
        for _ in range(60_000):  # hang guard only
            if wrote.is_set() or a_waits_for_b():
                break
            time.sleep(0.001)
    finally:
        go.set()
        b.join(60)
        a.join(60)
    assert not errors

    async def read() -> Any:
        try:
            return await memory.get("u1:s1:5")
        finally:
            await memory.aclose()

    assert asyncio.run(read()) == {"text": "new"}


def test_threads_searching_scopes_at_once_never_see_the_replica_list_change_under_them() -> None:
    """The replicas of a memory searched by threads each with its own loop: one search's
    trim (or a clear's walk over them) while another's scope adds or moves a replica."""
    from tta_dev_primitives.search._indexing import Indexing
    from tta_dev_primitives.stores._redis.replicas import Replicas

    replicas = Replicas(Indexing(), ["b"], lambda key: "b", max_scopes=8)
    errors: list[str] = []

    def churn(thread: int) -> None:
        try:
            for i in range(5_000):
                replicas.for_scope(f"u{thread}-{i % 50}")
                replicas.trim()
                for _ in replicas:
                    pass
        except Exception as exc:  # the outcome is what the test reports
            errors.append(f"{type(exc).__name__}: {exc}")

    threads_at_once([functools.partial(churn, t) for t in range(4)], switch=1e-6)
    assert errors == []


def test_a_replay_reads_its_batch_while_another_thread_journals_a_write() -> None:
    """During an outage's replay (on the loop that runs it), threads each with its own loop
    journal writes: the replay's batch is read while the journal changes."""
    from tta_dev_primitives.stores._base import Put
    from tta_dev_primitives.stores._recovery import Journal

    journal = Journal(100_000, 1 << 40)
    for i in range(1_000):
        journal.add(Put(f"u1:s1:{i}", "v"), None)
    errors: list[str] = []
    stop = threading.Event()

    def replay() -> None:
        try:
            for _ in range(2_000):
                assert len(journal.head(500)) == 500
        except Exception as exc:  # the outcome is what the test reports
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            stop.set()

    def write() -> None:
        i = 0
        while not stop.is_set():
            journal.add(Put(f"u1:s1:{i % 1_000}", "w"), None)  # moves the key to the end
            i += 1

    threads_at_once([replay, write], switch=1e-6)
    assert errors == []
