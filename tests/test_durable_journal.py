"""Issue 19, the durable journal (``journal_path=``), on real redis-server processes: writes
acknowledged during an outage survive a SIGKILL of their process and are replayed by the next
one; a torn or corrupt file, a second process on the path and a full disk are handled."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from conftest import Factory, eventually, fast_recovery, namespace, replayed
from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    JournalError,
    UnsentWritesError,
)
from tta_dev_primitives.stores import _journal_file
from tta_dev_primitives.stores._base import Clear, Delete, Document, Put
from tta_dev_primitives.stores._journal_file import Record, decode, encode

pytestmark = pytest.mark.redis

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """A journal path of its own for one test."""
    return tmp_path / "memory.journal"


@pytest.fixture
async def memories() -> AsyncIterator[list[MemoryPrimitive]]:
    """Memories a test makes, closed at the end even if an assert fails."""
    made: list[MemoryPrimitive] = []
    yield made
    for memory in made:
        await memory.aclose()


async def stored(server: RedisServer, ns: str) -> dict[str, Any]:
    """What Redis holds for ``ns``, read by a memory of its own with no journal."""
    reader = fast_recovery(server.url, ns)
    try:
        return {key: value async for key, value, _ in reader.items()}
    finally:
        await reader.aclose()


async def in_outage(
    server: RedisServer, ns: str, journal: Path | str, **options: Any
) -> MemoryPrimitive:
    """A memory on ``journal`` that reached Redis once, then Redis killed: what it writes next
    is journalled."""
    memory = fast_recovery(server.url, ns, journal_path=journal, **options)
    await memory.add("warm", {"content": "warm"})
    server.kill()
    return memory


def spawn(code: str, **values: str) -> subprocess.Popen[str]:
    """Start ``code`` (formatted with ``values``) in a new interpreter; its stdout is piped."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code).format(src=SRC, **values)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def append_bytes(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def block_compaction(path: Path, blocked: bool) -> None:
    """A directory where a compaction makes its temporary file: the rewrite fails, as on a
    nearly full disk (no room for a second copy), while appends still succeed."""
    tmp = Path(f"{path}.tmp")
    tmp.mkdir() if blocked else tmp.rmdir()


def delete_file(path: Path) -> None:
    path.unlink()


def lines_of(path: Path) -> list[bytes]:
    """The file's lines, header first."""
    return path.read_bytes().splitlines()


# -- the done-when test: SIGKILL during an outage ------------------------------------------------

WRITER = """
import asyncio, sys
sys.path.insert(0, {src!r})
from tta_dev_primitives import MemoryPrimitive

async def main():
    memory = MemoryPrimitive({url!r}, namespace={ns!r}, journal_path={path!r},
                             redis_timeout=0.5, recovery_interval=30.0, max_size=10)
    await memory.delete("gone")  # journalled: Redis is down
    print("ack del gone", flush=True)
    i = 0
    while True:
        await memory.add(f"k{{i % 300}}", {{"content": f"write {{i}}"}})
        print(f"ack put k{{i % 300}} {{i}}", flush=True)
        i += 1

asyncio.run(main())
"""


async def test_a_sigkilled_process_s_acknowledged_outage_writes_are_replayed_by_the_next(
    redis_server_factory: Factory, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """A process SIGKILLed while journalling loses nothing it acknowledged: a new process on the
    same journal_path replays every acknowledged write once Redis is back."""
    server = redis_server_factory()
    ns = namespace()
    seed = fast_recovery(server.url, ns)
    await seed.add("gone", {"content": "deleted during the outage"})
    await seed.add("kept", {"content": "untouched"})
    await seed.aclose()
    server.kill()
    child = spawn(WRITER, url=server.url, ns=ns, path=str(journal))
    acked: dict[str, str] = {}
    assert child.stdout is not None
    try:
        for line in child.stdout:  # until 1,000 writes are acknowledged (a hang guard below)
            words = line.split()
            if words[:2] == ["ack", "put"]:
                acked[words[2]] = f"write {words[3]}"
                if int(words[3]) >= 1_000:
                    break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    server.start()  # an empty Redis (no persistence): only the journal can bring them back
    memory = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(memory)
    assert await memory.get("k0") == {"content": acked["k0"]}
    assert memory.using_redis
    assert memory.get_backend_info()["journal_restored"] >= len(acked)
    held = await stored(server, ns)
    for key, content in acked.items():
        # a later write of the key may have reached the file before the kill, never an older one
        assert int(held[key]["content"].split()[1]) >= int(content.split()[1]), key
    assert "gone" not in held
    assert len(held) == len(acked) == 300


# -- the file: replay empties it, TTLs and vectors survive, aclose keeps it ---------------------


async def test_a_replayed_journal_is_emptied_and_never_replayed_again(
    redis_server_factory: Factory, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """Once Redis has the journalled writes, the file holds only its header: the next process
    on the path restores nothing, so a delete made after the replay stays."""
    server = redis_server_factory()
    ns = namespace()
    memory = await in_outage(server, ns, journal)
    await memory.add("a", {"content": "journalled"})
    server.start()
    await replayed(memory)
    await eventually(lambda: len(lines_of(journal)) == 1)
    await memory.delete("a")
    await memory.aclose()
    again = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(again)
    assert await again.get("a") is None
    assert again.get_backend_info()["journal_restored"] == 0


async def test_aclose_keeps_unsent_writes_in_the_file_instead_of_dropping_them(
    redis_server_factory: Factory, journal: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """aclose() during an outage leaves the journalled writes on disk, says where, and does not
    count them as dropped."""
    server = redis_server_factory()
    memory = await in_outage(server, namespace(), journal)
    await memory.add("a", {"content": "journalled"})
    with caplog.at_level(logging.WARNING, logger="tta_dev_primitives.memory"):
        await memory.aclose()
    assert memory.get_backend_info()["journal_dropped"] == 0
    assert any(str(journal) in r.getMessage() and "replays them" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    records = [json.loads(line) for line in lines_of(journal)[1:]]
    assert [(r["op"], r["k"]) for r in records] == [("put", "a")]


async def test_ttls_and_vectors_cross_the_restart(
    redis_server_factory: Factory, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """A journalled write's TTL keeps only what is left of it, and its vector is replayed as is."""
    server = redis_server_factory()
    ns = namespace()

    def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0, float(len(t)), 0.5] for t in texts]

    memory = await in_outage(server, ns, journal, embed=embed, search_engine="replica")
    await memory.add("short", {"content": "lives an hour"}, ttl=3600)
    await memory.add("vec", {"content": "a vector of its own"})
    await memory.aclose()
    server.start()
    again = fast_recovery(server.url, ns, journal_path=journal, embed=embed,
                          search_engine="replica")  # fmt: skip
    memories.append(again)
    assert await again.get("short") == {"content": "lives an hour"}
    client = aioredis.Redis.from_url(server.url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{ns}:*short*")]
        ttls = [await client.pttl(k) for k in keys]
    finally:
        await client.aclose()
    assert any(0 < ttl <= 3_600_000 for ttl in ttls), ttls
    hits = await again.search_items("a vector of its own", 1, mode="semantic")
    assert [key for key, _ in hits] == ["vec"]


V1, V2, V3 = (
    f"{n:016x}0badcafe"
    for n in (1_700_000_000_000_001, 1_700_000_000_000_002, 1_700_000_000_000_003)
)


def test_records_round_trip_through_json_lines() -> None:
    """Puts (with terms, a TTL deadline and a 2-D vector), deletes and clears decode as written."""
    import numpy as np

    vector = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    put = Put("u:s:1", '{"content":"ünïcode"}', None, Document({"unicod": 1}, vector), V1)
    for record in (Record(1, put, 1e9), Record(2, Delete("k", V2), None),
                   Record(3, Clear(V3), None)):  # fmt: skip
        line = encode(record)
        assert line.count(b"\n") == 1
        assert line.endswith(b"\n")
        back = decode(json.loads(line))
        assert (back.seq, back.write, back.deadline) == (record.seq, record.write, record.deadline)
    back_put = decode(json.loads(encode(Record(1, put, None)))).write
    assert isinstance(back_put, Put)
    assert back_put.document is not None
    assert np.array_equal(back_put.document.vector, vector)


# -- a damaged file ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"v": "p" + V1[1:]},
        {"v": None},
        {"v": 5},
        {"v": V1.upper()},
        {"s": "7"},
        {"s": 0},
        {"x": float("inf")},
        {"x": float("nan")},
        {"e": {"shape": [1], "f4": "AADAfw=="}},
    ],  # (a NaN float32)
    ids=[
        "version-bit-flip",
        "version-null",
        "version-int",
        "version-upper",
        "seq-str",
        "seq-0",
        "deadline-inf",
        "deadline-nan",
        "vector-nan",
    ],
)
def test_a_damaged_but_parseable_record_is_unreadable(change: dict[str, Any]) -> None:
    """A line that is JSON but holds what no writer writes (a version that would beat every
    real one for good, an infinite deadline, a NaN vector) is unreadable, not replayed."""
    data = json.loads(encode(Record(1, Put("k", "{}", None, Document({"a": 1}, None), V1), 1e9)))
    data.update(change)
    with pytest.raises((ValueError, TypeError)):
        decode(data)


def test_a_corrupt_copy_that_cannot_be_written_does_not_stop_the_load(journal: Path) -> None:
    """The file as found is kept in PATH.corrupt; if that cannot be written (a full disk: here
    a directory in its way), the readable records still load."""
    file = _journal_file.JournalFile(journal, "ns")
    good = encode(Record(1, Put("k", "{}", None, None, V1), None))
    with open(journal, "ab") as out:
        out.write(b"garbage\n" + good)
    os.mkdir(str(journal) + ".corrupt")

    async def load() -> Any:
        try:
            return await file.load()
        finally:
            await file.aclose()

    loaded = asyncio.run(load())
    assert [r.write.key for r in loaded.records] == ["k"]
    assert loaded.corrupt == 1


def test_a_second_damaged_file_is_kept_beside_the_first_not_over_it(journal: Path) -> None:
    """Each load that finds unreadable lines keeps the file as found: a later one in
    ``PATH.corrupt.2`` (and on), so the first copy, perhaps the only trace of the writes its
    damaged lines held, is never overwritten."""
    good = encode(Record(1, Put("k", "{}", None, None, V1), None))

    async def load() -> Any:
        file = _journal_file.JournalFile(journal, "ns")
        try:
            return await file.load()
        finally:
            await file.aclose()

    asyncio.run(load())  # writes the header
    with open(journal, "ab") as out:
        out.write(b"first damage\n" + good)
    assert asyncio.run(load()).corrupt == 1
    first = Path(f"{journal}.corrupt").read_bytes()
    assert b"first damage" in first
    with open(journal, "ab") as out:
        out.write(b"second damage\n")
    assert asyncio.run(load()).corrupt >= 1
    assert Path(f"{journal}.corrupt").read_bytes() == first
    assert b"second damage" in Path(f"{journal}.corrupt.2").read_bytes()
    assert not Path(f"{journal}.corrupt.3").exists()


async def _journalled(server: RedisServer, ns: str, journal: Path, count: int) -> None:
    """Journal ``count`` adds (k0, k1, ...) during an outage, then close, keeping the file."""
    memory = await in_outage(server, ns, journal)
    for i in range(count):
        await memory.add(f"k{i}", {"content": f"v{i}"})
    await memory.aclose()


async def test_replayed_writes_of_an_earlier_process_stay_in_the_copy(
    redis_server_factory: Factory, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """Writes restored from the file keep the earlier process's versions; once replayed, Redis
    holds them as this process's own, so the copy check keeps them for the next outage."""
    server = redis_server_factory()
    ns = namespace()
    await _journalled(server, ns, journal, 3)
    server.start()
    memory = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(memory)
    await replayed(memory)

    async def checked() -> bool:
        await memory.size()  # a call Redis answers runs a due check
        return memory._store.copies.checked >= 3  # type: ignore[attr-defined,no-any-return]

    await eventually(checked, within=30)
    assert memory.get_backend_info()["copies_dropped"] == 0
    with server.stalled():
        assert [await memory.get(f"k{i}") for i in range(3)] == [
            {"content": f"v{i}"} for i in range(3)
        ]


async def test_a_process_with_a_smaller_cap_still_replays_every_restored_write(
    redis_server_factory: Factory, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """The next deploy lowers max_journal below what the file holds: every acknowledged write
    is still replayed. The restore applied the new cap, dropped the oldest 40 and cut them from
    the file with Redis up (review R24: 400 of 500 gone for good)."""
    server = redis_server_factory()
    ns = namespace()
    await _journalled(server, ns, journal, 50)
    server.start()
    memory = fast_recovery(server.url, ns, journal_path=journal, max_journal=10)
    memories.append(memory)
    await replayed(memory)
    info = memory.get_backend_info()
    assert (info["journal_restored"], info["journal_dropped"]) == (50, 0)
    held = await stored(server, ns)
    assert {f"k{i}" for i in range(50)} <= set(held)


async def test_a_torn_last_line_is_dropped_with_a_warning(
    redis_server_factory: Factory,
    journal: Path,
    memories: list[MemoryPrimitive],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A last line cut short by a crash mid-append (never acknowledged) is dropped with a
    warning; every complete line is replayed."""
    server = redis_server_factory()
    ns = namespace()
    await _journalled(server, ns, journal, 3)
    append_bytes(journal, b'{"s":4,"op":"put","k":"torn","p":"{\\"conte')
    server.start()
    memory = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(memory)
    with caplog.at_level(logging.WARNING, logger="tta_dev_primitives.memory"):
        assert await memory.get("k2") == {"content": "v2"}
    assert any("cut short" in r.getMessage() for r in caplog.records)
    assert memory.get_backend_info()["journal_corrupt"] == 1
    assert set(await stored(server, ns)) == {"k0", "k1", "k2"}
    assert b"torn" not in b"".join(lines_of(journal))  # rewritten without it


async def test_a_write_after_a_torn_last_line_survives_when_compaction_cannot_run(
    redis_server_factory: Factory, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """The start's compaction fails (here its temporary file cannot be made; a nearly full
    disk does the same): the next acknowledged write must not be glued onto the torn last line
    a crash left, or the process after it skips that line as unreadable and loses the write."""
    server = redis_server_factory()
    ns = namespace()
    await _journalled(server, ns, journal, 1)
    append_bytes(journal, b'{"s":2,"op":"put","k":"torn","p":"{\\"conte')
    block_compaction(journal, True)
    memory = fast_recovery(server.url, ns, journal_path=journal)
    await memory.add("after", {"content": "acknowledged after the restart"})
    await memory.aclose()
    block_compaction(journal, False)
    server.start()
    again = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(again)
    assert await again.get("after") == {"content": "acknowledged after the restart"}
    assert set(await stored(server, ns)) == {"k0", "after"}


async def test_an_unreadable_line_inside_the_file_is_skipped_and_the_file_kept_aside(
    redis_server_factory: Factory,
    journal: Path,
    memories: list[MemoryPrimitive],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A corrupt line in the middle is skipped with a warning naming it, the rest is replayed,
    and the file as found is kept as ``.corrupt``."""
    server = redis_server_factory()
    ns = namespace()
    await _journalled(server, ns, journal, 3)
    lines = lines_of(journal)
    lines.insert(2, b"\x00\xffgarbage that is not json")
    write_bytes(journal, b"\n".join(lines) + b"\n")
    server.start()
    memory = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(memory)
    with caplog.at_level(logging.WARNING, logger="tta_dev_primitives.memory"):
        assert await memory.get("k0") == {"content": "v0"}
    assert any("line 3 is unreadable" in r.getMessage() for r in caplog.records)
    assert set(await stored(server, ns)) == {"k0", "k1", "k2"}
    assert b"garbage" in b"".join(lines_of(Path(f"{journal}.corrupt")))
    assert b"garbage" not in b"".join(lines_of(journal))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"just some notes\n", "not a memory journal"),
        (b'{"tta_journal": 2, "namespace": "x"}\n', "format version 2"),
    ],
)
def test_a_file_that_is_not_a_readable_journal_is_refused_and_left_untouched(
    journal: Path, content: bytes, message: str
) -> None:
    """A file that is not a journal, or one of a newer format, raises JournalError naming why,
    at construction, and is not modified."""
    journal.write_bytes(content)
    with pytest.raises(JournalError, match=message):
        MemoryPrimitive("redis://127.0.0.1:1/0", journal_path=journal)
    assert journal.read_bytes() == content


def test_a_journal_path_that_cannot_be_opened_raises_journal_error(journal: Path) -> None:
    """A path the journal file cannot be opened at (here a directory; a read-only file does
    the same for a user who cannot write it) raises JournalError naming it, as a lock file that
    cannot be opened does, not a bare OSError."""
    journal.mkdir()
    with pytest.raises(JournalError, match="memory journal"):
        MemoryPrimitive("redis://127.0.0.1:1/0", journal_path=journal)


async def test_a_journal_of_another_namespace_is_refused(
    redis_server: RedisServer, journal: Path
) -> None:
    """Replaying a journal into another namespace would misplace its writes: JournalError."""
    memory = MemoryPrimitive(redis_server.url, namespace="tta:one", journal_path=journal)
    await memory.aclose()
    with pytest.raises(JournalError, match="belongs to namespace 'tta:one'"):
        MemoryPrimitive(redis_server.url, namespace="tta:two", journal_path=journal)


# -- one live process per path -------------------------------------------------------------------

HOLDER = """
import asyncio, sys, time
sys.path.insert(0, {src!r})
from tta_dev_primitives import MemoryPrimitive

memory = MemoryPrimitive({url!r}, journal_path={path!r})
print("holding", flush=True)
time.sleep(120)
"""


async def test_a_second_process_on_the_same_path_is_refused(
    redis_server: RedisServer, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """While one process holds a journal, another (or a second instance in this process) gets
    JournalError naming the holder's pid; once the holder is gone the path is free."""
    child = spawn(HOLDER, url=redis_server.url, path=str(journal))
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "holding"
        with pytest.raises(JournalError, match=f"pid {child.pid}"):
            MemoryPrimitive(redis_server.url, journal_path=journal)
    finally:
        child.kill()
        child.wait(timeout=60)
        assert child.stdout is not None
        child.stdout.close()
    first = MemoryPrimitive(redis_server.url, journal_path=journal)  # a SIGKILL frees the lock
    memories.append(first)
    with pytest.raises(JournalError, match="in use"):
        MemoryPrimitive(redis_server.url, journal_path=journal)


# -- a full disk ---------------------------------------------------------------------------------


@pytest.mark.parametrize("compacting", [True, False])
async def test_a_deleted_lock_file_does_not_let_two_memories_journal_on_one_path(
    redis_server_factory: Factory, journal: Path, compacting: bool
) -> None:
    """The lock file is deleted while a memory holds it (a /tmp cleaner): a second memory on
    the path is then not refused, and each rewrote the file from its own journal over the
    other's acknowledged writes (or, with no compaction, both appended to one file with the
    same sequences, and one hid the other's). Every add that returns normally is replayed."""
    server = redis_server_factory()
    ns = namespace()
    first = await in_outage(server, ns, journal)
    await first.add("first0", {"content": "before the lock file went"})
    delete_file(Path(f"{journal}.lock"))
    if not compacting:
        block_compaction(journal, True)
    acknowledged = {"first0"}
    opened = [first]
    with contextlib.suppress(JournalError):  # refused: fine
        second = fast_recovery(server.url, ns, journal_path=journal)
        opened.append(second)
    try:
        for i in range(3):
            for name, memory in zip(("first", "second"), opened, strict=False):
                try:
                    await memory.add(f"{name}{i + 1}", {"content": f"{name} write {i}"})
                except JournalError:
                    continue  # told: not acknowledged
                acknowledged.add(f"{name}{i + 1}")
        with contextlib.suppress(JournalError):  # the first writes last, and is closed last
            await first.add("first_last", {"content": "last"})
            acknowledged.add("first_last")
    finally:
        for memory in reversed(opened):
            await memory.aclose()
    if not compacting:
        block_compaction(journal, False)
    server.start()
    again = fast_recovery(server.url, ns, journal_path=journal)
    try:
        assert await again.flush()
    finally:
        await again.aclose()
    assert acknowledged <= set(await stored(server, ns))


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """``os.write`` to the fds listed fails with ENOSPC after writing a few bytes (a disk that
    fills mid-append); other fds are untouched."""
    real = os.write
    full: list[int] = []

    def write(fd: int, data: Any) -> int:
        if fd in full:
            written = real(fd, bytes(data)[:5]) if len(data) > 5 else 0
            if written:
                return written
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(_journal_file.os, "write", write)
    return full


async def test_a_full_disk_fails_the_write_and_keeps_nothing_of_it(
    redis_server_factory: Factory,
    journal: Path,
    memories: list[MemoryPrimitive],
    full_disk: list[int],
) -> None:
    """When the journal cannot be appended (ENOSPC), the outage write raises JournalError and is
    neither served nor replayed; the file holds no partial line, and writes after space is freed
    are journalled and replayed."""
    server = redis_server_factory()
    ns = namespace()
    memory = await in_outage(server, ns, journal)
    await memory.add("before", {"content": "on disk"})
    file = memory._store.journal_file
    assert file is not None
    full_disk.append(file._fd)
    with pytest.raises(JournalError, match="disk is full"):
        await memory.add("lost", {"content": "never acknowledged"})
    assert await memory.get("lost") is None
    assert all(json.loads(line) for line in lines_of(journal))  # no partial line
    full_disk.clear()
    await memory.add("after", {"content": "space freed"})
    await memory.aclose()
    server.start()
    again = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(again)
    assert await again.get("after") == {"content": "space freed"}
    assert set(await stored(server, ns)) == {"before", "after"}  # Redis restarted empty


async def test_writes_acknowledged_after_the_file_was_deleted_while_open_survive(
    redis_server_factory: Factory, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """The journal file is deleted while a memory has it open (a /tmp cleaner, an operator):
    no outage write is acknowledged into the deleted file, where no later process can find it.
    Every add that returns normally, before or after, is replayed by the next process."""
    server = redis_server_factory()
    ns = namespace()
    memory = await in_outage(server, ns, journal)
    await memory.add("before", {"content": "journalled"})
    delete_file(journal)
    acknowledged = ["before"]
    for i in range(3):
        try:
            await memory.add(f"after{i}", {"content": f"written after the deletion {i}"})
        except JournalError:
            continue  # told: not acknowledged
        acknowledged.append(f"after{i}")
    await memory.aclose()
    assert "after2" in acknowledged  # the outage's writes go on
    server.start()
    again = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(again)
    assert await again.flush()
    assert set(await stored(server, ns)) == set(acknowledged)  # Redis restarted empty


FILLER = """
import asyncio, resource, sys
sys.path.insert(0, {src!r})
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import JournalError

async def main():
    # The journal's disk has 200 KB left (a file size limit here, a full disk alike).
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
    memory = MemoryPrimitive({url!r}, namespace={ns!r}, journal_path={path!r},
                             redis_timeout=0.5, recovery_interval=30.0)
    for i in range(300):  # one memory rewritten: the file fills with superseded records
        try:
            await memory.add("note", {{"content": f"version {{i}} " + "x" * 5000}})
        except JournalError:
            continue
        print(f"ack {{i}}", flush=True)
    await memory.aclose()

asyncio.run(main())
"""


async def test_a_journal_that_fills_its_disk_with_superseded_records_makes_room(
    redis_server_factory: Factory, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """Less than the compaction's 1 MiB floor left on the disk: one memory rewritten during an
    outage filled it with superseded records, and every later outage write raised JournalError
    (its live record is 5 KB). A full append compacts the file, so later writes fit again."""
    server = redis_server_factory()
    ns = namespace()
    server.kill()
    child = spawn(FILLER, url=server.url, ns=ns, path=str(journal))
    output, _ = await asyncio.to_thread(child.communicate, timeout=120)
    assert child.returncode == 0
    acknowledged = [int(line.split()[1]) for line in output.splitlines()]
    assert len(acknowledged) >= 250, f"only {len(acknowledged)} of 300 outage writes fitted"
    server.start()
    memory = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(memory)
    value = await memory.get("note")
    assert value is not None
    assert value["content"].startswith(f"version {acknowledged[-1]} ")


async def cancelled_and_refused(
    memory: MemoryPrimitive, key: str, value: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outage ``add`` cancelled (its caller's timeout) while its record is being written to
    the journal file, which then fails with ENOSPC; returns once the file has settled."""
    file = memory._store.journal_file
    assert file is not None
    entered, release, failing = threading.Event(), threading.Event(), [True]
    real = os.write

    def write(fd: int, data: Any) -> int:
        if fd == file._fd and failing[0]:
            entered.set()
            release.wait(30)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(_journal_file.os, "write", write)
    adding = asyncio.create_task(memory.add(key, value))
    assert await asyncio.to_thread(entered.wait, 30)
    adding.cancel()
    with pytest.raises(asyncio.CancelledError):
        await adding
    failing[0] = False
    release.set()
    await file.settle()


async def test_an_add_cancelled_while_its_record_is_written_is_not_served_if_the_disk_fails(
    redis_server_factory: Factory,
    journal: Path,
    memories: list[MemoryPrimitive],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A caller cancelled (its own timeout) while its outage write's record is on its way to the
    disk does not stop the record. If the disk then refuses it, the write is stored nowhere, so
    no read may serve it from the in-process copy; the writes around it are kept."""
    server = redis_server_factory()
    ns = namespace()
    memory = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(memory)
    await memory.add("lost", {"content": "stored before"})
    server.kill()
    await memory.add("before", {"content": "on disk"})
    await cancelled_and_refused(memory, "lost", {"content": "stored nowhere"}, monkeypatch)
    assert await memory.get("lost") is None  # not the value that never reached the disk
    assert await memory.search("stored nowhere") == []
    assert await memory.get("before") == {"content": "on disk"}
    await memory.add("after", {"content": "space freed"})
    server.start()
    assert await memory.flush()
    assert await stored(server, ns) == {
        "before": {"content": "on disk"},
        "after": {"content": "space freed"},
    }


async def test_a_retried_add_stored_after_a_cancelled_one_was_refused_stays_in_the_copy(
    redis_server_factory: Factory,
    journal: Path,
    memories: list[MemoryPrimitive],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller whose add was cancelled (and whose record the disk then refused) retries the
    same add once Redis is back: Redis stores it, and so does the copy. A later outage's reads
    must serve it: the refused record's note must not drop a copy a later write stored."""
    server = redis_server_factory()
    ns = namespace()
    memory = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(memory)
    await memory.add("k", {"content": "first"})
    server.kill()
    await memory.add("before", {"content": "on disk"})
    await cancelled_and_refused(memory, "k", {"content": "retried"}, monkeypatch)
    server.start()
    assert await memory.flush()
    await memory.add("k", {"content": "retried"})  # the retry: stored in Redis, live
    assert await stored(server, ns) == {
        "k": {"content": "retried"},
        "before": {"content": "on disk"},
    }
    server.kill()
    assert await memory.get("k") == {"content": "retried"}  # the copy of a stored write


# -- caps: the file is compacted -----------------------------------------------------------------


async def test_the_file_is_compacted_while_one_key_is_rewritten_during_a_long_outage(
    redis_server_factory: Factory, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """Overwrites of a few keys do not grow the file without bound: it is rewritten with the live
    records once past 1 MiB and twice their size, and the newest write of each key survives."""
    server = redis_server_factory()
    ns = namespace()
    memory = await in_outage(server, ns, journal)
    body = "x" * 1000
    for i in range(4000):  # about 4 MB of records, 10 live keys
        await memory.add(f"k{i % 10}", {"content": f"{body} {i}"})
    await memory.aclose()
    assert sum(len(line) + 1 for line in lines_of(journal)) < 2 * 1024 * 1024
    server.start()
    again = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(again)
    assert await again.get("k9") == {"content": f"{body} 3999"}


# -- arguments -----------------------------------------------------------------------------------


def test_journal_path_needs_a_redis_url_and_a_path() -> None:
    """journal_path without redis_url, empty, or of the wrong type raises a typed error."""
    with pytest.raises(InvalidArgumentError, match="redis_url"):
        MemoryPrimitive(journal_path="/tmp/never-created.journal")
    with pytest.raises(InvalidArgumentError, match="empty"):
        MemoryPrimitive("redis://127.0.0.1:1/0", journal_path="")
    with pytest.raises(InvalidArgumentTypeError, match="journal_path"):
        MemoryPrimitive("redis://127.0.0.1:1/0", journal_path=3)  # type: ignore[arg-type]


async def test_concurrent_outage_writes_share_fsyncs_and_all_land(
    redis_server_factory: Factory, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """Concurrent adds during an outage are all journalled in call order (group commit) and
    replayed by the next process."""
    server = redis_server_factory()
    ns = namespace()
    memory = await in_outage(server, ns, journal)
    await asyncio.gather(*(memory.add(f"k{i}", {"content": f"v{i}"}) for i in range(500)))
    await memory.delete("k7")
    await memory.aclose()
    seqs = [json.loads(line)["s"] for line in lines_of(journal)[1:]]
    assert len(seqs) == 501
    assert seqs == sorted(seqs)
    server.start()
    again = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(again)
    assert await again.size() == 499  # Redis restarted empty: the 500 adds but k7


async def test_the_file_is_not_touched_while_redis_serves(
    redis_server: RedisServer, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """Live writes never reach the file: it keeps only its header while Redis serves."""
    memory = fast_recovery(redis_server.url, journal_path=journal)
    memories.append(memory)
    for i in range(50):
        await memory.add(f"k{i}", {"content": f"v{i}"})
    await memory.delete("k1")
    assert memory.using_redis
    assert len(lines_of(journal)) == 1


async def test_a_new_process_with_redis_still_down_serves_the_file_then_replays_it(
    redis_server_factory: Factory, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """Restarted while Redis is still down, a process serves the journalled writes in-process,
    and replays them in the background once Redis is back; a TTL that ran out is not replayed."""
    server = redis_server_factory()
    ns = namespace()
    await _journalled(server, ns, journal, 3)
    first = fast_recovery(server.url, ns, journal_path=journal)
    await first.add("brief", {"content": "expires before Redis returns"}, ttl=0.5)
    await first.aclose()
    await asyncio.sleep(1.0)  # the TTL runs out while no process runs
    memory = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(memory)
    assert await memory.get("k1") == {"content": "v1"}
    assert await memory.get("brief") is None
    assert not memory.using_redis
    server.start()
    await replayed(memory)
    assert set(await stored(server, ns)) == {"k0", "k1", "k2"}


async def test_a_batch_replayed_again_after_a_crash_changes_nothing(
    redis_server_factory: Factory, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """A crash after a batch landed but before its done marker replays it again: a no-op, and a
    newer write made meanwhile by another process stands."""
    server = redis_server_factory()
    ns = namespace()
    await _journalled(server, ns, journal, 3)
    before = lines_of(journal)  # the file as a crash before the done markers would leave it
    server.start()
    memory = fast_recovery(server.url, ns, journal_path=journal)
    assert await memory.get("k0") == {"content": "v0"}
    await memory.aclose()
    other = fast_recovery(server.url, ns)
    await other.add("k1", {"content": "newer, from another process"})
    await other.aclose()
    write_bytes(journal, b"\n".join(before) + b"\n")
    again = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(again)
    assert await again.get("k1") == {"content": "newer, from another process"}
    assert again.get_backend_info()["journal_restored"] == 3
    assert await stored(server, ns) == {
        "k0": {"content": "v0"},
        "k1": {"content": "newer, from another process"},
        "k2": {"content": "v2"},
    }


async def test_a_header_cut_short_when_the_file_was_made_is_started_afresh(
    redis_server: RedisServer, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """A crash while the file's header was being written leaves no records: the file is
    started again rather than refused."""
    write_bytes(journal, b'{"tta_journal":1,"names')
    memory = fast_recovery(redis_server.url, journal_path=journal)
    memories.append(memory)
    await memory.add("k", {"content": "v"})
    assert json.loads(lines_of(journal)[0])["tta_journal"] == 1


def test_journal_path_is_ignored_when_redis_is_switched_off(journal: Path) -> None:
    """With enable_redis=False there is no outage to journal: no file is made, none reported."""
    memory = MemoryPrimitive("redis://127.0.0.1:1/0", enable_redis=False, journal_path=journal)
    assert memory.get_backend_info()["journal_path"] is None
    assert not journal.exists()


async def test_a_partial_line_that_could_not_be_cut_is_cut_before_the_next_append(
    redis_server_factory: Factory,
    journal: Path,
    memories: list[MemoryPrimitive],
    full_disk: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If the disk is full and cutting the partial line fails too, the next append cuts it
    first: the write after it is readable and replayed."""
    server = redis_server_factory()
    ns = namespace()
    memory = await in_outage(server, ns, journal)
    file = memory._store.journal_file
    assert file is not None
    real_ftruncate = os.ftruncate

    def ftruncate(fd: int, length: int) -> None:
        if fd in full_disk:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_ftruncate(fd, length)

    monkeypatch.setattr(_journal_file.os, "ftruncate", ftruncate)
    full_disk.append(file._fd)
    with pytest.raises(JournalError):
        await memory.add("lost", {"content": "never acknowledged"})
    full_disk.clear()
    await memory.add("after", {"content": "space freed"})
    assert all(json.loads(line) for line in lines_of(journal))
    await memory.aclose()
    server.start()
    again = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(again)
    assert await again.get("after") == {"content": "space freed"}
    assert again.get_backend_info()["journal_corrupt"] == 0


async def test_flush_as_a_first_call_replays_what_an_earlier_process_left(
    redis_server_factory: Factory, journal: Path
) -> None:
    """A process that only opens the journal and flushes (or closes) replays the file."""
    server = redis_server_factory()
    ns = namespace()
    await _journalled(server, ns, journal, 2)
    server.start()
    memory = fast_recovery(server.url, ns, journal_path=journal)
    try:
        assert await memory.flush()
    finally:
        await memory.aclose()
    assert set(await stored(server, ns)) == {"k0", "k1"}
    assert len(lines_of(journal)) == 1


async def test_a_start_cut_off_while_compacting_has_already_restored_the_copy(
    tmp_path: Path,
) -> None:
    """The first operation's restore is cancelled while it compacts the file (a slow disk, the
    caller's timeout): the restored write is already in the journal and the in-process copy."""
    from test_seam import Flaky
    from tta_dev_primitives.stores import InProcessBackend
    from tta_dev_primitives.stores._backoff import Backoff
    from tta_dev_primitives.stores._hybrid import HybridStore
    from tta_dev_primitives.stores._journal_file import JournalFile

    path = tmp_path / "journal"
    remote = Flaky()
    remote.up = False
    first = HybridStore(InProcessBackend(), remote, backoff=Backoff(60, 60),
                        journal_file=JournalFile(path, "ns"), report_unsent=False)  # fmt: skip
    await first.put("k", "v", None)  # journalled, fsynced
    await first.aclose()

    file = JournalFile(path, "ns")
    second = HybridStore(InProcessBackend(), remote, backoff=Backoff(60, 60),
                         journal_file=file, report_unsent=False)  # fmt: skip
    started, never = asyncio.Event(), asyncio.Event()
    real = file.rewrite

    async def stuck(snapshot: Any) -> None:
        started.set()
        await never.wait()

    file.rewrite = stuck  # type: ignore[method-assign]
    task = asyncio.create_task(second.get("k"))
    await started.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    file.rewrite = real  # type: ignore[method-assign]
    assert second.journal_size == 1
    assert await second.local.get("k") == "v"
    await second.aclose()


async def test_the_next_process_finds_the_restored_writes_by_search_while_redis_is_away(
    redis_server_factory: Factory, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """Redis still down (or answering LOADING) when the next process opens the journal: its
    in-process copy serves the restored writes to search, scoped or not, as it does to get,
    list_memories and size."""
    server = redis_server_factory()
    ns = namespace()
    memory = await in_outage(server, ns, journal)
    for i in range(3):
        await memory.add(f"u1:s1:{i}", {"content": f"journalled note {i}"})
    await memory.aclose()
    again = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(again)
    assert await again.get("u1:s1:1") == {"content": "journalled note 1"}
    assert await again.size() == 3
    assert len(await again.search("journalled note")) == 3
    assert len(await again.search("note", scope="u1:s1")) == 3
    assert again.get_backend_info()["degraded"] is True
    server.start()
    async with asyncio.timeout(60):
        await replayed(again)
    assert len(await again.search("journalled note")) == 3


async def test_a_file_deleted_after_the_last_write_still_holds_the_writes_at_close(
    redis_server_factory: Factory, journal: Path, memories: list[MemoryPrimitive]
) -> None:
    """The journal file is deleted after the outage's last write (a /tmp cleaner), so no
    append finds it gone. ``aclose`` said the writes "stay in" the path, where nothing was: it
    now writes the file anew from the journal first, and the next process replays them."""
    server = redis_server_factory()
    ns = namespace()
    memory = await in_outage(server, ns, journal)
    for i in range(3):
        await memory.add(f"outage{i}", {"content": f"journalled {i}"})
    delete_file(journal)
    await memory.aclose()
    server.start()
    again = fast_recovery(server.url, ns, journal_path=journal)
    memories.append(again)
    assert await again.flush()
    assert set(await stored(server, ns)) == {"outage0", "outage1", "outage2"}


async def test_a_close_that_cannot_keep_the_writes_says_they_are_lost(
    redis_server_factory: Factory, tmp_path: Path
) -> None:
    """The journal's directory is gone too by the time the memory closes during an outage:
    the writes cannot be written anew, so ``aclose`` raises ``UnsentWritesError`` (as a memory
    without a journal file does) rather than saying they stay in a file that is not there."""
    server = redis_server_factory()
    folder = tmp_path / "journals"
    folder.mkdir()
    path = folder / "memory.journal"
    memory = await in_outage(server, namespace(), path)
    await memory.add("outage", {"content": "journalled"})
    shutil.rmtree(folder)
    with pytest.raises(UnsentWritesError) as raised:
        await memory.aclose()
    assert raised.value.unsent == 1
    assert str(path) in str(raised.value)


async def test_a_retaken_lock_does_not_compact_away_another_memorys_writes(
    redis_server_factory: Factory, journal: Path
) -> None:
    """The lock file is deleted while a memory holds it (a /tmp cleaner), and it is taken
    again when no one holds it. But a second memory may have locked a new lock file meanwhile,
    journalled outage writes into the file (acknowledged), and closed before Redis came back
    (its start compaction failed, a nearly full disk, so both had one file open). The first
    memory then replayed its own journal and compacted the file to what *it* held: the
    second's acknowledged writes were gone from the file, and no process replayed them."""
    server = redis_server_factory()
    ns = namespace()
    first = await in_outage(server, ns, str(journal))
    await first.add("first", {"content": "the first memory's outage write"})
    delete_file(Path(f"{journal}.lock"))  # a /tmp cleaner
    # The second's start compaction fails (a nearly full disk: no room for a second copy), so
    # it appends to the file the first has open.
    block_compaction(journal, True)
    second = fast_recovery(server.url, ns, journal_path=str(journal))
    await second.add("second", {"content": "the second memory's outage write"})  # acknowledged
    await second.aclose()  # Redis still away: its write waits in the file
    block_compaction(journal, False)
    server.start()

    assert await first.flush()  # the first replays its journal, then compacts the file

    await first.aclose()
    again = fast_recovery(server.url, ns, journal_path=str(journal))
    try:
        assert await again.flush()
    finally:
        await again.aclose()
    assert {"first", "second"} <= set(await stored(server, ns))


def test_a_header_past_4_kib_is_read_back(journal: Path) -> None:
    """A namespace of several KiB makes a header longer than the first read: it is read on."""
    namespace = "n" * 5000 + "é" * 100

    async def open_twice() -> None:
        first = _journal_file.JournalFile(journal, namespace)
        await first.aclose()
        again = _journal_file.JournalFile(journal, namespace)
        await again.aclose()

    asyncio.run(open_twice())
