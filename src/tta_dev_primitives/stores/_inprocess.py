"""The in-process backends: the async face of ``LocalStore``. Also test doubles for your code."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.stores._base import Document, SearchableBackend, StorageBackend
from tta_dev_primitives.stores._local import Clock, LocalStore
from tta_dev_primitives.telemetry._metrics import instruments

__all__ = ["ITEMS_SLICE", "InProcessBackend", "InProcessSearchBackend"]

#: Memories ``items`` yields between two turns of the event loop (about 1-3 ms of reading).
ITEMS_SLICE = 512
#: Pending documents a search indexes between two turns of the event loop (a few ms).
INDEX_SLICE = 128

log = logging.getLogger("tta_dev_primitives.memory")


class InProcessBackend(StorageBackend):
    """Payloads in this process, LRU-bounded by ``max_size``, with TTLs (a cache's store)."""

    kind: ClassVar[str] = "in_memory"
    _indexed: ClassVar[bool] = False  # whether its LocalStore keeps a search index

    def __init__(self, max_size: int = 1000, *, clock: Clock = time.monotonic) -> None:
        self.store = LocalStore(max_size, searchable=self._indexed, clock=clock)

    async def put(
        self,
        key: str,
        payload: Any,
        ttl: float | None = None,
        *,
        version: str = "",  # one process, one order: versions are for servers
    ) -> None:
        self.store.put(key, payload, ttl)

    async def get(self, key: str) -> Any | None:
        return self.store.get(key)

    async def delete(self, key: str, *, version: str = "") -> bool:
        return self.store.delete(key)

    async def clear(self, *, version: str = "") -> None:
        self.store.clear()

    def write_mark(self) -> int:
        return self.store.write_mark()

    async def delete_older(self, key: str, mark: int) -> bool:
        return self.store.delete_older(key, mark)

    async def size(self) -> int:
        return self.store.size()

    async def items(self) -> AsyncIterator[tuple[str, Any, float | None]]:
        for done, item in enumerate(self.store.items(), 1):
            yield item
            if done % ITEMS_SLICE == 0:
                # Nothing here waits: without a turn, reading 50,000 memories (an export,
                # LangGraph's list_namespaces) held the loop for the whole walk, 230-300 ms.
                await asyncio.sleep(0)

    async def touch(self, key: str, ttl: float | None, *, version: str = "") -> bool:
        return self.store.touch(key, ttl)

    async def scope_page(
        self, scope: str | None, after: tuple[int, str] | None, limit: int
    ) -> tuple[list[tuple[str, Any, int]], tuple[int, str] | None]:
        return self.store.scope_page(scope, after, limit)

    async def key_slice(self, start: int, count: int) -> list[str]:
        return self.store.key_slice(start, count)

    def describe(self) -> dict[str, Any]:
        return {"max_size": self.store.max_size}

    @property
    def evicted(self) -> int:
        """Entries dropped (least recently used first) to stay within ``max_size``."""
        return self.store.evicted


class InProcessSearchBackend(InProcessBackend, SearchableBackend):
    """``InProcessBackend`` with a search index: memory's zero-setup backend and stand-by copy."""

    _indexed: ClassVar[bool] = True

    def __init__(
        self, max_size: int = 1000, *, clock: Clock = time.monotonic, standby: bool = False
    ) -> None:
        super().__init__(max_size, clock=clock)
        self.standby = standby  # True: a copy of what Redis holds, so an eviction loses nothing
        self._warned = False

    async def put(
        self,
        key: str,
        payload: Any,
        ttl: float | None = None,
        *,
        version: str = "",
        document: Document | None = None,
    ) -> None:
        if evicted := self.store.put(key, payload, ttl, document):
            self._count_evictions(len(evicted))

    def _count_evictions(self, count: int) -> None:
        """The ``tta.memory.evicted`` counter; the first time memories are lost, one warning."""
        instruments().evicted.add(count, {"memory.standby": self.standby})
        if not self.standby and not self._warned:
            self._warned = True
            log.warning(
                "the in-process memory is full (max_size=%d) and now evicts the least recently "
                "used memories; pass a larger MemoryPrimitive(max_size=...) to keep more, or "
                "redis_url= to keep them in Redis (evictions are counted in "
                'get_backend_info()["evicted"])',
                self.store.max_size,
            )

    async def search(
        self, query: Query, limit: int, scope: str | None
    ) -> list[tuple[str, Any, float]]:
        await self._index_pending()
        return self.store.search(query, limit, scope)

    async def scope_page(
        self, scope: str | None, after: tuple[int, str] | None, limit: int
    ) -> tuple[list[tuple[str, Any, int]], tuple[int, str] | None]:
        if scope:
            await self._index_pending()
        return await super().scope_page(scope, after, limit)

    async def _index_pending(self) -> None:
        """Index the documents put since the index was last read, ``INDEX_SLICE`` a loop turn:
        the first search of an outage (up to 1,000 of them) does not hold the loop."""
        waiting = self.store.index_some(INDEX_SLICE)
        while waiting:  # (a put meanwhile joins the queue: it is indexed in turn)
            await asyncio.sleep(0)
            waiting = self.store.index_some(INDEX_SLICE)
