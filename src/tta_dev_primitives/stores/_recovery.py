"""The outage journal and the replay that drains it: small objects the hybrid drives.

``Journal``: writes made while the remote is failing, in order, bounded in entries and bytes.

- A write to a key replaces that key's older journalled write (only the newest change of a key
  matters once replayed; the survivor keeps its own place in the order). A ``Clear`` replaces
  everything before it. So a journal holds at most one entry per key, plus one clear. Older is
  by version: a write journalled after a newer change of its key (it was on its way to the
  remote meanwhile) is dropped, and what is newer than a clear stays (a versioned clear spares
  it).
- If it is still over a cap, the *oldest* entries are dropped and counted (``dropped``): the
  newest writes are the ones most likely to be read back, and the in-process copy still holds
  what it can. Nothing is dropped silently: the count is in metrics, spans and backend info.
- Unless partitions are held (``hold``: a replay found them failing, a Redis Cluster's stalled
  master): then the held partitions' writes are dropped first, oldest first among them, and only
  if it is still over, the oldest of the rest. Their writes cannot be sent until the partition
  answers, while the others' are sent at the next batch (dropping the oldest whatever their
  partition, 91% of the answering masters' writes were lost: review R43). Each held partition
  keeps its last entry, which the next run tries (with none left, a run emptied the journal and
  the store left its outage while the master was still stalled: review R46). A partition stays
  held between runs until a write of it is answered (``done``) or a run empties the journal
  (``unhold``). The journal knows partitions only through the function it is given.

With a durable file (``stores._journal_file``), each entry carries its record's sequence; the
sequences of entries that leave the journal (sent, replaced, dropped) are ``released`` and the
replay marks them done in the file after each batch, so a new process never replays them.

``Replay``: one run of the recovery, as a background task. It probes the remote, then sends the
journal in batches of ``batch`` entries until the journal is empty (writes made meanwhile join
the end and are sent too). Writers in the process are faster than a round trip, so the journal
might never empty while they run: before sending the *last* batch, ``on_final`` lets the hybrid
send new writes to the remote directly (versions keep them from being overwritten by the older
entries still in flight). Not before a batch of the run has landed: a probe answered does not
say the remote takes writes (a Redis Cluster with one master stalled answers it), and a run
whose journal fits one batch handed off at once, so a store facing a stalled master read
``degraded`` False and sent its callers to wait on that master once every probe (R43). A
run that empties the journal without handing off ends the outage itself. Before that, the
remote's ``catch_up`` runs (a search replica reads the replayed writes), so no caller's first
search pays for reading them.

A batch the remote refuses *for its data* (``BackendError`` that is
not ``BackendUnavailableError``) is retried entry by entry; the entries it still refuses go to a
bounded dead-letter list, and the rest goes on. An availability error, or a refusal that is not
about the data (``BackendRefusedError``: OOM, an ACL), stops the run: the journal keeps what was
not sent, and the hybrid probes again later. A replayed write older than what Redis holds is
not applied; the remote reports it (``bind``) and the hybrid counts it and drops its in-process
copy.

On a remote whose writes fall in partitions that fail apart (``StorageBackend.partition_of``:
a Redis Cluster's, each on the master of its hash slot), a failure of some of them
(``PartitionsUnavailableError``) does not stop the run at once: their writes stay journalled,
in order, and none of them is sent for the rest of the run (a key's later write never lands
before its earlier one), while the run sends the other partitions' writes of the journal as it
was then, batch after batch, as far as a clear (it spans every partition: nothing after it
passes); then it raises the first such failure. ``on_final`` is not called while a partition
is held, so the store stays in its outage until their writes land too. (Stopping at the first
failure, a stalled master whose writes filled the journal's first chunk kept every other
master's journalled for as long as it was stalled: review R40.) The journal holds them as well
(``Journal.hold``): its cap drops their writes first, and goes on doing so between runs, until
one of their writes is answered; each run still sends the held partitions' oldest writes first
(its first batch is the journal's head), which is how it finds them back (review R43).

The remote reports each chunk of a batch as sent and as applied (``ApplyProgress``): an entry
leaves the journal as soon as its chunk's reply is in, and an entry whose chunk was sent with no
reply seen (the run cancelled with its event loop, or failed) is marked ``sent`` until a later
run confirms it. So what a store closed (or never closed) then still holds splits honestly into
writes never sent, lost, and writes whose fate is unknown (``Journal.lose``).
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import logging
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

from tta_dev_primitives._blocked import fork_safe
from tta_dev_primitives.exceptions import (
    BackendError,
    BackendRefusedError,
    BackendUnavailableError,
    JournalError,
)
from tta_dev_primitives.stores._base import (
    Clear,
    Delete,
    PartitionsUnavailableError,
    Put,
    SearchableBackend,
    StorageBackend,
    Write,
    applied_prefix,
)
from tta_dev_primitives.stores._journal_file import JournalFile

__all__ = ["DEFAULT_MAX_JOURNAL", "DEFAULT_MAX_JOURNAL_BYTES", "Journal", "Journalled", "Replay"]

log = logging.getLogger("tta_dev_primitives.memory")

DEFAULT_MAX_JOURNAL = 100_000
DEFAULT_MAX_JOURNAL_BYTES = 128 * 1024 * 1024  # 100,000 short memories fit (~920 bytes each)
MAX_DEAD_LETTERS = 100
# Bytes an entry costs besides its key, payload and terms (the entry, the write, its version, the
# ordered dict's node and token, the terms dict), and per indexed term: calibrated with
# tracemalloc on short memories (about 920 bytes each), so the byte cap means process memory.
_ENTRY_OVERHEAD = 600
_TERM_OVERHEAD = 80
_VECTOR_OVERHEAD = 112  # a numpy array's header
_CLEAR = ("clear",)
_UNKNOWN: Any = object()  # a journalled write's partition, not asked for yet


def _newer(journalled: Write, write: Write) -> bool:
    """True if ``journalled`` is a newer change than ``write`` (both versioned)."""
    return bool(journalled.version and write.version) and journalled.version > write.version


def _size(write: Write) -> int:
    """An estimate of the memory a journalled write holds (its strings dominate)."""
    if isinstance(write, Clear):
        return _ENTRY_OVERHEAD
    size = _ENTRY_OVERHEAD + len(write.key)
    if isinstance(write, Put):
        payload = write.payload
        size += len(payload) if isinstance(payload, str | bytes) else 256
        if write.document is not None:
            size += sum(len(term) + _TERM_OVERHEAD for term in write.document.terms)
            if write.document.vector is not None:
                size += _VECTOR_OVERHEAD + write.document.vector.nbytes
    return size


class Journalled:
    """A journalled write, with its TTL as a deadline so replay keeps only the remainder.

    ``seq`` and ``disk`` are its record's sequence and size in a durable journal file (0 if none).
    ``sent``: a replay handed it to the remote and saw no reply (cancelled, or failed): the
    remote may hold it already.
    """

    __slots__ = ("deadline", "disk", "flying", "partition", "sent", "seq", "size", "write")

    def __init__(self, write: Write, deadline: float | None, seq: int = 0, disk: int = 0) -> None:
        self.write = write
        self.deadline = deadline
        self.size = _size(write)
        self.seq = seq
        self.disk = disk
        self.sent = False
        self.flying = False  # in the batch a replay is sending now (``Replay.run``)
        self.partition: Hashable | None = _UNKNOWN  # (``Journal._partition``: asked once)


class Journal:
    """Writes waiting for the remote, coalesced per key, capped in entries and bytes.

    With a durable file, ``released`` collects the sequences of records that no longer need
    replaying (sent, replaced by a newer write of the key, or dropped), for the file's ``done``
    markers; ``disk_bytes`` is what the live records take in the file.

    Thread-safe: threads each with its own event loop journal writes at once, and a replay on
    one loop removes entries while another loop's journal writer adds them (a write replacing
    an older one of its key takes that one out of the counts: two at once took it out twice).
    """

    def __init__(
        self, max_entries: int = DEFAULT_MAX_JOURNAL, max_bytes: int = DEFAULT_MAX_JOURNAL_BYTES
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, ...], Journalled] = OrderedDict()
        self.bytes = 0
        self.disk_bytes = 0
        self.dropped = 0  # writes dropped because the journal was full, since the start
        # While a replay drains into a remote that answers, the cap drops nothing: the store
        # holds its writers back instead, and what they had begun may pass the cap (R21).
        self.spare = False
        # Writes still journalled when their store closed (or was collected) during an outage
        # that were sent with no reply seen: maybe stored, maybe lost (``lose``).
        self.unconfirmed = 0
        self.released: list[int] = []
        # Partitions a replay found failing (``hold``), the function that tells a key's, and
        # their entries in the journal's order, which the cap drops first (None: not found yet
        # since the held set grew; ``_held_entries`` walks the journal for them when needed).
        self.held: frozenset[Hashable] = frozenset()
        self._partition_of: Callable[[str], Hashable | None] | None = None
        self._held: OrderedDict[tuple[str, ...], Journalled] | None = OrderedDict()
        self._held_counts: Counter[Hashable] = Counter()  # ``_held``'s entries by partition
        self._lock = fork_safe(threading.Lock())  # held by each change, never across an await

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def full(self) -> bool:
        """Whether one more entry would drop the oldest (at ``max_entries`` or ``max_bytes``)."""
        return len(self._entries) >= self.max_entries or self.bytes >= self.max_bytes

    def entries(self) -> list[Journalled]:
        """The journalled writes, oldest first."""
        with self._lock:
            return list(self._entries.values())

    def add(self, write: Write, deadline: float | None, seq: int = 0, disk: int = 0) -> int:
        """Journal ``write``; return how many old entries were dropped to make room."""
        entry = Journalled(write, deadline, seq, disk)
        with self._lock:
            return self._add(entry)

    def _add(self, entry: Journalled) -> int:
        write, seq = entry.write, entry.seq
        token: tuple[str, ...] = _CLEAR if isinstance(write, Clear) else ("k", write.key)
        old = self._entries.get(token)
        if old is not None and _newer(old.write, write):
            # A write that was on its way to the remote while a newer change of its key (or a
            # newer clear) was journalled, journalled after it: the newer change stands, as
            # Redis would refuse this one as stale.
            if seq:
                self.released.append(seq)
            return 0
        if isinstance(write, Clear):
            # A clear supersedes every older change; a newer one (journalled while the clear
            # was on its way) stays. It is replayed before the clear, which spares it: a
            # versioned clear removes only what is older than it.
            for token_, earlier in list(self._entries.items()):
                if _newer(earlier.write, write):
                    self._entries.move_to_end(token_)
                    if self._held and token_ in self._held:  # (kept in the journal's order)
                        self._held.move_to_end(token_)
                else:
                    del self._entries[token_]
                    self._forget(token_, earlier)
        else:
            self._entries.pop(token, None)
            if old is not None:
                self._forget(token, old)
        self._entries[token] = entry
        if self.held and self._held is not None and self._partition(entry) in self.held:
            self._held[token] = entry
            self._held_counts[entry.partition] += 1
        self.bytes += entry.size
        self.disk_bytes += entry.disk
        dropped = 0
        while (
            not self.spare
            and len(self._entries) > 1
            and (len(self._entries) > self.max_entries or self.bytes > self.max_bytes)
        ):
            victim = self._victim(entry)
            if victim is None:
                break
            del self._entries[victim[0]]
            self._forget(*victim)
            dropped += 1
        self.dropped += dropped
        return dropped

    def _victim(self, added: Journalled) -> tuple[tuple[str, ...], Journalled] | None:
        """The entry the cap drops next: the oldest of a held partition (``hold``), else the
        oldest of all; never one sent, nor ``added`` (the write making room), nor a held
        partition's last entry. One sent (a batch on its way, or one whose reply was lost)
        may be stored, so dropping it would count as lost what Redis may hold (review R19:
        more counted than were missing). It leaves once answered. A held partition keeps one
        entry, which the next replay tries: dropped too, the journal emptied, the store left
        its outage and the next write to that partition waited a whole timeout (review R46).
        (Walks past the sent and those last entries only: about a batch's worth.)"""
        held, counts = self._held_entries(), self._held_counts
        for item in held.items():
            entry = item[1]
            if not (entry.sent or entry.flying or counts[entry.partition] <= 1):
                if entry is not added:
                    return item
                break
        oldest = next(
            (item for item in self._entries.items()
             if not (item[1].sent or item[1].flying or self._last_held(item, held))),
            None,
        )  # fmt: skip
        return None if oldest is None or oldest[1] is added else oldest

    def _last_held(
        self,
        item: tuple[tuple[str, ...], Journalled],
        held: OrderedDict[tuple[str, ...], Journalled],
    ) -> bool:
        """Whether ``item`` is the one entry left of a held partition (``_victim``)."""
        return held.get(item[0]) is item[1] and self._held_counts[item[1].partition] <= 1

    def _forget(self, token: tuple[str, ...], entry: Journalled) -> None:
        self.bytes -= entry.size
        self.disk_bytes -= entry.disk
        if entry.seq:
            self.released.append(entry.seq)
        if self._held and self._held.get(token) is entry:
            del self._held[token]
            self._held_counts[entry.partition] -= 1

    def _partition(self, entry: Journalled) -> Hashable | None:
        """``entry``'s partition (None: a clear, or a write of none), asked once per entry."""
        partition = entry.partition
        if partition is _UNKNOWN:
            write, partition_of = entry.write, self._partition_of
            if isinstance(write, Clear) or partition_of is None:
                return None
            partition = entry.partition = partition_of(write.key)
        return partition

    def _held_entries(self) -> OrderedDict[tuple[str, ...], Journalled]:
        """The held partitions' entries, in the journal's order: found by a walk of the
        journal after the held set grew, at the next drop only (an outage that stays within
        the caps never walks; each entry's partition is asked once, ``_partition``: the first
        walk of 100,000 takes about 140 ms, a later one about 25 ms)."""
        held = self._held
        if held is None:
            partitions = self.held
            held = self._held = OrderedDict(
                item for item in self._entries.items() if self._partition(item[1]) in partitions
            )
            self._held_counts = Counter(entry.partition for entry in held.values())
        return held

    def hold(
        self, partitions: Iterable[Hashable], partition_of: Callable[[str], Hashable | None]
    ) -> None:
        """A replay found ``partitions`` failing (``partition_of`` tells a key's): they join
        the held, whose writes the cap drops first (``_held_entries``)."""
        with self._lock:
            self._partition_of = partition_of
            held = self.held | frozenset(partitions)
            if held != self.held:
                self.held, self._held = held, None

    def unhold(self, partitions: Iterable[Hashable] | None = None) -> None:
        """``partitions`` (all if None) answer again: their writes are dropped in turn."""
        with self._lock:
            self._unhold(self.held if partitions is None else frozenset(partitions))

    def _unhold(self, partitions: frozenset[Hashable]) -> None:
        if not partitions & self.held:
            return
        self.held -= partitions
        held, entries = self.held, self._held
        if not held:
            self._held, self._held_counts = OrderedDict(), Counter()
        elif entries is not None:
            for token in [t for t, entry in entries.items() if entry.partition not in held]:
                del entries[token]
            for partition in partitions:
                self._held_counts.pop(partition, None)

    def lose(self) -> tuple[int, int]:
        """A store closed with writes still journalled: how many were never sent (lost; counted
        in ``dropped``) and how many were sent with no reply seen (maybe stored; counted in
        ``unconfirmed``)."""
        with self._lock:
            unconfirmed = sum(entry.sent for entry in self._entries.values())
            unsent = len(self._entries) - unconfirmed
            self.dropped += unsent
            self.unconfirmed += unconfirmed
        return unsent, unconfirmed

    def take_released(self) -> list[int]:
        """The sequences released since the last call."""
        with self._lock:
            released, self.released = self.released, []
        return released

    def head(self, count: int) -> list[tuple[tuple[str, ...], Journalled]]:
        """The oldest ``count`` entries, left in place until ``done``."""
        with self._lock:  # (another thread's loop may journal a write meanwhile)
            return list(itertools.islice(self._entries.items(), count))

    def holds(self, token: tuple[str, ...], entry: Journalled) -> bool:
        """Whether ``entry`` is still journalled (not sent, replaced or dropped since)."""
        return self._entries.get(token) is entry

    def fly(
        self, batch: Sequence[tuple[tuple[str, ...], Journalled]]
    ) -> list[tuple[tuple[str, ...], Journalled]]:
        """Mark ``batch``'s entries still journalled as on their way (``flying``): the cap
        passes over them until the replay's ``finally`` clears the mark."""
        with self._lock:
            kept = [(token, entry) for token, entry in batch if self._entries.get(token) is entry]
            for _, entry in kept:
                entry.flying = True
        return kept

    def done(self, sent: Sequence[tuple[tuple[str, ...], Journalled]]) -> None:
        """Remove sent entries, unless a newer write to the same key replaced them meanwhile.
        They were answered: a held partition of theirs answers again (``unhold``)."""
        with self._lock:
            for token, entry in sent:
                if self._entries.get(token) is entry:
                    del self._entries[token]
                    self._forget(token, entry)
            if self.held:
                answered = {self._partition(entry) for _, entry in sent}
                self._unhold(frozenset(answered) & self.held)

    def has_key(self, key: str) -> bool:
        return ("k", key) in self._entries

    def pending(self, key: str) -> Write | None:
        """The journalled change of ``key`` the remote will get: its own write, else a clear."""
        entry = self._entries.get(("k", key)) or self._entries.get(_CLEAR)
        return None if entry is None else entry.write

    def changes(self, key: str) -> bool:
        """True if a journalled write changes ``key``: its own, or a clear."""
        return self.pending(key) is not None

    def version_of(self, key: str) -> str | None:
        """The version of ``key``'s journalled write, if it has one."""
        entry = self._entries.get(("k", key))
        return None if entry is None else entry.write.version


class _Sending:
    """A batch on its way (``ApplyProgress``): its entries are marked ``sent`` as the remote
    sends them, and leave the journal as soon as it confirms them, so a run cancelled later in
    the batch (its loop ending) does not leave applied writes there, to be reported lost."""

    __slots__ = ("batch", "confirmed", "journal", "left", "sent", "was_sent")

    def __init__(self, journal: Journal, batch: Sequence[tuple[tuple[str, ...], Journalled]]):
        self.journal = journal
        self.batch = batch
        self.confirmed = 0
        self.left = 0  # entries it took out of the journal, applied
        self.sent = 0
        self.was_sent = [entry.sent for _, entry in batch]  # by an earlier run: maybe stored

    def __call__(self, sent: int, applied: int) -> None:
        for _, entry in self.batch[self.confirmed : sent]:
            entry.sent = True
        # Fewer sent than reported before: the rest were refused (``ApplyProgress``), so this
        # run leaves them as it found them (unsent, unless an earlier run's reply was lost).
        for index in range(sent, self.sent):
            self.batch[index][1].sent = self.was_sent[index]
        self.sent = sent
        if applied > self.confirmed:
            self.journal.done(self.batch[self.confirmed : applied])
            self.left += applied - self.confirmed
            self.confirmed = applied

    def settle(self, start: int, outcomes: Sequence[bool | None]) -> None:
        """Each write's fate from ``start`` on, before a failure is raised
        (``report_outcomes``): the applied ones leave the journal, the refused ones are left as
        this run found them, the unknown ones stay sent (maybe stored)."""
        applied = []
        for offset, outcome in enumerate(outcomes):
            index = start + offset
            if outcome is True:
                applied.append(self.batch[index])
            elif outcome is False:
                self.batch[index][1].sent = self.was_sent[index]
        self.journal.done(applied)
        self.left += len(applied)
        self.confirmed = max(self.confirmed, start + applied_prefix(outcomes))


def _reports_progress(remote: StorageBackend) -> bool:
    """Whether ``remote.apply`` takes ``progress=`` (a user's backend overriding ``apply`` with
    the signature it had before may not: its batch is then sent and confirmed whole). Asked
    once a batch: ~10 us against a batch's round trips."""
    try:
        return "progress" in inspect.signature(remote.apply).parameters
    except (TypeError, ValueError):  # (no signature to read: a C or wrapped callable)
        return False


class Replay:
    """Probe the remote and drain a journal into it; see the module docstring."""

    def __init__(
        self,
        remote: StorageBackend,
        journal: Journal,
        clock: Callable[[], float],
        *,
        batch: int = 500,
        dead_letters: deque[dict[str, Any]] | None = None,
        on_final: Callable[[], None] | None = None,
        file: JournalFile | None = None,
        on_progress: Callable[[], None] | None = None,
        on_hold: Callable[[], None] | None = None,
        on_held_start: Callable[[], None] | None = None,
    ) -> None:
        self.on_final = on_final
        self.on_hold = on_hold
        self.on_held_start = on_held_start
        self.on_progress = on_progress
        self.file = file
        self.remote = remote
        self.journal = journal
        self.clock = clock
        self.batch = batch
        self.dead_letters: deque[dict[str, Any]] = (
            dead_letters if dead_letters is not None else deque(maxlen=MAX_DEAD_LETTERS)
        )
        self.dead = 0  # entries refused by the remote for their data, in this run
        self.replayed = 0
        # Partitions that failed in this run (``_hold``), the first such failure, the journal
        # as it was then, and where in it the next batch is looked for (``_next_batch``).
        self.held: set[Hashable] = set()
        self.failure: PartitionsUnavailableError | None = None
        self._rest: list[tuple[tuple[str, ...], Journalled]] = []
        self._cursor = 0
        self.handed_off = False  # ``on_final`` was called: callers wait for this batch
        # A batch of this run was answered in full: the remote takes writes, not only probes.
        self.landed = False

    async def run(self) -> int:
        """Replay until the journal is empty; the number of writes sent.

        Raises ``BackendUnavailableError`` if the remote fails meanwhile (what was not sent
        stays in the journal). A failure of some partitions only (``PartitionsUnavailableError``)
        is raised once the other partitions' writes are sent (``_hold``).
        """
        await self.remote.probe()
        if self.on_progress is not None:
            self.on_progress()  # the remote answers: the journal drains from here
        if self.journal.held and self.on_held_start is not None:
            # Partitions an earlier run found failing are still held: this run's first batch
            # (the journal's head) most likely waits on them, and makes no room meanwhile
            # (writers facing a full journal waited for it: 1.1-1.5 s with a 1 s timeout,
            # review R46). Until it says which, neither wait nor drop (``on_held_start``).
            self.on_held_start()
        journal = self.journal
        caught_up = not isinstance(self.remote, SearchableBackend)
        self.held, self.failure = set(), None
        while journal or (self.file is not None and self.file.busy):
            if not journal:
                # A write made while degraded is still being appended to the file: it joins
                # the journal once on disk, and is replayed too.
                assert self.file is not None
                await self.file.settle()
                continue
            if self.failure is not None:
                batch = self._next_batch()
                if not batch:  # what is left waits for a partition that failed
                    raise self.failure
            else:
                batch = journal.head(self.batch)
                if len(batch) == len(journal) and self.on_final is not None:
                    if not caught_up:
                        # The replica (if any) reads the replayed writes now, not in a caller's
                        # search; once: writes made meanwhile joined the journal, so the batch
                        # is taken again, and the replica reads those few at the next search.
                        # (A second catch-up made every write after ``on_final`` wait for it:
                        # R10.)
                        assert isinstance(self.remote, SearchableBackend)
                        await self.remote.catch_up()
                        caught_up = True
                        batch = journal.head(self.batch)
                    if len(batch) == len(journal) and self.landed:
                        self.on_final()
                        self.handed_off = True
            before = self.replayed
            try:
                await self._send(batch)
            except BackendError:
                # What the batch applied before it failed is marked done in the file too: a
                # stalled master's failure left the others' writes to be sent again by the
                # next process (no-ops, their versions older than what stands).
                await self._release()
                raise
            self.landed = self.landed or self.failure is None
            if self.replayed > before and self.failure is None and self.on_progress is not None:
                # (Not while partitions are held: its batches make no room, ``on_hold``.)
                self.on_progress()
            await self._release()
            if journal:
                log.debug("replaying journal: %d done, %d left", self.replayed, len(journal))
        journal.unhold()  # (a partition held whose writes were all dropped answers too)
        return self.replayed

    async def _release(self) -> None:
        """Mark done in the durable file the records of the entries that left the journal."""
        if self.file is not None:
            with contextlib.suppress(JournalError):  # a lost marker: a no-op replay later
                await self.file.release(self.journal.take_released())

    async def _send(self, batch: Sequence[tuple[tuple[str, ...], Journalled]]) -> None:
        """Send one batch; what it applied leaves the journal. A failure of some partitions
        only is held (``_hold``); any other failure to reach the remote is raised."""
        journal = self.journal
        # Taken: from here the cap does not drop (and count as lost) what this batch sends;
        # one another thread's writer dropped since ``head`` is left out.
        batch = journal.fly(batch)
        writes = self._replayable([entry for _, entry in batch])
        sending = _Sending(journal, batch)
        answered: Sequence[tuple[tuple[str, ...], Journalled]] = ()
        try:
            if _reports_progress(self.remote):
                await self.remote.apply(writes, progress=sending)
            else:  # a backend of the user's, whose apply predates ``progress``
                sending(len(writes), 0)
                await self.remote.apply(writes)
                sending(len(writes), len(writes))
            answered = batch
        except PartitionsUnavailableError as exc:
            self._hold(exc)  # (what it applied left the journal as it was confirmed)
        except (BackendUnavailableError, BackendRefusedError):
            raise  # the journal keeps the rest: a full or locked Redis is retried later
        except BackendError:
            done = sending.confirmed
            held = {id(entry) for entry in await self._one_by_one(batch[done:], writes[done:])}
            answered = [item for item in batch if id(item[1]) not in held]
        finally:
            for _, entry in batch:
                entry.flying = False
            if not answered:  # stopped part-way (cancelled, say): count what it applied
                self.replayed += sending.left
        journal.done(answered)
        self.replayed += len(answered)

    def _hold(self, exc: PartitionsUnavailableError) -> None:
        """Some partitions failed: their writes stay journalled, in order, none sent for the
        rest of this run (a key's later write never lands before its earlier one), and the run
        goes on with the other partitions' writes, those journalled up to now, as far as a
        clear (which spans all partitions); then ``exc`` (the first such) is raised. Raised at
        once if it names no partition not already held (nothing more could be sent), or in the
        last batch, after ``on_final``.

        The journal holds them too (``Journal.hold``): past its cap it drops their writes
        first, in this run and after it, until one of their writes is answered."""
        self.journal.hold(exc.partitions, self.remote.partition_of)
        if self.handed_off or exc.partitions <= self.held:
            # (After the hand-off, callers wait for the last batch: they wait no longer for
            # the rest of it, which the next run sends.)
            raise exc
        if self.failure is None:
            self.failure = exc
            self._rest, self._cursor = self.journal.head(len(self.journal)), 0
            if self.on_hold is not None:
                # The held partitions' writes never leave the journal in this run: writers
                # facing a full journal must not wait for room through the rest of it (R43).
                self.on_hold()
        self.held |= exc.partitions
        log.debug("replaying the other partitions' writes; %d failed: %s", len(self.held), exc)

    def _next_batch(self) -> list[tuple[tuple[str, ...], Journalled]]:
        """A run holding failed partitions (``_hold``): its next batch, the oldest entries of
        the journal as it was at the first failure that are still there and ``_passes`` lets
        through. (Writes journalled since wait for the next run: writers that never pause
        kept it from ending.) Looked for from the last batch's first entry on, so that what
        that batch left unsent is taken again and each entry held is walked past about
        twice, not once per batch (a walk from the journal's head each time took 65 ms
        past 35,000 entries of a stalled master, a batch's worth at a time)."""
        rest, journal = self._rest, self.journal
        taken: list[tuple[tuple[str, ...], Journalled]] = []
        index = self._cursor
        while index < len(rest) and len(taken) < self.batch:
            token, entry = rest[index]
            if journal.holds(token, entry):
                verdict = self._passes(entry)
                if verdict is None:
                    break
                if verdict:
                    if not taken:
                        self._cursor = index
                    taken.append((token, entry))
            index += 1
        return taken

    def _passes(self, entry: Journalled) -> bool | None:
        """Whether a run holding failed partitions (``_hold``) sends ``entry``: not if its
        partition failed (False); it stops (None) at a clear or a write of no partition (each
        depends on all the partitions)."""
        write = entry.write
        if isinstance(write, Clear):
            return None
        partition = self.remote.partition_of(write.key)
        return None if partition is None else partition not in self.held

    async def _one_by_one(
        self, batch: Sequence[tuple[tuple[str, ...], Journalled]], writes: Sequence[Write]
    ) -> list[Journalled]:
        """Send each write alone; the ones refused for their data become dead letters. The
        entries held back (``_hold``, ``_passes``) are returned: they stay journalled."""
        held: list[Journalled] = []
        stopped = False
        for entry, write in zip(batch, writes, strict=True):
            if self.failure is not None:
                verdict = None if stopped else self._passes(entry[1])
                stopped = verdict is None
                if not verdict:
                    held.append(entry[1])
                    continue
            entry[1].sent = True
            try:
                await self.remote.apply([write])  # a stale write is reported, not raised
            except PartitionsUnavailableError as exc:
                self._hold(exc)
                held.append(entry[1])
                continue
            except (BackendUnavailableError, BackendRefusedError):
                raise
            except BackendError as exc:
                self.dead += 1
                self.dead_letters.append(
                    {"op": type(write).__name__.lower(),
                     "key": getattr(write, "key", None), "error": str(exc)[:200]}
                )  # fmt: skip
                log.warning(
                    "the memory backend refused a journalled %s of key %r; kept as a dead "
                    "letter (see get_backend_info()['dead_letters']): %s",
                    type(write).__name__.lower(), getattr(write, "key", None), exc,
                )  # fmt: skip
            self.journal.done([entry])  # answered: applied, reported stale, or refused
        return held

    def _replayable(self, batch: Sequence[Journalled]) -> list[Write]:
        """Writes with TTLs shortened by the time spent in the journal; expired puts delete."""
        now = self.clock()
        writes: list[Write] = []
        for item in batch:
            write = item.write
            if isinstance(write, Put) and item.deadline is not None:
                left = item.deadline - now
                write = (
                    Put(write.key, write.payload, left, write.document, write.version)
                    if left > 0
                    else Delete(write.key, write.version)
                )
            writes.append(write)
        return writes
