"""Review of the thread leftovers: a memory shared by threads that each run their own event
loop, forked while one of them writes, or journalling with two journal writers."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import namespace, run_python, threads_at_once
from redis_server import RedisServer
from test_forked_workers import FORK
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives._blocked import alive
from tta_dev_primitives.exceptions import JournalError, UnsentWritesError
from tta_dev_primitives.stores._base import Put
from tta_dev_primitives.stores._journal_file import JournalFile
from tta_dev_primitives.stores._recovery import Journal


def test_a_worker_forked_while_a_threads_journal_writer_runs_closes_the_memory(
    tmp_path: Path,
) -> None:
    """The master journals (Redis down) from a thread with its own event loop, and forks while
    that thread's journal writer waits for its disk write. In a worker, that loop's copy looks
    running, but no thread runs it there: a worker's ``aclose`` waited for its writer forever.
    The master's journal keeps both writes either way."""
    path = tmp_path / "journal.jsonl"
    code = (
        FORK
        + f"""
import asyncio, signal, threading
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives._blocked import alive
from tta_dev_primitives.exceptions import JournalError, UnsentWritesError

memory = MemoryPrimitive("redis://127.0.0.1:1/0", namespace="fork", redis_timeout=0.2,
                         journal_path={str(path)!r})
asyncio.run(memory.add("u1:s1:first", {{"content": "before the thread"}}))
file = memory._store.journal_file
release, started = threading.Event(), threading.Event()
file._executor.submit(release.wait)  # the journal's thread busy: the next append waits for it

def thread():
    async def run():
        adding = asyncio.ensure_future(memory.add("u1:s1:thread", {{"content": "a thread's"}}))
        while not alive(file._writer):
            await asyncio.sleep(0)
        started.set()
        await adding
    asyncio.run(run())

writer = threading.Thread(target=thread, daemon=True)
writer.start()
assert started.wait(30)

def worker():
    signal.alarm(30)  # a hung close ends the worker, and the parent reads no result
    asyncio.run(memory.aclose())
    return "closed"

try:
    said = workers(worker)
finally:
    release.set()
writer.join(30)
asyncio.run(memory.aclose())
print(json.dumps({{"children": said, "journal": open({str(path)!r}).read()}}))
"""
    )
    report = json.loads(run_python(code))
    assert report["children"] == ["closed", "closed"]
    assert "u1:s1:first" in report["journal"]
    assert "u1:s1:thread" in report["journal"]


@pytest.mark.redis
def test_a_worker_forked_while_a_thread_held_a_memorys_locks_searches(
    redis_server: RedisServer,
) -> None:
    """The master forks while another of its threads searches: it holds the in-process copy's
    lock and the search replica's guard, thread locks no child thread will ever release. A
    worker's first search with either memory waited for them forever."""
    ns = namespace()
    code = (
        FORK
        + f"""
import asyncio, signal
from tta_dev_primitives import MemoryPrimitive

local = MemoryPrimitive()
remote = MemoryPrimitive({redis_server.url!r}, namespace={ns!r}, search_engine="replica")

async def fill():
    await local.add("u1:s1:pet", {{"content": "my pet is a cat"}})
    await remote.add("u1:s1:pet", {{"content": "my pet is a cat"}})
    assert len(await remote.search("cat")) == 1  # (the replica exists)

asyncio.run(fill())
replica = remote._store.remote.index.replicas.full
def worker():
    signal.alarm(30)  # a hung search ends the worker, and the parent reads no result
    async def run():
        found = [len(await local.search("cat")), len(await remote.search("cat"))]
        await remote.aclose()
        return found
    return asyncio.run(run())

# The locks a search holds while it ranks, held at the fork.
said = workers_while_held(worker, local._store.local.store._lock, replica.guard)

async def done():
    await remote.clear()
    await remote.aclose()

asyncio.run(done())
print(json.dumps(said))
"""
    )
    assert json.loads(run_python(code)) == [[1, 1], [1, 1]]


def test_threads_journalling_the_same_keys_at_once_keep_the_journals_counts() -> None:
    """Threads each with its own event loop journal writes of the same keys at once (without a
    file each loop journals its own; with one, each loop's journal writer, and a writer that
    took over from a stopped loop's, add what they wrote) while a replay on another loop sends
    and removes entries. A write replacing its key's older one took that one out of the
    counts: two at once took it out twice, and the second took the first one's new entry out
    of the journal, its record never released. ``journal_bytes`` and the caps it enforces
    drifted for good, and the next process replayed records long replaced."""
    journal = Journal()
    sequences = itertools.count(1)
    made: list[int] = []

    def writer(thread: int) -> None:
        for i in range(5000):
            seq = next(sequences)
            made.append(seq)
            payload = "x" * (thread * 10 + i % 7)
            journal.add(Put(f"u1:s1:{i % 3}", payload, None, None, f"{seq:012d}"), None, seq, seq)

    def replay() -> None:
        for _ in range(5000):
            journal.done(journal.head(2))

    assert threads_at_once([functools.partial(writer, t) for t in range(3)] + [replay]) == []
    live = journal.entries()
    assert journal.bytes == sum(entry.size for entry in live)
    assert journal.disk_bytes == sum(entry.disk for entry in live)
    released = journal.take_released()
    assert sorted(released + [entry.seq for entry in live]) == sorted(made)


def test_a_compaction_right_after_a_writer_takeover_keeps_the_old_writers_last_batch(
    tmp_path: Path,
) -> None:
    """During an outage with ``journal_path``, loop A's journal writer has a batch on its way
    to the disk when A stops (``run_until_complete`` returned). Another thread's loop then
    compacts the file (as after a replay or a restore): it takes over as the writer, and its
    rewrite runs after A's batch reached the disk, but before A's loop ran again to take that
    batch into the journal, from which the rewrite is made. A's add then returned: a write
    acknowledged as journalled, no longer on disk, lost to a crash (until a later rewrite)."""
    path = tmp_path / "journal"
    ns = namespace()
    memory = MemoryPrimitive(
        "redis://127.0.0.1:1/0", namespace=ns, redis_timeout=0.2, journal_path=path
    )
    store: Any = memory._store
    loop_a = asyncio.new_event_loop()
    release = threading.Event()
    try:
        loop_a.run_until_complete(memory.add("u1:s1:first", {"content": "first"}))
        file = store.journal_file
        file._executor.submit(release.wait)  # the journal's thread busy: A's batch waits

        async def start() -> asyncio.Future[Any]:
            adding = asyncio.ensure_future(memory.add("u1:s1:a", {"content": "A's"}))
            while True:  # until A's writer has started
                if alive(file._writer):
                    return adding
                await asyncio.sleep(0)

        adding = loop_a.run_until_complete(start())  # A stops, its batch on its way
        a_writer = file._writer
        compaction = threading.Thread(
            target=asyncio.run, args=(store._outbox.compact(),), daemon=True
        )
        compaction.start()
        deadline = time.monotonic() + 30  # a hang guard only
        while (file._writer is a_writer or file._queue) and time.monotonic() < deadline:
            time.sleep(0.001)  # until the compaction took over and sent its rewrite
        assert file._writer is not a_writer
        release.set()
        compaction.join(30)
        assert not compaction.is_alive()
        loop_a.run_until_complete(adding)  # acknowledged
        assert memory.get_backend_info()["journal_size"] == 2
        loop_a.run_until_complete(memory.aclose())
    finally:
        release.set()
        loop_a.close()

    async def on_disk() -> set[str]:
        reader = JournalFile(path, ns)
        try:
            return {record.write.key for record in (await reader.load()).records}  # type: ignore[union-attr]
        finally:
            await reader.aclose()

    assert asyncio.run(on_disk()) == {"u1:s1:first", "u1:s1:a"}


def _outage_memory(path: Path) -> tuple[MemoryPrimitive, Any]:
    """A memory journalling to ``path`` (Redis unreachable: every write is journalled), and its
    store."""
    memory = MemoryPrimitive(
        "redis://127.0.0.1:1/0", namespace=namespace(), redis_timeout=0.2, journal_path=path
    )
    return memory, memory._store


def test_an_append_failing_while_a_stopped_loops_remake_is_pending_raises_journal_error(
    tmp_path: Path,
) -> None:
    """Loop A's append finds the journal file deleted (a /tmp cleaner): A starts writing it
    anew, and stops (``run_until_complete`` returned) before that is done; then the directory
    goes too. Another thread's append fails as well and must say so (``JournalError``: the
    write is not acknowledged). It awaited A's rewrite, a task of A's loop: ``RuntimeError``
    (a future attached to a different loop)."""
    folder = tmp_path / "journal"
    folder.mkdir()
    path = folder / "journal.jsonl"
    memory, store = _outage_memory(path)
    loop_a = asyncio.new_event_loop()
    first, second = threading.Event(), threading.Event()
    said: list[BaseException | None] = []
    try:
        loop_a.run_until_complete(memory.add("u1:s1:first", {"content": "first"}))
        file = store.journal_file
        file._executor.submit(first.wait)  # the journal's thread busy: A's append waits

        async def until(done: Callable[[], bool]) -> None:
            while True:
                if done():
                    return
                await asyncio.sleep(0)

        adding = loop_a.create_task(memory.add("u1:s1:a", {"content": "A's"}))
        # A's line on its way to the journal's thread (its writer started, its queue empty):
        loop_a.run_until_complete(until(lambda: alive(file._writer) and not file._queue))
        path.unlink()
        file._executor.submit(second.wait)  # A's rewrite will wait too
        first.set()  # A's append fails: the file is deleted
        loop_a.run_until_complete(until(lambda: store._outbox._remake is not None))
        shutil.rmtree(folder)  # (A's rewrite will fail: its directory is gone)
        second.set()

        def thread_b() -> None:
            try:
                asyncio.run(memory.add("u1:s1:b", {"content": "B's"}))
                said.append(None)
            except BaseException as exc:  # reported below
                said.append(exc)

        assert threads_at_once([thread_b], within=30) == []
        with pytest.raises(JournalError):
            loop_a.run_until_complete(adding)
        with pytest.raises(UnsentWritesError):  # ("first": its file is gone)
            loop_a.run_until_complete(memory.aclose())
    finally:
        first.set()
        second.set()
        loop_a.close()
    assert len(said) == 1
    assert isinstance(said[0], JournalError), repr(said[0])


def test_the_journal_is_compacted_after_a_loop_closed_with_its_compaction_pending(
    tmp_path: Path,
) -> None:
    """An outage's overwrites of one key grow the journal file past 1 MiB: the add that finds
    it so starts a compaction as a task of its loop, which closes with it pending (the loop of
    a request, closed after it, without cancelling what is left). Later loops never compacted
    the file again (that task was never done), and it grew without bound."""
    path = tmp_path / "journal.jsonl"
    memory, store = _outage_memory(path)
    body = "x" * 1000
    loop_a = asyncio.new_event_loop()
    try:
        for i in range(2000):
            loop_a.run_until_complete(memory.add("u1:s1:k", {"content": f"{body} {i}"}))
            if store._outbox._compaction is not None:
                break
        assert store._outbox._compaction is not None
    finally:
        loop_a.close()  # (its compaction pending)

    async def overwrite() -> None:
        for i in range(3000):  # about 3 MB of records, one live key
            await memory.add("u1:s1:k", {"content": f"{body} {i}"})
        await memory.aclose()

    asyncio.run(overwrite())
    assert path.stat().st_size < 2 * 1024 * 1024


def _sets_made_at_once(index: Any, threads: int) -> int:
    """How many replica sets ``threads`` threads' first searches found, started together."""
    ready = threading.Barrier(threads)
    found: list[Any] = []

    def first_search() -> None:
        ready.wait(30)
        found.append(index._replicas_for_topology())

    assert threads_at_once([first_search] * threads, switch=1e-6) == []
    return len({id(replicas) for replicas in found})


@pytest.mark.redis
def test_threads_first_searches_at_once_share_one_replica_set(redis_server: RedisServer) -> None:
    """Threads each with its own event loop make a memory's first searches at once (a threaded
    server's first requests): each made a replica set of its own for the namespace, read the
    whole namespace into it, and all but the last one made were thrown away, a full load each
    (about a second per 50,000 memories). They must make one, which all of them search."""
    memory = MemoryPrimitive(redis_server.url, namespace=namespace(), search_engine="replica")

    async def start() -> Any:
        await memory.add("u1:s1:pet", {"content": "my pet is a cat"})
        assert len(await memory.search("cat")) == 1  # (the partitions are known)
        return memory._store.remote.index  # type: ignore[union-attr]

    index = asyncio.run(start())
    made: list[int] = []
    for _ in range(1000):  # (each round: the first searches after a topology change)
        index.replicas = None
        made.append(_sets_made_at_once(index, 8))
    asyncio.run(memory.clear())
    asyncio.run(memory.aclose())
    assert sum(count > 1 for count in made) == 0


def _calls(url: str, command: str) -> int:
    """How many times the server at ``url`` ran ``command`` (INFO commandstats)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    finally:
        client.close()
    return int(stats.get("calls", 0))


def _indexes_made_at_once(url: str, threads: int = 4) -> int:
    """How many times ``threads`` threads' first searches of a new namespace at once made its
    Query Engine index."""
    memory = MemoryPrimitive(url, namespace=namespace(), search_engine="redis")
    ready = threading.Barrier(threads)
    found: list[int] = []

    def first_search() -> None:
        ready.wait(30)
        found.append(len(asyncio.run(memory.search("cat"))))

    before = _calls(url, "FT.CREATE")
    assert threads_at_once([first_search] * threads) == []
    made = _calls(url, "FT.CREATE") - before

    async def done() -> None:
        await memory.clear()
        await memory.aclose()

    asyncio.run(done())
    assert found == [0] * threads
    return made


@pytest.mark.redis
def test_threads_first_searches_at_once_make_the_query_engine_index_once(
    redis_query_engine: RedisServer,
) -> None:
    """Threads each with its own event loop make a memory's first searches at once, on a
    namespace whose Query Engine index does not exist yet. Each loop's lock let each of them
    find the index missing and make it (and then backfill it, each as much as the others):
    the work of one process, done once per thread."""
    made = [_indexes_made_at_once(redis_query_engine.url) for _ in range(8)]
    assert made == [1] * 8
