"""``MemoryPrimitive``: agent memory in-process with zero setup, on Redis when configured."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Self

from tta_dev_primitives._checks import (
    DEFAULT_EMBED_TIMEOUT,
    check_count,
    check_filter,
    check_forget_scope,
    check_fraction,
    check_journal_path,
    check_key,
    check_limit,
    check_max_size,
    check_min_score,
    check_mode,
    check_namespace,
    check_new_key,
    check_optional_url,
    check_query,
    check_scope,
    check_search_engine,
    check_seconds,
    check_ttl,
)
from tta_dev_primitives.core._base import WorkflowPrimitive
from tta_dev_primitives.core._context import WorkflowContext
from tta_dev_primitives.exceptions import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    UnsentWritesError,
)
from tta_dev_primitives.memory import _lifecycle as lifecycle
from tta_dev_primitives.memory._call_order import CallOrder
from tta_dev_primitives.memory._lifecycle import MemoryPage
from tta_dev_primitives.memory._numpy import numpy_imported
from tta_dev_primitives.memory._ops import (
    AddMemory,
    ClearMemory,
    DeleteMemory,
    GetMemory,
    MemoryOperation,
    SearchMemory,
    parse_operation,
)
from tta_dev_primitives.memory._prepared import (
    DECODE_BYTES,
    decode_off_loop,
    decoded_here,
    is_small,
    prepare_now,
    prepare_off_loop,
)
from tta_dev_primitives.memory._steps import MemoryRecall, MemoryRemember, SearchOptions, TextOrFn
from tta_dev_primitives.memory._values import decode_value
from tta_dev_primitives.memory._vectors import Mode, memory_vector, search_mode
from tta_dev_primitives.search._analyzer import Analyzer
from tta_dev_primitives.search._facets import Scalar, matches
from tta_dev_primitives.search._indexing import MAX_EMBED_CHARS, Indexing
from tta_dev_primitives.stores._backoff import Backoff
from tta_dev_primitives.stores._base import Document, SearchableBackend
from tta_dev_primitives.stores._factory import backend_from_url
from tta_dev_primitives.stores._hybrid import SearchableHybrid
from tta_dev_primitives.stores._inprocess import InProcessSearchBackend
from tta_dev_primitives.stores._journal_file import JournalFile
from tta_dev_primitives.stores._recovery import DEFAULT_MAX_JOURNAL, DEFAULT_MAX_JOURNAL_BYTES
from tta_dev_primitives.telemetry._memory_ops import MemoryOp, StoreTelemetry, embed_span
from tta_dev_primitives.telemetry._metrics import instruments

if TYPE_CHECKING:
    from tta_dev_primitives.embeddings import Embedder
    from tta_dev_primitives.stores._redis.query_engine import SearchEngine

__all__ = ["HYBRID_WEIGHT", "MemoryPrimitive", "Mode", "ScoredMemory"]

#: The default semantic share of a hybrid ranking (whose semantic side takes keyword feedback,
#: ``search._fusion.feedback``). No weight is at or above its better side on every set
#: measured; 0.4 loses least on the worst of them (reply-finding and known-item questions pull
#: opposite ways; ``benchmarks/bench_fusion_rules.py``, see docs/semantic-memory.md).
HYBRID_WEIGHT = 0.4


class ScoredMemory(NamedTuple):
    """One search result: its key, its value and the score it ranked by (higher is better)."""

    key: str
    value: dict[str, Any]
    score: float


class MemoryPrimitive(WorkflowPrimitive[Any, Any]):
    """Conversation and agent memory: ``add``, ``get``, ``search``, ``delete``, ``clear``.

    With no ``redis_url`` it works at once, in-process. With one, Redis serves and an in-process
    copy of the most recent ``max_size`` memories stands by: if Redis fails, operations are served
    in-process and writes are journalled; when Redis answers again the journal is replayed, so no
    write made during the outage is lost. The API is the same either way.

    The outage journal keeps at most ``max_journal`` writes and about ``max_journal_bytes``
    bytes: a new write to a key replaces that key's journalled write, and past either cap the
    oldest journalled writes are dropped (counted in ``get_backend_info()["journal_dropped"]``,
    the ``tta.memory.journal_dropped`` counter and a ``memory.journal_dropped`` span event).

    Args:
        redis_url: URL of the Redis server, e.g. ``"redis://localhost:6379"``; ``None`` (the
            default) keeps memories in-process only.
        max_size: most memories the in-process store keeps (the least recently used go first);
            with Redis, the size of the in-process stand-by copy. At least 1.
        enable_redis: ``False`` ignores ``redis_url`` and stays in-process.
        namespace: key prefix in Redis; ``clear()`` and ``size()`` touch this namespace only.
        redis_timeout: seconds a Redis call may take before it counts as a failure and the call
            is served in-process.
        recovery_interval: seconds between the first probes of a failed Redis.
        max_recovery_interval: longest wait between probes as the backoff grows.
        text_fields: the value fields search reads, e.g. ``("content",)``; ``None`` reads every
            string field except metadata (``role``, ``type``, ``kind``, ``id``, ``status``,
            ``timestamp`` and fields ending in ``_id`` or ``_at``).
        analyzer: how text is split into search terms; the default is
            ``Analyzer("english")`` (casefolding, English stop words, Snowball stemming, a
            query's unfinished last word matched as a prefix).
        clock: a time source in seconds for TTLs (tests pass a fake clock); defaults to the
            monotonic clock.
        max_journal: most writes the outage journal keeps.
        max_journal_bytes: approximate byte cap of the outage journal.
        embed: an embedder, which turns on semantic and hybrid search: a LangChain
            ``Embeddings``, a sentence-transformers model, a batch function (sync or async)
            ``list[str] -> list[list[float]]``, a ``"provider:model"`` string, or an
            ``embeddings.Embedder`` (see ``embeddings.as_embedder``). Each memory's searched
            text is embedded once, on ``add``, and its vector stored beside it.
        dims: the embedder's dimension, checked on every vector; ``None`` learns it from the
            first one.
        hybrid_weight: the semantic share of a hybrid ranking, 0 to 1; 0 ranks exactly as
            keyword search, 1 as semantic. The default was chosen by measurement (see the
            semantic memory guide).
        search_engine: where a Redis namespace is searched: ``"auto"`` (the default) in the
            Redis Query Engine when the server has it (Redis 8, Redis Stack), else in a replica
            of the index this process keeps; ``"redis"`` always in the Query Engine (an error
            where there is none); ``"replica"`` always in the replica. See the production guide.
        embed_timeout: seconds one embedding model call may take before the ``add`` or search
            waiting on it raises ``EmbeddingError`` (an ``Embedder`` passed as ``embed`` keeps
            its own).
        load_timeout: on Redis, seconds a search waits for each page of its replica's load
            after one that said more is to come (default 10, at least ``redis_timeout``; the
            first page of each partition waits ``redis_timeout``); past it, the search is
            served in-process, as in an outage.
        max_scopes: on plain Redis, most per-user replicas a process keeps (default 256).
        scope_budget: on plain Redis, most memories all per-user replicas hold together
            (default 100,000, about 70 MB); past either cap the least recently searched go.
        journal_path: a file for a durable outage journal: writes acknowledged during an outage
            are appended and fsynced there before the call returns, and survive a crash or a
            restart; the next ``MemoryPrimitive`` on the same path replays them (before its first
            operation returns, if Redis answers). One live instance per path: a second raises
            ``JournalError``. Needs ``redis_url``; ignored with ``enable_redis=False``. See
            "The durable journal" in the production guide.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        max_size: int = 1000,
        enable_redis: bool = True,
        *,
        namespace: str = "tta:memory",
        redis_timeout: float = 1.0,
        recovery_interval: float = 1.0,
        max_recovery_interval: float = 30.0,
        text_fields: Sequence[str] | None = None,
        analyzer: Analyzer | None = None,
        clock: Callable[[], float] | None = None,
        max_journal: int = DEFAULT_MAX_JOURNAL,
        max_journal_bytes: int = DEFAULT_MAX_JOURNAL_BYTES,
        embed: Any = None,
        dims: int | None = None,
        hybrid_weight: float = HYBRID_WEIGHT,
        search_engine: SearchEngine = "auto",
        embed_timeout: float = DEFAULT_EMBED_TIMEOUT,
        load_timeout: float | None = None,
        max_scopes: int | None = None,
        scope_budget: int | None = None,
        journal_path: str | os.PathLike[str] | None = None,
    ) -> None:
        max_size = check_max_size(max_size)
        self._hybrid_weight = check_fraction("hybrid_weight", hybrid_weight)
        self._embedder: Embedder | None = None
        if embed is not None:
            from tta_dev_primitives.embeddings import as_embedder

            self._embedder = as_embedder(embed, dims, embed_timeout=embed_timeout)
        elif dims is not None:
            raise InvalidArgumentError("dims is the embedder's dimension: pass embed= with it")
        namespace = check_namespace(namespace)
        redis_timeout = check_seconds("redis_timeout", redis_timeout)
        recovery_interval = check_seconds("recovery_interval", recovery_interval)
        max_recovery_interval = check_seconds("max_recovery_interval", max_recovery_interval)
        max_journal = check_count("max_journal", max_journal)
        max_journal_bytes = check_count("max_journal_bytes", max_journal_bytes)
        redis_url = check_optional_url("redis_url", redis_url)
        if not isinstance(enable_redis, bool):  # "false" from an env var would mean True
            raise InvalidArgumentTypeError(
                f"enable_redis must be a bool, got {type(enable_redis).__name__}"
            )
        search_engine = check_search_engine(search_engine)
        # Their defaults live with the Redis backend, which is imported only with Redis.
        search_options: dict[str, Any] = {
            "load_timeout": None
            if load_timeout is None
            else check_seconds("load_timeout", load_timeout),
            "max_scopes": None if max_scopes is None else check_count("max_scopes", max_scopes),
            "scope_budget": None
            if scope_budget is None
            else check_count("scope_budget", scope_budget),
        }
        journal_path = check_journal_path(journal_path, redis_url)
        clock = clock or time.monotonic
        self._indexing = Indexing(analyzer, text_fields)
        self._order = CallOrder()  # changes take effect in the order they were called
        self._namespace = namespace
        self._max_size = max_size
        standby = redis_url is not None and enable_redis  # with Redis, evictions lose nothing
        self._local = local = InProcessSearchBackend(max_size, clock=clock, standby=standby)
        remote: SearchableBackend | None = None
        if redis_url is not None and enable_redis:  # "" is refused there, not ignored
            remote = backend_from_url(
                redis_url,
                namespace=namespace,
                timeout=redis_timeout,
                indexing=self._indexing,
                search_engine=search_engine,
                # Checked against the namespace's record of its embedder (``embedder_record``).
                embedder_model=None if self._embedder is None else self._embedder.model_id,
                **{name: value for name, value in search_options.items() if value is not None},
            )
        journal = None
        if remote is not None and journal_path is not None:
            journal = JournalFile(journal_path, namespace)
        self._store = SearchableHybrid(
            local,
            remote,
            events=StoreTelemetry(namespace),
            backoff=Backoff(recovery_interval, max_recovery_interval),
            clock=clock,
            namespace=namespace,
            max_journal=max_journal,
            max_journal_bytes=max_journal_bytes,
            journal_file=journal,
            patience=redis_timeout,
        )

    # -- the seed's API ------------------------------------------------------------------------

    async def add(
        self,
        key: str,
        value: dict[str, Any],
        ttl: float | None = None,
        *,
        vector_text: str | Sequence[str] | None = None,
    ) -> None:
        """Add or update the memory under ``key``; it expires after ``ttl`` seconds if given.

        With an embedder, the value's searched text (or ``vector_text``, if given; ``""`` for
        no vector; a list of texts for one vector each, the memory scoring by its best) is
        embedded first. If the embedder fails, ``EmbeddingError`` is raised and
        nothing is stored: a memory is never half-written. The value is read while ``add``
        runs (a large one on a worker thread): do not change it until ``add`` returns.
        """
        with self._op("add") as op:  # (bad input too is a span: refused, backend "none")
            key, ttl = check_new_key(key), check_ttl(ttl)
            embedded = self._embedder is not None and vector_text is None
            if (
                self._embedder is None
                and vector_text is None
                and not self._order.busy
                and is_small(value)
            ):
                # Nothing to wait for, and nothing awaited before the store orders it: no ticket.
                payload, terms, _ = prepare_now(self._indexing, value, text=False)
                op.report(await self._store.put(key, payload, ttl, Document(terms, None)))
                return
            # Ordered from its call: a delete, forget or clear of its key called while it reads
            # and embeds its value waits for it (``_call_order``).
            with self._order.change(key) as ticket:
                if is_small(value):
                    payload, terms, text = prepare_now(self._indexing, value, text=embedded)
                else:  # (an 8 MiB memory is seconds of Python: not on the event loop)
                    payload, terms, text = await prepare_off_loop(
                        self._indexing, value, text=embedded
                    )
                vector = await memory_vector(self._embedder, text, vector_text)
                await self._order.turn(ticket)
                op.report(await self._store.put(key, payload, ttl, Document(terms, vector)))

    async def get(self, key: str) -> dict[str, Any] | None:
        """A copy of the memory under ``key``, or None."""
        with self._op("get") as op:
            key = check_key(key)
            served = await self._store.get(key)
            op.report(served)
            payload = served.value
            if payload is None:
                value = None
            elif len(payload) > DECODE_BYTES:  # (a str or bytes of JSON)
                value = (await self._decoded([payload]))[0]
            else:
                value = self._decode(payload)
            op.outcome = "miss" if value is None else "hit"
            op.attributes["memory.hit"] = value is not None
            return value

    async def search(
        self,
        query: str,
        limit: int = 5,
        *,
        scope: str | None = None,
        mode: Mode | None = None,
        min_score: float | None = None,
        filter: Mapping[str, Scalar] | None = None,
        hybrid_weight: float | None = None,
    ) -> list[dict[str, Any]]:
        """Memories whose text matches ``query``, best first.

        Words are compared after casefolding, dropping stop words and stemming ("hiking" finds
        "hike"); an unfinished last word also matches as a prefix (a completion counting half
        the word itself). Matches rank by BM25, ties most recent first. A blank query returns
        the most recent ``limit``. Only the fields chosen by ``text_fields`` are searched (by
        default all but metadata such as ``role``).
        ``scope="u1:s1"`` keeps to keys ``u1:s1`` and ``u1:s1:...`` (whole segments only).

        ``mode`` is ``"keyword"`` (the above), ``"semantic"`` (by meaning: cosine similarity of
        the query's embedding to each memory's) or ``"hybrid"`` (both, fused with
        ``hybrid_weight``); the default is hybrid with an embedder, else keyword.
        ``min_score`` leaves out matches that score lower (see ``search_scored`` for scales).
        ``filter={"role": "user", "tags": "work"}`` keeps memories whose top-level field holds
        that value (or a list holding it), every pair; ``"a.b"`` names field ``b`` of object
        ``a``. Types count (``1``, ``True``, ``"1"`` differ). The index applies it before the
        top ``limit``, in every mode, so the ``limit`` best matching memories come back.
        ``hybrid_weight`` overrides the memory's for this search (a hybrid one): higher when
        the answer is likely worded unlike the question (a reply), lower when the question
        names what it looks for.
        """
        found = await self.search_scored(
            query,
            limit,
            scope=scope,
            mode=mode,
            min_score=min_score,
            filter=filter,
            hybrid_weight=hybrid_weight,
        )
        return [hit.value for hit in found]

    async def search_items(
        self,
        query: str,
        limit: int = 5,
        *,
        scope: str | None = None,
        mode: Mode | None = None,
        min_score: float | None = None,
        filter: Mapping[str, Scalar] | None = None,
        hybrid_weight: float | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """``search``, with each memory's key: ``(key, value)`` pairs, best first."""
        found = await self.search_scored(
            query,
            limit,
            scope=scope,
            mode=mode,
            min_score=min_score,
            filter=filter,
            hybrid_weight=hybrid_weight,
        )
        return [(hit.key, hit.value) for hit in found]

    async def search_scored(
        self,
        query: str,
        limit: int = 5,
        *,
        scope: str | None = None,
        mode: Mode | None = None,
        min_score: float | None = None,
        filter: Mapping[str, Scalar] | None = None,
        hybrid_weight: float | None = None,
    ) -> list[ScoredMemory]:
        """``search``, with keys and scores: ``ScoredMemory(key, value, score)``, best first.

        Scores order one result list; their scale depends on the mode: BM25 for keyword,
        cosine similarity (-1 to 1) for semantic, for hybrid ``(1 - w) * BM25 / its ceiling +
        w * max(cosine, 0)`` (0 to 1, whatever the other hits; the cosine to the question's
        vector with keyword feedback), and 0 for the most recent memories a blank query lists.
        ``min_score`` keeps only hits scoring at least that (the same as asking for all and
        cutting: scores come best first).
        """
        with self._op("search") as op:
            text, limit, scope = check_query(query), check_limit(limit), check_scope(scope)
            floor, wanted = check_min_score(min_score), check_filter(filter)
            asked = check_mode(mode)
            weight = self._weight(asked, hybrid_weight)
            analysed = self._indexing.query(text)
            if wanted:
                analysed = replace(analysed, filter=wanted)
            chosen = search_mode(self._embedder, asked)
            await numpy_imported()  # the index needs it: never imported on the loop
            if chosen != "keyword" and not analysed.blank:
                assert self._embedder is not None
                with embed_span(self._embedder.model_id, 1):
                    vector = await self._embedder.embed_query(text[:MAX_EMBED_CHARS])
                analysed = replace(analysed, vector=vector, mode=chosen, weight=weight)
            op.attributes["memory.search_mode"] = analysed.mode
            results: list[ScoredMemory] = []
            if analysed.terms or analysed.blank or analysed.mode != "keyword":
                served = await self._store.search(analysed, limit, scope)
                op.report(served)
                op.attributes["memory.search_engine"] = self._engine_of(served.backend)
                kept = [(k, p, s) for k, p, s in served.value if floor is None or s >= floor]
                values = await self._decoded([p for _, p, _ in kept])
                results = [
                    ScoredMemory(k, v, s) for (k, _, s), v in zip(kept, values, strict=True)
                    if v is not None
                    and matches(v, wanted)  # the index's facets are hashes: never let one slip
                ]  # fmt: skip
            op.attributes["memory.result_count"] = len(results)
            return results

    def _weight(self, mode: str | None, hybrid_weight: Any) -> float:
        """A search's hybrid weight: the memory's, or the call's (only for a hybrid search)."""
        if hybrid_weight is None:
            return self._hybrid_weight
        if mode is not None and mode != "hybrid":
            raise InvalidArgumentError(
                f"hybrid_weight applies to a hybrid search, not to mode={mode!r}"
            )
        if self._embedder is None:
            raise InvalidArgumentError(
                "hybrid_weight needs an embedder: this memory searches by keyword only "
                "(MemoryPrimitive(embed=...))"
            )
        return check_fraction("hybrid_weight", hybrid_weight)

    def _op(self, name: str) -> MemoryOp:
        """One operation's span and count; an error the remote answered with is its."""
        remote = self._store.remote
        return MemoryOp(name, self._namespace, remote=None if remote is None else remote.kind)

    def _engine_of(self, backend: str) -> str:
        """Which search engine a backend's search ran on (``memory.search_engine``)."""
        remote = self._store.remote
        if remote is None or backend != remote.kind:
            return "in-process"
        return str(getattr(remote, "search_engine", backend))

    @property
    def embedder(self) -> Embedder | None:
        """The embedder given as ``embed=`` (its ``stats()`` show cache hits), or None."""
        return self._embedder

    async def delete(self, key: str) -> bool:
        """Remove the memory under ``key``; True if there was one."""
        with self._op("delete") as op:
            key = check_key(key)
            with self._order.change(key) as ticket:
                await self._order.turn(ticket)
                served = await self._store.delete(key)
                op.report(served)
                return served.value

    async def clear(self) -> None:
        """Remove every memory in this namespace (never anything else in Redis).

        On Redis it works in pages, each under ``redis_timeout``. If Redis fails before any
        page, the clear is journalled like any write; if it fails part-way, it raises
        ``IncompleteOperationError`` saying how many were removed (run it again).
        """
        with self._order.change(None) as ticket, self._op("clear") as op:
            await self._order.turn(ticket)
            op.report(await self._store.clear())

    async def size(self) -> int:
        """How many memories this namespace holds (in-process only while degraded)."""
        with self._op("size") as op:
            served = await self._store.size()
            op.report(served)
            return served.value

    async def touch(self, key: str, ttl: float | None) -> bool:
        """Restart the memory's clock: it now expires ``ttl`` seconds from now (None: never).

        The value is unchanged; False if there is no memory under ``key``. It counts as a write
        (the memory moves to the front of ``list_memories``). On Redis it needs Redis: during an
        outage it raises ``BackendUnavailableError`` rather than leave Redis's deadline behind.
        """
        with self._op("touch") as op:
            key, ttl = check_key(key), check_ttl(ttl)
            with self._order.change(key) as ticket:
                await self._order.turn(ticket)
                served = await self._store.touch(key, ttl)
                op.report(served)
                return served.value

    async def list_memories(
        self, scope: str | None = None, *, limit: int = 100, cursor: str | None = None
    ) -> MemoryPage:
        """A page of the memories in ``scope`` (None: all), newest write first.

        Pass the page's ``cursor`` back for the next page, until it is None; a page may be
        shorter than ``limit`` and still have one after it (memories expire). On Redis it reads
        the scope's user's feed, not the namespace, and a cursor works in any process.
        """
        with self._op("list") as op:
            scope, limit = check_scope(scope), check_limit(limit)  # normalized, once
            rows, following, served = await lifecycle.page(self._store, scope, limit, cursor)
            op.report(served)
            values = await self._decoded([p for _, p in rows])
            items = [(key, v) for (key, _), v in zip(rows, values, strict=True) if v is not None]
            op.attributes["memory.result_count"] = len(items)
            return MemoryPage(items, following)

    async def forget(self, scope: str) -> int:
        """Delete every memory in ``scope`` ("forget this user": ``"u1"``; a session:
        ``"u1:s1"``); return how many there were.

        It deletes in pages of 500, each a versioned delete, so other processes' replicas and
        in-process copies drop them too. With Redis it needs Redis: if Redis fails part-way it
        raises ``IncompleteOperationError`` saying how many were deleted (run it again).
        """
        with self._op("forget") as op:
            checked = check_forget_scope(scope)  # normalized, once
            with self._order.change(checked, scope=True) as ticket:
                await self._order.turn(ticket)
                removed = await lifecycle.forget(self._store, checked)
                # It needs the remote when there is one (and raises without it): it served.
                remote = self._store.remote
                op.served("in_memory" if remote is None else remote.kind)
                op.attributes["memory.result_count"] = removed
                return removed

    # -- backend state -------------------------------------------------------------------------

    @property
    def using_redis(self) -> bool:
        """True once a Redis operation has succeeded, until Redis next fails."""
        return self._store.using_remote

    def is_using_redis(self) -> bool:
        """Same as ``using_redis``."""
        return self._store.using_remote

    @property
    def namespace(self) -> str:
        """The prefix under which this memory's keys live in Redis."""
        return self._namespace

    def get_backend_info(self) -> dict[str, Any]:
        """Which backend serves, whether Redis is configured, journal size; never a password."""
        remote = self._store.remote
        journal = self._store.journal_file
        info: dict[str, Any] = {
            "backend": "redis" if self._store.using_remote else "in-memory",
            "fallback_available": True,
            "namespace": self._namespace,
            "max_size": self._max_size,
            "url": None,
            "redis_configured": remote is not None,
            "degraded": self._store.degraded,
            "journal_size": self._store.journal_size,
            "journal_bytes": self._store.journal_bytes,
            "journal_dropped": self._store.journal_dropped,
            "journal_unconfirmed": self._store.journal_unconfirmed,
            "journal_path": None if journal is None else journal.path,
            "journal_restored": self._store.journal_restored,
            "journal_corrupt": self._store.journal_corrupt,
            "evicted": self._local.evicted,
            "recovering": self._store.recovering,
            "dead_letters": self._store.dead_letter_count,
            "dead_letter_log": list(self._store.dead_letters),
            "stale_writes": self._store.stale_count,
            "copies_dropped": self._store.copies.dropped,  # changed elsewhere (``_copies``)
            "last_error": self._store.last_error,
            "search_mode": search_mode(self._embedder, None),
            "search_engine": "in-process",
        }
        if self._embedder is not None:
            info["embedder"] = {"model": self._embedder.model_id, "dims": self._embedder.dims}
        if remote is not None:
            info.update(remote.describe())
            info["namespace"] = self._namespace
            # The namespace's embedder as this process last read it (only read with one).
            recorded = info.pop("recorded_embedder", None)
            if "embedder" in info:
                info["embedder"]["recorded"] = recorded
            if info["degraded"]:  # searches are served in-process until Redis is back
                info["search_engine"] = "in-process"
        return info

    async def items(self) -> AsyncIterator[tuple[str, dict[str, Any], float | None]]:
        """Every memory as ``(key, value, seconds left or None)``, for export and inspection.

        Reads Redis when configured, a page per call, and raises ``BackendUnavailableError`` if
        it cannot (an export must not silently list only this process's copy), or
        ``IncompleteOperationError`` with the count read if Redis fails part-way. Unreadable
        values are skipped.
        """
        async for key, payload, ttl in self._store.items():
            value = (await self._decoded([payload]))[0]
            if value is not None:
                yield key, value, ttl

    async def flush(self) -> bool:
        """Try to replay writes journalled during an outage now; True if none are left."""
        with self._op("flush") as op:
            served = await self._store.flush()
            op.report(served)
            return served.value

    async def aclose(self) -> None:
        """Replay any journalled writes if Redis is back, then close connections.

        Writes still journalled because Redis is down are lost with the process: after closing
        everything, ``UnsentWritesError`` says how many (also counted in ``journal_dropped``),
        and apart from them how many a replay had sent without seeing the reply, which Redis
        may hold (``.unconfirmed``, counted in ``journal_unconfirmed``).
        With ``journal_path`` they stay in the file instead, for the next process to replay.
        """
        # A span of its own: the writes lost with the close are its memory.journal_dropped
        # event, and its UnsentWritesError marks it failed.
        with self._op("close") as op:
            op.served("redis" if self._store.using_remote else "in_memory")
            try:
                await self.flush()
            finally:
                try:
                    await self._store.aclose()
                finally:
                    if self._embedder is not None:
                        await self._embedder.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.aclose()
        except UnsentWritesError:
            if exc is None:
                raise  # else the error that ended the block goes on; this one is in the log

    def _decode(self, payload: Any) -> dict[str, Any] | None:
        return _counted(decode_value(payload))

    async def _decoded(self, payloads: Sequence[Any]) -> list[dict[str, Any] | None]:
        """``_decode`` of each stored payload: on a worker thread when they are large."""
        if decoded_here(payloads):
            return [self._decode(p) for p in payloads]
        return [_counted(value) for value in await decode_off_loop(payloads)]

    # -- composition ---------------------------------------------------------------------------

    async def execute(self, input_data: Any, context: WorkflowContext) -> Any:
        """Run a typed operation (``AddMemory``, ``GetMemory``, ``SearchMemory``, ...)."""
        op: MemoryOperation = parse_operation(input_data)
        if isinstance(op, AddMemory):
            return await self.add(op.key, op.value, op.ttl)
        if isinstance(op, GetMemory):
            return await self.get(op.key)
        if isinstance(op, SearchMemory):
            return await self.search(
                op.query, op.limit, scope=op.scope, mode=op.mode, min_score=op.min_score,
                filter=op.filter, hybrid_weight=op.hybrid_weight,
            )  # fmt: skip
        if isinstance(op, DeleteMemory):
            return await self.delete(op.key)
        assert isinstance(op, ClearMemory)
        return await self.clear()

    def recall(
        self,
        query: TextOrFn,
        *,
        limit: int = 5,
        scope: TextOrFn | None = None,
        into: str = "memories",
        mode: Mode | None = None,
        hybrid_weight: float | None = None,
        min_score: float | None = None,
        filter: Mapping[str, Scalar] | None = None,
    ) -> WorkflowPrimitive[Any, Any]:
        """A step that searches and puts the results in ``context.state[into]``.

        ``query`` and ``scope`` are strings or functions ``(input, ctx) -> str``; ``mode``,
        ``hybrid_weight``, ``min_score`` and ``filter`` as in ``search``, checked here. The
        input passes through unchanged, so ``memory.recall(...) >> llm`` hands the LLM its
        input.
        """
        if not callable(query):
            check_query(query)
        if scope is not None and not callable(scope):
            check_scope(scope)
        check_limit(limit)
        search_mode(self._embedder, check_mode(mode))
        self._weight(mode, hybrid_weight)
        check_min_score(min_score)
        check_filter(filter)
        if not isinstance(into, str) or not into:
            raise InvalidArgumentError("into must be a non-empty str (the context.state key)")
        options = SearchOptions(mode=mode, hybrid_weight=hybrid_weight, min_score=min_score,
                                filter=None if filter is None else dict(filter))  # fmt: skip
        return MemoryRecall(self, query, limit, scope, into, options)

    def remember(
        self,
        key: TextOrFn,
        value: Callable[[Any, WorkflowContext], dict[str, Any] | Awaitable[dict[str, Any]]],
        *,
        ttl: float | None = None,
    ) -> WorkflowPrimitive[Any, Any]:
        """A step that stores ``value(output, ctx)`` under ``key(output, ctx)`` (or ``key``
        itself, a str); passes through. A fixed key or a fixed query and scope of ``recall``
        is checked here, as ``add`` and ``search`` would check it."""
        if not callable(key):
            check_new_key(key)
        if not callable(value):
            raise InvalidArgumentTypeError("value must be a function (output, ctx) -> dict")
        return MemoryRemember(self, key, value, check_ttl(ttl))

    def __repr__(self) -> str:
        backend = "redis" if self._store.remote is not None else "in-memory"
        return f"MemoryPrimitive(namespace={self._namespace!r}, backend={backend!r})"


def _log_invalid() -> None:
    import logging

    logging.getLogger("tta_dev_primitives.memory").warning(
        "ignored a stored memory that is not a JSON object (content not logged)"
    )


def _counted(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A decoded stored memory; one that was not a JSON object (None) is counted and logged."""
    if value is None:
        instruments().invalid_values.add(1)
        _log_invalid()
    return value
