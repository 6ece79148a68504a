"""Search on plain Redis: the Redis backend plus a per-process replica of the index.

Redis keeps the values and a change feed (``_redis_lua``); each process that searches keeps a
replica of the index (``_replica``), catches it up with one bounded script per partition
before a search, ranks locally, and reads the winners' values in one round trip. So a search
never holds Redis for long, whatever the namespace's size.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.search._scopes import normalize_scope
from tta_dev_primitives.stores._base import Document, Put, SearchableBackend
from tta_dev_primitives.stores._redis import RedisBackend, _mget
from tta_dev_primitives.stores._replica import PAGE_BYTES, PAGE_COUNT, Replica

__all__ = ["RedisSearchBackend"]


class RedisSearchBackend(RedisBackend, SearchableBackend):
    """``RedisBackend`` whose payloads are memories, found by ``search``."""

    def __init__(self, url: str, *, indexing: Indexing | None = None, **options: Any) -> None:
        super().__init__(url, **options)
        self.indexing = indexing or Indexing()
        self._replica: Replica | None = None  # made by the first search, once partitions are known

    async def put(
        self,
        key: str,
        payload: Any,
        ttl: float | None = None,
        *,
        version: str = "",
        document: Document | None = None,
    ) -> None:
        vector = b"" if document is None else _vector_bytes(document)
        seq = await self._put(key, payload, ttl, version, vector)
        if self._replica is not None and document is not None and document.vector is not None:
            self._replica.expect_dims(document.vector.shape[-1])
        if self._replica is not None and document is not None:
            # The feed will bring this write back: reuse its document instead of re-analysing it.
            self._replica.wrote(key, seq, document)

    def _vector_bytes(self, write: Put) -> bytes:
        return b"" if write.document is None else _vector_bytes(write.document)

    def _cleared(self) -> None:
        if self._replica is not None:
            self._replica.cleared()

    async def search(
        self, query: Query, limit: int, scope: str | None
    ) -> list[tuple[str, Any, float]]:
        """Catch the replica up with Redis, rank there, then read the winners' values."""
        await self._ready()
        replica = self._replica_for_topology()
        if query.vector is not None:
            replica.expect_dims(len(query.vector))
        await replica.sync(self._changes)
        scope = None if scope is None else normalize_scope(scope)
        want = limit
        while True:
            scored = replica.index.search_scored(query, want, scope)
            payloads = await self._values([key for key, _ in scored])
            found = []
            for (key, score), payload in zip(scored, payloads, strict=True):
                if payload is None:
                    replica.forget(key)  # deleted or expired since the sync
                else:
                    found.append((key, payload, score))
            if len(found) >= limit or len(scored) < want:
                return found[:limit]
            want = limit + (want - len(found))

    async def catch_up(self) -> None:
        """Read what changed into this process's replica, if it has one (after a replay)."""
        if self._replica is not None:
            await self._ready()
            await self._replica_for_topology().sync(self._changes)

    def _replica_for_topology(self) -> Replica:
        replica = self._replica
        if replica is None or replica.bases is not self._bases:
            replica = Replica(self.indexing, self._bases, self._base, on_changed=self.on_changed)
            self._replica = replica
        return replica

    async def _changes(self, base: str, since: str, since_del: str) -> Any:
        args = [base, since, since_del, PAGE_COUNT, PAGE_BYTES]
        return await self._call(lambda c: self._scripts["CHANGES"](keys=[base + "n"], args=args))

    async def _values(self, keys: list[str]) -> list[Any]:
        """The payloads of ``keys`` in one round trip (per shard, on a cluster)."""
        if not keys:
            return []
        names = [self._base(key) + "v:" + key for key in keys]
        cluster = self.topology == "cluster"
        return await self._call(partial(_mget, names=names, cluster=cluster))


def _vector_bytes(document: Document) -> bytes:
    """The embedding as Redis stores it (float32, little-endian); none without one."""
    if document.vector is None:
        return b""
    from tta_dev_primitives.embeddings._vectors import encode_vector

    return encode_vector(document.vector.reshape(-1))  # several vectors: rows end to end
