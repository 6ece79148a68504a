"""Search on Redis: the Redis backend plus one of two search engines.

- The Redis Query Engine (``_redis_query``), where the server has it: each search is one or
  two ``FT.SEARCH`` calls, and a process keeps nothing but its connection.
- A per-process replica of the index (``_replica``), on plain Redis 7 or Valkey: Redis keeps
  the values and a change feed (``_redis_lua``); the process catches its replica up with one
  bounded script per partition before a search and ranks locally.

``search_engine="auto"`` (the default) uses the Query Engine when the server offers it,
``"redis"`` insists on it, ``"replica"`` never uses it. Either way the winners' values are read
in one round trip, so a search never holds Redis for long, whatever the namespace's size.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from tta_dev_primitives._checks import check_search_engine
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.search._scopes import normalize_scope
from tta_dev_primitives.stores._base import Document, Put, SearchableBackend
from tta_dev_primitives.stores._redis import RedisBackend, _mget
from tta_dev_primitives.stores._redis_query import QueryEngine, scope_tags, terms_text
from tta_dev_primitives.stores._replica import PAGE_BYTES, PAGE_COUNT, Replica, _records, text_of

__all__ = ["RedisSearchBackend"]

Ranked = list[tuple[str, float]]


class RedisSearchBackend(RedisBackend, SearchableBackend):
    """``RedisBackend`` whose payloads are memories, found by ``search``."""

    def __init__(
        self,
        url: str,
        *,
        indexing: Indexing | None = None,
        search_engine: str = "auto",
        **options: Any,
    ) -> None:
        super().__init__(url, **options)
        self.indexing = indexing or Indexing()
        self._replica: Replica | None = None  # made by the first search, once partitions are known
        self.engine = QueryEngine(self.namespace, check_search_engine(search_engine), self.indexing)
        self._dims: int | None = None  # this process's embedder's, once a vector was seen

    @property
    def search_engine(self) -> str:
        """The engine searches run on now: ``"redis"`` (Query Engine) or ``"replica"``."""
        return "redis" if self.engine.in_use else "replica"

    async def put(
        self,
        key: str,
        payload: Any,
        ttl: float | None = None,
        *,
        version: str = "",
        document: Document | None = None,
    ) -> None:
        vector = None if document is None else document.vector
        if vector is not None:
            self._dims = int(vector.shape[-1])
        await self._prepare()
        seq = await self._put(key, payload, ttl, version, self._extra(key, document))
        if self._replica is not None and vector is not None:
            self._replica.expect_dims(vector.shape[-1])
        if seq is not None and self._replica is not None and document is not None:
            # The feed will bring this write back: reuse its document instead of re-analysing it.
            self._replica.wrote(key, seq, document)

    def _put_extra(self, write: Put) -> Sequence[Any]:
        return self._extra(write.key, write.document)

    def _extra(self, key: str, document: Document | None) -> list[Any]:
        """The PUT script's arguments past the value: vector bytes, and the Query Engine
        document (terms, scope tags, vector size) unless no engine can keep it."""
        vector = b"" if document is None else _vector_bytes(document)
        if not self.engine.writes_documents:
            return [vector]
        terms = terms_text(document.terms) if document is not None else ""
        dims = 0 if document is None or document.vector is None else document.vector.shape[-1]
        return [vector, terms, scope_tags(key), int(dims)]

    def _cleared(self) -> None:
        if self._replica is not None:
            self._replica.cleared()
        self.engine.cleared()

    async def _prepare(self) -> None:
        """Connect, and learn (once) which engine searches here."""
        await self._ready()
        await self.engine.prepare(
            self._call, self._bases, self.topology == "cluster", self._backfill, self._dims
        )

    async def search(
        self, query: Query, limit: int, scope: str | None
    ) -> list[tuple[str, Any, float]]:
        """Rank in the Query Engine if it is in use, else in the caught-up replica; then read
        the winners' values."""
        if query.vector is not None and self._dims is None:
            self._dims = len(query.vector)
        await self._prepare()
        scope = None if scope is None else normalize_scope(scope)
        if self.engine.in_use:
            first = await self.engine.search(self._call, query, limit, scope)
            if first is not None:

                async def rank(want: int) -> Ranked:
                    found = first if want == limit else await self._engine_rank(query, want, scope)
                    return [(key, score) for key, score, _ in found]

                return await self._resolve(rank, limit, lambda key: None)
        replica = self._replica_for_topology()
        if query.vector is not None:
            replica.expect_dims(len(query.vector))
        await replica.sync(self._changes)

        async def rank_replica(want: int) -> Ranked:
            return replica.index.search_scored(query, want, scope)

        return await self._resolve(rank_replica, limit, replica.forget)

    async def _engine_rank(
        self, query: Query, want: int, scope: str | None
    ) -> list[tuple[str, float, int]]:
        return await self.engine.search(self._call, query, want, scope) or []

    async def _resolve(
        self,
        rank: Callable[[int], Awaitable[Ranked]],
        limit: int,
        gone: Callable[[str], None],
    ) -> list[tuple[str, Any, float]]:
        """The ranked keys' values, asking for more when some were deleted since ranking."""
        want = limit
        while True:
            scored = await rank(want)
            payloads = await self._values([key for key, _ in scored])
            found = []
            for (key, score), payload in zip(scored, payloads, strict=True):
                if payload is None:
                    gone(key)  # deleted or expired since it was indexed
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
            replica = Replica(self.indexing, self._bases, self._base)
            self._replica = replica
        return replica

    async def _changes(self, base: str, since: str, since_del: str) -> Any:
        args = [base, since, since_del, PAGE_COUNT, PAGE_BYTES]
        return await self._call(lambda c: self._scripts["CHANGES"](keys=[base + "n"], args=args))

    async def _backfill(self, pages: int | None) -> bool:
        """Write Query Engine documents for memories written before the index, at most
        ``pages`` pages per partition (None: all); True when every partition is done."""
        done = True
        for base in self._bases:
            facts = await self._call(partial(_hmget, name=base + "n", fields=("ftok", "ftcur")))
            if facts[0] == "1":
                continue
            since, left = facts[1] or "0", pages
            while True:
                reply = await self._changes(base, since, "-")
                records = list(_records(reply[4]))
                if records:
                    args = self.engine.page_args(base, records, self._dims)
                    await self._script("INDEX_PAGE", base, args)
                    since = str(records[-1][1])
                if not int(reply[6]):
                    await self._call(partial(_hset, name=base + "n", field="ftok", value="1"))
                    break
                if left is not None:
                    left -= 1
                    if left <= 0:
                        done = False
                        break
        return done

    async def _values(self, keys: list[str]) -> list[Any]:
        """The payloads of ``keys`` in one round trip (per shard, on a cluster)."""
        if not keys:
            return []
        names = [self._base(key) + "v:" + key for key in keys]
        cluster = self.topology == "cluster"
        return await self._call(partial(_mget, names=names, cluster=cluster))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "search_engine": self.engine.describe()}

    async def aclose(self) -> None:
        await self.engine.aclose()
        await super().aclose()


async def _hset(client: Any, name: str, field: str, value: str) -> None:
    await client.hset(name, field, value)


async def _hmget(client: Any, name: str, fields: Sequence[str]) -> list[str | None]:
    values = await client.hmget(name, list(fields))
    return [None if v is None else text_of(v) for v in values]


def _vector_bytes(document: Document) -> bytes:
    """The embedding as Redis stores it (float32, little-endian); none without one."""
    if document.vector is None:
        return b""
    from tta_dev_primitives.embeddings._vectors import encode_vector

    return encode_vector(document.vector.reshape(-1))  # several vectors: rows end to end
