"""The writes an outage keeps for the remote: the bounded journal and, with ``journal_path``, the
durable file behind it.

A write joins the journal only once its record is on disk (when there is a file), so a write
that returns survives the process; the file is compacted when it grows to twice what the
journal still holds; what an earlier process left in it is read back by ``restore``. Which
writes to journal, and when to replay them, is the hybrid's decision (``_hybrid``); this is
only where they wait.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Callable

from tta_dev_primitives._blocked import alive, finished_elsewhere, running_loop, stranded
from tta_dev_primitives.exceptions import JournalError
from tta_dev_primitives.stores._base import Put, Write
from tta_dev_primitives.stores._events import StoreEvents
from tta_dev_primitives.stores._journal_file import COMPACT_FLOOR, JournalFile, Record
from tta_dev_primitives.stores._recovery import Journal

__all__ = ["RESTORE_SLICE", "Outbox", "Restored"]

log = logging.getLogger("tta_dev_primitives.memory")

#: The errors of a full disk (EFBIG: past a file size limit).
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
#: Room for the header: a file not larger than its live records and this has nothing to drop.
_HEADER_ROOM = 4096
#: Restored writes taken in (here, and into the in-process copy) between two turns of the event
#: loop: a few ms of work, so a journal of 100,000 writes never holds the loop for seconds.
RESTORE_SLICE = 256

#: A write restored from the durable file, and the seconds its memory has left (None: no TTL).
Restored = tuple[Write, float | None]


class Outbox:
    """The journal of unsent writes, and its durable file if any."""

    def __init__(
        self,
        journal: Journal,
        file: JournalFile | None,
        events: StoreEvents,
        clock: Callable[[], float],
    ) -> None:
        self.journal = journal
        self.file = file
        self._events = events
        self._clock = clock
        self._compaction: asyncio.Task[None] | None = None
        self._remake: asyncio.Task[None] | None = None  # a rewrite after a failed append
        self._full_at: int | None = None  # the file's size after that rewrite, on a full disk
        self.restored = 0  # writes found in the durable file at start
        self.corrupt = 0  # its lines dropped as unreadable (a torn last line included)

    async def add(self, write: Write) -> None:
        """Journal a write; with a file, only once it is on disk (in call order).

        Raises ``JournalError`` if the file cannot take it (a full disk); nothing is kept then.
        """
        ttl = write.ttl if isinstance(write, Put) else None
        deadline = None if ttl is None else self._clock() + ttl
        file = self.file
        if file is None:
            self._add(write, deadline, 0, 0)
            return
        wall = None if ttl is None else time.time() + ttl
        try:
            await file.append(write, wall, lambda seq, disk: self._add(write, deadline, seq, disk))
        except JournalError as exc:
            # This write was not acknowledged; make the file fit for later ones (once, for the
            # writers that failed together):
            # - deleted while open: made anew with what the journal holds (if its directory is
            #   still there), so later writes and the journal's earlier ones are on disk again;
            # - a full disk: compacted if superseded or replayed records take room (the file
            #   is compacted past COMPACT_FLOOR only otherwise: a nearly full disk stayed full).
            #   (Not again while the file stays as a failed compaction left it.)
            full = isinstance(exc.__cause__, OSError) and exc.__cause__.errno in _FULL
            roomy = file.size > self.journal.disk_bytes + _HEADER_ROOM
            if file.deleted or (full and roomy and file.size != self._full_at):
                await self._remade(file)
                self._full_at = file.size if full else None
            raise
        if (
            file.size > COMPACT_FLOOR
            and file.size > 2 * self.journal.disk_bytes
            and not alive(self._compaction)  # (one of a loop closed with it pending never ends)
        ):
            self._compaction = asyncio.get_running_loop().create_task(
                file.rewrite(self.snapshot), name="tta-journal-compaction"
            )

    async def _remade(self, file: JournalFile) -> None:
        """Rewrite the file after a failed append, once for the writers that failed together:
        one loop's rewrite, which another thread's loop waits for while that loop runs it."""
        loop = running_loop()
        remake = self._remake
        if not alive(remake) or (remake.get_loop() is not loop and stranded(remake.get_loop())):
            if file.deleted:
                log.warning("memory journal %s was deleted while open; writing it anew", file.path)
            remake = self._remake = loop.create_task(file.rewrite(self.snapshot))
        if remake.get_loop() is loop:
            await asyncio.shield(remake)
        else:  # (a task of another loop cannot be awaited here)
            await finished_elsewhere(remake)

    async def restore(self) -> list[Restored]:
        """Read back what an earlier process left in the file into the journal. The writes,
        oldest first; the caller applies them, then ``compact``s the file."""
        file = self.file
        assert file is not None
        loaded = await file.load()
        # Each record's size on disk, encoded again on the file's thread: 100,000 records are
        # seconds of JSON, which on the loop would stall every request it serves.
        sizes = await file.sizes(loaded.records)
        now, wall = self._clock(), time.time()
        writes: list[Restored] = []
        # Every write an earlier process acknowledged comes back, whatever this one's caps (a
        # smaller max_journal after a deploy dropped the excess, then cut it from the file
        # with Redis up: R24). The caps drop only this process's own outage writes.
        spare, self.journal.spare = self.journal.spare, True
        try:
            for done, (record, size) in enumerate(zip(loaded.records, sizes, strict=True), 1):
                left = None if record.deadline is None else record.deadline - wall
                self._add(record.write, None if left is None else now + left, record.seq, size)
                writes.append((record.write, left))
                if done % RESTORE_SLICE == 0:
                    await asyncio.sleep(0)  # other requests' turn (none uses this journal yet)
        finally:
            self.journal.spare = spare
        self.restored = len(self.journal)
        self.corrupt = loaded.corrupt + int(loaded.torn)
        return writes

    async def compact(self) -> None:
        """Rewrite the file to what the journal still holds: done, torn and unreadable lines
        go (after a replay: back to its header)."""
        if self.file is not None:
            await self.file.rewrite(self.snapshot)

    def snapshot(self) -> list[Record]:
        """The journal as records for a rewrite of its file (what was released is gone). Taken
        on the file's thread, when the rewrite's turn comes (``Journal`` is thread-safe)."""
        now, wall = self._clock(), time.time()
        self.journal.take_released()
        return [
            Record(e.seq, e.write, None if e.deadline is None else wall + e.deadline - now)
            for e in self.journal.entries()
        ]

    async def keep(self) -> bool:
        """Closing with writes unsent: True if the durable file holds them for the next
        process (``JournalFile.keep``)."""
        return self.file is not None and await self.file.keep(self.snapshot)

    async def aclose(self) -> None:
        if self.file is not None:
            await self.file.aclose()

    def _add(self, write: Write, deadline: float | None, seq: int, disk: int) -> None:
        before = self.journal.dropped
        dropped = self.journal.add(write, deadline, seq, disk)
        if dropped:
            self._events.journal_dropped(dropped)
            if before == 0 or before // 10_000 != self.journal.dropped // 10_000:
                log.warning(
                    "memory journal full (%d writes or %d bytes): dropped the oldest journalled "
                    "writes (a failed cluster master's first), %d so far; they will not reach "
                    "the remote backend",
                    self.journal.max_entries, self.journal.max_bytes, self.journal.dropped,
                )  # fmt: skip
