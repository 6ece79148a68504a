"""A process's replica of a Redis namespace's search index, kept in sync from Redis's change feed.

Redis keeps the memories, each partition's live keys by write sequence (``r``) and tombstones of
deletes (``g``); see ``layout``. Before a search, the replica asks each partition for
what changed since the sequences it has seen: a bounded page of writes (with their payloads,
which it analyses with the same ``Indexing`` as the in-process store, and their embeddings,
stored beside them, so nothing is embedded twice) and the deletes. So a
search costs Redis one short script per partition plus one ``MGET`` of the results, whatever the
namespace's size, and ranks exactly as the in-process index does: it *is* that index.

The first search in a process reads the whole namespace in pages (about a second per 50k short
memories here); later ones read only what changed. A replica that finds its partition cleared
(a new epoch), its tombstones trimmed away, or the partition behind what it has read (same
epoch, a lower last sequence: Redis restarted from an older snapshot or failed over to a
lagging replica) reloads that partition. Once such a partition is written to again its last
sequence passes the replica's, so each page also says which run of the server (its ``run_id``
and replication id) it was read on: on another run than before (a restart, a failover, a
resharding, a master that resynced from another) the replica asks again with witnesses of what
it read (``witnesses``), and one no longer at its sequence or a later one was lost: the
partition is reloaded.

A replica may hold one first key segment only (``seg``, a user): it then reads that segment's
own feed in each partition and nothing else. With several partitions (a cluster), a sync first
reads every partition's head (its last sequence) in one ``MGET`` per node and asks only the
partitions whose head moved for their changes. A segment's replica reads that segment's head
instead (with what says a clear or an older version's writer moved the partition), so that
other users' writes do not send it to every partition they touched: on a cluster where 20
other users wrote between two searches, that was 64 partitions read for nothing.

One memory may serve several threads, each with its own event loop (``asyncio.run`` per request
in a threaded web server): every change to the replica's state and every search of its index
holds ``guard``, a thread lock never held across an ``await``.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tta_dev_primitives._blocked import LoopLock, fork_safe, heavy_in_own_thread
from tta_dev_primitives._gather import gather_all
from tta_dev_primitives.exceptions import BackendUnavailableError, InvalidArgumentError
from tta_dev_primitives.search._index import SearchIndex
from tta_dev_primitives.search._indexing import OFF_LOOP_BYTES, Indexing
from tta_dev_primitives.stores._base import Document
from tta_dev_primitives.stores._redis.connection import text_of
from tta_dev_primitives.stores._redis.layout import PARTITIONS_AT_ONCE
from tta_dev_primitives.stores._redis.witnesses import Witnesses

__all__ = ["PAGE_BYTES", "PAGE_COUNT", "Replica"]

log = logging.getLogger("tta_dev_primitives.memory")

#: Writes read per round trip, and the payload and vector bytes after which a page stops early.
#: A page is applied without yielding the event loop: 256 KiB is ~170 memories with 384-dim
#: vectors, each also entering the HNSW graph, so one page holds the loop for well under 100 ms
#: (1 MiB pages held it for 330-530 ms while loading 100k vectors).
PAGE_COUNT = 1000
PAGE_BYTES = 1 << 18
# Documents of this process's own recent writes, so it need not analyse them again when they come
# back through the feed (bounded: it only bridges a write and the next sync).
_OWN_MAX = 10_000
#: Memories a partition that starts over takes out of the index per turn of the event loop.
_RESET_SLICE = 1000
#: Records of a page indexed per turn of the event loop (a few ms of work).
_APPLY_SLICE = 128
#: base, since, since_del, seg, then (on another run than the one read on) that run and the
#: witnesses (``witnesses``)
Fetch = Callable[[str, str, str, str, list[str]], Awaitable[Any]]
#: (bases, seg) -> what says whether each partition changed: its head, or for a segment's
#: replica what says whether that segment's feeds did (``Layout.segment_heads``)
Heads = Callable[[list[str], str], Awaitable[list[Any]]]
# Stale deadline entries allowed in the expiry heap before it is compacted (beyond 1 per key).
_HEAP_SLACK = 64


@dataclass(slots=True)
class _Cursor:
    """How far a partition has been read: epoch, last write and last delete sequence seen."""

    epoch: str | None = None
    since: int = 0
    since_del: int | None = None  # None: not started (tombstones before the load don't matter)
    keys: set[str] = field(default_factory=set)
    head: Any = None  # the partition's head when it was last caught up (None: unknown)
    # Bumped by each slice of a page applied and each reset: a page read before another
    # thread's sync applied (its own lock is per loop) is read again, not applied over it.
    turn: int = 0
    run: str = ""  # the run of the server last read from ('': unknown, or not told)
    witnesses: Witnesses = field(default_factory=Witnesses)


_Record = tuple[str, int, bytes | None, int | None, bytes | None]


def _records(packed: bytes | str) -> Iterator[_Record]:
    """(key, seq, payload or None, deadline ms or None, vector bytes or None) from CHANGES."""
    buf = packed.encode() if isinstance(packed, str) else packed
    pos, end = 0, len(buf)
    while pos < end:
        line = buf.index(b"\n", pos)
        klen, plen, seq, deadline, vlen = buf[pos:line].split(b" ")
        start = line + 1
        key_end = start + int(klen)
        size = int(plen)
        payload = None if size < 0 else buf[key_end : key_end + size]
        payload_end = key_end + max(size, 0)
        pos = payload_end + int(vlen)
        yield (
            buf[start:key_end].decode(),
            int(float(seq)),
            payload,
            None if deadline == b"-" else int(float(deadline)),
            buf[payload_end:pos] if pos > payload_end else None,
        )


def _outdated(cursor: _Cursor, reply: list[Any]) -> bool:
    """True if a CHANGES page says the partition must be read again from the start."""
    if not (cursor.since > 0 or cursor.since_del is not None):
        return False  # not started
    epoch, gcut, last = text_of(reply[0]), int(float(reply[1])), int(float(reply[8]))
    return (
        epoch != (cursor.epoch or "")
        or (cursor.since_del is not None and gcut > cursor.since_del)
        or last < max(cursor.since, cursor.since_del or 0)
        or (len(reply) > 10 and text_of(reply[10]) == "1")  # a witness lost (another run)
    )


def _another_run(cursor: _Cursor, reply: list[Any]) -> bool:
    """True if a CHANGES page came from another run than the cursor read on (unchecked)."""
    return bool(cursor.run) and len(reply) > 9 and text_of(reply[9]) not in ("", cursor.run)


class Replica:
    """The search index of one namespace, as of the last sync; see the module docstring."""

    def __init__(
        self,
        indexing: Indexing,
        bases: list[str],
        partition_of: Callable[[str], str],
        *,
        seg: str = "",
        clock: Callable[[], float] = time.monotonic,
        on_changed: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.indexing = indexing
        self.bases = bases
        self.seg = seg  # '' for the whole namespace, else the one first segment held
        self.index = SearchIndex()
        self._partition_of = partition_of
        self._cursors = {base: _Cursor() for base in bases}
        self._clock = clock
        self._on_changed = on_changed  # told (key, payload or None) of what others changed
        self._deadlines: list[tuple[float, int, str]] = []  # (local deadline, recency, key)
        self._deadline_of: dict[str, tuple[float, int]] = {}  # each key's live heap entry
        self._own: dict[str, tuple[int, Document]] = {}
        self._warned_vectors = False
        self.dims: int | None = None  # this process's embedder's, once known
        # A vector was refused before ``dims`` was known: perhaps a memory's several vectors,
        # read end to end as one; read again once ``dims`` is known (``expect_dims``).
        self._refused_unsized = False
        self._started = 0  # syncs begun
        self._done = 0  # the number of the last sync that completed
        self._failures = 0  # syncs that found Redis unavailable
        self._failure = ""  # what the last one was told
        self._lock = LoopLock()
        #: Held by each change of the state above and each search of ``index`` (see the module
        #: docstring): without it, a search on another thread read documents a page removed.
        self.guard = fork_safe(threading.RLock())
        self._resets = 0  # partitions started over (a page being applied then stops)

    # -- sync ----------------------------------------------------------------------------------

    async def sync(self, fetch: Fetch, heads: Heads | None = None) -> None:
        """Catch up with every partition. Concurrent callers share a sync that began after them.

        A write that completed before this call began is in the index when it returns. With
        ``heads``, partitions whose head has not moved since their last catch-up are skipped.
        A caller that waited while another sync found Redis unavailable gives up at once, as
        a call that waited for a connection slot does: ``n`` searches queued on a stalled
        Redis wait one timeout, not ``n``.
        """
        ticket, failures = self._started, self._failures
        async with self._lock():
            if self._done > ticket:
                return  # a sync that began after this call did has completed: it saw our writes
            if self._failures != failures:
                raise BackendUnavailableError(f"{self._failure} (failed while this call waited)")
            self._started += 1
            number = self._started
            try:
                await self._sync(number, fetch, heads)
            except BackendUnavailableError as exc:
                self._failures += 1
                self._failure = str(exc)
                raise

    async def _sync(self, number: int, fetch: Fetch, heads: Heads | None) -> None:
        """``sync``'s catch-up, as sync ``number``, under its lock."""
        moved = [(base, None) for base in self.bases]
        if heads is not None:
            # Read before catching up: a write after this read moves the head again.
            now = await heads(self.bases, self.seg)
            moved = [(base, head) for base, head in zip(self.bases, now, strict=True)
                     if head is None or head != self._cursors[base].head]  # fmt: skip
        # A cluster has 64 partitions: a few calls at a time, not a burst of 64.
        await gather_all(*(self._catch_up(base, head, fetch) for base, head in moved),
                         at_most=PARTITIONS_AT_ONCE)  # fmt: skip
        self._done = number
        with self.guard:
            self._expire()

    async def _catch_up(self, base: str, head: Any, fetch: Fetch) -> None:
        cursor = self._cursors[base]
        cursor.head = None  # unknown until this catch-up completes
        while True:
            with self.guard:
                turn, since = cursor.turn, str(cursor.since)
                since_del = "-" if cursor.since_del is None else str(cursor.since_del)
            reply = await fetch(base, since, since_del, self.seg, [])
            with self.guard:
                if cursor.turn != turn:
                    continue  # another thread's sync moved the partition on: read from there
                check = []
                if _another_run(cursor, reply):
                    check = [cursor.run, *cursor.witnesses.args()]
            if check:  # (a restart, a failover: rare) asked again, with the witnesses
                reply = await fetch(base, since, since_del, self.seg, check)
            with self.guard:
                if cursor.turn != turn:
                    continue
                outdated = _outdated(cursor, reply)
            if outdated:
                # Cleared, recreated, deletes we never saw were trimmed, or the partition is
                # behind what we read (an older snapshot, a lagging replica): reload it.
                await self._reset_in_turns(cursor)
                continue
            records: Iterable[_Record] = _records(reply[4])
            analysed: Mapping[tuple[str, int], dict[str, int]] = {}
            if len(reply[4]) > OFF_LOOP_BYTES:
                records, analysed = await heavy_in_own_thread(self._analyse, reply[4])
            if not await self._apply(cursor, reply, records, analysed, turn):
                cursor.head = head
                return

    def _analyse(
        self, puts: bytes | str
    ) -> tuple[list[_Record], dict[tuple[str, int], dict[str, int]]]:
        """A page's records, and the terms of those ``_apply`` would analyse, by (key, seq)."""
        records = list(_records(puts))
        own, terms = self._own, self.indexing.payload_terms
        return records, {(key, seq): terms(payload) for key, seq, payload, _, _ in records
                         if payload is not None and own.get(key, (None,))[0] != seq}  # fmt: skip

    async def _apply(
        self,
        cursor: _Cursor,
        reply: list[Any],
        records: Iterable[_Record],
        analysed: Mapping[tuple[str, int], dict[str, int]],
        turn: int,
    ) -> bool:
        """Apply one page that is not ``_outdated``: its ``records`` (their terms in
        ``analysed`` if worked out already); True if there is more to read.

        A turn of the event loop every ``_APPLY_SLICE`` records: indexing a page of 1,000
        held the loop 50-116 ms on a busy machine. If the partition starts over meanwhile
        (``cleared``), or another thread's sync applies to it (``turn``, as read before the
        page was), the rest of the page is left: True, so it is read again from there."""
        guard = self.guard
        guard.acquire()
        try:
            if cursor.turn != turn:
                return True
            cursor.turn = turn = turn + 1
            epoch, now_ms = text_of(reply[0]), int(reply[2])
            newest_del = int(float(reply[3]))
            dels, more = reply[5], bool(int(reply[6]))
            looked = int(float(reply[7]))
            cursor.epoch = epoch or None
            if len(reply) > 9 and text_of(reply[9]):
                cursor.run = text_of(reply[9])
            if cursor.since_del is None:
                cursor.since_del = newest_del
            keys, own = cursor.keys, self._own
            now = self._clock()
            resets = self._resets
            for done, (key, seq, payload, deadline, vector) in enumerate(records, 1):
                if done % _APPLY_SLICE == 0:
                    guard.release()  # (never held across an await)
                    try:
                        await asyncio.sleep(0)
                    finally:
                        guard.acquire()
                    if self._resets != resets or cursor.turn != turn:
                        return True
                cursor.since = max(cursor.since, seq)
                if payload is None:  # expired or deleted since the page was listed
                    self._drop(key, keys)
                    continue
                cursor.witnesses.put(key, seq)
                mine = own.pop(key, None)
                if mine is not None and mine[0] == seq:
                    self._index(key, mine[1].terms, seq, mine[1].vector)
                else:
                    if self._on_changed is not None:
                        self._on_changed(key, payload)
                    terms = analysed.get((key, seq))
                    if terms is None:
                        terms = self.indexing.payload_terms(payload)
                    vec = None if vector is None else self._decode(key, vector)
                    self._index(key, terms, seq, vec)
                keys.add(key)
                if deadline is not None:
                    self._add_deadline(now + (deadline - now_ms) / 1000, seq, key)
                else:
                    self._deadline_of.pop(key, None)
            cursor.since = max(cursor.since, looked)
            for i in range(0, len(dels), 2):
                key = text_of(dels[i])
                deleted = int(float(dels[i + 1]))
                cursor.since_del = max(cursor.since_del, deleted)
                cursor.witnesses.delete(key, deleted)
                if key in keys:
                    self._drop(key, keys)
                if self._on_changed is not None:
                    self._on_changed(key, None)
            return more
        finally:
            guard.release()

    def _drop(self, key: str, keys: set[str]) -> None:
        """Remove a memory from the index, its partition's keys and the expiry heap."""
        if self.index.remove(key):
            keys.discard(key)
        self._deadline_of.pop(key, None)

    def _add_deadline(self, local: float, seq: int, key: str) -> None:
        """Note a memory's deadline; the heap keeps one live entry per key (stale ones are
        compacted away once they outnumber the live ones)."""
        self._deadline_of[key] = (local, seq)
        heap = self._deadlines
        heapq.heappush(heap, (local, seq, key))
        if len(heap) > 2 * len(self._deadline_of) + _HEAP_SLACK:
            live = self._deadline_of
            heap[:] = [entry for entry in heap if live.get(entry[2]) == (entry[0], entry[1])]
            heapq.heapify(heap)

    def _index(self, key: str, terms: Mapping[str, int], seq: int, vector: Any) -> None:
        """Index one memory; a vector the index cannot take leaves it found by keyword only."""
        try:
            self.index.add(key, terms, recency=seq, vector=vector)
        except InvalidArgumentError as exc:  # another embedder's dimension, or garbage bytes
            self.index.add(key, terms, recency=seq)
            if self.dims is None:
                # Its size unknown, the index took its first vector's, perhaps a memory's
                # several end to end: the replica starts over once the size is known
                # (``expect_dims``), so this is not yet a vector it cannot index (review R20:
                # a warning naming 1024 dimensions against 4).
                self._refused_unsized = True
            else:
                self._warn_vector(key, exc)

    def expect_dims(self, dims: int) -> None:
        """This process embeds with ``dims``: index only vectors of that size.

        Until it is known the first vector read sets the index's size, and a memory's several
        vectors, stored end to end, read as one longer vector; if the size turns out to be
        another, or a vector was refused meanwhile, the replica starts over.
        """
        with self.guard:
            if dims == self.dims:
                return
            self.dims = dims
            if (self.index.dim is not None and self.index.dim != dims) or self._refused_unsized:
                self.cleared()

    def _decode(self, key: str, data: bytes) -> Any:
        """``key``'s stored embedding as an array, or None (with a warning naming the key) for
        bytes that are not one."""
        from tta_dev_primitives.embeddings._vectors import decode_vector, stored_rows

        try:
            flat = decode_vector(data, max(len(data) // 4, 1))
            if self.dims is None:
                return flat
            rows = stored_rows(flat, self.dims)
            return rows[0] if rows.shape[0] == 1 else rows
        except InvalidArgumentError as exc:
            self._warn_vector(key, exc)
            return None

    def _warn_vector(self, key: str, exc: Exception) -> None:
        if not self._warned_vectors:
            self._warned_vectors = True
            log.warning(
                "a stored embedding could not be indexed (key %r: %s); such memories are found "
                "by keyword only (was the namespace written with another embedder?)",
                key,
                exc,
            )

    def _reset(self, cursor: _Cursor) -> list[str]:
        """Start the partition over; the keys still to take out of the index (none if it was
        cleared at once, as it is when it holds only this partition's memories: removing 50,000
        one by one held the event loop for 1.5 s, renumbering the index on the way)."""
        self._resets += 1
        cursor.turn += 1
        keys, cursor.keys = cursor.keys, set()
        cursor.epoch, cursor.since, cursor.since_del, cursor.head = None, 0, None, None
        cursor.run = ""
        cursor.witnesses.clear()
        deadline_of = self._deadline_of
        if all(not other.keys for other in self._cursors.values()):
            self.index.clear(keep_dim=True)
            for key in keys:
                deadline_of.pop(key, None)
            return []
        return list(keys)

    def _take_out(self, keys: list[str], cursor: _Cursor) -> None:
        for key in keys:
            if key in cursor.keys:
                continue  # read anew meanwhile (another thread's sync): not the old memory
            self.index.remove(key)
            self._deadline_of.pop(key, None)

    async def _reset_in_turns(self, cursor: _Cursor) -> None:
        """``_reset``, then the partition's keys out of the index a slice per turn of the loop
        (a cluster's partition among others)."""
        with self.guard:
            keys = self._reset(cursor)
        for start in range(0, len(keys), _RESET_SLICE):
            with self.guard:
                self._take_out(keys[start : start + _RESET_SLICE], cursor)
            if start + _RESET_SLICE < len(keys):
                await asyncio.sleep(0)

    def _expire(self) -> None:
        """Drop memories whose TTL has passed (Redis has dropped their values already)."""
        heap, now, index = self._deadlines, self._clock(), self.index
        while heap and heap[0][0] <= now:
            local, seq, key = heapq.heappop(heap)
            if self._deadline_of.get(key) != (local, seq):
                continue  # rewritten or removed since: not the key's live entry
            del self._deadline_of[key]
            if index.recency(key) == seq:
                index.remove(key)
                self._cursors[self._partition_of(key)].keys.discard(key)

    # -- hints from this process ---------------------------------------------------------------

    def wrote(self, key: str, seq: int, document: Document) -> None:
        """This process wrote ``key`` at ``seq``: reuse its document when the feed returns it."""
        with self.guard:
            if len(self._own) >= _OWN_MAX:
                self._own.clear()
            self._own[key] = (seq, document)

    def forget(self, key: str) -> None:
        """A result's value is gone from Redis: drop it now rather than at the next sync."""
        with self.guard:
            self._drop(key, self._cursors[self._partition_of(key)].keys)

    def cleared(self) -> None:
        """This process cleared the namespace: start over."""
        with self.guard:
            for cursor in self._cursors.values():
                self._reset(cursor)  # (each key's own removal wasted: the index is cleared next)
            self.index.clear()
            self._refused_unsized = False
            self._deadlines.clear()
            self._deadline_of.clear()
            self._own.clear()

    @property
    def deadlines(self) -> int:
        """Entries in the expiry heap (live and not yet compacted)."""
        return len(self._deadlines)
