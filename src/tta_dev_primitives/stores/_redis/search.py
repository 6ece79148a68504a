"""Search on Redis: ``RedisIndex``, composed into the Redis backend, over one of two engines.

The index takes part in each write (the search data the PUT script stores beside the value)
and hears of clears; ``RedisSearchBackend`` only chooses it and hands it searches, as
``LocalStore(searchable=True)`` does in-process.

- The Redis Query Engine (``query_engine``), where the server has it: each search is one or
  two ``FT.SEARCH`` calls, and a process keeps nothing but its connection.
- Per-process replicas of the index (``replica``, ``replicas``), on plain Redis 7 or
  Valkey: Redis keeps the values and a change feed (``lua``); the process catches its
  replica (of one user's memories for a scoped search) up with one bounded script per
  partition before a search and ranks locally.

``search_engine="auto"`` (the default) uses the Query Engine when the server offers it,
``"redis"`` insists on it, ``"replica"`` never uses it. Either way the winners' values are read
in one round trip, so a search never holds Redis for long, whatever the namespace's size.

A search never answers from a replica it could not bring up to date. Each of its calls is
bounded by the per-call ``timeout``, as every call is: a Redis down or stalled is an outage, and
the search is served in-process (the memory degrades). Only a partition in the middle of a load
(its previous page said more is to come) waits longer for its next page, up to
``load_timeout`` (a budget of progress), so a cold process loading a large namespace from a
busy Redis waits as long as pages keep coming; the first page of each partition (all that a
warm replica catching up a few writes reads) is a call like any other. If no next page comes
within ``load_timeout`` the search raises ``SearchNotReadyError``, an outage too (what was read
is kept for the next search).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Final, TypeVar

from tta_dev_primitives._blocked import fork_safe, heavy_in_own_thread
from tta_dev_primitives._checks import check_count, check_search_engine, check_seconds
from tta_dev_primitives._gather import gather_all
from tta_dev_primitives.exceptions import (
    BackendError,
    BackendRefusedError,
    SearchNotReadyError,
    StaleWriteError,
)
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._indexing import OFF_LOOP_BYTES, Indexing
from tta_dev_primitives.stores._base import (
    ApplyProgress,
    Document,
    NotServedNow,
    Put,
    SearchableBackend,
    Write,
)
from tta_dev_primitives.stores._redis.backend import RedisBackend
from tta_dev_primitives.stores._redis.bulk import Progress
from tta_dev_primitives.stores._redis.connection import Connection, mget, text_of
from tta_dev_primitives.stores._redis.documents import (
    doc_length,
    names_text,
    scope_tags,
    terms_text,
)
from tta_dev_primitives.stores._redis.embedder_record import EmbedderRecord
from tta_dev_primitives.stores._redis.layout import (
    FACT_ENGINE_CURSOR,
    FACT_ENGINE_DONE,
    PARTITIONS_AT_ONCE,
    Layout,
)
from tta_dev_primitives.stores._redis.query_engine import (
    QueryEngine,
    SearchEngine,
    query_timeout_ms,
)
from tta_dev_primitives.stores._redis.replica import (
    PAGE_BYTES,
    PAGE_COUNT,
    Heads,
    _records,
)
from tta_dev_primitives.stores._redis.replicas import (
    MAX_SCOPES,
    SCOPE_BUDGET,
    SCOPE_REPLICAS,
    Replicas,
)
from tta_dev_primitives.stores._versions import VersionClock

__all__ = ["LOAD_TIMEOUT", "RedisIndex", "RedisSearchBackend"]

R = TypeVar("R")

log = logging.getLogger("tta_dev_primitives.memory")

#: Seconds between a process's sweeps of expired memories before searching in the engine; the
#: most one call sweeps in a partition (a few ms of Redis time), and the calls per partition
#: one search makes at most (see ``_sweep_expired``).
SWEEP_EVERY: Final = 5.0
#: A partition whose next memory expires sooner is swept again once it has (not before this
#: many seconds: a namespace of memories expiring every few ms is swept at most this often).
SWEEP_SOONEST: Final = 0.05
SWEEP_MOST: Final = 256
SWEEP_ROUNDS: Final = 8
Ranked = list[tuple[str, float]]

#: Seconds a search waits for each page of its replica's load or catch-up (and for the other
#: calls it makes) before it raises ``SearchNotReadyError``; at least the per-call timeout.
LOAD_TIMEOUT = 10.0

#: Set while this task replays journalled writes (``apply``), which checks the namespace's
#: embedder once a batch (a mismatch logged, not raised, for writes that were acknowledged:
#: ``embedder_record``); a cluster's replay puts one by one, and ``put`` checks none of them.
_replaying: contextvars.ContextVar[bool] = contextvars.ContextVar("replaying", default=False)


class RedisSearchBackend(RedisBackend, SearchableBackend):
    """``RedisBackend`` whose payloads are memories, found by ``search`` in its ``index``."""

    index: RedisIndex

    def __init__(
        self,
        url: str,
        *,
        indexing: Indexing | None = None,
        load_timeout: float = LOAD_TIMEOUT,
        max_scopes: int = MAX_SCOPES,
        scope_budget: int = SCOPE_BUDGET,
        scope_replicas: bool = SCOPE_REPLICAS,
        search_engine: str = "auto",
        embedder_model: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(url, **options)
        #: The namespace's record of its embedder, checked for ``embedder_model`` (this
        #: process's embedder's ``model_id``; None: no embedder, not checked).
        self.record = EmbedderRecord(self.connection, self.layout, embedder_model)
        self.index = RedisIndex(
            self.connection, self.layout, indexing or Indexing(),
            load_timeout=max(check_seconds("load_timeout", load_timeout), self.timeout),
            max_scopes=check_count("max_scopes", max_scopes),
            scope_budget=check_count("scope_budget", scope_budget),
            scope_replicas=scope_replicas,
            search_engine=check_search_engine(search_engine),
        )  # fmt: skip

    @property
    def search_engine(self) -> str:
        """The engine searches run on now: ``"redis"`` (Query Engine) or ``"replica"``."""
        return self.index.search_engine

    def bind(
        self,
        versions: VersionClock,
        on_stale: Callable[[StaleWriteError, str | None], None],
        on_changed: Callable[[str, Any], None],
    ) -> None:
        super().bind(versions, on_stale, on_changed)
        self.index.on_changed = on_changed

    async def put(
        self,
        key: str,
        payload: Any,
        ttl: float | None = None,
        *,
        version: str = "",
        document: Document | None = None,
    ) -> None:
        index = self.index
        dims = index.saw(document)
        if dims is not None and not _replaying.get():
            # A vector: the namespace's embedder must be this process's (a replay's batch is
            # checked once, by ``apply``, not put by put).
            await self.record.check(dims, write=True)
        await index.prepare()
        seq = await self._put(key, payload, ttl, version, document)
        index.wrote(key, seq, document, dims)
        if ttl is not None:
            index.expires(key, ttl)

    async def search(
        self, query: Query, limit: int, scope: str | None
    ) -> list[tuple[str, Any, float]]:
        if query.vector is not None:
            await self.record.check(len(query.vector), write=False)
        return await self.index.search(query, limit, scope)

    async def apply(
        self, writes: Sequence[Write], *, progress: ApplyProgress | None = None
    ) -> None:
        """Replay journalled writes (``RedisBackend.apply``); those with vectors are stored
        even if the namespace records another embedder (logged once), and record none
        (``embedder_record``)."""
        vector = next((write.document.vector for write in writes if isinstance(write, Put)
                       and write.document is not None and write.document.vector is not None),
                      None)  # fmt: skip
        if vector is not None:
            await self.record.check(int(vector.shape[-1]), write=False, replaying=True)
        token = _replaying.set(True)
        try:
            await super().apply(writes, progress=progress)
        finally:
            _replaying.reset(token)

    async def _clear_pages(self, version: str, progress: Progress) -> None:
        """A clear removes the namespace's embedder record first: the namespace may take a new
        model (a write of the old one made while the clear runs records it again)."""
        await self.record.remove()
        await super()._clear_pages(version, progress)

    async def catch_up(self) -> None:
        await self.index.catch_up()

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "search_engine": self.index.describe(),
            "recorded_embedder": self.record.describe(),
        }

    async def aclose(self) -> None:
        await self.index.aclose()
        await super().aclose()


class RedisIndex:
    """A namespace's search over a connection: the Query Engine, or this process's replicas."""

    def __init__(
        self,
        connection: Connection,
        layout: Layout,
        indexing: Indexing,
        *,
        load_timeout: float,
        max_scopes: int,
        scope_budget: int,
        scope_replicas: bool,
        search_engine: SearchEngine,
    ) -> None:
        self.connection = connection
        self.layout = layout
        self.indexing = indexing
        self.load_timeout = load_timeout
        self.max_scopes = max_scopes
        self.scope_budget = scope_budget
        self.scope_replicas = scope_replicas
        # Made by the first search, once partitions are known (see ``replicas``).
        self.replicas: Replicas | None = None
        # Threads each with its own loop make their first searches at once: one makes the set.
        self._making = fork_safe(threading.Lock())
        self.engine = QueryEngine(layout.namespace, search_engine, indexing)
        self.engine.timeout_ms = query_timeout_ms(connection.timeout)
        self.dims: int | None = None  # this process's embedder's, once a vector was seen
        self.on_changed: Callable[[str, Any], None] | None = None  # told of others' changes
        # (monotonic) when a search in the engine sweeps a partition again, by partition
        self._next_sweep: dict[str, float] = {}
        self._lease = uuid.uuid4().hex  # this index's name on a backfill lease

    @property
    def search_engine(self) -> str:
        """The engine searches run on now: ``"redis"`` (Query Engine) or ``"replica"``."""
        return "redis" if self.engine.in_use else "replica"

    def saw(self, document: Document | None) -> int | None:
        """Before a write: note the size of its vectors (this process's embedder's), if any."""
        dims = None if document is None or document.vector is None else document.vector.shape[-1]
        if dims is not None:
            self.dims = int(dims)
        return None if dims is None else int(dims)

    def expires(self, key: str, ttl: float) -> None:
        """A memory this process wrote expires in ``ttl`` seconds: its partition is swept once
        it has (another process's are, at the latest, ``SWEEP_EVERY`` seconds after)."""
        base = self.layout.base(key)
        due = time.monotonic() + max(ttl, SWEEP_SOONEST)
        current = self._next_sweep.get(base, 0.0)  # (never swept here: due now)
        if current != math.inf:  # (inf: this Redis user may not sweep)
            self._next_sweep[base] = min(current, due)

    def wrote(self, key: str, seq: int, document: Document | None, dims: int | None) -> None:
        """After a write: the feed will bring it back, so replicas reuse its document instead
        of analysing it again."""
        replicas = self.replicas
        if replicas is not None and dims is not None:
            replicas.expect_dims(dims)
        if replicas is not None and document is not None:
            replicas.wrote(key, seq, document)

    def extra(self, key: str, document: Document | None) -> list[Any]:
        """The PUT script's arguments past the value: vector bytes, and the Query Engine
        document (terms, scope tags, vector size, length, names) unless no engine can keep
        it."""
        vector = b"" if document is None else _vector_bytes(document)
        if not self.engine.writes_documents:
            return [vector]
        terms = terms_text(document.terms) if document is not None else ""
        length = doc_length(document.terms) if document is not None else 0
        dims = 0 if document is None or document.vector is None else document.vector.shape[-1]
        tags = scope_tags(key, None if document is None else document.terms)
        names = names_text(document.terms) if document is not None else ""
        return [vector, terms, tags, int(dims), length, names]

    def cleared(self) -> None:
        if self.replicas is not None:
            self.replicas.cleared()
        self.engine.cleared()

    async def prepare(self, *, searching: bool = False) -> None:
        """Connect, and learn (once) which engine searches here; a search (``searching``) also
        checks that the index is whole."""
        await self.connection.ready()
        await self.engine.prepare(
            self.connection.call, self.layout.bases, self.connection.cluster, self._backfill,
            self.dims, searching=searching, wait_at_most=self.connection.timeout,
        )  # fmt: skip

    async def search(
        self, query: Query, limit: int, scope: str | None
    ) -> list[tuple[str, Any, float]]:
        """Rank in the Query Engine when it is in use (each call within the per-call timeout),
        else in the caught-up replica (a partition's pages after one that said more is to
        come wait up to ``load_timeout``, see the module docstring); then read the winners'
        values."""
        if not self.connection.connected:
            await self.connection.call(_connect)  # connect (learning the topology) first
        if query.vector is not None and self.dims is None:
            self.dims = len(query.vector)
        await self.prepare(searching=True)
        # ``scope`` comes normalized (``check_scope``) and is used as it is: "u1::" arrives as
        # "u1:", and normalizing that again would widen it to "u1".
        try:
            answer = await self._engine_search(query, limit, scope)
        except BackendError as exc:
            if not _index_missing(exc):
                raise
            # The index is gone with the data (a Redis restarted without persistence, a
            # FLUSHALL): find out again what the namespace holds, which makes the index anew
            # and backfills it (searching with the replica until that is done), once.
            self.engine.cleared()
            await self.prepare(searching=True)
            try:
                answer = await self._engine_search(query, limit, scope)
            except BackendError as again:
                if not _index_missing(again):
                    raise
                # Missing again right after a set-up: a cluster's layout moving under it
                # (another loop's set-up on an older slot map, say). This search is served
                # in-process; the next one sets up again. It was raised to the caller.
                raise NotServedNow(
                    f"search in namespace {self.layout.namespace!r}: the Redis Query Engine "
                    f"index was missing again right after it was set up ({again})"
                ) from None
        if answer is not None:
            return answer
        replicas = self._replicas_for_topology()
        if query.vector is not None:
            replicas.expect_dims(len(query.vector))
        replica = replicas.for_scope(scope)
        await replica.sync(self._pages(), self._heads())
        replicas.trim()

        async def rank_replica(want: int) -> Ranked:
            with replica.guard:
                return replica.index.search_scored(query, want, scope)

        return await self._resolve(rank_replica, limit, replica.forget)

    async def _engine_search(
        self, query: Query, limit: int, scope: str | None
    ) -> list[tuple[str, Any, float]] | None:
        """The answer from the Query Engine, or None when it is not in use or cannot answer
        this query (the caller searches the replica)."""
        if not self.engine.in_use:
            return None
        await self._sweep_expired()
        base = self.layout.scope_base(scope)
        first = await self.engine.search(self.connection.call, query, limit, scope, base)
        if first is None:
            return None

        async def rank(want: int) -> Ranked:
            found = first if want == limit else await self._engine_rank(query, want, scope)
            return [(key, score) for key, score, _ in found]

        return await self._resolve(rank, limit, lambda key: None)

    async def _sweep_expired(self) -> None:
        """Before a search in the engine, forget the memories whose TTL has passed, in each
        partition where one has since its last sweep (or ``SWEEP_EVERY`` seconds ago), up to
        ``SWEEP_ROUNDS`` x ``SWEEP_MOST`` (more at the next search). Writes sweep 16 each, but
        until a memory is swept the running totals the ranking reads count it while the
        engine's own counts of each word do not: scores would differ from in-process, and a
        word in every memory (a user's name) would weigh as a rare one."""
        now = time.monotonic()
        due = [base for base in self.layout.bases if self._next_sweep.get(base, 0.0) <= now]
        if not due:
            return
        connection = self.connection

        async def run(base: str) -> float:
            """Sweep one partition, a call per ``SWEEP_MOST`` (Redis serves others between
            them); the seconds until it is due again."""
            for _ in range(SWEEP_ROUNDS):
                reply = await connection.call(
                    # (The script of the client the call runs on: it may have reconnected.)
                    lambda client: connection.script("SWEEP")(
                        keys=connection.declared(base), args=[base, SWEEP_MOST]
                    )
                )
                left = int(text_of(reply))  # ms until the next is due; 0: more now; -1: none
                if left:
                    return SWEEP_EVERY if left < 0 else min(SWEEP_EVERY, left / 1000)
            return 0.0  # more are due: the next search sweeps on

        try:
            after = await gather_all(*(run(base) for base in due), at_most=PARTITIONS_AT_ONCE)
        except BackendRefusedError as exc:
            # A user that may only search (no scripts: it writes nothing either) leaves the
            # sweeps to the writers.
            log.debug("not sweeping expired memories before searching: %s", exc)
            self._next_sweep = dict.fromkeys(self.layout.bases, math.inf)
            return
        for base, wait in zip(due, after, strict=True):
            self._next_sweep[base] = now + (max(wait, SWEEP_SOONEST) if wait else 0.0)

    async def _engine_rank(
        self, query: Query, want: int, scope: str | None
    ) -> list[tuple[str, float, int]]:
        base = self.layout.scope_base(scope)
        return await self.engine.search(self.connection.call, query, want, scope, base) or []

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
        """Read what changed into this process's replicas, if it has any (after a replay)."""
        if self.replicas is not None:
            await self.connection.ready()
            for replica in list(self._replicas_for_topology()):
                await replica.sync(self._changes, self._heads())

    def _replicas_for_topology(self) -> Replicas:
        with self._making:  # (else each thread made its own set, and loaded it in full)
            return self._replicas_made()

    def _replicas_made(self) -> Replicas:
        replicas = self.replicas
        if replicas is None or replicas.bases is not self.layout.bases:
            replicas = Replicas(
                self.indexing, self.layout.bases, self.layout.base,
                max_scopes=self.max_scopes, scope_budget=self.scope_budget,
                scope_replicas=self.scope_replicas, on_changed=self.on_changed,
            )  # fmt: skip
            if self.dims is not None:  # this process embedded already: read vectors by it
                replicas.expect_dims(self.dims)
            self.replicas = replicas
        return replicas

    def _heads(self) -> Heads | None:
        """Reads every partition's head in one MGET per node; none with one partition (there
        the changes call itself is the one round trip). For a segment's replica, per partition,
        the segment's head and the partition's epoch of heads, and the partition's head only
        while it was last set by a writer of an older version (``Layout.segment_heads``)."""
        if len(self.layout.bases) < 2:
            return None

        async def heads(bases: list[str], seg: str) -> list[Any]:
            if not seg:
                read = partial(mget, names=[Layout.head(base) for base in bases])
                return await self.connection.call(read)
            names = [name for base in bases for name in Layout.segment_heads(base, seg)]
            got = await self.connection.call(partial(mget, names=names))
            # (head, mark, epoch, the segment's head) per partition -> what the replica compares
            return [(got[i + 3], got[i + 2], None if got[i] == got[i + 1] else got[i])
                    for i in range(0, len(got), 4)]  # fmt: skip

        return heads

    async def _changes(
        self, base: str, since: str, since_del: str, seg: str, check: Sequence[str] = ()
    ) -> Any:
        """A page of changes within the per-call timeout (a replay's catch-up, a search's first;
        ``check``: see ``Replica``)."""
        return await self.connection.call(self._changes_call(base, since, since_del, seg, check))

    def _pages(self) -> Callable[[str, str, str, str, list[str]], Awaitable[Any]]:
        """One search's reader of change pages. A partition's page waits up to ``load_timeout``
        only when this search's previous page of that partition said more is to come: the
        partition is in the middle of a load (a cold one, or a large catch-up), and a busy
        Redis is given time. Any other page (the first of each partition, however many pages
        of other partitions have arrived) waits the per-call timeout: a master that stalls is
        an outage, served in-process, whatever the other masters of a cluster answer."""
        loading: set[str] = set()  # partitions whose last page said more is to come

        async def page(base: str, since: str, since_del: str, seg: str, check: list[str]) -> Any:
            if base in loading:
                call = self._changes_call(base, since, since_del, seg, check)
                reply = await self._patient(call)
            else:
                reply = await self._changes(base, since, since_del, seg, check)
            if _more(reply):
                loading.add(base)
            else:
                loading.discard(base)
            return reply

        return page

    def _changes_call(
        self, base: str, since: str, since_del: str, seg: str, check: Sequence[str] = ()
    ) -> Callable[[Any], Any]:
        args = [base, since, since_del, PAGE_COUNT, PAGE_BYTES, seg, *check]
        keys = self.connection.declared(base, seg=seg)
        return lambda c: self.connection.script("CHANGES")(keys=keys, args=args)

    async def _patient(self, work: Callable[[Any], Awaitable[R]]) -> R:
        """Run ``work`` (a page of a load in progress) within ``load_timeout`` instead of the
        per-call timeout; ``SearchNotReadyError`` (an outage) rather than rank over a partial
        index if nothing comes."""
        try:
            async with asyncio.timeout(self.load_timeout):
                return await self.connection.call(work, bounded=False)
        except TimeoutError:
            raise SearchNotReadyError(
                f"search in namespace {self.layout.namespace!r}: Redis sent nothing for "
                f"{self.load_timeout:g} s (load_timeout) while this process brought its index up "
                "to date, so no partial answer was given; what was read is kept for the next search"
            ) from None

    async def _backfill(self, pages: int | None) -> bool:
        """Write Query Engine documents for memories written before the index, at most
        ``pages`` pages per partition (None: all); True when every partition is done."""
        done = True
        call = self.connection.call
        for base in self.layout.bases:
            facts_name = Layout.facts(base)
            fields = (FACT_ENGINE_DONE, FACT_ENGINE_CURSOR)
            facts = await call(partial(_hmget, name=facts_name, fields=fields))
            if facts[0] == "1":
                continue
            # One process at a time backfills a partition: each read and analysed the whole
            # feed, so N workers starting at once did the work N times over (4 workers: 4x the
            # CPU, Redis's too). The others search with their replicas until it is done.
            lease_name = Layout.backfill_lease(base)
            if not await call(partial(_lease, name=lease_name, token=self._lease)):
                done = False
                continue
            # Read again under the lease: a process that restarts the backfill (a new vector
            # field, another documents' form) resets these and ends any lease in one step
            # (``query_engine.restart_backfill``), so the cursor is never an older one.
            facts = await call(partial(_hmget, name=facts_name, fields=fields))
            if facts[0] == "1":
                await call(partial(_finish, base=base, token=self._lease, mark=False))
                continue
            since, left = facts[1] or "0", pages
            while True:
                reply = await self._changes(base, since, "-", "")
                records = list(_records(reply[4]))
                if records:
                    page = partial(self.engine.page_args, base, records, self.dims, self._lease)
                    small = len(reply[4]) <= OFF_LOOP_BYTES  # (else analysed off the loop)
                    args = page() if small else await heavy_in_own_thread(page)
                    keys = [*self.connection.declared(base), lease_name]
                    if int(await self.connection.run_script("INDEX_PAGE", keys, args)) < 0:
                        done = False  # the lease was lost (the backfill restarted, or ran out)
                        break
                    since = str(records[-1][1])
                if not int(reply[6]):
                    # Done only while the lease is still this process's (one step).
                    if not await call(partial(_finish, base=base, token=self._lease)):
                        done = False
                    break
                if not await call(partial(_renew, name=lease_name, token=self._lease)):
                    done = False  # it ran out, or the backfill restarted: not taken again
                    break
                if left is not None:
                    left -= 1
                    if left <= 0:
                        done = False
                        break
        return done

    def describe(self) -> str:
        """``search_engine`` for ``get_backend_info()``."""
        return self.engine.describe()

    async def aclose(self) -> None:
        await self.engine.aclose()

    async def _values(self, keys: list[str]) -> list[Any]:
        """The payloads of ``keys`` in one round trip (per shard, on a cluster)."""
        if not keys:
            return []
        names = [self.layout.value(key) for key in keys]
        return await self.connection.call(partial(mget, names=names))


def _more(reply: Any) -> bool:
    """True if a CHANGES page says its partition has more to read (``Replica`` reads it too,
    and says so if the reply is not a page)."""
    try:
        return bool(int(reply[6]))
    except (TypeError, ValueError, IndexError, KeyError):
        return False


def _index_missing(exc: BackendError) -> bool:
    """True for the engine's reply to a search of an index that does not exist."""
    message = str(exc).lower()
    return "no such index" in message or "unknown index" in message


async def _connect(client: Any) -> None:
    """Nothing to do: the call connects before it runs this."""


#: How long a backfill lease lasts unless renewed (it is, after every page): a process that
#: stops backfilling (it ended, or lost Redis) leaves the partition to another after this.
LEASE_MS = 30_000


async def _lease(client: Any, name: str, token: str) -> bool:
    """Take a backfill lease, or renew it if it is already ours; False while another process
    holds it."""
    if await client.set(name, token, nx=True, px=LEASE_MS):
        return True
    return await _renew(client, name, token)


#: Renew a lease still ``ARGV[1]``'s: one that ran out or was ended is not taken again.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


async def _renew(client: Any, name: str, token: str) -> bool:
    """Renew a backfill lease of ours mid-backfill; False if it is not ours any more."""
    return bool(int(await client.eval(_RENEW, 1, name, token, LEASE_MS)))


#: Mark a partition backfilled (``ARGV[3]`` "1") and give its lease up (a later backfill
#: need not wait for it to run out), if the lease is still ``ARGV[1]``'s; in one step, so that
#: no other process's lease is deleted, nor a restarted backfill marked done.
_FINISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == '1' then redis.call('HSET', KEYS[2], ARGV[2], '1') end
redis.call('DEL', KEYS[1])
return 1
"""


async def _finish(client: Any, base: str, token: str, mark: bool = True) -> bool:
    """End a backfill of partition ``base`` (``_FINISH``); False if the lease was lost."""
    keys = (Layout.backfill_lease(base), Layout.facts(base))
    args = (token, FACT_ENGINE_DONE, "1" if mark else "0")
    return bool(int(await client.eval(_FINISH, 2, *keys, *args)))


async def _hmget(client: Any, name: str, fields: Sequence[str]) -> list[str | None]:
    values = await client.hmget(name, list(fields))
    return [None if v is None else text_of(v) for v in values]


def _vector_bytes(document: Document) -> bytes:
    """The embedding as Redis stores it (float32, little-endian); none without one."""
    if document.vector is None:
        return b""
    from tta_dev_primitives.embeddings._vectors import encode_vector

    return encode_vector(document.vector.reshape(-1))  # several vectors: rows end to end
