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
  in-process itself. The task probes, then replays the journal in batches; writes made during
  the replay join the journal and are replayed too. Only an empty journal flips the store back
  to the remote, so no caller ever pays for a replay.
- Reads while degraded, replay included, are all served in-process: the in-process copy holds
  every journalled write (up to ``max_size``), so a read never sees Redis's older value of a key
  whose newer write is still waiting in the journal. (The simplest correct rule; reads of what
  other processes wrote meanwhile resume when the journal is empty.) One exception keeps the
  replay finite while writers run: as the *last* batch is sent, the store leaves the degraded
  state; new writes go to the remote (their versions win over the older entries in flight),
  and a ``get`` of a key still in that batch is served in-process until it lands. A search
  in that one round trip may see a key's previous value.
- The journal is bounded (``Journal``: newest write per key kept, then the oldest dropped and
  counted). A journalled write the remote refuses for its data becomes a dead letter (counted,
  kept in a short list for ``get_backend_info()``) and never blocks the rest.
- ``flush()`` (and ``aclose()``) replay on demand: they await the recovery task. Nothing written
  during an outage is lost while the process lives and the journal is within its caps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from tta_dev_primitives.exceptions import BackendUnavailableError
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.stores._backoff import Backoff
from tta_dev_primitives.stores._base import Clear, Delete, Put, StorageBackend, Write, send
from tta_dev_primitives.stores._recovery import (
    DEFAULT_MAX_JOURNAL,
    DEFAULT_MAX_JOURNAL_BYTES,
    MAX_DEAD_LETTERS,
    Journal,
    Replay,
)
from tta_dev_primitives.stores._versions import VersionClock
from tta_dev_primitives.telemetry._memory_ops import MemoryOp
from tta_dev_primitives.telemetry._metrics import instruments

__all__ = ["HybridStore"]

log = logging.getLogger("tta_dev_primitives.memory")

R = TypeVar("R")

REPLAY_BATCH = 500


class HybridStore:
    """An in-process backend, optionally fronting a remote one; see the module docstring."""

    def __init__(
        self,
        local: StorageBackend,
        remote: StorageBackend | None = None,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        namespace: str = "",
        max_journal: int = DEFAULT_MAX_JOURNAL,
        max_journal_bytes: int = DEFAULT_MAX_JOURNAL_BYTES,
    ) -> None:
        self.local = local
        self.namespace = namespace
        self.remote = remote
        self.backoff = backoff or Backoff(1.0, 30.0)
        self.versions = VersionClock()  # each write's version, made when the caller makes it
        self._clock = clock
        self._remote_ok = False
        self._degraded = False
        self._failures = 0
        self._next_probe = 0.0
        self._journal = Journal(max_journal, max_journal_bytes)
        self._recovery: asyncio.Task[bool] | None = None  # the background replay, if running
        self.dead_letters: deque[dict[str, Any]] = deque(maxlen=MAX_DEAD_LETTERS)
        self.dead_letter_count = 0
        self.last_error: str | None = None  # the latest remote failure, already password-free

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
    def recovering(self) -> bool:
        """True while a background replay runs."""
        return self._recovery is not None and not self._recovery.done()

    # -- operations ----------------------------------------------------------------------------

    async def put(
        self,
        op: MemoryOp,
        key: str,
        payload: Any,
        ttl: float | None,
        terms: Mapping[str, int] | None,
    ) -> None:
        await self.local.put(key, payload, ttl, terms)
        if self.remote is None:
            op.served(self.local.kind)
            return
        await self._write(op, Put(key, payload, ttl, terms, self.versions.next()))

    async def delete(self, op: MemoryOp, key: str) -> bool:
        local_had = await self.local.delete(key)
        remote_had = await self._write(op, Delete(key, self.versions.next()))
        return local_had if remote_had is None else remote_had

    async def clear(self, op: MemoryOp) -> None:
        await self.local.clear()
        await self._write(op, Clear(self.versions.next()))

    async def get(self, op: MemoryOp, key: str) -> Any | None:
        if self._journal and not self._degraded and self._journal.has_key(key):
            op.served(self.local.kind, fallback=True)  # its last batch is still on its way
            return await self.local.get(key)
        return await self._read(op, lambda b: b.get(key))

    async def search(
        self, op: MemoryOp, query: Query, limit: int, scope: str | None
    ) -> list[tuple[str, Any]]:
        return await self._read(op, lambda b: b.search(query, limit, scope))

    async def size(self, op: MemoryOp) -> int:
        return await self._read(op, lambda b: b.size())

    # -- the one decision ----------------------------------------------------------------------

    async def _read(self, op: MemoryOp, call: Callable[[StorageBackend], Awaitable[R]]) -> R:
        remote = self.remote
        if remote is not None and not self._degraded:
            try:
                result = await call(remote)
            except BackendUnavailableError as exc:
                self._fail(op, exc)
            else:
                self._succeed()
                op.served(remote.kind)
                return result
        if remote is not None:
            self._maybe_recover()
            op.served(self.local.kind, fallback=True)
        else:
            op.served(self.local.kind)
        return await call(self.local)

    async def _write(self, op: MemoryOp, write: Write) -> bool | None:
        """Send a write (already applied locally) to the remote, or journal it.

        While degraded the write joins the journal (a running replay picks it up), and may start
        the background recovery; the call itself never waits for a replay.
        """
        remote = self.remote
        if remote is None:
            op.served(self.local.kind)
            return None
        if self._degraded:
            self._journal_write(op, write)
            self._maybe_recover()
            op.served(self.local.kind, fallback=True)
            return None
        try:
            result = await send(remote, write)
        except BackendUnavailableError as exc:
            self._fail(op, exc)
            self._journal_write(op, write)
            op.served(self.local.kind, fallback=True)
            return None
        self._succeed()
        op.served(remote.kind)
        return result

    def _maybe_recover(self) -> None:
        """Start the background recovery if a probe is due and none is running."""
        if self.recovering or self._clock() < self._next_probe:
            return
        self._start_recovery()

    def _start_recovery(self) -> asyncio.Task[bool]:
        task = asyncio.get_running_loop().create_task(self._recover(), name="tta-memory-recovery")
        self._recovery = task
        return task

    def _journal_write(self, op: MemoryOp, write: Write) -> None:
        ttl = write.ttl if isinstance(write, Put) else None
        deadline = None if ttl is None else self._clock() + ttl
        before = self._journal.dropped
        dropped = self._journal.add(write, deadline)
        if dropped:
            instruments().journal_dropped.add(dropped)
            op.event("memory.journal_dropped", {"memory.dropped_writes": dropped})
            if before == 0 or before // 10_000 != self._journal.dropped // 10_000:
                log.warning(
                    "memory journal full (%d writes or %d bytes): dropped the oldest journalled "
                    "writes, %d so far; they will not reach the remote backend",
                    self._journal.max_entries, self._journal.max_bytes, self._journal.dropped,
                )  # fmt: skip

    def _succeed(self) -> None:
        self._remote_ok = True

    def _fail(self, op: MemoryOp, exc: BaseException) -> None:
        self._remote_ok = False
        self.last_error = str(exc)
        if self._degraded:
            return
        self._degraded = True
        self._failures = 1
        self._next_probe = self._clock() + self.backoff.delay(1)
        instruments().fallbacks.add(1)
        op.event("memory.fallback", {"memory.error": type(exc).__name__})
        log.warning(
            "memory backend unavailable, serving in-process and journalling writes: %s", exc
        )

    async def _recover(self) -> bool:
        """The background recovery: probe, replay the journal; True if the remote is back."""
        remote = self.remote
        assert remote is not None
        replay = Replay(remote, self._journal, self._clock, batch=REPLAY_BATCH,
                        dead_letters=self.dead_letters, on_final=self._leave_degraded)  # fmt: skip
        with MemoryOp("recover", self.namespace) as op:
            try:
                replayed = await replay.run()
            except Exception as exc:  # a background task must not die unseen
                self._degraded = True  # (if the last batch failed after _leave_degraded)
                self._remote_ok = False
                self._count_dead(op, replay.dead)
                self._failures += 1
                self._next_probe = self._clock() + self.backoff.delay(self._failures)
                if not isinstance(exc, BackendUnavailableError):
                    log.warning("memory recovery failed; will retry: %r", exc)
                else:
                    log.debug("memory backend still unavailable (%s); next probe in %.1fs", exc,
                              self._next_probe - self._clock())  # fmt: skip
                op.served(self.local.kind, fallback=True)
                return False
            # No await since the journal was seen empty: no write can slip in unreplayed.
            self._degraded = False
            self._remote_ok = True
            self._failures = 0
            self._count_dead(op, replay.dead)
            op.served(remote.kind)
            instruments().recoveries.add(1)
            instruments().replayed_writes.add(replayed)
            op.event("memory.recovered", {"memory.replayed_writes": replayed})
            log.warning("memory backend recovered; replayed %d journalled writes", replayed)
            return True

    def _leave_degraded(self) -> None:
        """Before the last batch: new writes go to the remote, reads of its keys stay local."""
        self._degraded = False

    def _count_dead(self, op: MemoryOp, dead: int) -> None:
        if dead:
            self.dead_letter_count += dead
            instruments().dead_letters.add(dead)
            op.event("memory.dead_letters", {"memory.dead_letters": dead})

    async def flush(self, op: MemoryOp) -> bool:
        """Replay the journal now if degraded (awaiting the recovery); True when it is empty."""
        if self.remote is None:
            return True
        task = self._recovery
        if task is None or task.done():
            if not self._degraded:
                return True
            task = self._start_recovery()
        elif task.get_loop() is not asyncio.get_running_loop():
            return False  # replaying on another event loop: it cannot be awaited from here
        await asyncio.shield(task)
        return not self._degraded

    async def items(self) -> AsyncIterator[tuple[str, Any, float | None]]:
        """Every memory, from the remote if there is one (its errors propagate), else local."""
        async for item in (self.remote or self.local).items():
            yield item

    async def aclose(self) -> None:
        task, self._recovery = self._recovery, None
        if task is not None and not task.done():
            if task.get_loop() is asyncio.get_running_loop():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            else:
                task.get_loop().call_soon_threadsafe(task.cancel)
        await self.local.aclose()
        if self.remote is not None:
            await self.remote.aclose()
