"""The hybrid: which backend serves each operation, fallback, journal and recovery, in one place.

With no remote backend every operation is served in-process. With one:

- While the remote is up, reads come from it (a remote miss is a miss: another process may have
  deleted the key) and writes go to it and to the in-process store, which keeps the most recent
  ``max_size`` memories so that reads during an outage still find them.
- When the remote fails, the operation is served in-process and returns normally; the store is
  *degraded*. Writes are kept in-process and journalled, in order.
- While degraded, the remote is probed at most every ``backoff.delay(failures)`` seconds. The
  operation that finds a probe due does not wait for it: it starts the recovery (``_recovery``)
  as a background task, which this store keeps (``aclose`` cancels it) and is served
  in-process itself. With writes journalled, a wakeup task starts it too when no operation
  comes (``_arm_wakeup``). The task probes, then replays the journal in batches; writes made during
  the replay join the journal and are replayed too. Only an empty journal flips the store back
  to the remote, so no caller ever pays for a replay.
- Reads while degraded, replay included, are all served in-process: the in-process copy holds
  every journalled write (up to ``max_size``), so a read never sees Redis's older value of a key
  whose newer write is still waiting in the journal. (The simplest correct rule; reads of what
  other processes wrote meanwhile resume when the journal is empty.) One exception keeps the
  replay finite while writers run: as the *last* batch is sent, the store leaves the degraded
  state; new writes go to the remote (their versions win over the older entries in flight),
  and a ``get`` of a key still in that batch (its write, or a clear) is served in-process
  until it lands. A search, a size or a listing then waits for the batch to land (one round
  trip, as a write does): Redis's answer cannot be patched key by key, and without the batch
  it showed older values (a checkpointer took an older checkpoint for a thread's latest).
- The journal is bounded (``Journal``: newest write per key kept, then the oldest dropped and
  counted). A journalled write the remote refuses for its data becomes a dead letter (counted,
  kept in a short list for ``get_backend_info()``) and never blocks the rest.
- ``flush()`` (and ``aclose()``) replay on demand: they await the recovery task. Nothing written
  during an outage is lost while the process lives and the journal is within its caps.
- With a durable ``JournalFile`` (``journal_path``; both kept by ``_outbox``), a write joins
  the journal only once its record is fsynced, so a write that returns survives the process
  too. The first operation of the next store on that path loads the file and replays it
  before returning (if the remote answers). ``aclose()`` leaves unsent writes in the file
  instead of reporting them lost.

Each operation returns ``Served``: its result and which backend served it. What happens to the
store itself (a fallback, dropped journal entries, dead letters, a recovery) is told to a
``StoreEvents`` listener. Spans and counters are made from both by the primitives
(``telemetry._memory_ops``): no telemetry object enters the storage layer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, NamedTuple, TypeVar

from tta_dev_primitives._blocked import (
    LoopLock,
    alive,
    call_on_its_loop,
    cancel_on_its_loop,
    finished_elsewhere,
    fork_safe,
    running_loop,
    stranded,
)
from tta_dev_primitives.exceptions import (
    BackendError,
    BackendRefusedError,
    BackendUnavailableError,
    StaleWriteError,
    TTAError,
    UnsentWritesError,
)
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._scopes import in_scope
from tta_dev_primitives.stores._backoff import Backoff
from tta_dev_primitives.stores._base import (
    Clear,
    Delete,
    Document,
    NotServedNow,
    PartitionsUnavailableError,
    Put,
    SearchableBackend,
    StorageBackend,
    Write,
    send,
)
from tta_dev_primitives.stores._cancelled import CancelledPuts
from tta_dev_primitives.stores._copies import CopyCheck, Outdated, same
from tta_dev_primitives.stores._events import NoEvents, Served, StoreEvents
from tta_dev_primitives.stores._in_flight import InFlight
from tta_dev_primitives.stores._journal_file import JournalFile
from tta_dev_primitives.stores._outbox import RESTORE_SLICE, Outbox
from tta_dev_primitives.stores._recovery import (
    DEFAULT_MAX_JOURNAL,
    DEFAULT_MAX_JOURNAL_BYTES,
    MAX_DEAD_LETTERS,
    Journal,
    Replay,
)
from tta_dev_primitives.stores._versions import VersionClock

__all__ = ["Forgetting", "HybridStore", "NoEvents", "SearchableHybrid", "Served", "StoreEvents"]

log = logging.getLogger("tta_dev_primitives.memory")

R = TypeVar("R")
B = TypeVar("B", bound=StorageBackend)

REPLAY_BATCH = 500
#: Writes a store's writers may add to the journal per batch a draining replay sends before
#: they wait for the next (``_keep_pace``): the journal then shrinks by the rest, at least.
PACE = REPLAY_BATCH // 2
#: How often a writer on another thread's loop looks whether a paced replay moved on.
_POLL = 0.002
#: At most this many seconds a forget waits for the writes of its scope called before it.
FORGET_SETTLE = 10.0


class Forgetting(NamedTuple):
    """A ``forget`` as it was called (``HybridStore.begin_forget``): its ``version`` (Redis
    removes, and from then on refuses, writes of the scope older than it) and the in-process
    copy's write ``mark`` then (``StorageBackend.write_mark``): what this process writes after
    the call is newer by both, so it survives the forget and is not counted."""

    version: str
    mark: int


class HybridStore(Generic[B]):
    """An in-process backend, optionally fronting a remote one; see the module docstring."""

    def __init__(
        self,
        local: B,
        remote: B | None = None,
        *,
        events: StoreEvents | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        namespace: str = "",
        max_journal: int = DEFAULT_MAX_JOURNAL,
        max_journal_bytes: int = DEFAULT_MAX_JOURNAL_BYTES,
        report_unsent: bool = True,
        journal_file: JournalFile | None = None,
        patience: float = 1.0,
    ) -> None:
        self.local = local
        #: Seconds a call waits for a recovery that resumes one its event loop cut short.
        self.patience = patience
        self.namespace = namespace
        self.report_unsent = report_unsent  # aclose() logs and counts unsent writes (memory)
        self.remote = remote
        self.events: StoreEvents = events or NoEvents()
        self.backoff = backoff or Backoff(1.0, 30.0)
        self.versions = VersionClock()  # each write's version, made when the caller makes it
        self._clock = clock
        self._remote_ok = False
        self._degraded = False
        self._failures = 0
        self._next_probe = 0.0
        # Writes waiting for the remote, and their durable file if any: what it holds from an
        # earlier process is loaded (and replayed) by the first operation; ``_loaded`` is set
        # once that is done.
        self._outbox = Outbox(Journal(max_journal, max_journal_bytes), journal_file,
                              self.events, clock)  # fmt: skip
        self._journal = self._outbox.journal
        self._loaded = journal_file is None
        self._loading = LoopLock()
        # The load, as a task of the loop that began it: a loop's lock is its own, so another
        # thread's loop waits for that task rather than restore the journal a second time
        # (whose old values would then overwrite this process's newer writes in-process).
        self._load_task: asyncio.Task[None] | None = None
        self._load_pid = 0  # the process that began it (a forked child never waits for it)
        self._load_claim = fork_safe(threading.Lock())
        self._restored = False
        self._recovery: asyncio.Task[bool] | None = None  # the background replay, if running
        # While a replay drains into a Redis that answers (``_keep_pace``): an event set at
        # its next batch (then replaced), its hand-off or its end, None while no replay drains;
        # and how many more writes may go on before that next batch.
        self._pulse: _Pulse | None = None
        self._pace_left = 0
        # A recovery's probe is on its way: its pulse exists for writers facing a full journal
        # to wait on (the others go on at once, as while no replay drains).
        self._probing = False
        # The last recovery ended with the cap still lifted (``_recover``): the next may not.
        self._spare_kept = False
        # How long probes cut short one after another (requests shorter than a timeout) have
        # waited for Redis with no answer, and when the running one began waiting: once that
        # adds up to ``patience``, they count as a failed probe (``_cut_short``).
        self._unanswered = 0.0
        self._probe_wait: _ProbeWait | None = None
        self._probe_of: asyncio.Task[bool] | None = None  # the recovery ``_probe_wait`` times
        # The last recovery found no Redis (no batch landed): writers stop waiting for probes.
        self._probe_failed = False
        self._pace_lock = fork_safe(threading.Lock())
        # The wakeup task of the next probe while writes are journalled.
        self._wakeup: asyncio.Task[None] | None = None
        self.dead_letters: deque[dict[str, Any]] = deque(maxlen=MAX_DEAD_LETTERS)
        self.dead_letter_count = 0
        self.stale_count = 0  # writes the remote rejected as stale (a newer change stood)
        self.last_error: str | None = None  # the latest remote failure, already password-free
        self._outdated = Outdated()  # in-process copies older than Redis's, to drop
        self._refusal: BackendRefusedError | None = None  # why the last replay stopped, if so
        # The in-process copy checked against Redis's versions (``_copies``).
        self.copies = CopyCheck(clock)
        # The outage began with the copy unchecked for too long: not served (``_fail``).
        self._unvouched = False
        self._in_flight = InFlight()  # keys with a write on its way: their copies are ours
        self._cancelled = CancelledPuts()  # journalled by a cancelled caller: refused copies go
        self._adopted: set[str] = set()  # versions of writes restored from a durable journal
        if remote is not None:
            remote.bind(self.versions, self._replayed_stale, self._changed_elsewhere)
        # Never silently, also when the process ends (or the store is dropped) without
        # ``aclose()``: what is still journalled then is logged as lost. (A durable file keeps it.)
        self._unclosed: weakref.finalize[..., Any] | None = None
        if remote is not None and report_unsent and journal_file is None:
            self._unclosed = weakref.finalize(self, _lost_unclosed, self._journal, namespace)

    # -- state ---------------------------------------------------------------------------------

    @property
    def using_remote(self) -> bool:
        """True once a remote operation has succeeded, until the next failure."""
        return self._remote_ok and not self._degraded

    @property
    def degraded(self) -> bool:
        """True while the remote is failing and writes are being journalled."""
        return self._degraded

    @property
    def journal_file(self) -> JournalFile | None:
        """The durable journal, if ``journal_path`` was given (the outbox's file)."""
        return self._outbox.file

    @property
    def journal_restored(self) -> int:
        """Writes found in the durable journal at start."""
        return self._outbox.restored

    @property
    def journal_corrupt(self) -> int:
        """Lines of the durable journal dropped as unreadable (a torn last line included)."""
        return self._outbox.corrupt

    @property
    def journal_size(self) -> int:
        """Writes waiting to be replayed into the remote."""
        return len(self._journal)

    @property
    def journal_bytes(self) -> int:
        """An estimate of the memory the journal holds."""
        return self._journal.bytes

    @property
    def journal_dropped(self) -> int:
        """Writes dropped because the journal was full, since this store was made."""
        return self._journal.dropped

    @property
    def journal_unconfirmed(self) -> int:
        """Writes still journalled when this store was closed during an outage that a replay had
        sent with no reply seen: maybe stored, maybe lost (the rest is in ``journal_dropped``)."""
        return self._journal.unconfirmed

    @property
    def recovering(self) -> bool:
        """True while a background replay runs."""
        return alive(self._recovery)

    # -- operations ----------------------------------------------------------------------------

    async def put(
        self, key: str, payload: Any, ttl: float | None, document: Document | None = None
    ) -> Served[None]:
        if not self._loaded:
            await self._load()
        await self._resume_cut_short()
        await self._keep_pace()
        await send(self.local, Put(key, payload, ttl, document))
        if self.remote is None:
            return Served(None, self.local.kind)
        served = await self._write(Put(key, payload, ttl, document, self.versions.next()))
        return Served(None, served.backend, served.fallback)

    async def delete(self, key: str) -> Served[bool]:
        if not self._loaded:
            await self._load()
        await self._resume_cut_short()
        await self._keep_pace()
        await self._after_last_batch(key)  # Redis says whether the key was there once it lands
        # Unless that batch's loop cannot finish it now: then the journal says.
        pending = self._journal.pending(key) if self._in_last_batch(key) else None
        local_had = await self.local.delete(key)
        served = await self._write(Delete(key, self.versions.next()))
        had = local_had if served.value is None else served.value
        if pending is not None:
            had = isinstance(pending, Put)
        return Served(had, served.backend, served.fallback)

    async def clear(self) -> Served[None]:
        if not self._loaded:
            await self._load()
        await self._resume_cut_short()
        await self.local.clear()
        served = await self._write(Clear(self.versions.next()))
        return Served(None, served.backend, served.fallback)

    async def get(self, key: str) -> Served[Any | None]:
        if not self._loaded:
            await self._load()
        self._resume_stranded()
        if self._in_last_batch(key):
            if self._cancelled:
                await self._drop_unjournalled()
            return Served(await self.local.get(key), self.local.kind, fallback=True)

        async def judge(value: Any | None) -> None:
            # Redis's answer is the newest this process has seen: an outage read must not
            # return an older in-process copy (another process overwrote or deleted it). Judged
            # as Redis answers: a write of the key made later (while this call checks copies)
            # holds a newer copy of this process's own.
            mine = await self.local.get(key)
            if mine is not None and not same(mine, value):
                self._outdated.mark(key)

        return await self._read(lambda b: b.get(key), judge, whole=False)

    async def size(self) -> Served[int]:
        return await self._read(lambda b: b.size())

    async def scope_page(
        self, scope: str | None, after: tuple[int, str] | None, limit: int
    ) -> Served[tuple[list[tuple[str, Any, int]], tuple[int, str] | None]]:
        """A page of ``scope``'s memories, newest first (see ``StorageBackend.scope_page``)."""
        return await self._read(lambda b: b.scope_page(scope, after, limit))

    async def touch(self, key: str, ttl: float | None) -> Served[bool]:
        """Restart ``key``'s clock in Redis and in the in-process copy.

        Not journalled: while Redis is away it raises ``BackendUnavailableError`` (the deadline
        in Redis is unchanged, so the caller must know), leaving the in-process copy as it was.
        """
        if not self._loaded:
            await self._load()  # a journalled write of the key must land before it
        remote = self.remote
        if remote is None:
            return Served(await self.local.touch(key, ttl), self.local.kind)
        # Touched before its journalled write lands, Redis's older value would take the
        # deadline (or there is none: False), and the write would then replace it with its own.
        await self._after_last_batch(key)
        await self._resume_cut_short()  # (after: a last batch holding the key is replayed now)
        if self._degraded:
            self._maybe_recover()
            raise BackendUnavailableError(
                f"touch({key!r}) needs Redis, which is not answering: its expiry is unchanged"
            )
        if self._in_last_batch(key):
            # The batch's loop cannot finish it now (stopped, or blocked waiting for this call).
            raise BackendUnavailableError(
                f"touch({key!r}) must wait for the replay of its outage write, which another "
                "event loop holds and cannot finish now: its expiry is unchanged"
            )
        version = self.versions.next()
        try:
            had = await self._newest_wins(lambda v: remote.touch(key, ttl, version=v or version))
        except BackendUnavailableError as exc:
            self._fail(exc)
            raise
        self.copies.wrote(key)
        self._succeed()
        if self._outdated:
            await self._drop_outdated()
        if had is None:
            # This process's own later write of the key arrived first: it stands (its call
            # came after), with its own deadline; the memory is there if that write put it.
            return Served(await self.local.get(key) is not None, remote.kind)
        await self.local.touch(key, ttl)
        return Served(had, remote.kind)

    async def _keep_pace(self) -> None:
        """While a replay drains into a Redis that answers, writers may make half a batch
        (``PACE``) of writes per batch it sends; a write past that waits for the next batch,
        up to half ``patience`` in all, before anything is done. Writers faster than the
        replay (a loop of new keys, a bulk import) kept the journal growing, the store degraded
        and, past ``max_journal``, dropped writes with Redis up (review R19); paced, the journal
        shrinks by half a batch a batch at least, and the replay ends. And with the journal
        full, a write waits for room as long as the replay goes on (each batch makes room, or
        fails within the timeout, ending the replay): none is dropped with Redis up, however
        many writers there are (review R21: 5,000 at once got past half a timeout's wait).
        Writers on other threads' loops, which cannot await the replay's event, poll.

        A replay whose batch timed out after others had landed (a busy machine, most often)
        ends as an outage would, and probes again at once: with the journal full, a write
        waits for a probe on its way up to half ``patience`` (and then for room, if it found
        Redis answering) rather than journal past the cap. Not once a probe found no Redis:
        in an outage writes do not wait for probes (R37: each waited its whole timeout)."""
        if self._pulse is None and self._degraded and self._journal.full():
            # If due, before this write is journalled: the cap is lifted while it probes, and
            # its pulse is waited on below (unless a probe found no Redis).
            self._maybe_recover()
        recovery = self._recovery
        if self._pulse is None or recovery is None:
            return
        loop = asyncio.get_running_loop()
        until = loop.time() + self.patience / 2
        seen, since = None, 0.0  # the batch waited for, and since when
        while (pulse := self._pulse) is not None:
            full = self._journal.full()
            probing = self._probing  # (only a full journal waits for a probe: half patience)
            if probing and (not full or self._probe_failed or loop.time() >= until):
                return
            if not full and (self._take_pace() or loop.time() >= until):
                return
            if pulse is not seen:
                seen, since = pulse, loop.time()
            elif loop.time() - since > self.patience:
                return  # no batch for a timeout: the replay's loop is blocked (it never ends)
            wait = self.patience if full and not probing else until - loop.time()
            # Awaited only on the loop it was made on: the pulse may be a later recovery's,
            # begun on another thread's loop since this call began (R37: "bound to a
            # different event loop", raised out of add()).
            if pulse.home is not loop:
                await asyncio.sleep(min(_POLL, wait))
                continue
            try:
                async with asyncio.timeout(wait):
                    await pulse.wait()
            except TimeoutError:
                if not full or probing:
                    return

    def _take_pace(self) -> bool:
        """Take one of the writes allowed before the replay's next batch, if one is left."""
        with self._pace_lock:  # (writers on other threads' loops take them too)
            if self._pace_left > 0:
                self._pace_left -= 1
                return True
            return False

    def _paced(self) -> None:
        """The replay answered its probe, or sent a batch: writers waiting go on (until its
        hand-off: then new writes go to Redis)."""
        if not self._degraded:
            return
        with self._pace_lock:
            self._pace_left = PACE
        self._probing = False
        self._take_probe_wait(self._probe_of)  # Redis answered
        self._unanswered = 0.0
        self._journal.spare = True  # (writers wait for room instead: ``_keep_pace``)
        last, self._pulse = self._pulse, _Pulse()
        if last is not None:
            # As many as a batch can let on (its pace, and the room it made); the others wait
            # on for the next one, not woken to find no room (5,000 writers at once woke
            # about 5 times a write, half the CPU of a burst as a replay drained).
            last.wake(PACE + REPLAY_BATCH, then=self._pulse)

    def _held_back(self) -> None:
        """The replay holds partitions that failed (``Replay._hold``): their writes stay
        journalled for the rest of it, so a full journal gets no room from its batches (nor
        does the replay pace writers after, ``Replay.run``). Writers waiting go on, and the cap
        bounds the journal again, as in an outage (waiting for room, each write waited through
        the whole replay: 17 s with a 1 s timeout, review R43)."""
        self._end_pace()

    def _held_at_start(self) -> None:
        """The replay starts with partitions an earlier one found failing: its first batch
        most likely waits on them (a stalled master), making no room. Writers facing a full
        journal go on meanwhile, and the cap stays lifted until that batch says which: it
        lands (``_paced``: the pace again) or fails on them (``_held_back``: the cap again).
        (Paced, they waited for the batch, up to twice the timeout: review R46.)"""
        self._end_pace(spare=True)

    def _end_pace(self, spare: bool = False) -> None:
        """The replay handed off, or ended: writers waiting go on, to Redis or the journal
        (which keeps what is past its cap with ``spare``, until the next recovery ends)."""
        pulse, self._pulse = self._pulse, None
        self._probing = False
        self._journal.spare = spare
        if pulse is not None:
            pulse.wake()

    def _in_last_batch(self, key: str | None = None) -> bool:
        """The replay's last batch is on its way (and holds a write of ``key`` or a clear, if
        one is named): the store already serves Redis (``_leave_degraded``), which does not
        have it yet."""
        on_its_way = bool(self._journal) and not self._degraded
        return on_its_way and (key is None or self._journal.changes(key))

    async def _after_last_batch(self, key: str | None = None) -> None:
        """Wait for the replay's last batch if it is on its way (and holds a write of ``key``,
        if one is named)."""
        if self._in_last_batch(key):
            await self._replay_now()

    async def begin_forget(self) -> Forgetting:
        """A forget as it is called: its version, and the in-process copy's write mark. Taken
        with no await after the load of a durable journal (as a write's version is), so that
        what this process writes after the forget was called is newer, and survives it."""
        if not self._loaded:
            await self._load()
        return Forgetting(self.versions.next(), self.local.write_mark())

    async def mark_forgotten(self, scope: str, forgetting: Forgetting) -> Served[None]:
        """Before a forget deletes ``scope``'s memories: tell the remote that writes in it older
        than the forget are stale, so that another process's outage write of the scope,
        replayed after the forget, does not bring a memory back. Needs the remote: served
        in-process (``fallback``) when it is away, and then nothing is marked."""
        remote = self.remote
        if remote is None:
            return Served(None, self.local.kind)
        await self._resume_cut_short()
        if self._degraded:
            self._maybe_recover()
            return Served(None, self.local.kind, fallback=True)
        await self._sent_before(scope, forgetting.version)
        try:
            await remote.forget_mark(scope, forgetting.version)
        except BackendUnavailableError as exc:
            self._fail(exc)
            return Served(None, self.local.kind, fallback=True)
        self._succeed()
        return Served(None, remote.kind)

    async def _sent_before(self, scope: str, version: str) -> None:
        """Wait until this process's writes of ``scope`` called before the forget of
        ``version`` are no longer on their way (landed, journalled, or failed): one the mark
        overtook would be refused as stale, gone but not counted. Usually one round trip; at
        most ``FORGET_SETTLE`` seconds (a write of a loop that stopped never finishes)."""
        deadline = time.monotonic() + FORGET_SETTLE
        while self._in_flight.older(lambda key: in_scope(key, scope), version):
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.001)

    async def forget_key(self, key: str, forgetting: Forgetting) -> Served[bool]:
        """A forget's delete of ``key``: only a value written before the forget was called goes,
        and True says one did. In Redis the delete carries the forget's version, so a newer
        write of this process's own (an ``add`` called after the forget) stands, as it does for
        a clear; another process's newer write is ordered as any live change is
        (``_newest_wins``: the delete is retried past it). The in-process copy follows the same
        rule (``delete_older``)."""
        if not self._loaded:
            await self._load()
        await self._after_last_batch(key)  # as ``delete``: Redis says once that batch lands
        pending = self._journal.pending(key) if self._in_last_batch(key) else None
        local_had = await self.local.delete_older(key, forgetting.mark)
        if self.remote is None:
            return Served(local_had, self.local.kind)
        served = await self._write(Delete(key, forgetting.version))
        # None from Redis: a newer write of this process's own stands (not removed, not counted).
        had = local_had if served.fallback else bool(served.value)
        if pending is not None:
            had = isinstance(pending, Put) and pending.version < forgetting.version
        return Served(had, served.backend, served.fallback)

    async def forget_local(self, scope: str, forgetting: Forgetting) -> int:
        """Drop the in-process copy's memories in ``scope`` written before the forget was
        called (after Redis forgot them: the copy may hold keys Redis no longer has); those
        written since stay, as they do in Redis. How many were dropped."""
        rows, _ = await self.local.scope_page(scope, None, 1 << 62)
        removed = 0
        for key, _, _ in rows:
            removed += await self.local.delete_older(key, forgetting.mark)
        return removed

    # -- the one decision ----------------------------------------------------------------------

    async def _read(
        self,
        call: Callable[[B], Awaitable[R]],
        judge: Callable[[R], Awaitable[None]] | None = None,
        *,
        whole: bool = True,
    ) -> Served[R]:
        """Serve ``call``; ``judge`` sees the remote's answer before anything else awaits. A
        ``whole`` read (of many keys: a search, a size, a listing) waits for the replay's last
        batch if it is on its way, so that Redis's answer holds it (see the module docstring)."""
        if not self._loaded:
            await self._load()
        remote = self.remote
        if remote is not None:
            await self._resume_cut_short()
            if whole:
                await self._after_last_batch()
        if remote is not None and not self._degraded:
            try:
                result = await call(remote)
            except NotServedNow:
                return Served(await call(self.local), self.local.kind, fallback=True)
            except BackendUnavailableError as exc:
                self._fail(exc)
            except TTAError:
                raise  # (an invalid argument is a ValueError too: it stays what it is)
            except (TypeError, ValueError, AttributeError, IndexError, KeyError) as exc:
                if not type(remote).__module__.startswith("tta_dev_primitives."):
                    raise  # a backend of the user's: its own error (reviews R17, R20)
                # A reply of a form the backend never sends to that command (a proxy or a
                # server that only claims to be Redis garbled it) failed to parse: say so, as a
                # BackendError, not as a builtin error from deep in the parsing.
                raise BackendError(
                    f"the {remote.kind} backend sent a reply this library cannot read "
                    f"({type(exc).__name__} parsing it): is something between it and the "
                    "server changing replies?"
                ) from exc  # (the parse error stays readable: it may be ours)
            else:
                self._succeed()
                if judge is not None:
                    await judge(result)
                if self._outdated:
                    await self._drop_outdated()
                await self._check_copies()
                return Served(result, remote.kind)
        if remote is None:
            return Served(await call(self.local), self.local.kind)
        self._maybe_recover()
        await _take_turn()
        if self._cancelled:
            await self._drop_unjournalled()
        if self._unvouched:
            await self._drop_unvouched()
        return Served(await call(self.local), self.local.kind, fallback=True)

    async def _write(self, write: Write) -> Served[bool | None]:
        """Send a write (already applied locally) to the remote, or journal it.

        While degraded the write joins the journal (a running replay picks it up), and may start
        the background recovery; here it waits for a replay only for its last batch when that
        is on its way (one round trip: the write then lands after the writes this process made
        before it, in listing order too). (Before it was applied locally, it may have waited,
        briefly, for a replay that drains: ``_keep_pace``.)
        """
        remote = self.remote
        if remote is None:
            return Served(None, self.local.kind)
        if self._cancelled:
            self._cancelled.supersede(write)
        if not isinstance(write, Put | Delete):
            return await self._deliver(remote, write)  # a clear
        # A copy check, or a read that finds Redis's older value, must not judge the key while
        # this write is on its way: its copy is this store's own. No await since the in-process
        # write, so nothing comes in between.
        self.copies.wrote(write.key)
        with self._in_flight.sending(write.key, write.version):
            try:
                if self._in_last_batch() and self.recovering:
                    await self._replay_now()  # the last batch (``_leave_degraded``) lands first
                served = await self._deliver(remote, write)
            except BackendError:
                # Not stored (refused, stale, an error Redis answered with, or the journal's
                # file could not take it; an outage was journalled): the copy must not hold
                # what Redis lacks.
                await self._drop_unstored(write)
                raise
        if self._outdated:
            if not served.fallback and write.key not in self._in_flight:
                await self._judge_after_landing(remote, write.key)
            await self._drop_outdated()  # what was seen of the key while this write was on its way
        return served

    async def _judge_after_landing(self, remote: B, key: str) -> None:
        """Marks of ``key`` seen while this process's write of it was on its way: the write has
        landed, so Redis's version says which is newer. Still this process's own: what was seen
        was older (a read before it landed), and the copy stays. Else (or unknown) they drop it."""
        marks = self._outdated.take(key)
        if not marks:
            return
        found: list[str | None] | None = None
        try:
            found = await remote.current_versions([key])
        except Exception as exc:
            log.debug("version check after a write failed: %s", exc)
        finally:  # (cancelled too: the marks stay)
            if found is None or found[0] is None or not self._ours(found[0]):
                self._outdated.put_back(marks)  # marks made meanwhile stay queued too

    async def _deliver(self, remote: B, write: Write) -> Served[bool | None]:
        """Journal ``write`` while degraded, else send it (journalled if the remote is gone)."""
        if self._degraded:
            if self._refusal is not None and isinstance(write, Put):
                # The replay found Redis refusing (full, or an ACL): a new write would only
                # pile up behind it. Raise, as a live write would be, and keep nothing.
                raise BackendRefusedError(str(self._refusal))
            await self._journal_write(write)
            self._maybe_recover()
            self._arm_wakeup()
            await _take_turn()
            return Served(None, self.local.kind, fallback=True)
        try:
            result = await self._send_live(remote, write)
        except BackendUnavailableError as exc:
            self._fail(exc)
            await self._journal_write(write)
            self._arm_wakeup()
            return Served(None, self.local.kind, fallback=True)
        except asyncio.CancelledError:
            # Cancelled on its way (a caller's timeout): Redis may never have stored it, so an
            # outage must not serve it from the copy. (Once queued for the journal's file a
            # write is journalled even if its caller is cancelled: that copy stays.)
            await self._drop_unstored(write)
            raise
        self._succeed()
        if self._outdated:
            await self._drop_outdated()
        await self._check_copies()
        return Served(result, remote.kind)

    async def _journal_write(self, write: Write) -> None:
        """Journal ``write``. A put's record on its way to the durable file is written even if
        its caller is cancelled meanwhile; should the file then refuse it, it was stored
        nowhere, and the next in-process read drops its copy (``CancelledPuts``)."""
        if self._outbox.file is None or not isinstance(write, Put):
            await self._outbox.add(write)
            return
        adding = asyncio.ensure_future(self._outbox.add(write))
        try:
            await asyncio.shield(adding)
        except asyncio.CancelledError:
            self._cancelled.watch(adding, write)
            raise

    async def _drop_unjournalled(self) -> None:
        """Drop the copies of cancelled puts whose records the durable file refused."""
        for put in self._cancelled.refused():
            await self._drop_unstored(put)

    async def _send_live(self, remote: B, write: Write) -> bool | None:
        """Send a caller's write (``_newest_wins``). A clear still removes what is older than it
        when a newer change of this process's own stands."""

        async def stands() -> None:
            if isinstance(write, Clear):
                await remote.apply([write])

        return await self._newest_wins(
            lambda v: send(remote, write if v is None else dataclasses.replace(write, version=v)),
            stands,
        )

    async def _newest_wins(
        self,
        attempt: Callable[[str | None], Awaitable[R]],
        stands: Callable[[], Awaitable[None]] | None = None,
    ) -> R | None:
        """Run ``attempt(None)`` (a write or touch with the version it was issued); if Redis
        holds a newer version from another process (a writer whose clock runs ahead, a clear
        from one), observe it and retry once with a newer version: among live writes, the last
        one Redis acknowledges wins. A second rejection is reported. A newer version of this
        process's own stands (None, after ``stands``): its calls' order decides."""
        try:
            return await attempt(None)
        except StaleWriteError as exc:
            if self.versions.issued(exc.newer):
                # This process's own later change arrived first (concurrent calls): it stands,
                # as the order of the calls says.
                if stands is not None:
                    await stands()
                return None
            self.versions.observe_version(exc.newer)
        try:
            return await attempt(self.versions.next())
        except StaleWriteError as exc:
            self.versions.observe_version(exc.newer)
            self._count_stale(1)
            raise

    def _count_stale(self, count: int) -> None:
        self.stale_count += count
        self.events.stale(count)

    def _replayed_stale(self, exc: StaleWriteError, key: str | None) -> None:
        """The remote rejected a replayed write as stale: its in-process copy is outdated
        (unless the newer change is this process's own, which the copy holds)."""
        if self.versions.issued(exc.newer):
            return
        self.versions.observe_version(exc.newer)
        self._count_stale(1)
        if key is not None:
            self._outdated.mark(key)

    def _changed_elsewhere(self, key: str, payload: Any) -> None:
        """The remote's feed shows ``key`` now holds ``payload`` (None: deleted)."""
        self._outdated.mark(key, payload)

    async def _drop_outdated(self) -> None:
        """Drop in-process copies older than Redis's; a key with a journalled write keeps it,
        and one with a write on its way is judged once that write is done (``_write``)."""
        await self._outdated.drop(self.local, self._journal.has_key, self._in_flight.__contains__)

    def _maybe_recover(self) -> asyncio.Task[bool] | None:
        """Start the background recovery if a probe is due and none is running (the task)."""
        self._count_stranded()
        if self.recovering or self._clock() < self._next_probe:
            return None
        return self._start_recovery()

    async def _resume_cut_short(self) -> None:
        """If the last recovery was cut short (cancelled, or left pending, by the end of its
        event loop: an ``asyncio.run()`` per request whose requests end before a replay gets
        anywhere), start the next one now, if due, and wait for it up to ``patience``
        seconds: short requests still move the replay on, and this one may find Redis back.
        A recovery that ran its course (Redis still down) is not waited for."""
        if self.remote is None:
            return
        self._resume_stranded()
        last = self._recovery
        if not self._degraded or last is None or alive(last):
            return
        if last.done() and not last.cancelled():
            return
        task = self._maybe_recover()
        if task is not None:
            await asyncio.wait({task}, timeout=self.patience)

    def _arm_wakeup(self) -> None:
        """With writes journalled, make sure a probe comes when due even if no call does: a
        worker that gets no more requests after an outage still replays, so other processes
        see its writes once Redis is back.

        A task, not a timer: ``asyncio.run`` cancels tasks when its coroutine returns, but runs
        timers on while it closes the loop (until its default executor has shut down), and a
        recovery a timer started then was abandoned half-way with the loop ("Task was
        destroyed but it is pending!")."""
        wakeup = self._wakeup
        if wakeup is not None:
            if not wakeup.done() and wakeup.get_loop().is_running():
                return  # one is set, on a loop that will run it
            self._cancel_wakeup()
        delay = max(0.0, self._next_probe - self._clock())
        self._wakeup = asyncio.get_running_loop().create_task(
            self._wake(delay), name="tta-memory-wakeup"
        )

    def _cancel_wakeup(self) -> None:
        """Cancel the wakeup task, if any, from its own loop or another thread's."""
        wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None:
            cancel_on_its_loop(wakeup)

    async def _wake(self, delay: float) -> None:
        """The wakeup of ``_arm_wakeup``: after ``delay``, start the recovery if still due (it
        arms the next wakeup if the probe fails)."""
        await asyncio.sleep(delay)
        if self._wakeup is asyncio.current_task():
            self._wakeup = None
        if self._degraded and self._journal and not self.recovering:
            if self._clock() < self._next_probe:
                self._arm_wakeup()
            else:
                self._start_recovery()

    def _start_recovery(self) -> asyncio.Task[bool]:
        self._count_stranded()
        task = running_loop().create_task(self._recover(), name="tta-memory-recovery")
        self._recovery = task
        if self._pulse is None:  # writers facing a full journal wait for the probe (_keep_pace)
            self._pulse, self._probing = _Pulse(), True
        # No cap while the probe is on its way either (as while the replay drains): whether
        # Redis answers is not known yet, and writers facing a full journal go on after half a
        # timeout, or at once once a probe found no Redis. Capped from here to the probe's
        # answer, a request's 10,000 writes as Redis came back were dropped (acknowledged,
        # Redis answering). A probe that finds no Redis brings the cap back (``_end_pace``).
        self._journal.spare = True
        return task

    async def _drop_unstored(self, write: Write) -> None:
        """A put that will not be stored drops its in-process copy, unless a later write of
        the key (journalled, or on its way) has put its own value there since."""
        if not isinstance(write, Put):
            return
        newest = self._in_flight.newest(write.key)
        journalled = self._journal.version_of(write.key)
        if newest in (None, write.version) and (journalled is None or journalled < write.version):
            await self.local.delete(write.key)

    async def _load(self) -> None:
        """Before this store's first operation: take in what an earlier process left in the
        durable journal (into the journal and the in-process copy), and replay it now if the
        remote answers, so that no read of this process goes back before those writes."""
        loop = running_loop()
        async with self._loading():
            while not self._loaded:
                with self._load_claim:
                    task = self._load_task
                    other = task.get_loop() if alive(task) else None
                    if (
                        other is None
                        or self._load_pid != os.getpid()
                        or (other is not loop and stranded(other))
                    ):
                        task = self._load_task = loop.create_task(self._load_once())
                        self._load_pid = os.getpid()
                assert task is not None
                if task.get_loop() is loop:
                    await asyncio.shield(task)
                elif not await finished_elsewhere(task):
                    await asyncio.sleep(0.001)

    async def _load_once(self) -> None:
        if not self._loaded:
            file = self.journal_file
            assert file is not None
            if not self._restored:
                await self._restore()
                self._restored = True
            if self._journal and self.remote is not None:
                log.warning(
                    "memory journal %s holds %d writes an earlier process journalled during an "
                    "outage; replaying them", file.path, len(self._journal),
                )  # fmt: skip
                self._degraded = True
                self._failures = 0
                self._next_probe = 0.0
                await self._replay_now()  # if the remote is still down: as in any outage
            self._loaded = True

    async def _restore(self) -> None:
        """Take in the durable journal's writes: journalled again, applied in-process, their
        versions this store's own (Redis holds them as such once replayed); then compact it."""
        for done, (write, left) in enumerate(await self._outbox.restore(), 1):
            if done % RESTORE_SLICE == 0:
                await asyncio.sleep(0)  # other requests' turn (this store's wait for the load)
            self.versions.observe_version(write.version)  # new writes must be newer
            self._adopted.add(write.version)
            if isinstance(write, Put):
                if left is None or left > 0:
                    # With its document: searchable in-process while the remote is away.
                    await send(self.local, Put(write.key, write.payload, left, write.document))
                else:
                    await self.local.delete(write.key)
            else:
                await send(self.local, write)
        await self._outbox.compact()  # after: a cut-off start restores all of it again

    def _succeed(self) -> None:
        self._remote_ok = True

    def _ours(self, version: str) -> bool:
        """True if ``version`` is this store's: issued here, or restored from its journal."""
        return self.versions.issued(version) or version in self._adopted

    async def _check_copies(self) -> None:
        """If a check is due, drop in-process copies another process has changed in Redis since
        (``_copies``). Run by the call that finds it due, after its own work: no task to track,
        and no second connection beside the call's."""
        remote = self.remote
        if remote is None or not self.copies.due() or self._journal or self.recovering:
            return  # a replay lands writes a check could read before they do: after it
        in_flight = self._in_flight.keys()
        try:
            outdated = await self.copies.outdated(self.local, remote, self._ours, in_flight)
        except Exception as exc:
            log.debug("in-process copy check failed: %s", exc)
            return
        if self._degraded or self._journal or self.recovering:
            return  # an outage began meanwhile: what the check read may be overtaken
        # No await below suspends (the copy is in-process): no write can come in between.
        for key in outdated:
            if not self._journal.has_key(key):
                self.copies.dropped += await self.local.delete(key)

    async def _drop_unvouched(self) -> None:
        """The outage began with the copy last checked against Redis too long before (an idle
        worker, a serverless instance between requests): another process may have deleted any
        of it meanwhile ("forget my address"), so none of it is served, but this process's own
        writes journalled or on their way. In-process calls: nothing suspends in between."""
        self._unvouched = False
        local, journal, in_flight = self.local, self._journal, self._in_flight
        size = await local.size()
        keys = await local.key_slice(0, size) if journal or in_flight.keys() else []
        kept = {key for key in keys if journal.has_key(key) or key in in_flight}
        if not kept:
            await local.clear()
        else:
            for key in keys:
                if key not in kept:
                    await local.delete(key)
        self.copies.dropped += size - len(kept)

    def _fail(self, exc: BaseException) -> None:
        self._remote_ok = False
        self.last_error = str(exc)
        if self._degraded:
            return
        self._degraded = True
        self._failures = 1
        self._next_probe = self._clock() + self.backoff.delay(1)
        self._unvouched = not self.copies.vouched()
        self.events.fallback(exc)
        log.warning(
            "memory backend unavailable, serving in-process and journalling writes: %s", exc
        )

    async def _recover(self) -> bool:
        """The background recovery: probe, replay the journal; True if the remote is back."""
        remote = self.remote
        assert remote is not None
        replay = Replay(remote, self._journal, self._clock, batch=REPLAY_BATCH,
                        dead_letters=self.dead_letters, on_final=self._leave_degraded,
                        file=self.journal_file, on_progress=self._paced,
                        on_hold=self._held_back, on_held_start=self._held_at_start)  # fmt: skip
        token = self.events.recovery_started()
        stopped: BaseException | None = None  # why it ended with the remote not back
        spare = False  # the cap stays lifted until the next probe (see below)
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        # (from here: a busy loop may start it late)
        self._probe_wait, self._probe_of = _ProbeWait(self.patience / 10), me
        try:
            replayed = await replay.run()
        except Exception as exc:  # a background task must not die unseen
            if loop.is_closed():  # closed by the collector, whatever the closing raised: cut
                stopped = asyncio.CancelledError()
                spare = self._cut_short(me)
                return False
            stopped = exc
            self._refusal = exc if isinstance(exc, BackendRefusedError) else None
            self.last_error = str(exc)  # (why the replay stopped: "full", not the old outage)
            self._degraded = True  # (if the last batch failed after _leave_degraded)
            self._remote_ok = False
            self._count_dead(replay.dead)
            # A batch that timed out after others had landed: a busy machine, most often, or
            # an outage that began just now. The next probe, at once, says which; until it
            # ends, what writers added past the cap while the replay drained is kept (it was
            # dropped the moment the batch failed: 7,000-8,500 of 30,000 with Redis answering
            # again 0.2 s later). Once: twice running (a master stalled for good while the
            # others answer) is an outage, and the cap bounds the journal again.
            spare = (
                not self._spare_kept
                and replay.replayed > 0
                and isinstance(exc, BackendUnavailableError)
            )
            self._spare_kept = spare
            if isinstance(exc, PartitionsUnavailableError) and replay.replayed > 0:
                # The other partitions took writes: not an outage that grows. The next run
                # comes after the first interval, not the back-off (which reached
                # max_recovery_interval, so answering masters' writes, journalled meanwhile,
                # reached Redis up to 30 s late).
                self._failures = 0
            self._probe_later(found_none=replay.replayed == 0, at_once=spare)
            if self._journal:
                self._arm_wakeup()
            if not isinstance(exc, BackendUnavailableError):
                log.warning("memory recovery failed; will retry: %r", exc)
            else:
                log.debug("memory backend still unavailable (%s); next probe in %.1fs", exc,
                          self._next_probe - self._clock())  # fmt: skip
            return False
        except (asyncio.CancelledError, GeneratorExit) as exc:
            # GeneratorExit: its loop was closed with it pending (a sync wrapper's
            # run_until_complete and close) and the collector closed it: cut as by a cancel.
            stopped = exc
            spare = self._cut_short(me)
            raise
        else:
            # No await since the journal was seen empty: no write can slip in unreplayed.
            self._refusal = None
            self._degraded = False
            self._remote_ok = True
            self._spare_kept = False
            self._probe_failed = False
            self._failures = 0
            self._count_dead(replay.dead)
            log.warning("memory backend recovered; replayed %d journalled writes", replayed)
            await self._outbox.compact()  # empty: the file back to its header
            if self._outdated:
                await self._drop_outdated()
            return True
        finally:
            self._take_probe_wait(me)  # (its timer stops: the probe failed, or all is replayed)
            if self._recovery is me:  # (not one closed by the collector after the next began)
                self._end_pace(spare)
            # What its batches sent counts even when it stopped part-way (a request's
            # ``asyncio.run`` ending cancels it): the next recovery replays only the rest.
            self.events.recovery_ended(token, Served(replay.replayed, remote.kind), stopped)

    def _cut_short(self, me: asyncio.Task[Any] | None) -> bool:
        """A recovery cancelled (its loop ending, aclose) perhaps in the last batch, after
        ``_leave_degraded``: what is left must be replayed by a later recovery, which only a
        degraded store starts (else flush says True and touch/delete go on without it).

        Whether the journal keeps what is past its cap: as the cut found it, neither Redis's
        answer nor its absence having been seen (capped, the writers of other threads' loops,
        writing on when one thread's ``asyncio.run`` ended with the recovery, had the oldest
        dropped with Redis answering: up to 24,000 of 26,000). Unless the probes cut so have
        waited a whole timeout between them with no answer: that is a failed probe."""
        if self._journal:
            self._degraded = True
            self._remote_ok = False
        if self._count_cut(me):
            return False
        return self._journal.spare

    def _count_stranded(self) -> None:
        """The last recovery's loop was closed with it pending (a sync wrapper's
        ``run_until_complete``, then ``close``): it is cut now, before another starts (the
        collector closes it later, if ever, and by then ``_probe_wait`` is the next one's).
        Its probe's wait counts as ``_cut_short`` says; past ``patience`` the cap is back."""
        last = self._recovery
        if last is None or last.done() or alive(last) or self._probe_of is not last:
            return
        if self._count_cut(last):
            self._end_pace()

    def _count_cut(self, task: asyncio.Task[Any] | None) -> bool:
        """Add the unanswered wait of ``task``'s probe, if ``_probe_wait`` times it; True if
        the cut probes have now waited ``patience`` in all: a failed probe (``_cut_short``)."""
        waited = self._take_probe_wait(task)
        if waited is None:
            return False  # answered (_paced), or counted already (found stranded)
        self._unanswered += waited
        if self._unanswered >= self.patience:
            # Probes cut short one after another (each request ended its own before it could
            # answer) for a whole timeout, none answered: an outage, as a failed probe says.
            # Kept lifted, the journal grew without bound (R39: 7,500 past a cap of 100 in
            # 10 s, Redis stalled); capped, the next write drops what is past it, counted. And
            # the next probe waits for its back-off: resumed at once, each request's first
            # call waited for it up to ``patience`` and was cut in turn (R39: requests with a
            # 0.2 s budget wrote nothing for as long as Redis stayed stalled).
            self._probe_later(found_none=True)
            return True
        return False

    def _take_probe_wait(self, task: asyncio.Task[Any] | None) -> float | None:
        """Stop timing ``task``'s probe, if it is the one timed: how long it waited on a free
        loop (None if another is timed, or none)."""
        wait = self._probe_wait
        if task is None or wait is None or self._probe_of is not task:
            return None
        self._probe_wait, self._probe_of = None, None
        return wait.stop()

    def _probe_later(self, *, found_none: bool, at_once: bool = False) -> None:
        """A recovery that did not bring Redis back (it failed, or probes cut short added up to
        a timeout): the next probe comes after the back-off, or at once with ``at_once``, and
        the count of cut probes starts again. ``found_none``: no Redis answered (no batch
        landed), so writers stop waiting for probes."""
        self._unanswered = 0.0
        self._probe_failed = found_none
        self._failures += 1
        delay = 0.0 if at_once else self.backoff.delay(self._failures)
        self._next_probe = self._clock() + delay

    def _resume_stranded(self) -> None:
        """A recovery that ended in its last batch (after ``_leave_degraded``) without finishing
        it, its loop closed with it pending, left the store serving Redis with writes still
        journalled, which no recovery would ever replay: degraded again, the next one does."""
        if not self._degraded and self._journal and not alive(self._recovery):
            self._degraded = True
            self._remote_ok = False

    def _leave_degraded(self) -> None:
        """Before the last batch: new writes go to the remote, reads of its keys stay local."""
        self._degraded = False
        self._end_pace()

    def _count_dead(self, dead: int) -> None:
        if dead:
            self.dead_letter_count += dead
            self.events.dead_letters(dead)

    async def flush(self) -> Served[bool]:
        """Replay the journal now if degraded (awaiting the recovery); True when it is empty.

        Served by the remote if it serves afterwards, else in-process.
        """
        if not self._loaded:
            await self._load()
        done = await self._replay_now()
        serving = self.remote if self.remote is not None and self.using_remote else self.local
        return Served(done, serving.kind)

    async def _replay_now(self) -> bool:
        if self.remote is None:
            return True
        self._resume_stranded()
        task = self._recovery
        if not alive(task):
            if not self._degraded:
                return True
            task = self._start_recovery()
        elif task.get_loop() is not asyncio.get_running_loop():
            # Replaying on another thread's loop: waited for from here, unless that loop
            # cannot finish it (closed, stopped, or blocked waiting for this call).
            return await finished_elsewhere(task) and not self._degraded
        await asyncio.shield(task)
        return not self._degraded

    async def items(self) -> AsyncIterator[tuple[str, Any, float | None]]:
        """Every memory, from the remote if there is one (its errors propagate), else local;
        after the replay's last batch if it is on its way (``_read``)."""
        if not self._loaded:
            await self._load()
        if self.remote is not None:
            await self._after_last_batch()
        async for item in (self.remote or self.local).items():
            yield item

    async def aclose(self) -> None:
        self._cancel_wakeup()
        task, self._recovery = self._recovery, None
        if alive(task) and cancel_on_its_loop(task):
            # Its end, not its CancelledError: that would hide our caller's cancellation
            # (which asyncio.wait raises; the recovery is cancelled either way).
            await asyncio.wait([task])
        if self._unclosed is not None:
            self._unclosed.detach()  # closed: what is unsent is reported below
        unsent = len(self._journal)
        # A cache's unsent entry is only a later miss; its unsent clear is not: Redis still
        # holds, and other processes still serve, what the clear was to remove.
        if (
            unsent
            and not self.report_unsent
            and any(isinstance(entry.write, Clear) for entry in self._journal.entries())
        ):
            log.error(
                "closed with a clear made during an outage still unsent (%s): Redis still "
                "holds what it was to remove; clear again once Redis is back",
                self.last_error,
            )
        # With a durable file: is it still there to replay them from (not deleted since)?
        file = self.journal_file
        kept = file is not None and (not unsent or await self._outbox.keep())
        await self.local.aclose()
        if self.remote is not None:
            await self.remote.aclose()
        await self._outbox.aclose()
        if kept and file is not None:
            if unsent:
                log.warning(
                    "memory closed with %d writes journalled during an outage; they stay in %s "
                    "and the next MemoryPrimitive with that journal_path replays them",
                    unsent, file.path,
                )  # fmt: skip
        elif unsent and (self.report_unsent or file is not None):
            # Never silently: counted, logged, and raised. Writes a replay sent whose reply it
            # never saw (it was cancelled, or Redis failed) are told apart: Redis may hold them.
            lost, unconfirmed = self._journal.lose()
            if lost:
                self.events.journal_dropped(lost)
            if unconfirmed:
                self.events.journal_unconfirmed(unconfirmed)
            where = (
                "with journal_path= they would be replayed by the next process" if file is None
                else f"the journal file {file.path} no longer holds them (deleted, or another "
                "memory took the path)"
            )  # fmt: skip
            if lost:
                message = (
                    f"memory closed with {_unsent(lost)} to the backend ({self.last_error}); "
                    f"they are lost with this store ({where}){_unconfirmed(unconfirmed)}"
                )
            else:  # (not "0 writes still unsent"; and a journal file would keep them)
                message = (
                    f"memory closed with {unconfirmed} write{'s' if unconfirmed != 1 else ''} "
                    "journalled during an outage that a replay sent before it ended, the reply "
                    f"not seen ({self.last_error}): they may or may not be stored ({where})"
                )
            log.error("%s", message)
            raise UnsentWritesError(message, unsent=lost, unconfirmed=unconfirmed)


def _unsent(lost: int) -> str:
    return f"{lost} write{'s' if lost != 1 else ''} journalled during an outage still unsent"


def _unconfirmed(count: int) -> str:
    """What the close says of writes a replay sent without seeing their reply."""
    if not count:
        return ""
    return (
        f"; {count} more {'were' if count != 1 else 'was'} sent by a replay that ended before "
        "the reply came (cancelled with its event loop, or Redis failed): they may or may not "
        "be stored"
    )


def _lost_unclosed(journal: Journal, namespace: str) -> None:
    """At exit (or when collected), a store never closed: log its journalled writes as lost,
    apart from those a replay sent without seeing the reply (maybe stored)."""
    if len(journal):
        lost, unconfirmed = journal.lose()
        fate = (
            f"{_unsent(lost)} are lost with it{_unconfirmed(unconfirmed)}" if lost
            else f"{unconfirmed} write{'s' if unconfirmed != 1 else ''} journalled during an "
            "outage that a replay sent before it ended, the reply not seen, may or may not be "
            "stored"
        )  # fmt: skip
        log.error(
            "memory (namespace %r) was never closed: %s (await aclose() raises "
            "UnsentWritesError for them; with journal_path= the next process would replay "
            "them)",
            namespace, fate,
        )  # fmt: skip


class SearchableHybrid(HybridStore[SearchableBackend]):
    """The hybrid over searchable backends: memory's store."""

    async def search(
        self, query: Query, limit: int, scope: str | None
    ) -> Served[list[tuple[str, Any, float]]]:
        return await self._read(lambda b: b.search(query, limit, scope))


class _ProbeWait:
    """How long a probe has waited on a free loop: a timer every ``step`` seconds adds ``step``
    however late it fires, so time the loop spent on other work does not count. Measured from
    the clock, a probe whose reply sat unread while its loop ran a burst of 7,500 writes was
    counted as unanswered, the cut probes "failed" with Redis answering, and the cap dropped
    14,000 acknowledged writes (the burst test, beside four CPU hogs)."""

    __slots__ = ("_handle", "step", "waited")

    def __init__(self, step: float) -> None:
        self.step = step
        self.waited = 0.0
        self._handle = asyncio.get_running_loop().call_later(step, self._tick)

    def _tick(self) -> None:
        self.waited += self.step
        self._handle = asyncio.get_running_loop().call_later(self.step, self._tick)

    def stop(self) -> float:
        """Stop the timer (on a loop closed since, it never fires again); the time waited."""
        self._handle.cancel()
        return self.waited


class _Pulse:
    """A replay's pulse (``_keep_pace``): awaited only by writers on the loop it was made on
    (``home``), polled by the others; woken on that loop, whichever thread wakes it."""

    __slots__ = ("_woken", "home", "waiters")

    def __init__(self) -> None:
        self.home = asyncio.get_running_loop()
        self.waiters: deque[asyncio.Future[None]] = deque()  # oldest first
        self._woken = False

    async def wait(self) -> None:
        """Until woken (at once if it was): a caller that stops waiting leaves its place."""
        if not self._woken:
            future = self.home.create_future()
            self.waiters.append(future)
            await future

    def wake(self, count: int | None = None, then: _Pulse | None = None) -> None:
        """Wake every waiter; or the oldest ``count``, the others handed to ``then``, the next
        pulse (if it has the same loop), to wait there ahead of its own."""
        call_on_its_loop(self.home, lambda: self._wake(count, then))

    def _wake(self, count: int | None, then: _Pulse | None) -> None:
        self._woken = True  # (a writer that read this pulse before it was replaced goes on)
        waiters = self.waiters
        if then is None or then.home is not self.home or then._woken:
            count = None
        while waiters and (count is None or count > 0):
            future = waiters.popleft()
            if not future.done():  # (not one that stopped waiting)
                future.set_result(None)
                count = None if count is None else count - 1
        if waiters and then is not None:
            then.waiters.extendleft(reversed(waiters))
            waiters.clear()


async def _take_turn() -> None:
    """Give the loop's other tasks a turn. A call served in-process in an outage awaits
    nothing else, and a loop of them (an import) held every other task of the loop, calls in
    flight to Redis and the recovery among them, past their timeouts (review R14)."""
    await asyncio.sleep(0)
