"""``JournalFile``: the outage journal on disk (``journal_path=``), so that writes acknowledged
during an outage survive a crash or a restart of the process and are replayed by the next one.

Format (version 1): UTF-8 JSON lines, appended. The first line is the header
``{"tta_journal": 1, "namespace": ...}``; each other line is one record:

- ``{"s": seq, "op": "put", "k": key, "p": payload, "v": version, "x": deadline, "t": terms,
  "e": vector}``: ``x`` a wall-clock deadline (Unix seconds) or null, ``t`` the indexed term
  counts, ``e`` null or ``{"shape": [...], "f4": base64}`` (little-endian float32);
- ``{"s": seq, "op": "del", "k": key, "v": version}`` and ``{"s": seq, "op": "clear", "v": ...}``;
- ``{"done": [seq, ...]}``: those records reached Redis (or a full journal dropped them).

Payloads are the memory's JSON text as it is sent to Redis: nothing is pickled.

Durability: an append returns only once its line is written and ``fsync``-ed. Appends made
while one is being written wait and share the next write and ``fsync`` (group commit), so
concurrent writers pay one ``fsync`` per batch, not per write. All file IO runs on one worker
thread (FIFO, so lines land in call order), never on the event loop. A failed append (a full
disk) truncates the file back to where it was, so no partial line is left behind, and raises
``JournalError``: the write is not acknowledged.

Ownership: ``path + ".lock"`` is held with ``flock`` for the life of the journal. A second
journal on the same path, in this process or another, raises ``JournalError`` at once (two
writers would interleave lines and replay each other's writes twice).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import fcntl
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tta_dev_primitives._blocked import alive, finished_elsewhere, fork_safe, running_loop, stranded
from tta_dev_primitives.exceptions import JournalError
from tta_dev_primitives.stores._base import Clear, Delete, Document, Put, Write

__all__ = ["FORMAT_VERSION", "JournalFile", "Loaded", "Record"]

log = logging.getLogger("tta_dev_primitives.memory")

FORMAT_VERSION = 1
#: The file is rewritten with only its live records once it is past this size and twice the
#: live records' bytes (overwrites of one key and replayed records accumulate otherwise).
COMPACT_FLOOR = 1024 * 1024
#: The longest header line read back (its namespace's length is not otherwise limited).
MAX_HEADER = 1024 * 1024
#: Copies of damaged files kept (``path.corrupt``, ``path.corrupt.2``, ...) before the next
#: damaged one is only logged: a bound on the disk a journal damaged over and over can take.
MAX_CORRUPT_COPIES = 100


@dataclass(frozen=True, slots=True)
class Record:
    """A journalled write as the file holds it: its sequence and its wall-clock deadline."""

    seq: int
    write: Write
    deadline: float | None  # Unix seconds, for a put with a TTL


@dataclass(frozen=True, slots=True)
class Loaded:
    """What ``load`` found: the live records in order, and what it had to skip."""

    records: list[Record]
    torn: bool  # the last line was cut short (a crash mid-append): dropped
    corrupt: int  # other unreadable lines, skipped (the file was kept as ``path.corrupt``)


# -- encoding ------------------------------------------------------------------------------------


def encode(record: Record) -> bytes:
    """One record as a JSON line."""
    write = record.write
    if isinstance(write, Clear):
        data: dict[str, Any] = {"s": record.seq, "op": "clear", "v": write.version}
    elif isinstance(write, Delete):
        data = {"s": record.seq, "op": "del", "k": write.key, "v": write.version}
    else:
        if not isinstance(write.payload, str):
            raise JournalError(
                f"a payload of type {type(write.payload).__name__} cannot be journalled (str only)"
            )
        document = write.document
        data = {
            "s": record.seq, "op": "put", "k": write.key, "p": write.payload,
            "v": write.version, "x": record.deadline,
            "t": None if document is None else dict(document.terms),
            "e": None if document is None else _encode_vector(document.vector),
        }  # fmt: skip
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _encode_vector(vector: Any) -> dict[str, Any] | None:
    if vector is None:
        return None
    raw = vector.astype("<f4", copy=False).tobytes()
    return {"shape": list(vector.shape), "f4": base64.b64encode(raw).decode("ascii")}


def _decode_vector(data: Any) -> Any:
    if data is None:
        return None
    import numpy as np

    raw = base64.b64decode(data["f4"], validate=True)
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(data["shape"])
    if not np.isfinite(vector).all():
        raise ValueError("vector")
    return vector


def decode(data: dict[str, Any]) -> Record:
    """A record from its parsed JSON line; raises ``KeyError``/``ValueError``/``TypeError``."""
    seq, op, version = _seq(data["s"]), data["op"], _version(data["v"])
    write: Write
    if op == "clear":
        write = Clear(version)
    elif op == "del":
        write = Delete(_str(data["k"]), version)
    elif op == "put":
        terms = data["t"]
        document = None
        if terms is not None:
            if not isinstance(terms, dict):
                raise TypeError("terms")
            document = Document({str(t): int(n) for t, n in terms.items()},
                                _decode_vector(data["e"]))  # fmt: skip
        deadline = data["x"]
        write = Put(_str(data["k"]), _str(data["p"]), None, document, version)
        if deadline is not None:
            deadline = float(deadline)
            if not math.isfinite(deadline):
                raise ValueError("deadline")
        return Record(seq, write, deadline)
    else:
        raise ValueError(f"unknown op {op!r}")
    return Record(seq, write, None)


def _seq(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TypeError("seq")
    return value


def _version(value: Any) -> str:
    """A version as ``VersionClock`` issues them (24 lowercase hex digits): anything else (a
    damaged line) would compare newer or older than every real version, for good."""
    if not isinstance(value, str) or len(value) != 24 or value.strip(_HEX):
        raise ValueError("version")
    return value


_HEX = "0123456789abcdef"


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _sizes(records: Sequence[Record]) -> list[int]:
    return [len(encode(record)) for record in records]


def done_line(seqs: Sequence[int]) -> bytes:
    return json.dumps({"done": list(seqs)}, separators=(",", ":")).encode() + b"\n"


# -- the file ------------------------------------------------------------------------------------

_Then = Callable[[int, int], None]  # called with (seq, line bytes) once the line is durable


class _Rewrite:
    """A queued rewrite: its records are taken when its turn comes (after earlier appends)."""

    __slots__ = ("future", "snapshot")

    def __init__(self, snapshot: Callable[[], list[Record]], future: asyncio.Future[None]) -> None:
        self.snapshot = snapshot
        self.future = future


_Item = tuple[bytes, int, "_Then | None", "asyncio.Future[None]"] | _Rewrite


class JournalFile:
    """The durable outage journal at ``path`` for ``namespace``; see the module docstring.

    Opening locks the path and checks the header (small, non-blocking system calls); reading
    the records (``load``) and every write run on this journal's own worker thread.
    """

    def __init__(self, path: str | os.PathLike[str], namespace: str) -> None:
        self.path = os.fspath(path)
        self.namespace = namespace
        self._lock_fd = _lock(self.path + ".lock")
        try:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError as exc:
                raise JournalError(f"cannot open the memory journal {self.path}: {exc}") from exc
            try:
                self.size = _check_header(self._fd, self.path, namespace)
            except OSError as exc:  # its header could not be written (a full disk)
                os.close(self._fd)
                raise JournalError(f"cannot start the memory journal {self.path}: {exc}") from exc
            except BaseException:
                os.close(self._fd)
                raise
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tta-journal")
        self._pid = os.getpid()  # the lock's process: a forked child must not write here
        self._executor_pid = self._pid  # the process whose thread runs ``_executor``'s calls
        self._queue: list[_Item] = []
        self._writer: asyncio.Task[None] | None = None
        # One memory may serve threads each with its own event loop: the queue has one writer
        # at a time, which a loop takes (under this lock) only while no other loop's runs.
        self._handoff = fork_safe(threading.Lock())
        # Appends on disk whose ``then`` has not run yet (their writer's loop has not run since
        # the write): a rewrite keeps them, or one by another loop's writer would drop them.
        self._on_disk: dict[int, tuple[bytes, asyncio.AbstractEventLoop]] = {}
        self._seq = 0
        self._corrupt_kept: str | None = None  # where ``load`` kept a damaged file as found
        self._closed = False
        self._torn = False  # a failed append left bytes past ``size``
        self.deleted = False  # an append found the file unlinked; a rewrite makes it anew
        # (A file system that counts no links for a file it has cannot tell: no check there.)
        self._links = os.fstat(self._fd).st_nlink > 0

    # -- the worker thread's side ---------------------------------------------------------------

    def _own_lock(self) -> None:
        """Check that this journal still holds the path's lock before it writes: a lock file
        deleted while held (a /tmp cleaner) lets another memory lock a new one. Taken again if
        no lock file is there; else ``OSError`` (EBUSY), and this journal writes nothing more
        there. A new lock file means another memory locked it, even one since closed: it may
        have journalled writes into this very file (its start compaction failed), which a
        rewrite from this journal would drop."""
        lock = self.path + ".lock"
        found = _open_at(lock, self._lock_fd)
        if found:
            return
        if found is False:
            raise OSError(
                errno.EBUSY,
                f"the lock file {lock} was made anew by another memory: this journal no longer "
                "writes to the path",
            )
        try:
            fd = _lock(lock)
        except JournalError as exc:
            raise OSError(errno.EBUSY, str(exc)) from exc
        os.close(self._lock_fd)
        self._lock_fd = fd

    def _write(self, data: bytes) -> None:
        """Append ``data`` and fsync; on failure, cut the file back and raise ``OSError``."""
        self._own_lock()
        start = self.size
        if self._torn:  # an earlier failure could not cut its partial line: do it first
            os.ftruncate(self._fd, start)
            self._torn = False
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
            if self._links and os.fstat(self._fd).st_nlink == 0:
                # Deleted while open (a /tmp cleaner, an operator): no later process would
                # find this record. Failed, as a full disk; ``deleted`` until a rewrite.
                self.deleted = True
                raise FileNotFoundError(errno.ENOENT, "the file was deleted while open")
        except OSError:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                self._torn = True
            raise
        self.size = start + len(data)

    def _read(self) -> Loaded:
        os.lseek(self._fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(self._fd, 1 << 20):
            chunks.append(chunk)
        data = b"".join(chunks)
        lines = data.split(b"\n")
        torn = lines[-1] != b""  # the last line has no newline: an append cut short
        if torn:
            # Cut it before the next append (``_write``), or that record would be glued onto
            # it and unreadable, should the compaction after this load fail (a full disk).
            self.size = len(data) - len(lines[-1])
            self._torn = True
        body = lines[1:-1]
        records: dict[int, Record] = {}
        corrupt = 0
        top = 0
        for number, line in enumerate(body, start=2):
            try:
                data = json.loads(line)
                if "done" in data:
                    for seq in data["done"]:
                        records.pop(int(seq), None)
                        top = max(top, int(seq))
                    continue
                record = decode(data)
                top = max(top, record.seq)
            except (ValueError, KeyError, TypeError, AttributeError):
                corrupt += 1
                log.warning("memory journal %s: line %d is unreadable; skipped", self.path, number)
                continue
            records[record.seq] = record
        self._corrupt_kept = self._keep_as_found(b"\n".join(lines)) if corrupt else None
        self._seq = top  # new records never reuse a sequence a done marker names
        return Loaded(sorted(records.values(), key=lambda r: r.seq), torn, corrupt)

    def _keep_as_found(self, data: bytes) -> str | None:
        """Keep a damaged file as found, in ``path.corrupt`` or, if a load kept one before,
        ``path.corrupt.2``, ``.3``...: never over an earlier copy, whose lines may be the only
        trace of writes it held. None if no copy could be written (a full disk: the readable
        records still replay)."""
        for n in range(1, MAX_CORRUPT_COPIES + 1):
            copy = f"{self.path}.corrupt" + (f".{n}" if n > 1 else "")
            try:
                fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            except OSError as exc:
                log.warning("memory journal %s: could not keep the file as found in %s: %s",
                            self.path, copy, exc)  # fmt: skip
                return None
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as exc:
                log.warning("memory journal %s: could not keep the file as found in %s: %s",
                            self.path, copy, exc)  # fmt: skip
                return None
            return copy
        log.warning("memory journal %s: %d copies of damaged files are kept already (%s.corrupt*);"
                    " this one is not", self.path, MAX_CORRUPT_COPIES, self.path)  # fmt: skip
        return None

    def _write_batch(self, batch: list[tuple[bytes, int]], loop: asyncio.AbstractEventLoop) -> None:
        """``_write`` a batch of lines; once on disk, each append's is kept until its ``then``
        ran (``_on_disk``)."""
        self._write(b"".join(line for line, _ in batch))
        self._on_disk.update((seq, (line, loop)) for line, seq in batch if seq)

    def _rewrite_from(self, snapshot: Callable[[], list[Record]]) -> None:
        """``_rewrite`` with ``snapshot()``, taken here (after every earlier append is on disk)
        and the appends on disk it does not hold yet: those of a writer whose loop has not run
        since (another loop's writer took over), which its ``then`` will take in."""
        on_disk = dict(self._on_disk)  # (before the snapshot: a ``then`` may run in between)
        records = snapshot()
        taken = {record.seq for record in records}
        lines = []
        for seq, (line, loop) in sorted(on_disk.items()):
            if loop.is_closed():  # its ``then`` never runs: never acknowledged
                self._on_disk.pop(seq, None)
            elif seq not in taken:
                lines.append(line)
        self._rewrite(records, lines)

    def _rewrite(self, records: list[Record], lines: Sequence[bytes] = ()) -> None:
        """Replace the file with a header, ``records`` and ``lines`` (records already encoded),
        atomically (temporary file, rename)."""
        self._own_lock()
        if self.deleted and os.path.lexists(self.path):
            # Made anew by another memory meanwhile (its lock was free): not to be replaced.
            raise FileExistsError(errno.EEXIST, "another journal file is at the path", self.path)
        tmp = self.path + ".tmp"
        data = _header(self.namespace) + b"".join(encode(r) for r in records) + b"".join(lines)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.close(fd)
        fresh = os.open(tmp, os.O_RDWR | os.O_APPEND)  # before the rename: appends follow it
        os.replace(tmp, self.path)
        old, self._fd = self._fd, fresh
        os.close(old)
        self.size = len(data)
        self._torn = False
        self.deleted = False
        _fsync_dir(self.path)

    def _close(self) -> None:
        os.close(self._fd)
        os.close(self._lock_fd)  # releases the flock

    # -- the event loop's side ------------------------------------------------------------------

    def _check_process(self) -> None:
        """A worker forked after the journal was opened shares its lock and file with its
        siblings: their appends would overwrite one another's. It must open its own."""
        if os.getpid() != self._pid:
            raise JournalError(
                f"memory journal {self.path} was opened by process {self._pid}, which this one "
                "was forked from: a journal belongs to one process. Make the MemoryPrimitive "
                "with journal_path in each worker, after the fork, each with its own path"
            )

    async def load(self) -> Loaded:
        """Read the records a previous process left (in order, replayed ones removed)."""
        self._check_process()
        loaded: Loaded = await self._run(self._read)
        if loaded.torn:
            log.warning(
                "memory journal %s: its last line was cut short (a crash while appending: that "
                "write was never acknowledged); dropped", self.path,
            )  # fmt: skip
        if loaded.corrupt:
            kept = self._corrupt_kept
            log.warning(
                "memory journal %s: %d unreadable lines skipped%s", self.path, loaded.corrupt,
                f"; the file as found is kept in {kept}" if kept else "",
            )  # fmt: skip
        return loaded

    async def sizes(self, records: Sequence[Record]) -> list[int]:
        """Each record's size as a line of the file, worked out on the file's thread."""
        return await self._run(_sizes, records) if records else []

    async def append(self, write: Write, deadline: float | None, then: _Then) -> None:
        """Append ``write`` durably; ``then(seq, size)`` runs (in order) once it is on disk.

        Raises ``JournalError`` if it could not be written; ``then`` is not called.
        """
        self._seq += 1
        line = encode(Record(self._seq, write, deadline))
        await self._enqueue(line, self._seq, then)

    async def release(self, seqs: Sequence[int]) -> None:
        """Mark records as no longer to be replayed (Redis has them, or they were dropped)."""
        if seqs:
            await self._enqueue(done_line(seqs), 0, None)

    async def rewrite(self, snapshot: Callable[[], list[Record]]) -> None:
        """Compact: rewrite the file with ``snapshot()``, taken after every earlier append (on
        the file's thread: it must be thread-safe)."""
        self._check_process()
        future = asyncio.get_running_loop().create_future()
        await self._join(_Rewrite(snapshot, future))
        await future

    @property
    def busy(self) -> bool:
        """True while appends are queued or being written."""
        return bool(self._queue) or (self._writer is not None and not self._writer.done())

    async def settle(self) -> None:
        """Wait until every queued append is written (or has failed)."""
        while alive(writer := self._writer):
            if writer.get_loop() is asyncio.get_running_loop():
                await asyncio.shield(writer)
            elif not await finished_elsewhere(writer):
                return  # its loop stopped: it writes the rest when that loop runs again

    async def _enqueue(self, line: bytes, seq: int, then: _Then | None) -> None:
        self._check_process()
        if self._closed:
            raise JournalError(f"memory journal {self.path} is closed")
        future = asyncio.get_running_loop().create_future()
        await self._join((line, seq, then, future))
        await future

    async def _join(self, item: _Item) -> None:
        """Queue ``item``, starting this loop's writer if none runs. While another thread's
        loop writes, wait for it to finish first: each item is then written, and its future
        set, by its own loop (another loop's call would not wake it)."""
        loop = running_loop()
        while True:
            with self._handoff:
                writer = self._writer
                other = writer.get_loop() if alive(writer) else None
                mine = other is loop
                if mine or other is None or stranded(other):
                    # (One that loop will not finish meanwhile is taken over: its items'
                    # futures are set thread-safely, ``_settle``.)
                    self._queue.append(item)
                    if not mine:
                        self._writer = loop.create_task(self._drain(), name="tta-journal-writer")
                    return
            assert writer is not None  # (alive, on ``other``)
            if not await finished_elsewhere(writer):
                await asyncio.sleep(0.001)

    async def _drain(self) -> None:
        """Write queued lines in batches (one write and fsync each), and run queued rewrites.

        A batch is taken, and the writer ends, under the hand-off lock: a writer taken over
        while its loop was stopped resumes when that loop runs again, beside its successor on
        another thread; both cutting the queue at once could write an item twice or never, and
        a writer ending just as another thread queued an item left that item unwritten."""
        me = asyncio.current_task()
        while True:
            with self._handoff:
                if self._writer is not me:
                    return  # taken over: the new writer drains the queue
                if not self._queue:
                    self._writer = None  # (the next item starts a writer)
                    return
                queue = self._queue
                cut = next(
                    (i for i, it in enumerate(queue) if isinstance(it, _Rewrite)), len(queue)
                )
                rewrite = queue.pop(0) if cut == 0 else None
                batch = [item for item in queue[:cut] if not isinstance(item, _Rewrite)]
                del queue[:cut]
            if isinstance(rewrite, _Rewrite):
                await self._do_rewrite(rewrite)
                continue
            try:
                await self._run(self._write_batch, [(line, seq) for line, seq, _, _ in batch],
                                asyncio.get_running_loop())  # fmt: skip
            except OSError as exc:
                error = _write_error(self.path, exc)
                for _, _, _, future in batch:
                    _settle(future, error)
                continue
            for line, seq, then, future in batch:
                try:
                    if then is not None:
                        then(seq, len(line))
                except Exception as exc:  # never leave a writer waiting on a dead drain
                    _settle(future, exc)
                    continue
                finally:
                    self._on_disk.pop(seq, None)
                _settle(future, None)

    async def _do_rewrite(self, item: _Rewrite) -> None:
        try:
            await self._run(self._rewrite_from, item.snapshot)
        except Exception as exc:
            # The old file is intact (the rename never happened): appends go on there.
            log.warning("memory journal %s: compaction failed, kept as is: %s", self.path, exc)
        _settle(item.future, None)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if (pid := os.getpid()) != self._executor_pid:
            # A forked child (closing a memory made before the fork): the pool's thread exists
            # only in the parent, and its copy here, counting that thread idle, would never
            # run the call. The child's own thread closes the child's copies of the files.
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="tta-journal")
            self._executor_pid = pid
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _holds(self) -> bool:
        """True if the file at the path is this journal's open file."""
        return bool(_open_at(self.path, self._fd))

    async def keep(self, snapshot: Callable[[], list[Record]]) -> bool:
        """Before closing with writes unsent: True if a file at the path holds them for the
        next process. One deleted since its last append (a /tmp cleaner; no append found it
        gone) is written anew from ``snapshot()`` first; False if that cannot be done (its
        directory is gone, or another memory holds the lock). A file another memory has put
        at the path (it took the path, and restored this one's writes) is left to it."""
        if self._closed:
            return False
        await self.settle()
        if await self._run(os.path.lexists, self.path):
            return True
        self.deleted = True
        await self.rewrite(snapshot)  # (a failure is logged; the check below says so)
        return bool(await self._run(self._holds))

    async def aclose(self) -> None:
        """Finish queued appends, close the file and release the lock (the file stays)."""
        if self._closed:
            return
        await self.settle()
        self._closed = True
        await self._run(self._close)
        self._executor.shutdown(wait=False)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    """Set ``future`` (to ``error`` if one) unless it is done, from any thread: a future of
    another thread's loop is set on that loop (``_join``); one of a closed loop is left."""
    loop = future.get_loop()
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is running:
        _set(future, error)
    elif not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # closed meanwhile
            loop.call_soon_threadsafe(_set, future, error)


def _set(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _open_at(path: str, fd: int) -> bool | None:
    """True if the file at ``path`` is the one open as ``fd``, False if another is there (made
    anew since), None if none is."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    mine = os.fstat(fd)
    return (found.st_dev, found.st_ino) == (mine.st_dev, mine.st_ino)


def _lock(path: str) -> int:
    """Open and ``flock`` the lock file; ``JournalError`` naming the holder if it is taken."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise JournalError(f"cannot open the memory journal's lock file {path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise JournalError(
            f"memory journal {path[:-5]} is in use by another MemoryPrimitive (pid {holder}); "
            "give each live process its own journal_path"
        ) from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _header(namespace: str) -> bytes:
    header = {"tta_journal": FORMAT_VERSION, "namespace": namespace, "created": time.time()}
    return json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _check_header(fd: int, path: str, namespace: str) -> int:
    """Write the header into an empty file, or check an existing one; the file's size."""
    size = os.fstat(fd).st_size
    start = os.pread(fd, 4096, 0)
    if 0 < size < 4096 and b"\n" not in start and start.startswith(b'{"tta_journal"'):
        os.ftruncate(fd, 0)  # a header cut short by a crash as the file was made: no records
        size = 0
    if size == 0:
        header = _header(namespace)
        view = memoryview(header)
        while view:  # a short write (a full disk) is tried again, and then raises
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        _fsync_dir(path)
        return len(header)
    if b"\n" not in start and size > len(start):
        # A header longer than 4 KiB (a long namespace): read on to its end of line.
        start = os.pread(fd, min(size, MAX_HEADER), 0)
    first = start.split(b"\n", 1)[0]
    try:
        header = json.loads(first)
        version = header["tta_journal"]
    except (ValueError, KeyError, TypeError):
        raise JournalError(
            f"{path} is not a memory journal (its first line is not a journal header); "
            "it was left untouched"
        ) from None
    if version != FORMAT_VERSION:
        raise JournalError(
            f"memory journal {path} has format version {version!r}; this version of "
            f"tta-dev-primitives reads version {FORMAT_VERSION} only; it was left untouched"
        )
    if header.get("namespace") != namespace:
        raise JournalError(
            f"memory journal {path} belongs to namespace {header.get('namespace')!r}, not "
            f"{namespace!r}: replaying it here would write into the wrong namespace"
        )
    return size


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_error(path: str, exc: OSError) -> JournalError:
    reason = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else str(exc)
    error = JournalError(
        f"could not append to the memory journal {path} ({reason}): the write was not "
        "acknowledged and not journalled (if it had reached Redis before a timeout, Redis may "
        "still apply it)"
    )
    error.__cause__ = exc
    return error
