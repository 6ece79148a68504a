"""Search inside Redis, with its Query Engine (RediSearch, ``FT.*``), where the server has it.

Redis 8 ships the Query Engine, and Redis Stack and managed Redis offer it. With it, a search
costs the process no replica: each memory also gets a small search document (``f:<key>``, a
hash written by the same Lua script as the value; see ``layout``) that one ``FT.SEARCH``
index per namespace covers:

- ``t``: the memory's terms from *our* analyzer, each repeated as often as it occurs, in a
  TEXT field the engine neither stems nor stop-words again, so our stemming, stop words and
  fields decide the words. A term that is not plain ``[a-z0-9]`` is written as ``_`` and its
  UTF-8 in hex, so the engine's tokenizer never splits it (hex keeps prefixes, so an
  unfinished last word still matches as a prefix).
- ``w``: the memory's stop words written as names ("Will", "The Who"), as a TAG of their
  tokens (encoded as in ``t``; repeated as they occur, which the engine reads once, and with
  level tags for a name held 2, 4, 8, 16 times, ``keywords.name_levels``): the engine's own
  BM25 counts every token of ``t`` in a document's length, and none of a TAG, and in-process
  BM25 leaves names out of it (a memory in capitals, full of such words, looked long to the
  engine, which then left it out of its candidates).
- ``s``: a TAG per scope the key belongs to (each ``:`` prefix, and the key itself), as a short
  hash: no escaping, any length. Results are checked against the scope, so a hash collision
  can cost a result, never leak one.
- ``q``: the write sequence, for newest-first ties and "most recent" listings.
- ``e``: the first vector (HNSW, cosine); a memory's further vectors are ``fv:<i>:<key>``
  documents with the same tags, and a memory scores by its best.
- ``n``: the memory's length as our BM25 counts it (stop words left out); the write scripts
  keep each partition's document count and total length beside it (``n.ftdocs``, ``n.ftlen``),
  and each first key segment's (``fs``: one user's, for a search scoped to that user).

Keyword search ranks with the library's own BM25: the engine proposes candidates (its own
``BM25STD`` top few hundred) and ``keywords`` scores them with ``search._bm25``'s formula and
statistics fetched in the same round trip, the scope's when scoped, so keys, order and scores
are in-process's. Semantic search is the engine's KNN with the scope as a pre-filter: exact (every
vector compared) on a server whose index holds fewer than ``queries.EXACT_BELOW`` documents, as
in-process below its own threshold; past it, HNSW (``queries.semantic``). Hybrid
fuses the two candidate lists with the same ``_fusion`` as in-process (``engine_search``).
Ties go to the newest write in every mode, except equal keyword scores among more than
``MAX_TIE_SORT`` matches, which keep the engine's order (sorting them would cost a scan of
every match).

The index is made once per namespace by the first process that wants it: it creates the index
(``<ns>:idx2``, with no scan of the server's keys when the namespace has no documents yet; it
drops an older version's ``<ns>:idx``, whose documents lack ``n``), then sets
``n.ft`` in every partition (from then on every write keeps its document, indexed as it is
written), then backfills documents for memories written before, in bounded pages, each
idempotent, recording its progress in Redis (``n.ftnext``, ``n.ftdone``) so that another process
resumes a backfill that stopped. ``n.ftform`` names the documents' form: a namespace whose
documents predate facets (field filters) or segment totals is backfilled again from the start,
rewriting each document whose tags differ or that its segment's totals do not count; a form
newer than this version's (a later version got there first, in a rolling upgrade) is left as it
is, and this process searches with its replica until it is upgraded. The first
embedder's size becomes the index's vector field (``n.ftdims``; adding it backfills again, so
older vectors are in it). Until the index is whole, searches go to the replica, so no answer
ever misses a memory.

On a Redis Cluster whose servers have the engine but no coordinator (RediSearch without
``RSCoordinator``, as the module loads by itself), each master indexes its own documents: its
index is ``<ns>:idx2:{<tag>}``, the tag chosen so that the name's slot is that master's (the
engine refuses, with MOVED, an index whose name another master owns). A search asks every master
at once and merges their best hits, or only the master of the scope's partition when the scope
names one (``user:session``). Keyword statistics are summed over the masters asked (the
namespace's over every partition), so scores are the whole namespace's, as on one server. When
masters change (a failover, resharding, a new master), the next search finds the new layout and
makes the indexes it lacks; the engine indexes the documents already on a master before searches
use it. Each name is checked against the slots its master says it serves (``_check_names``): a
client's slot map that lags a failover makes an outage, never a second index or a verdict that
the engine is absent; a master holding more than one of the namespace's indexes keeps the one
named for it (``_drop_extra``); and a cluster's "absent" verdict is made again later."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Final, Literal

from tta_dev_primitives._blocked import (
    LoopLock,
    alive,
    cancel_on_its_loop,
    finished_elsewhere,
    fork_safe,
    running_loop,
    stranded,
)
from tta_dev_primitives._gather import gather_all
from tta_dev_primitives.exceptions import (
    BackendError,
    BackendRefusedError,
    BackendUnavailableError,
    InvalidArgumentError,
)
from tta_dev_primitives.search._analyzer import Query
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.stores._base import NotServedNow
from tta_dev_primitives.stores._redis import engine_search
from tta_dev_primitives.stores._redis.documents import (
    NAMES_FIELD,
    doc_length,
    names_text,
    scope_tags,
    terms_text,
    vector_field,
)
from tta_dev_primitives.stores._redis.layout import (
    EXPIRY,
    FACT_ENGINE,
    FACT_ENGINE_CURSOR,
    FACT_ENGINE_DIMS,
    FACT_ENGINE_DONE,
    FACT_ENGINE_FORM,
    TOMBS,
    Layout,
)
from tta_dev_primitives.stores._redis.replies import text
from tta_dev_primitives.stores._redis.shards import (
    Call,
    Shard,
    canonical_index,
    each_partition,
    facts,
    has_vectors,
    index_docs,
    index_info,
    mark,
    master_index,
    own_slots,
    owns,
    redirected,
    still_owned,
)

__all__ = ["ENGINES", "QueryEngine", "SearchEngine", "query_timeout_ms", "restart_backfill"]

log = logging.getLogger("tta_dev_primitives.memory")

#: The form of the documents this version writes (``n.ftform``): 2 since their ``s`` tags hold
#: the memory's facets (field filters); 3 since each is counted in its first segment's totals
#: (``c``, ``Layout.segment_totals``); 4 since words keep their combining marks (``_analyzer``:
#: Hindi, pointed Hebrew and Arabic, decomposed accents) and a term past ``MAX_TOKEN`` is a
#: digest; 5 since Thai, Lao, Khmer and Myanmar are cut into cluster grams, as CJK is; 6 since
#: names (capitalised stop words) are in ``w``, out of ``t`` and so out of the engine's length
#: (an index made before gets the field: ``_add_names``). A namespace in another form is
#: backfilled again (documents whose terms or names differ).
DOCUMENTS: Final = "6"


#: How long a claimed vector size binds the processes about to make the index or add its vector
#: field (milliseconds): far longer than a set-up's FT.CREATE / FT.ALTER on every master takes,
#: and short, so that an index dropped by hand is made again at the next embedder's size.
DIMS_CLAIM_MS: Final = 60_000

#: After a set-up failed for availability on a cluster, no call waits for one, and it is tried
#: again in the background at most this often (seconds): see ``QueryEngine.prepare``.
SET_UP_AGAIN_AFTER: Final = 2.0


async def _claim_dims(client: Any, bases: list[str], dims: int) -> int:
    """The vector size every process making the index (or adding its vector field) now uses:
    the first claim's, ``dims`` if none is held. Without it two processes of different
    embedders meeting a new namespace on a cluster each made some masters' indexes, at their
    own size: the other side's searches by meaning then failed on those masters, and their
    documents (whose vectors the engine refuses) were backfilled again and again."""
    key = Layout.dims_claim(bases[0])  # partition 0's slot: one key for the namespace
    await client.set(key, str(dims), nx=True, px=DIMS_CLAIM_MS)
    held = await client.get(key)
    try:
        return int(text(held)) if held is not None else dims
    except ValueError:
        return dims


def _holds_rows(vector: bytes, dims: int) -> bool:
    """True if a memory's stored vector bytes are whole unit vectors of ``dims`` (not another
    model's vector whose size is a multiple of it: ``stored_rows``)."""
    from tta_dev_primitives.embeddings._vectors import decode_vector, stored_rows

    try:
        stored_rows(decode_vector(vector, max(len(vector) // 4, 1)), dims)
    except InvalidArgumentError:
        return False
    return True


async def _empty(client: Any, bases: list[str]) -> list[str]:
    """The partitions that hold no memory and no tombstone (nothing a backfill would read)."""
    live = await each_partition(client, bases, lambda base: ("ZCARD", Layout.live(base)))
    tombs = await each_partition(client, bases, lambda base: ("ZCARD", base + TOMBS))
    return [base for base, n, t in zip(bases, live, tombs, strict=True) if not (n or t)]


#: Restart a partition's backfill: forget its progress and end the lease of any process
#: backfilling it now, in one step. That process writes no page more (``INDEX_PAGE`` checks
#: the lease) and cannot mark the partition done from its own, older, progress: one without
#: this process's embedder, say, would leave the vectors of the new vector field unwritten.
_RESTART = """
redis.call('HDEL', KEYS[1], ARGV[1], ARGV[2])
redis.call('DEL', KEYS[2])
return 1
"""


#: Documents the engine may lack, against the namespace's live memories, before they count as
#: lost (at least this many, or a hundredth of the memories): the two are read a moment apart,
#: and a memory deleted in between is counted by one and not the other.
LOST_SLACK: Final = 10


async def _memories(client: Any, bases: list[str]) -> int:
    """The namespace's live memories, as ``size`` counts them (expired ones left out)."""
    now_ms = int(time.time() * 1000)
    live = await each_partition(client, bases, lambda base: ("ZCARD", Layout.live(base)))
    gone = await each_partition(
        client, bases, lambda base: ("ZCOUNT", base + EXPIRY, "-inf", now_ms)
    )
    return sum(int(n) for n in live) - sum(int(n) for n in gone)


async def restart_backfill(client: Any, bases: list[str]) -> None:
    """Make every partition's backfill start again from the first memory (``_RESTART``)."""
    for base in bases:
        keys = (Layout.facts(base), Layout.backfill_lease(base))
        await client.eval(_RESTART, 2, *keys, FACT_ENGINE_DONE, FACT_ENGINE_CURSOR)


#: The longest ``TIMEOUT`` the engine takes as given (ms, about 24.8 days): RediSearch 2.10
#: keeps it in 32 bits, so 2**31 timed every query out at once and 2**32 + 100 allowed 100 ms.
MAX_QUERY_TIMEOUT_MS: Final = 2**31 - 1


def query_timeout_ms(timeout: float) -> int:
    """Each engine query's ``TIMEOUT`` when the client waits ``timeout`` seconds for it: half
    as long again and 100 ms more, so the client gives up before the engine would cut a query
    short (what the engine sends then is never read); at most ``MAX_QUERY_TIMEOUT_MS``."""
    return min(math.ceil(timeout * 1500) + 100, MAX_QUERY_TIMEOUT_MS)


def _newer_form(form: str | None) -> bool:
    """True for a documents' form a later version wrote (a number above ``DOCUMENTS``)."""
    return form is not None and form.isascii() and form.isdigit() and int(form) > int(DOCUMENTS)


#: Times a discovery makes a cluster's missing indexes and finds them still missing with no
#: refusal (the masters or their slots moved in between) before it gives up as an outage.
MAKE_TRIES: Final = 3
#: Seconds after which a cluster's "absent" verdict (no engine on some master, or the index
#: refused) is checked again, if no change of masters or slots had it checked before.
RECHECK_ABSENT: Final = 60.0
#: Seconds for which a master's own word on its slots may disagree with the client's slot map
#: (each discovery then an outage, after which the map is asked for again) before the map is
#: taken as it is: a failover's map settles within seconds; a node that says otherwise for
#: good (a proxy's view, say) must not stop the engine.
TRUST_MAP_AFTER: Final = 120.0


def _read_outcome(task: asyncio.Task[None]) -> None:
    """A set-up's end, read so that a failure no caller waited for is not reported as never
    retrieved (it left the engine stale: the next operation sets it up again)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.debug("setting up the Redis Query Engine stopped: %s", exc)


async def _layout_moved(client: Any) -> None:
    """Raised in a call (``connection.call``): an outage, after which the connection asks the
    cluster for its slot map again."""
    from redis import exceptions as rexc

    raise rexc.ClusterError(
        "the Query Engine index was missing again right after it was made (the cluster's "
        "masters or slots moved meanwhile, or another client dropped it)"
    )


#: Seconds for which a server's document count (``queries.EXACT_BELOW``) is taken as last read.
COUNT_EVERY: Final = 10.0


SearchEngine = Literal["auto", "redis", "replica"]
ENGINES: Final = ("auto", "redis", "replica")


class QueryEngine:
    """One namespace's index in the Redis Query Engine, and the searches run on it.

    ``call`` runs work under the backend's timeout; ``bases`` are the partitions' key prefixes.
    """

    def __init__(self, namespace: str, mode: SearchEngine, indexing: Indexing) -> None:
        self.mode: SearchEngine = mode
        self.namespace = namespace
        self.name = Layout.index_name(namespace)
        self.cluster = False
        #: The masters' layout the shards were found for, and the shards (see ``shards``).
        self._layout: tuple[tuple[str, ...], list[Shard]] | None = None
        self.indexing = indexing
        #: The partitions' key prefixes, as the last ``prepare`` had them.
        self.bases: list[str] = []
        #: unknown (not asked yet), absent (no engine, or not ours to use), building, ready
        self.state = "unknown"
        self.dims: int | None = None  # of the index's vector field, once it has one
        #: Each query's ``TIMEOUT`` (ms): past the client's own, so the engine never cuts a
        #: query short and answers part of it while the client still waits (``Shard.tail``).
        self.timeout_ms = 0
        self._no_engine = False
        #: (monotonic) when a cluster's "absent" verdict is checked again; None: never
        self._recheck_at: float | None = None
        #: Each master's slots as it said itself in the last discovery (``own_slots``).
        self._owned: dict[str, list[tuple[int, int]]] = {}
        #: (monotonic) since when a master's own slots disagree with the slot map, if they do
        self._disagree_since: float | None = None
        self._trusting_map = False  # warned: they disagreed for longer than TRUST_MAP_AFTER
        self._stale = False  # cleared here: check the index's facts again
        self._relayout = False  # stale only because the masters or their slots moved
        #: A set-up on a new layout is discovering it: once it has read the new masters,
        #: ``shards`` name indexes it may not have made or scanned yet; no search uses them.
        self._moving = False
        self._await_scan = False  # the engine scans documents that predate its index
        self._backfill: asyncio.Task[None] | None = None
        #: Each index's document count (by its name) and when it was read (monotonic).
        self._counts: dict[str, tuple[float, int]] = {}
        self._lock = LoopLock()
        # Threads each with its own loop (a loop lock each): one loop's setting up at a time,
        # which the others wait for (else each made the index and backfilled it).
        self._setting_up: asyncio.Task[None] | None = None
        self._claim = fork_safe(threading.Lock())  # held to read or start ``_setting_up``
        #: Set-ups that failed for availability so far, and the last one's error: a caller
        #: that waited for one meanwhile gives up at once (``_after_other_loops``), as a
        #: ``Connection.call`` that waited for a slot does, instead of trying again.
        self._failures = 0
        self._last_failure = ""
        #: (monotonic) a cluster's set-up failed for availability: until one succeeds, no call
        #: waits for one, which is tried again in the background from this time on.
        self._set_up_again_at: float | None = None

    @property
    def in_use(self) -> bool:
        """True when searches run in the engine (the index is whole)."""
        return self.state == "ready"

    def describe(self) -> str:
        """``search_engine`` for ``get_backend_info()``."""
        if self.in_use:
            return "redis"
        if self.state == "building":
            return "replica (building the Redis Query Engine index)"
        if self.state == "unknown" and self.mode != "replica":
            return "unknown (not connected yet)"
        return "replica"

    # -- setting up ----------------------------------------------------------------------------

    @property
    def writes_documents(self) -> bool:
        """False once it is known that no process can keep documents here (no engine)."""
        return not self._no_engine

    async def prepare(
        self,
        call: Call,
        bases: list[str],
        cluster: bool,
        backfill: Callable[[int | None], Awaitable[bool]],
        dims: int | None,
        *,
        searching: bool = False,
        wait_at_most: float | None = None,
    ) -> None:
        """Learn (once) whether this namespace searches in the engine, making the index if it
        is not there, giving it a vector field of ``dims`` (this process's embedder's size) and,
        before a search, backfilling it; a process that chose ``"replica"`` only learns what the
        index holds, at its first search (its writes need nothing from the engine, and ask
        nothing). A write needs only the first two: while a backfill runs it costs nothing.

        Once the engine is set up, a change of masters or slots sets it up again on the new
        layout (``_relayout``): a write does not wait for that (its documents are indexed wherever
        they land, or scanned once a new master's index is made), and a search waits at most
        ``wait_at_most`` seconds, then is served in-process (``NotServedNow``: this search
        alone, the store stays on Redis), while the set-up goes on: also once that set-up has
        read the new layout (``_moving``), as the indexes it names may not be made or scanned
        yet (a search there found too little, or one missing and waited for the set-up)."""
        self.cluster = cluster
        self.bases = bases
        if self.mode == "replica" and not searching:
            # A write needs nothing from the engine: its script keeps the memory's document
            # only if the partition says the namespace has an index (``n.ft``), whoever made
            # it. Discovery asks every master (FT.INFO), and with one of them stalled each
            # write then waited the whole timeout for an answer it does not use.
            return
        seen = self._failures  # before waiting: a set-up that fails meanwhile ends the wait
        if cluster and self.state in ("building", "ready") and not self._stale:
            self._relayout = self._stale = not await call(self._same_layout)  # masters/slots moved
        elif (
            cluster
            and self.state == "absent"
            and self._recheck_at is not None
            and not self._stale
            and (time.monotonic() >= self._recheck_at or await call(self._moved))
        ):
            # A verdict of "absent" holds for this layout: once masters or slots moved (a new
            # master may have the engine; a refusal may have been lifted), or after a while,
            # it is made again.
            self._stale = True
        vectors_known = dims is None or bool(self.dims)
        moving = searching and self._moving
        if not (self._stale or moving) and (
            self.state == "absent"
            or (self.state == "ready" and vectors_known)
            or (self.state == "building" and vectors_known and not searching)
            or (self.state == "building" and vectors_known and self._backfilling)
        ):
            return
        set_up = functools.partial(self._set_up, call, bases, cluster, backfill, dims, searching)
        if cluster and self._set_up_again_at is not None:
            if time.monotonic() >= self._set_up_again_at:
                self._set_up_again_at = time.monotonic() + SET_UP_AGAIN_AFTER
                self._in_background(functools.partial(
                    self._set_up, call, bases, cluster, backfill, dims, False
                ))  # fmt: skip
            if searching:
                raise self._not_set_up()
            return
        if not ((self._relayout or moving) and self.state in ("building", "ready")):
            try:
                async with self._lock():
                    await self._after_other_loops(set_up, seen)
            except BackendUnavailableError as exc:
                if cluster:
                    # The set-up asks every master: with one stalled, a process started then
                    # got none of its writes to the others through, the replay's included
                    # (review R43), and each search put the store in its outage, the next
                    # replay ending it (review R46). A write needs nothing the set-up makes
                    # but the index an earlier process made (its script keeps the document
                    # where its partition says so); a search is served in-process, the store
                    # staying on Redis. This call's timeout is spent (a write is journalled);
                    # the next ones wait for no set-up until one, in the background, ends.
                    self._set_up_again_at = time.monotonic() + SET_UP_AGAIN_AFTER
                    if searching:
                        raise self._not_set_up() from exc
                raise
            return
        if not searching:
            self._in_background(set_up)
            return
        try:
            async with asyncio.timeout(wait_at_most):
                async with self._lock():
                    await self._after_other_loops(set_up, seen)
        except TimeoutError:
            raise NotServedNow(
                f"the Redis Query Engine is being set up again for namespace "
                f"{self.namespace!r} on the cluster's new layout (its masters or slots moved), "
                f"not done within {wait_at_most:g}s; it goes on meanwhile"
            ) from None

    def _not_set_up(self) -> NotServedNow:
        return NotServedNow(
            f"the Redis Query Engine could not be set up for namespace {self.namespace!r} (a "
            f"master did not answer: {self._last_failure}); this search is served in-process, "
            f"and the set-up is tried again in the background every {SET_UP_AGAIN_AFTER:g}s"
        )

    def _in_background(self, set_up: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start ``set_up()`` as a task of this loop unless a set-up runs already (this loop's
        or another's), without waiting for it; its failure leaves the engine stale, so the
        next operation starts it again."""
        loop = running_loop()
        with self._claim:
            task = self._setting_up
            if alive(task) and (task.get_loop() is loop or not stranded(task.get_loop())):
                return
            self._start(loop, set_up)

    def _start(
        self, loop: asyncio.AbstractEventLoop, set_up: Callable[[], Coroutine[Any, Any, None]]
    ) -> asyncio.Task[None]:
        """``set_up()`` as the set-up under way, a task of ``loop`` (under ``_claim``)."""
        task = self._setting_up = loop.create_task(self._counted(set_up()))
        task.add_done_callback(_read_outcome)
        return task

    async def _counted(self, set_up: Awaitable[None]) -> None:
        """Await ``set_up``, counting it if it fails for availability (in the task, before it
        ends): callers waiting meanwhile give up (``_after_other_loops``)."""
        try:
            await set_up
        except BackendUnavailableError as exc:
            self._last_failure = str(exc)
            self._failures += 1
            raise

    async def _after_other_loops(
        self, set_up: Callable[[], Coroutine[Any, Any, None]], seen: int
    ) -> None:
        """Run ``set_up()`` (as a task of this loop) once no other thread's loop is setting up
        this engine: one that is is waited for (what it did, ours then need not do again),
        unless that loop will not finish it meanwhile (stopped, closed). A caller that stops
        waiting (cancelled, or past its time) leaves the set-up running.

        If a set-up failed for availability since the caller began to wait (``seen``: the
        count of such failures then), the caller gives up at once with that outage: the set-ups
        it waited behind took their timeout each, and one more would take another (review
        R30: writes waiting in turn on the lock took many timeouts while a master was stalled).
        """
        loop = running_loop()
        while True:
            if self._failures != seen:
                raise BackendUnavailableError(
                    f"Redis unavailable: setting up the Query Engine for namespace "
                    f"{self.namespace!r} failed while this call waited ({self._last_failure})"
                )
            with self._claim:
                task = self._setting_up
                other = task.get_loop() if alive(task) else None
                if other is None or (other is not loop and stranded(other)):
                    task = self._start(loop, set_up)
                    break
            assert task is not None  # (alive, on ``other``)
            if other is loop:  # (one a caller left running, or started in the background)
                await asyncio.wait([task])
            elif not await finished_elsewhere(task):
                await asyncio.sleep(0.001)
        await asyncio.shield(task)

    async def _set_up(
        self,
        call: Call,
        bases: list[str],
        cluster: bool,
        backfill: Callable[[int | None], Awaitable[bool]],
        dims: int | None,
        searching: bool,
    ) -> None:
        if self.state == "unknown" or self._stale:
            relayout, self._stale, self._relayout = self._relayout, False, False
            self._moving = relayout
            try:
                await self._discover(call, bases, cluster, dims)
            except BaseException:
                # (An outage, say): the next operation discovers again, as it would have.
                self._stale, self._relayout = True, relayout
                raise
            finally:
                self._moving = False
            self._set_up_again_at = None
        if self.state in ("building", "ready") and dims is not None and self.dims is None:
            await self._add_vectors(call, bases, dims)
        if self.state == "building" and searching:
            await self._check_ready(call, bases, backfill, dims)

    @property
    def _backfilling(self) -> bool:
        return alive(self._backfill)  # one left on a closed loop never finishes: start anew

    async def _discover(
        self, call: Call, bases: list[str], cluster: bool, dims: int | None
    ) -> None:
        self._recheck_at = None
        info = await call(self._infos)
        tries = 0
        while True:
            if info is None:  # no Query Engine, or we may not use it
                if self.mode == "redis":
                    raise BackendError(
                        "search_engine='redis' needs the Redis Query Engine (FT.* commands: "
                        "Redis 8, Redis Stack or a managed Redis with search), which this "
                        "server does not offer, or this Redis user may not use (FT.INFO was "
                        "refused: see the Query Engine's ACL in docs/production.md); use "
                        "search_engine='auto' to search with a replica instead"
                    )
                self._no_engine = True
                self._absent(cluster)
                return
            self._no_engine = False
            if self.mode == "replica":
                self.dims, self.state = info.get("dims"), "absent"
                return
            if info.get("exists"):
                break
            if tries == MAKE_TRIES:
                await call(_layout_moved)  # (raises: an outage; the slot map is asked again)
            tries += 1
            # Documents written before this index (an index dropped by hand, slots moved to a
            # master without one) are indexed by the engine's own scan: wait for it to end.
            self._await_scan = any(
                f == "1" for f in await call(lambda c: facts(c, bases, FACT_ENGINE))
            )
            refused: BackendError | None = None
            size = info.get("dims") or dims  # a new master's index matches the others'
            if dims and not info.get("dims"):
                # No master has the field yet: another process, with another embedder (a
                # rolling deploy to a new model), may be making the index right now. Agree on
                # one size first, or each master keeps whichever create reached it first.
                size = await call(functools.partial(_claim_dims, bases=bases, dims=dims))
            try:
                scan = self._await_scan
                await call(functools.partial(self._create, bases=bases, dims=size, scan=scan))
            except BackendUnavailableError:
                raise  # an outage, or the layout moved under the create: not a verdict
            except BackendError as exc:  # we may not (ACL)
                refused = exc
            info = await call(self._infos)
            if info is not None and not info.get("exists") and refused is not None:
                # We may not create it (ACL): search with a replica.
                if self.mode == "redis":
                    # (Refused as the data or the user is: OOM, an ACL. The caller sees which.)
                    kind = (
                        BackendRefusedError
                        if isinstance(refused, BackendRefusedError)
                        else (BackendError)
                    )
                    raise kind(
                        f"search_engine='redis': the Query Engine index {self.name!r} does not "
                        f"exist and could not be created ({refused})"
                    )
                self._absent(cluster)
                return
            # Made without a refusal, and still missing: the masters or their slots moved
            # between the create and the check (or another process dropped it). Again, with
            # the layout there is now.
        if info.get("indexing"):  # made by another process, which it still scans: wait too
            self._await_scan = True
        if cluster:
            await call(self._drop_extra)
        # Only now (the index exists, so every document is indexed as it is written) do writes
        # start keeping documents; again after an unversioned clear dropped the flag.
        self.dims = info.get("dims")
        await call(lambda c: mark(c, bases, FACT_ENGINE, "1"))
        forms = await call(lambda c: facts(c, bases, FACT_ENGINE_FORM))
        newer = max((f for f in forms if _newer_form(f)), key=int, default=None)
        if newer is not None:
            self._leave_newer_form(newer)
            return
        added = False
        if not info.get("names"):
            try:
                added = await call(self._add_names)
            except BackendUnavailableError:
                raise
            except BackendError as exc:  # we may not (an ACL without +ft.alter)
                self._names_refused(exc, cluster)
                return
        if added or any(form != DOCUMENTS for form in forms):
            # Documents kept in an older form (without facets) are written again by a backfill
            # from the start; until it is done, searches use the replica.
            await call(lambda c: restart_backfill(c, bases))
            await call(lambda c: mark(c, bases, FACT_ENGINE_FORM, DOCUMENTS))
        if self.dims:
            await call(lambda c: mark(c, bases, FACT_ENGINE_DIMS, str(self.dims)))
        # A partition that holds no memory now that every write keeps its document has nothing
        # to backfill: done at once. Otherwise a namespace filled by writes alone (an import, a
        # loader that never searches) was backfilled at its first search, its whole change feed
        # read and analysed again in every searching process, while searches used the replica.
        empty = await call(lambda c: _empty(c, bases))
        if empty:
            await call(lambda c: mark(c, empty, FACT_ENGINE_DONE, "1"))
        self.state = "building"

    def _names_refused(self, exc: BackendError, cluster: bool) -> None:
        """The index, made by an earlier version, lacks the ``w`` field (form 6) and this user
        may not add it: search with a replica (``search_engine="redis"``: say why)."""
        message = (
            f"the Query Engine index {self.name!r} was made by an earlier version and lacks "
            f"the field 'w' (names), which could not be added ({exc})"
        )
        if self.mode == "redis":
            kind = BackendRefusedError if isinstance(exc, BackendRefusedError) else BackendError
            raise kind(f"search_engine='redis': {message}; grant +ft.alter once") from None
        log.warning("%s; searches use a replica", message)
        self._absent(cluster)

    def _absent(self, cluster: bool) -> None:
        """Search with a replica; on a cluster, until the layout changes or ``RECHECK_ABSENT``
        passes (``prepare`` then discovers again)."""
        self.state = "absent"
        self._recheck_at = time.monotonic() + RECHECK_ABSENT if cluster else None

    async def _moved(self, client: Any) -> bool:
        """True if the cluster's masters or slots changed since the last discovery."""
        layout = self._layout
        return layout is not None and not still_owned(client, layout)

    def _leave_newer_form(self, form: str) -> None:
        """A later version keeps this namespace's documents in ``form``: marking them this
        version's form again would restart its backfill, and the later version's after it, for
        as long as both run. Its documents are left alone; searches use the replica."""
        message = (
            f"the Query Engine documents of namespace {self.namespace!r} are in form {form}, "
            f"newer than this version's ({DOCUMENTS}): a later version of tta-dev-primitives "
            "keeps them"
        )
        if self.mode == "redis":
            raise BackendError(
                f"search_engine='redis': {message}; upgrade this process, or use "
                "search_engine='auto' to search with a replica until then"
            )
        log.warning("%s; this process searches with a replica until it is upgraded", message)
        self.state = "absent"

    async def _create(self, client: Any, bases: list[str], dims: int | None, scan: bool) -> None:
        """Make the index on every server that lacks it (another process may be making it too).

        Every master's index lists every partition's prefix: a partition may move to any of them.
        Without documents to find (``scan`` False) the engine skips its scan of the keyspace: a
        document written while it ran was indexed twice, and the engine counts the old copy in
        its statistics until its garbage collector runs, which waits for 100 of them.
        """
        from redis import exceptions as rexc

        from tta_dev_primitives.stores._redis.errors import SlotsMoved

        for shard in self.shards(client):
            args = self._create_args(shard.name, bases, dims, scan)
            try:
                if shard.node is None:
                    await client.execute_command(*args)
                else:
                    # On that master itself, never redirected: a master that no longer owns
                    # the name's slot answers MOVED, and the one that does now must not get
                    # an index named for another (it would keep two: ``_drop_extra``).
                    await shard.node.execute_command(*args)
            except rexc.ResponseError as exc:
                if redirected(exc):
                    raise SlotsMoved(f"the cluster's slots moved: {exc}") from None
                if "already exists" not in str(exc).lower():
                    raise
            await self._drop_old(client, shard)

    async def _drop_extra(self, client: Any) -> None:
        """Keep one of this namespace's indexes per master: the one named for it now.

        A master can end up with two or more (each indexing every document it holds: every
        write there indexed as often, and the index memory paid as often): a failover hands a
        replica its master's index while a process that still had the old slot map made one
        under another name, or a master's old index comes back with it. Each other index whose
        name's slot the master owns (by its own word: ``own_slots``) is dropped, its documents
        kept; another process searching one of them finds it missing and discovers the layout
        again (``search``), which names the kept one. Several processes may do this at once:
        a drop that finds the index gone is nothing. A master that does not say its slots
        keeps what it has."""
        from redis import exceptions as rexc

        if self._layout is None:
            return
        pattern = re.compile(re.escape(Layout.index_name(self.namespace) + ":") + r"\{\d+\}")
        # Through ``shards``: the layout's nodes may be another event loop's client's, whose
        # connections this loop cannot use (a RuntimeError raised into an add, R9).
        for shard in self.shards(client):
            owned = self._owned.get(shard.node.name)
            if not owned or canonical_index(self.namespace, owned) != shard.name:
                continue  # (it did not say, or the layout moved since: the next discovery)
            try:
                listed = await shard.node.execute_command("FT._LIST")
            except rexc.ResponseError:  # (an ACL without +ft._list: extras stay)
                return
            names = [text(name) for name in listed]
            for name in names:
                if name == shard.name or not pattern.fullmatch(name) or not owns(owned, name):
                    continue
                with contextlib.suppress(rexc.ResponseError):  # gone already, or moved away
                    await shard.node.execute_command("FT.DROPINDEX", name)
                    log.info("dropped the extra Query Engine index %r on %s (kept %r)",
                             name, shard.node.name, shard.name)  # fmt: skip

    async def _drop_old(self, client: Any, shard: Shard) -> None:
        """Drop the index an older version made (its documents stay: the new index covers
        them, and the backfill gives each its length ``n``), so the engine keeps one."""
        from redis import exceptions as rexc

        if shard.node is None:
            old = Layout.old_index_name(self.namespace)
        else:
            old = master_index(client, self.namespace, shard.node, Layout.old_master_index_name)
        with contextlib.suppress(rexc.ResponseError):  # none there, or not ours to drop
            await shard.run(client, "FT.DROPINDEX", old)

    def _create_args(self, name: str, bases: list[str], dims: int | None, scan: bool) -> list[Any]:
        prefixes = Layout.document_prefixes(bases)
        return [
            "FT.CREATE", name, "ON", "HASH", "PREFIX", len(prefixes), *prefixes,
            "STOPWORDS", 0, *([] if scan else ["SKIPINITIALSCAN"]), "SCHEMA",
            "t", "TEXT", "NOSTEM",
            *NAMES_FIELD,
            "s", "TAG",
            "q", "NUMERIC", "SORTABLE",
            "n", "NUMERIC", "SORTABLE",
            *([] if not dims else vector_field(dims)),
        ]  # fmt: skip

    async def _infos(self, client: Any) -> dict[str, Any] | None:
        """The index on every server (each master of a cluster), as one: ``{"exists": all
        have it, "dims": the vector size all have (None if one lacks the field), "indexing":
        one is still indexing documents it found}``; None without an engine (or not for us)."""
        shards = self.shards(client, fresh=True)
        try:
            # All at once, and the first master without the engine is the verdict: a cluster
            # with one master stalled then still learns there is none from the others (each
            # asked in turn, the stalled one failed every write of a process started meanwhile
            # in its set-up, replays included: review R38).
            infos = await gather_all(*(_with_engine(client, shard) for shard in shards))
        except _NoEngine:
            return None
        if self.cluster:
            await self._check_names(shards)
        found = [info for info in infos if info is not None and info["exists"]]
        sizes = {info["dims"] for info in found}
        return {
            "exists": len(found) == len(infos),
            "dims": None if not found or None in sizes else min(sizes),
            "indexing": any(info["indexing"] for info in found),
            "names": all(info["names"] for info in found),
        }

    async def _check_names(self, shards: list[Shard]) -> None:
        """Raise (an outage: the connection asks for the slot map again) unless each master
        itself says it owns the slots the client's map gives it, as far as its index's name
        goes: a map that lags a failover names an index that is not the master's, which the
        master would not find (an "absent" verdict), or would make beside its own."""
        from tta_dev_primitives.stores._redis.errors import SlotsMoved

        self._owned = {}
        for shard in shards:
            owned = await own_slots(shard.node)
            if owned is None:  # it will not say: the client's map is all there is
                continue
            self._owned[shard.node.name] = owned
            if canonical_index(self.namespace, owned) == shard.name:
                continue
            now = time.monotonic()
            if self._disagree_since is None:
                self._disagree_since = now
            if now - self._disagree_since < TRUST_MAP_AFTER:
                raise SlotsMoved(
                    f"the cluster's slots moved: {shard.node.name} no longer serves the "
                    f"slots this client's map gives it"
                )
            if not self._trusting_map:  # a deployment whose nodes say otherwise for good
                self._trusting_map = True
                log.warning(
                    "cluster node %s keeps reporting other slots than the cluster's slot map "
                    "gives it; the Query Engine indexes are named by the slot map",
                    shard.node.name,
                )
            return
        self._disagree_since = None

    # -- where the index lives -----------------------------------------------------------------

    def shards(self, client: Any, *, fresh: bool = False) -> list[Shard]:
        """The index on each server: one on a single server, one per master on a cluster.

        A cluster's are worked out again when its masters, or their slots, changed since
        (``fresh`` forces it, for a discovery).
        """
        if not self.cluster:
            return [Shard(None, self.name, self.timeout_ms)]
        layout = self._layout
        if layout is not None and not fresh and still_owned(client, layout):
            shards = layout[1]
            if any(client.get_node(node_name=s.node.name) is not s.node for s in shards):
                # Another client (another event loop's, or one made after an outage): the
                # same masters, reached through its own nodes, or through sockets that the
                # client which found them no longer closes.
                shards = [Shard(client.get_node(node_name=s.node.name), s.name, s.timeout_ms)
                          for s in shards]  # fmt: skip
                self._layout = (layout[0], shards)
            return shards
        masters = sorted(client.get_primaries(), key=lambda node: node.name)
        shards = [Shard(node, master_index(client, self.namespace, node), self.timeout_ms)
                  for node in masters]  # fmt: skip
        if layout is not None and not fresh:
            # Moved since the last set-up, found by a call already under way (a search whose
            # retry read the new slot map): set up again at the next operation, as when it is
            # found before one. Else a promoted master kept the two indexes its dead one had.
            self._stale = self._relayout = True
        self._layout = (tuple(node.name for node in masters), shards)
        return shards

    async def _same_layout(self, client: Any) -> bool:
        layout = self._layout
        return layout is not None and still_owned(client, layout)

    async def _check_ready(
        self,
        call: Call,
        bases: list[str],
        backfill: Callable[[int | None], Awaitable[bool]],
        dims: int | None,
    ) -> None:
        """Ready once every partition is backfilled (documents are indexed as they are written:
        none was written before the index existed).

        The first page of each partition is backfilled at once (a new or small namespace is
        ready straight away); a larger one goes on in the background. A process that does not
        know its vectors' size leaves a namespace with vectors to one that does.
        """
        flags = await call(lambda c: facts(c, bases, FACT_ENGINE_DONE))
        if not all(flag == "1" for flag in flags):
            if self._backfilling:
                return
            if dims is None and self.dims is None and await call(lambda c: has_vectors(c, bases)):
                return
            if not await backfill(1):
                self._backfill = asyncio.get_running_loop().create_task(self._finish(backfill))
                return
        if self._await_scan:
            info = await call(self._infos)
            if info is not None and not info["exists"]:
                # Dropped while the engine scanned (by hand, another process, a layout
                # change): found out again at the next operation. It waited on the replica
                # for good.
                self._stale = True
                return
            if info is None or info["indexing"]:
                return  # the engine is still indexing documents it found
            self._await_scan = False
        lost = await call(lambda c: self._documents_lost(c, bases))
        if lost is None:  # an index went missing meanwhile (by hand, a layout change)
            self._stale = True  # found out again at the next operation
            return
        if lost:
            # Gone with an index dropped by hand with its documents (FT.DROPINDEX ... DD):
            # its backfill was done, so nothing wrote them again, and every memory from before
            # the drop stayed unfindable in the engine. Written again; the replica serves
            # meanwhile.
            log.warning(
                "the Redis Query Engine index of namespace %r holds fewer documents than the "
                "namespace has memories (dropped with their index?): indexing them again",
                self.namespace,
            )
            await call(lambda c: restart_backfill(c, bases))
            return
        self.state = "ready"

    async def _documents_lost(self, client: Any, bases: list[str]) -> bool | None:
        """True if the engine holds clearly fewer documents than there are live memories (a
        deleted memory's document may still count until the engine's collector runs, so never
        more memories than documents otherwise); None if an index is missing. The memories
        are counted first: a write in between adds a document to both or only to the
        documents."""
        memories = await _memories(client, bases)
        documents = 0
        for shard in self.shards(client):
            info = await index_info(client, shard)
            if info is None or not info["exists"]:
                return None
            documents += info["docs"]
        return documents + max(LOST_SLACK, memories // 100) < memories

    async def _finish(self, backfill: Callable[[int | None], Awaitable[bool]]) -> None:
        try:
            await backfill(None)
        except BackendError as exc:  # Redis went away: the next search resumes it
            log.warning("backfilling the Redis Query Engine index stopped: %s", exc)

    async def wait_backfill(self) -> None:
        """Await a backfill under way (tests; a migration script)."""
        if alive(self._backfill):
            await asyncio.shield(self._backfill)

    async def _add_vectors(self, call: Call, bases: list[str], dims: int) -> None:
        """Give the index a vector field of ``dims`` (once; the first embedder's size wins).

        The process that adds it backfills again, so memories written before, vectors and all,
        are in the field before searches by meaning use it.
        """
        size = await call(lambda c: _claim_dims(c, bases, dims))
        if size != dims:  # another embedder's process is adding its size: leave it to it
            self.dims = (await call(self._infos) or {}).get("dims")
            log.warning(
                "another process is giving the Redis Query Engine index %r a vector field of "
                "%d dims and this embedder makes %d: searches by meaning use a replica "
                "(search_engine='replica' semantics)", self.name, size, dims,
            )  # fmt: skip
            return
        added = await call(lambda c: self._alter(c, size))
        info = await call(self._infos) or {}
        self.dims = info.get("dims")
        if self.dims != dims:
            log.warning(
                "the Redis Query Engine index %r holds %s-dim vectors and this embedder makes "
                "%d: searches by meaning use a replica (search_engine='replica' semantics)",
                self.name, self.dims, dims,
            )  # fmt: skip
            return
        await call(lambda c: mark(c, bases, FACT_ENGINE_DIMS, str(dims)))
        if added:
            await call(lambda c: restart_backfill(c, bases))
            self.state = "building"

    async def _add_names(self, client: Any) -> bool:
        """Give the index made by an earlier version (or by one, mid-upgrade, on a new master)
        its ``w`` field where it lacks it; True if this process added one. No scan: the
        documents holding names are written again by the backfill that follows (their ``t``
        differs), and the others hold no ``w``."""
        from redis import exceptions as rexc

        added = False
        for shard in self.shards(client):
            info = await index_info(client, shard)
            if info is None or not info["exists"] or info["names"]:
                continue
            try:
                await shard.run(client, "FT.ALTER", shard.name, "SKIPINITIALSCAN", "SCHEMA",
                                "ADD", *NAMES_FIELD)  # fmt: skip
                added = True
            except rexc.ResponseError as exc:  # another process added it first
                if "duplicate" not in str(exc).lower():
                    raise
        return added

    async def _alter(self, client: Any, dims: int) -> bool:
        """Add the vector field where it is missing; True if this process added one."""
        from redis import exceptions as rexc

        added = False
        for shard in self.shards(client):
            try:
                await shard.run(client, "FT.ALTER", shard.name, "SCHEMA", "ADD",
                                *vector_field(dims))  # fmt: skip
                added = True
            except rexc.ResponseError:  # another process added it first
                pass
        return added

    def cleared(self) -> None:
        """The namespace was cleared here: check the index's facts again before the next
        operation (an unversioned clear drops ``n.ft`` with the rest)."""
        if self.state in ("building", "ready"):
            self._stale = True

    async def aclose(self) -> None:
        with self._claim:
            setting_up = self._setting_up
        if alive(setting_up) and setting_up.get_loop() is asyncio.get_running_loop():
            setting_up.cancel()  # (one left running by a caller that stopped waiting)
            await asyncio.wait([setting_up])
        task, self._backfill = self._backfill, None
        if task is None or task.done() or task.get_loop().is_closed():
            return  # (a loop closed with it pending never runs it again)
        if not cancel_on_its_loop(task):
            return
        # Its end, not its CancelledError: that would hide our caller's cancellation
        # (which asyncio.wait raises). Its error, if any, is read, not raised.
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()

    # -- searching -----------------------------------------------------------------------------

    async def search(
        self, call: Call, query: Query, limit: int, scope: str | None, base: str | None = None
    ) -> list[tuple[str, float, int]] | None:
        """``(key, score, sequence)`` best first, ties newest first; None if the engine cannot
        answer this query (vectors of another size): the caller uses the replica. ``base`` is
        the partition of a scope that lies in one (on a cluster only its master is asked).
        See ``engine_search``."""
        return await engine_search.search(self, call, query, limit, scope, base)

    async def count(self, client: Any, shard: Shard) -> int:
        """The documents ``shard``'s index holds, as counted at most ``COUNT_EVERY`` seconds
        ago (``queries.semantic`` searches a small index exactly)."""
        now = time.monotonic()
        known = self._counts.get(shard.name)
        if known is None or now - known[0] >= COUNT_EVERY:
            known = (now, await index_docs(client, shard))
            self._counts[shard.name] = known
        return known[1]

    # -- the backfill --------------------------------------------------------------------------

    def page_args(self, base: str, records: Iterable[tuple[str, int, Any, Any, Any]],
                  dims: int | None, lease: str = "") -> list[Any]:  # fmt: skip
        """INDEX_PAGE's arguments for a page of CHANGES records (key, seq, payload, _, vector),
        written only while ``lease`` holds the partition's backfill lease ("": always)."""
        args: list[Any] = [base, lease]
        for key, seq, payload, _, vector in records:
            terms = {} if payload is None else self.indexing.payload_terms(payload)
            width = dims if dims and vector is not None and _holds_rows(vector, dims) else 0
            args += [key, str(seq), terms_text(terms), scope_tags(key, terms), width,
                     doc_length(terms), names_text(terms)]  # fmt: skip
        return args


class _NoEngine(Exception):
    """A server without the Query Engine (or not one this user may use): ``_infos``'s verdict,
    whatever the others would say."""


async def _with_engine(client: Any, shard: Shard) -> dict[str, Any]:
    """``index_info`` of one server; ``_NoEngine`` if it has no engine."""
    info = await index_info(client, shard)
    if info is None:
        raise _NoEngine
    return info
