"""The hybrid: which backend serves each operation, fallback, journal and recovery, in one place.

With no remote backend every operation is served in-process. With one:

- While the remote is up, reads come from it (a remote miss is a miss: another process may have
  deleted the key) and writes go to it and to the in-process store, which keeps the most recent
  ``max_size`` memories so that reads during an outage still find them.
- When the remote fails, the operation is served in-process and returns normally; the store is
  *degraded*. Writes are kept in-process and journalled, in order.
- While degraded, the remote is probed at most every ``backoff.delay(failures)`` seconds, by the
  operation that finds a probe due. When it answers, the journal is replayed in order, in
  batches; writes made during the replay join the journal's end and are replayed too; only an
  empty journal flips the store back to the remote. Nothing written during an outage is lost
  while the process lives; ``flush()`` (and ``aclose()``) try to replay before exit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from tta_dev_primitives.exceptions import BackendUnavailableError
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.stores._backoff import Backoff
from tta_dev_primitives.stores._base import Clear, Delete, Put, StorageBackend, Write, send
from tta_dev_primitives.stores._versions import VersionClock
from tta_dev_primitives.telemetry._memory_ops import MemoryOp
from tta_dev_primitives.telemetry._metrics import instruments

__all__ = ["HybridStore"]

log = logging.getLogger("tta_dev_primitives.memory")

R = TypeVar("R")

REPLAY_BATCH = 500


class _Journalled:
    """A write made while degraded, with its TTL as a deadline so replay keeps the remainder."""

    __slots__ = ("deadline", "write")

    def __init__(self, write: Write, deadline: float | None) -> None:
        self.write = write
        self.deadline = deadline


class HybridStore:
    """An in-process backend, optionally fronting a remote one; see the module docstring."""

    def __init__(
        self,
        local: StorageBackend,
        remote: StorageBackend | None = None,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.local = local
        self.remote = remote
        self.backoff = backoff or Backoff(1.0, 30.0)
        self.versions = VersionClock()  # each write's version, made when the caller makes it
        self._clock = clock
        self._remote_ok = False
        self._degraded = False
        self._recovering = False
        self._failures = 0
        self._next_probe = 0.0
        self._journal: list[_Journalled] = []
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
        if remote is not None and (not self._degraded or await self._remote_available(op)):
            try:
                result = await call(remote)
            except BackendUnavailableError as exc:
                self._fail(op, exc)
            else:
                self._succeed()
                op.served(remote.kind)
                return result
        op.served(self.local.kind, fallback=remote is not None)
        return await call(self.local)

    async def _write(self, op: MemoryOp, write: Write) -> bool | None:
        """Send a write (already applied locally) to the remote, or journal it.

        While degraded the write joins the journal *before* any probe, so that if this call
        replays the journal, it is replayed in call order with writes that arrive meanwhile.
        """
        remote = self.remote
        if remote is None:
            op.served(self.local.kind)
            return None
        if self._degraded:
            self._journal_write(write)
            if await self._remote_available(op):
                op.served(remote.kind)
            else:
                op.served(self.local.kind, fallback=True)
            return None
        try:
            result = await send(remote, write)
        except BackendUnavailableError as exc:
            self._fail(op, exc)
            self._journal_write(write)
            op.served(self.local.kind, fallback=True)
            return None
        self._succeed()
        op.served(remote.kind)
        return result

    async def _remote_available(self, op: MemoryOp) -> bool:
        """True if this operation should go to the remote (probing and replaying if due)."""
        if not self._degraded:
            return True
        if self._recovering or self._clock() < self._next_probe:
            return False
        return await self._recover(op)

    def _journal_write(self, write: Write) -> None:
        ttl = write.ttl if isinstance(write, Put) else None
        deadline = None if ttl is None else self._clock() + ttl
        self._journal.append(_Journalled(write, deadline))

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

    async def _recover(self, op: MemoryOp) -> bool:
        """Probe the remote and replay the journal into it; True if it is back in service."""
        remote = self.remote
        assert remote is not None
        self._recovering = True
        replayed = 0
        try:
            await remote.probe()
            while self._journal:
                batch = self._journal[:REPLAY_BATCH]
                await remote.apply(self._replayable(batch))
                del self._journal[: len(batch)]
                replayed += len(batch)
                if self._journal:
                    log.info("replaying journal: %d done, %d left", replayed, len(self._journal))
        except BackendUnavailableError as exc:
            self._failures += 1
            self._next_probe = self._clock() + self.backoff.delay(self._failures)
            log.debug("memory backend still unavailable (%s); next probe in %.1fs", exc,
                      self._next_probe - self._clock())  # fmt: skip
            return False
        finally:
            self._recovering = False
        self._degraded = False
        self._remote_ok = True
        self._failures = 0
        instruments().recoveries.add(1)
        instruments().replayed_writes.add(replayed)
        op.event("memory.recovered", {"memory.replayed_writes": replayed})
        log.warning("memory backend recovered; replayed %d journalled writes", replayed)
        return True

    def _replayable(self, batch: Sequence[_Journalled]) -> list[Write]:
        """Writes with TTLs shortened by the time spent in the journal; expired puts delete."""
        now = self._clock()
        writes: list[Write] = []
        for item in batch:
            write = item.write
            if isinstance(write, Put) and item.deadline is not None:
                left = item.deadline - now
                write = (
                    Put(write.key, write.payload, left, write.terms, write.version)
                    if left > 0
                    else Delete(write.key, write.version)
                )
            writes.append(write)
        return writes

    async def flush(self, op: MemoryOp) -> bool:
        """Replay the journal now if degraded; True when nothing is left to replay."""
        if self.remote is None or not self._degraded:
            return True
        if self._recovering:
            return False
        return await self._recover(op)

    async def items(self) -> AsyncIterator[tuple[str, Any, float | None]]:
        """Every memory, from the remote if there is one (its errors propagate), else local."""
        async for item in (self.remote or self.local).items():
            yield item

    async def aclose(self) -> None:
        await self.local.aclose()
        if self.remote is not None:
            await self.remote.aclose()
