"""The Redis backend: plain Redis 7 (or Valkey), no modules; search is added by ``search``.

The layout and the Lua that maintains it are in ``lua``. A namespace is split into
``partitions`` hash slots by each key's first two ``:`` segments (``user:session``), so a
session's memories and their feed share a slot (Lua needs that on a cluster) while a namespace
spreads over shards. A Redis Cluster is detected on first connect (``INFO cluster``) and then
served by redis-py's cluster client with ``CLUSTER_PARTITIONS`` partitions; nothing else changes.
Every call is bounded by ``timeout``, which measures the server round trip: waiting for one of
the ``MAX_IN_FLIGHT`` call slots of the loop (one pooled connection each) happens before the
timer starts, so a burst of calls queues instead of timing out. Anything that means "Redis
cannot serve now" becomes ``BackendUnavailableError``, with the URL's password scrubbed from the
message: connection and timeout errors, replies that are not RESP (another service on the
port). A refusal that retrying cannot change until an operator acts becomes
``BackendRefusedError``, raised to the caller and never journalled: ACL denials (``NOPERM``, in
scripts too), ``OOM`` under ``maxmemory``, and WRONGTYPE from our own keys (a warning names
them). A pooled connection found dead (a server restart, ``CLIENT KILL``) is retried once on a
fresh connection before the call counts as failed.

A client belongs to one event loop, so there is one per loop the backend is used from (sync
adapters run on a portal loop); ``aclose()`` closes all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Sequence,
)
from functools import partial
from typing import Any, ClassVar, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tta_dev_primitives._checks import check_count, check_namespace, check_seconds
from tta_dev_primitives.exceptions import (
    BackendError,
    BackendRefusedError,
    BackendUnavailableError,
    IncompleteOperationError,
    StaleWriteError,
)
from tta_dev_primitives.stores._base import Clear, Delete, Put, StorageBackend, Write, send
from tta_dev_primitives.stores._redis import lua
from tta_dev_primitives.stores._redis.replica import text_of
from tta_dev_primitives.stores._urls import check_redis_url, redact_url, scrub
from tta_dev_primitives.stores._versions import VersionClock

__all__ = ["RedisBackend"]

R = TypeVar("R")

log = logging.getLogger("tta_dev_primitives.memory")

# Errors after which Redis may well serve again (the hybrid falls back and probes).
_UNAVAILABLE = (
    rexc.ConnectionError,
    rexc.TimeoutError,
    rexc.AuthenticationError,
    rexc.AuthorizationError,
    rexc.BusyLoadingError,
    rexc.ReadOnlyError,
    rexc.MasterDownError,
    rexc.ClusterDownError,
    rexc.TryAgainError,
    rexc.ClusterError,
    rexc.RedisClusterException,
    rexc.SlotNotCoveredError,
    rexc.MaxConnectionsError,
    rexc.InvalidResponse,  # not a Redis on the port (an HTTP server, say)
    OSError,
    TimeoutError,
)
_UNAVAILABLE_REPLIES = (
    "NOAUTH", "WRONGPASS", "LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN",
    "MISCONF", "BUSY",
)  # fmt: skip
# Refusals that retrying will not change until an operator acts (an ACL, maxmemory, a key of
# the wrong type): raised to the caller as BackendRefusedError, never journalled as an outage.
_REFUSED = (rexc.NoPermissionError, rexc.OutOfMemoryError)
_REFUSED_REPLIES = ("NOPERM", "OOM", "WRONGTYPE")
# The same refusals as they read inside a script's error (redis-py strips a reply's prefix).
_REFUSED_INSIDE = (
    "CAN'T RUN THIS COMMAND", "CAN'T ACCESS", "NO PERMISSIONS", "NOPERM", "WRONGTYPE",
    "NOT ALLOWED WHEN USED MEMORY",
)  # fmt: skip
# The type each of a partition's own keys must have (see ``lua``).
_OWN_TYPES = {"n": b"hash", "w": b"hash", "r": b"zset", "x": b"zset", "g": b"zset"}
_REPLAY_CHUNK = 200
_REPLAY_BYTES = 1 << 20  # payload bytes per pipelined chunk (a 1 MB value goes alone)
MAX_CONNECTIONS = 1000  # per process and event loop; Redis's default maxclients is 10000
# Calls in flight per event loop, each on its own pooled connection; more wait for a slot
# (outside the timeout). 64 keeps a localhost Redis busy; a burst of thousands queues.
MAX_IN_FLIGHT = 64
# Partitions of a namespace on a cluster: enough hash slots to spread over any sensible number of
# shards. Every process must use the same number, so it is a constant, not a setting.
CLUSTER_PARTITIONS = 64
_SCRIPTS = ("PUT", "DELETE", "SIZE", "CHANGES", "CLEAR_MARK", "CLEAR_PAGE", "INDEX_PAGE")
_CLEAR_PAGE = 500  # keys a clear examines per call
_ITEMS_PAGE = 500  # memories items() reads per call


def _partition_key(key: str) -> str:
    """The part of a key (or scope) that picks its partition: up to its second ``:``, if any.

    A one-segment scope (``"u1"``) names no single partition: its keys spread over all of them.
    """
    first = key.find(":")
    if first == -1:
        return key
    second = key.find(":", first + 1)
    return key if second == -1 else key[:second]


class _LoopClient:
    """The client of one event loop, its scripts, and the slots that bound its calls."""

    __slots__ = ("client", "connecting", "failures", "scripts", "slots")

    def __init__(self) -> None:
        self.client: Any = None  # aioredis.Redis or RedisCluster
        self.scripts: dict[str, Any] = {}
        self.connecting = asyncio.Lock()  # one connect at a time
        self.slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.failures = 0  # unavailable errors so far: a waiting call seeing one gives up


class _AnswerWithin:
    """Like ``asyncio.timeout``, but time this event loop spent on other work does not count.

    A busy loop (a burst of thousands of calls, a blocking callback) runs a deadline's timer
    late, often in the same turn that reads the reply, before the call could resume: with
    ``asyncio.timeout`` an answered call would fail as if Redis were down. Here a timer that
    fires late by more than a twentieth of the timeout was held up by the loop, not the server:
    the deadline moves on by that lateness (at most ``_MAX_CREDIT`` timeouts in all, so a
    stalled server is still given up on). A timer on time cancels the call after
    ``_GRACE_TURNS`` more turns, so a reply already received is delivered first. So the timeout
    measures the server's answer; on an idle loop this costs what ``asyncio.timeout`` does.
    """

    __slots__ = ("_credit", "_handle", "_loop", "_seconds", "_task", "_turns", "_when", "expired")

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds or 0.0  # None or 0: no deadline (the caller bounds the call)
        self.expired = False

    async def __aenter__(self) -> _AnswerWithin:
        self._loop = loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._turns = _GRACE_TURNS
        self._credit = 0.0
        self._when = loop.time() + self._seconds
        self._handle: asyncio.Handle | None = None
        if self._seconds:
            self._handle = loop.call_at(self._when, self._deadline)
        return self

    def _deadline(self) -> None:
        now = self._loop.time()
        late = now - self._when
        if late > self._seconds / 20 and self._credit + late <= _MAX_CREDIT * self._seconds:
            self._credit += late  # the loop was busy elsewhere: give that time back
            self._when = now + late
            self._handle = self._loop.call_at(self._when, self._deadline)
        else:
            self._turn()

    def _turn(self) -> None:
        if self._turns:
            self._turns -= 1
            self._handle = self._loop.call_soon(self._turn)
        else:
            self.expired = True
            self._task.cancel()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: Any, tb: Any) -> None:
        if self._handle is not None:
            self._handle.cancel()
        if self.expired and self._task.uncancel() == 0 and exc_type is asyncio.CancelledError:
            raise TimeoutError(f"no reply within {self._seconds}s") from None


#: Loop turns between a call's deadline and its cancellation (see ``_AnswerWithin``): a reply
#: read in one turn wakes its caller in the next.
_GRACE_TURNS = 3
#: The most loop-busy time given back to one call, in timeouts (see ``_AnswerWithin``).
_MAX_CREDIT = 10


def _partition_of(key: str, partitions: int) -> int:
    if partitions == 1:
        return 0
    return zlib.crc32(_partition_key(key).encode()) % partitions


class RedisBackend(StorageBackend):
    """Payloads (JSON text) and their search index in Redis, under one namespace."""

    kind: ClassVar[str] = "redis"
    serializes: ClassVar[bool] = True

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "tta:memory",
        timeout: float = 1.0,
        partitions: int = 1,
    ) -> None:
        self._url = check_redis_url(url)
        self.namespace = check_namespace(namespace)
        self.timeout = check_seconds("timeout", timeout)
        partitions = check_count("partitions", partitions)
        self.partitions = partitions
        self.topology: str | None = None  # "standalone" or "cluster", known after connecting
        self._nodes = 0
        self._bases = self._make_bases(partitions)
        self._loops: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
        self._warned_types: set[str] = set()
        self._policy_checked = False  # maxmemory-policy is checked on the first connect
        # The owner's version clock (the hybrid binds its own): it observes Redis's time.
        self.versions = VersionClock()
        # Told of each replayed write Redis rejected as stale (``apply``), and of keys another
        # process changed (the search replica's feed): see ``bind``.
        self.on_stale: Callable[[StaleWriteError, str | None], None] | None = None
        self.on_changed: Callable[[str, Any], None] | None = None

    def bind(
        self,
        versions: VersionClock,
        on_stale: Callable[[StaleWriteError, str | None], None],
        on_changed: Callable[[str, Any], None],
    ) -> None:
        self.versions, self.on_stale, self.on_changed = versions, on_stale, on_changed

    def _make_bases(self, partitions: int) -> list[str]:
        ns = self.namespace
        return [f"{ns}:{{{ns}#{p}}}:" for p in range(partitions)]

    # -- connection ----------------------------------------------------------------------------

    def _state(self) -> _LoopClient:
        """The running loop's client state, made on first use there."""
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            for old in [old for old in self._loops if old.is_closed()]:
                _drop_sockets(self._loops.pop(old).client)  # its loop can no longer close it
            state = self._loops[loop] = _LoopClient()
        return state

    @property
    def _scripts(self) -> dict[str, Any]:
        """The running loop's registered scripts (a script is bound to its client)."""
        return self._state().scripts

    async def _connect(self, state: _LoopClient) -> Any:
        """The client for the running loop, made on first use.

        The first connection asks the server whether it is a cluster node; if so, the
        standalone client is swapped for redis-py's cluster client.
        """
        async with state.connecting:
            if state.client is None:
                client = await self._new_client()
                state.scripts = {name: client.register_script(getattr(lua, name))
                                 for name in _SCRIPTS}  # fmt: skip
                state.client = client
        return state.client

    async def _new_client(self) -> Any:
        common: dict[str, Any] = {
            # One bound per call, ours (_AnswerWithin in _call), not a second per read or
            # connect: redis-py's would count time this loop spends elsewhere (a burst).
            "socket_timeout": None,
            "socket_connect_timeout": None,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0,
        }
        # redis-py's default cap (100) fails the 101st concurrent call as if Redis were down;
        # a blocking pool avoids that but costs ~10 us a call, so: a plain pool, high cap.
        pool = aioredis.ConnectionPool.from_url(
            self._url, max_connections=MAX_CONNECTIONS, **common
        )
        client: Any = aioredis.Redis(connection_pool=pool)
        if self.topology is None or self.topology == "cluster":
            info = await client.info("cluster")
            if info.get("cluster_enabled"):
                await client.aclose(close_connection_pool=True)
                client = RedisCluster.from_url(self._url, max_connections=MAX_CONNECTIONS, **common)
                await client.initialize()
                self._nodes = len(client.get_primaries())
                if self.topology is None and self.partitions == 1:
                    self.partitions = CLUSTER_PARTITIONS
                    self._bases = self._make_bases(CLUSTER_PARTITIONS)
                self.topology = "cluster"
            else:
                self.topology = "standalone"
        if not self._policy_checked:
            self._policy_checked = True
            await self._check_eviction(client)
        return client

    async def _check_eviction(self, client: Any) -> None:
        """Warn once if Redis may evict any key (``allkeys-*``): it would evict this library's
        own keys too (the feed, versions, partition facts), and search, size, get and the
        ordering of writes would then disagree. ``noeviction`` or ``volatile-*`` is required."""
        try:
            info = await client.info("memory")
        except rexc.ResponseError:
            return  # INFO refused (an ACL without +info): nothing to check
        policy = text_of(info.get("maxmemory_policy", b"") or b"")
        if policy.startswith("allkeys"):
            log.warning(
                "Redis at %s has maxmemory-policy %s: it may evict this library's own keys, "
                "and then search, size and get disagree and ordering is lost. Set "
                "maxmemory-policy to noeviction (or a volatile-* policy) for this database "
                "(see 'Memory limits' in docs/production.md)",
                redact_url(self._url), policy,
            )  # fmt: skip

    async def _call(
        self, work: Callable[[aioredis.Redis], Awaitable[R]], *, bounded: bool = True
    ) -> R:
        """Run ``work`` within the timeout, translating Redis failures at the seam.

        The timeout starts once the call has a slot: waiting for one is not a server failure.
        A call that waited while another failed for availability gives up without trying.
        ``bounded=False`` leaves the bound to the caller (a replica's load has its own budget).
        """
        state = self._state()
        seen = state.failures
        async with state.slots:
            if state.failures != seen:
                raise BackendUnavailableError(
                    f"Redis at {redact_url(self._url)} unavailable: failed while this call waited"
                )
            client = None
            try:
                async with _AnswerWithin(self.timeout if bounded else None) as timer:
                    client = state.client
                    if client is None:
                        client = await self._connect(state)
                    try:
                        return await work(client)
                    except rexc.ConnectionError:
                        if timer.expired or not await self._drop_dead_connections(client):
                            raise
                        return await work(client)  # once, on a fresh connection
            except _REFUSED as exc:  # first: ResponseError subclasses
                raise await self._refused(client, exc) from None
            except _UNAVAILABLE as exc:
                state.failures += 1
                await self._forget_topology(state, client)
                message = scrub(str(exc) or type(exc).__name__, self._url)
                raise BackendUnavailableError(
                    f"Redis at {redact_url(self._url)} unavailable: {message}"
                ) from None
            except rexc.ResponseError as exc:
                message = scrub(str(exc), self._url)
                upper = message.upper()
                if upper.startswith(_REFUSED_REPLIES) or any(
                    reply in upper for reply in _REFUSED_INSIDE
                ):
                    raise await self._refused(client, exc) from None
                if upper.startswith(_UNAVAILABLE_REPLIES):
                    state.failures += 1
                    await self._forget_topology(state, client)
                    raise BackendUnavailableError(f"Redis refused: {message}") from None
                raise BackendError(f"Redis error: {message}") from None
            except (rexc.DataError, UnicodeError) as exc:  # a value the client cannot send
                raise BackendError(f"Redis refused the data: {type(exc).__name__}") from None

    async def _refused(self, client: Any, exc: Exception) -> BackendRefusedError:
        """The error for a refusal no retry will change (see ``_REFUSED``), naming the fix."""
        message = scrub(str(exc), self._url)
        if isinstance(exc, rexc.NoPermissionError):
            message = "NOPERM " + message
        elif isinstance(exc, rexc.OutOfMemoryError):
            message = "OOM " + message
        upper = message.upper()
        if "WRONGTYPE" in upper and client is not None:
            await self._warn_wrong_types(client)
        if "MEMORY" in upper:
            hint = "Redis is full (maxmemory): free memory, raise maxmemory, or delete memories"
        elif "WRONGTYPE" in upper:
            hint = "a key of this namespace holds another type (delete it, or clear())"
        else:
            hint = "the Redis user lacks a permission (see the ACL in docs/production.md)"
        return BackendRefusedError(
            f"Redis at {redact_url(self._url)} refused: {message} ({hint}); nothing was stored"
        )

    async def _drop_dead_connections(self, client: Any) -> bool:
        """After a connection error on a standalone client, drop its idle pooled connections
        (a restart or ``CLIENT KILL`` left them all dead); True if a retry is worth it."""
        if self.topology == "cluster" or not isinstance(client, aioredis.Redis):
            return False  # the cluster client retries and rediscovers on its own terms
        with contextlib.suppress(Exception):
            await client.connection_pool.disconnect(inuse_connections=False)
        return True

    async def _warn_wrong_types(self, client: Any) -> None:
        """Name this namespace's own keys that hold the wrong type (someone else wrote them)."""
        names = [base + suffix for base in self._bases for suffix in _OWN_TYPES]
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.timeout):
                types = [await client.type(name) for name in names]
            for name, found in zip(names, types, strict=True):
                want = _OWN_TYPES[name[-1]]
                if found not in (want, b"none", want.decode(), "none") and name not in (
                    self._warned_types
                ):
                    self._warned_types.add(name)
                    log.warning(
                        "Redis key %r holds a %s, not the %s this namespace keeps there: "
                        "serving in-process until it is fixed (delete the key, or clear())",
                        name, text_of(found),
                        want.decode(),
                    )  # fmt: skip

    async def _forget_topology(self, state: _LoopClient, failed: Any) -> None:
        """On a cluster, drop the client after a failure: the next call rediscovers the slots.

        redis-py's cluster client keeps routing to a dead master after its replica took over;
        a fresh client asks a live node for the current slot map.
        """
        if self.topology != "cluster" or failed is None or state.client is not failed:
            return  # not a cluster, or another call already replaced the failed client
        state.client = None
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.timeout):
                await failed.aclose()

    async def _ready(self) -> None:
        """Connect (learning the topology) before computing keys: partitions depend on it."""
        state = self._loops.get(asyncio.get_running_loop())
        if state is None or state.client is None:
            await self._call(_connected)

    def _base(self, key: str) -> str:
        return self._bases[_partition_of(key, self.partitions)]

    # -- the seam ------------------------------------------------------------------------------

    async def put(
        self, key: str, payload: Any, ttl: float | None = None, *, version: str = ""
    ) -> None:
        await self._put(key, payload, ttl, version)

    async def _put(
        self, key: str, payload: Any, ttl: float | None, version: str, extra: Sequence[Any] = ()
    ) -> int:
        """Run the PUT script; the write's sequence number (Redis's time, observed by the
        version clock). Raises ``StaleWriteError`` if a newer write of the key stands.

        ``extra``: what a searchable backend stores beside the value (``_put_extra``).
        """
        await self._ready()
        base = self._base(key)
        args = _put_args(base, key, payload, ttl, version, extra)

        async def write(client: Any) -> Any:
            seq = await self._scripts["PUT"](keys=[base + "v:" + key], args=args)
            await self._replicated(client, base + "v:" + key)
            return seq

        seq = text_of(await self._call(write))
        if seq.startswith("stale"):
            raise _stale(key, seq)
        self.versions.observe(int(seq))
        return int(seq)

    async def get(self, key: str) -> Any | None:
        await self._ready()
        value_key = self._base(key) + "v:" + key

        async def fetch(client: aioredis.Redis) -> Any:
            try:
                return await client.get(value_key)
            except rexc.ResponseError as exc:
                if str(exc).startswith("WRONGTYPE"):
                    return b""  # not ours or corrupt: the layer above reads it as a miss
                raise

        return await self._call(fetch)

    async def delete(self, key: str, *, version: str = "") -> bool:
        await self._ready()
        base = self._base(key)
        args = [base, key, version]

        async def write(client: Any) -> Any:
            removed = await self._scripts["DELETE"](keys=[base + "v:" + key], args=args)
            await self._replicated(client, base + "v:" + key)
            return removed

        removed = await self._call(write)
        if isinstance(removed, bytes | str) and text_of(removed).startswith("stale"):
            raise _stale(key, text_of(removed))
        return bool(removed)

    async def _replicated(self, client: Any, key: str) -> None:
        """On a cluster whose master for ``key`` has replicas, wait until one has the write.

        Cluster replication is asynchronous: a write the master acknowledged but had not yet sent
        to a replica dies with it in a failover. ``WAIT 1`` closes that window; if no replica
        confirms within the timeout the write counts as failed (the hybrid journals it and
        replays it later, idempotently).
        """
        if self.topology != "cluster":
            return
        slot_nodes = client.nodes_manager.slots_cache.get(client.keyslot(key), [])
        if len(slot_nodes) < 2:
            return  # no replica to wait for
        wait_ms = max(1, int(self.timeout * 1000 * 0.8))
        acked = await client.execute_command("WAIT", 1, wait_ms, target_nodes=slot_nodes[0])
        if int(acked) < 1:
            raise rexc.TimeoutError("no replica confirmed the write (WAIT)")

    async def size(self) -> int:
        await self._ready()
        counts = await asyncio.gather(*(self._size_in(base) for base in self._bases))
        return sum(counts)

    async def _size_in(self, base: str) -> int:
        return int(
            await self._call(lambda c: self._scripts["SIZE"](keys=[base + "n"], args=[base]))
        )

    async def clear(self, *, version: str = "") -> None:
        """Remove the namespace's memories older than ``version`` (all of them if unversioned).

        A versioned clear marks each partition (later writes older than it are stale), then
        removes, page by page, what is older, and marks again so that replicas which reloaded
        during the clear reload once more. Writes newer than the clear, made by any process
        while it runs or replayed before it, stay. An unversioned clear SCANs and UNLINKs the
        namespace's keys. Either way each page is one call under the timeout, so a clear of any
        size finishes on a healthy Redis.

        Raises ``BackendUnavailableError`` if Redis failed before anything was removed (the
        hybrid then journals the clear), and ``IncompleteOperationError`` saying how much was
        removed if it failed part-way: a half-done clear is never reported as done.
        """
        progress = _Progress()
        if version:
            await self._ready()
            await self._check_newest(version)
        try:
            await self._clear_pages(version, progress)
        except BackendUnavailableError as exc:
            if not progress.done:
                raise
            raise IncompleteOperationError(
                f"cleared {progress.done:,} {progress.noun} of namespace {self.namespace!r} "
                f"before Redis stopped answering; the rest are still there ({exc})",
                done=progress.done,
            ) from exc

    async def _check_newest(self, version: str) -> None:
        """Before a live clear: raise ``StaleWriteError`` if a write newer than ``version``
        stands in any partition (this machine's clock is behind a writer's). The hybrid then
        retries with a version past it, so the clear removes every write acknowledged before
        it, whatever the clocks say."""

        async def newest(client: Any, base: str) -> Any:
            return await client.hget(base + "n", "mv")

        found = await asyncio.gather(*(self._call(partial(newest, base=base))
                                       for base in self._bases))  # fmt: skip
        newer = max((text_of(v) for v in found if v is not None), default="")
        if newer > version:
            raise StaleWriteError(
                f"a write newer than this clear stands in namespace {self.namespace!r} "
                "(clocks differ between machines)",
                newer=newer,
            )

    async def _clear_pages(self, version: str, progress: _Progress) -> None:
        await self._ready()
        try:
            if not version:
                progress.noun = "keys"
                await self._unlink_namespace(progress)
            else:
                progress.noun = "memories"
                await _all(self._clear_partition(base, version, progress) for base in self._bases)
        finally:  # even part-way: a search replica reloads what is left
            self._cleared()

    def _cleared(self) -> None:
        """Hook: the namespace was (perhaps partly) cleared."""

    def _report_stale(self, exc: StaleWriteError, key: str) -> None:
        """A replayed write was older than what stands: tell the listener (the hybrid)."""
        if self.on_stale is not None:
            self.on_stale(exc, key)

    def _put_extra(self, write: Put) -> Sequence[Any]:
        """Hook: what a replayed write stores beside its value (a memory's search data; none
        for a cache)."""
        return ()

    async def _clear_partition(self, base: str, version: str, progress: _Progress) -> None:
        await self._script("CLEAR_MARK", base, [base, version])
        for zset in ("r", "g"):
            after = "-inf"
            while after:
                reply = await self._script("CLEAR_PAGE", base, [base, version, zset, after,
                                                                _CLEAR_PAGE])  # fmt: skip
                after = text_of(reply[0])
                if zset == "r":
                    progress.done += int(reply[1])
        await self._script("CLEAR_MARK", base, [base, version])

    async def _script(self, name: str, base: str, args: list[Any]) -> Any:
        """One call of a partition's script, under the timeout."""
        return await self._call(lambda c: self._scripts[name](keys=[base + "n"], args=args))

    async def _unlink_namespace(self, progress: _Progress) -> None:
        """SCAN + UNLINK this namespace's keys, a SCAN step and its UNLINKs per call.

        Never FLUSHDB, never KEYS. Keys are grouped by partition (one hash slot each), so an
        UNLINK never spans slots.
        """
        pattern = _glob_escape(self.namespace) + ":{" + _glob_escape(self.namespace) + "#*"

        async def unlink(client: Any, keys: list[bytes]) -> None:
            batches: dict[bytes, list[bytes]] = {}
            for key in keys:
                batches.setdefault(key[: key.index(b"}") + 1], []).append(key)
            for batch in batches.values():
                await client.unlink(*batch)
            progress.done += len(keys)

        await self._scan_pages(pattern, unlink)

    async def _scan_pages(
        self, pattern: str, each: Callable[[Any, list[bytes]], Awaitable[None]]
    ) -> None:
        """SCAN ``pattern`` over the whole keyspace (every primary on a cluster), one SCAN
        step and ``each`` of its keys per call under the timeout."""
        cursors: dict[Any, int] | None = None  # node name (or None standalone) -> cursor

        async def step(client: Any) -> dict[Any, int]:
            if self.topology != "cluster":
                cursor, keys = await client.scan(
                    cursor=0 if cursors is None else cursors[None], match=pattern, count=1000
                )
                found = {None: int(cursor)}
            elif cursors is None:  # the first step asks every primary at once
                found, keys = await client.scan(cursor=0, match=pattern, count=1000)
            else:
                name = next(iter(cursors))
                node = client.get_node(node_name=name)
                if node is None:
                    raise rexc.ClusterError(f"node {name} left the cluster during a scan")
                cur, keys = await client.scan(
                    cursor=cursors[name], match=pattern, count=1000, target_nodes=node
                )
                found = {**cursors, name: int(cur[name])}
            if keys:
                await each(client, list(keys))
            return {name: int(cursor) for name, cursor in found.items() if int(cursor) != 0}

        while cursors is None or cursors:
            cursors = await self._call(step)

    async def apply(self, writes: Sequence[Write]) -> None:
        """Replay writes in order, pipelined in chunks; a Clear splits the pipeline.

        A chunk (one call under the timeout) holds at most ``_REPLAY_CHUNK`` writes and about
        ``_REPLAY_BYTES`` of payload, so large values do not make one call too long.
        """
        await self._ready()
        chunk: list[Put | Delete] = []
        size = 0
        for write in writes:
            if isinstance(write, Clear):
                await self._pipeline(chunk)
                chunk, size = [], 0
                # A replayed clear that stops part-way stays unavailable (not incomplete): the
                # journal keeps it and the next replay finishes it (a versioned clear is
                # idempotent).
                await self._clear_pages(write.version, _Progress())
            else:
                chunk.append(write)
                size += len(write.payload) if isinstance(write, Put) else 0
                if len(chunk) >= _REPLAY_CHUNK or size >= _REPLAY_BYTES:
                    await self._pipeline(chunk)
                    chunk, size = [], 0
        await self._pipeline(chunk)

    async def _pipeline(self, writes: Sequence[Put | Delete]) -> None:
        if not writes:
            return
        if self.topology == "cluster":
            await self._apply_per_partition(writes)
            return

        async def run(client: aioredis.Redis) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for write in writes:
                base = self._base(write.key)
                value_key = base + "v:" + write.key
                if isinstance(write, Put):
                    args = _put_args(base, write.key, write.payload, write.ttl, write.version,
                                     self._put_extra(write))  # fmt: skip
                    # Awaiting only queues the call: the pipeline sends it on execute().
                    await self._scripts["PUT"](keys=[value_key], args=args, client=pipe)
                else:
                    await self._scripts["DELETE"](
                        keys=[value_key], args=[base, write.key, write.version], client=pipe
                    )
            return list(await pipe.execute())

        replies = await self._call(run)
        for write, reply in zip(writes, replies, strict=True):
            if isinstance(reply, bytes | str) and text_of(reply).startswith("stale"):
                self._report_stale(_stale(write.key, text_of(reply)), write.key)
            elif isinstance(write, Put):
                self.versions.observe(int(reply))

    async def _apply_per_partition(self, writes: Sequence[Put | Delete]) -> None:
        """On a cluster: each partition's writes in order, partitions concurrently."""
        groups: dict[str, list[Put | Delete]] = {}
        for write in writes:
            groups.setdefault(self._base(write.key), []).append(write)

        async def run(group: list[Put | Delete]) -> None:
            for write in group:
                try:
                    await send(self, write)
                except StaleWriteError as exc:
                    self._report_stale(exc, write.key)

        await asyncio.gather(*(run(group) for group in groups.values()))

    async def items(self) -> AsyncIterator[tuple[str, Any, float | None]]:
        """Every live memory of the namespace, partition by partition, oldest write first.

        Keys come from each partition's ``r`` index (exact names: a key may contain any
        text, ``}:v:`` included), a page at a time; a page's values and TTLs are read in the
        same call, under the timeout. If Redis fails part-way, ``IncompleteOperationError``
        says how many memories were read. A memory rewritten while the listing runs moves to
        the end of its partition's order, so it may be listed twice (the newer value last).
        """
        await self._ready()
        done = 0
        try:
            for base in self._bases:
                after = "-inf"
                while after:
                    page = await self._call(
                        partial(_items_page, base=base, after=after, topology=self.topology)
                    )
                    after = page[0]
                    for key, payload, pttl in page[1]:
                        done += 1
                        yield key, payload, None if pttl < 0 else pttl / 1000
        except BackendUnavailableError as exc:
            if not done:
                raise
            raise IncompleteOperationError(
                f"read {done:,} memories of namespace {self.namespace!r} before Redis stopped "
                f"answering ({exc})",
                done=done,
            ) from exc

    async def probe(self) -> None:
        await self._call(lambda c: c.ping())

    def describe(self) -> dict[str, Any]:
        return {
            "url": redact_url(self._url),
            "namespace": self.namespace,
            "partitions": self.partitions,
            "topology": self.topology or "unknown (not connected yet)",
            **({"nodes": self._nodes} if self.topology == "cluster" else {}),
        }

    async def aclose(self) -> None:
        """Close every loop's client: this loop's here, a running loop's on that loop, and a
        closed loop's sockets directly (nothing else could close them)."""
        loops, self._loops = self._loops, {}
        running = asyncio.get_running_loop()
        for loop, state in loops.items():
            client = state.client
            if client is None:
                continue
            if loop is running:
                await _close_client(client)
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(_close_client(client), loop)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.wrap_future(future), self.timeout + 1)
            else:
                _drop_sockets(client)


async def _close_client(client: Any) -> None:
    try:
        if isinstance(client, RedisCluster):
            await client.aclose()
        else:
            await client.aclose(close_connection_pool=True)
    except (*_UNAVAILABLE, rexc.RedisError):
        pass  # closing a dead connection: nothing left to release


def _drop_sockets(client: Any) -> None:
    """Close the sockets of a client whose event loop is closed, without that loop.

    Its transports cannot be closed the usual way (that schedules on the loop), so the socket
    is closed and the transport and connection marked closed: no ResourceWarning later.
    """
    if client is None:
        return
    if isinstance(client, RedisCluster):
        nodes = client.get_nodes()
        connections = [c for node in nodes for c in getattr(node, "_connections", [])]
    else:
        pool = client.connection_pool
        connections = [*pool._available_connections, *pool._in_use_connections]
    for connection in connections:
        writer = getattr(connection, "_writer", None)
        transport: Any = getattr(writer, "transport", None)
        with contextlib.suppress(Exception):
            sock = getattr(transport, "_sock", None)
            if sock is not None:
                sock.close()
                transport._sock = None
            if transport is not None:
                transport._closing = True
        connection._reader = connection._writer = None


def _put_args(
    base: str, key: str, payload: Any, ttl: float | None, version: str, extra: Sequence[Any]
) -> list[Any]:
    ttl_ms = 0 if ttl is None else max(1, round(ttl * 1000))
    return [base, key, payload, ttl_ms, version, *extra]


def _stale(key: str, reply: str) -> StaleWriteError:
    """The error for a script's ``stale <newer version>`` reply about ``key``."""
    newer = reply[len("stale") :].strip()
    return StaleWriteError(
        f"a newer change of key {key!r} stands in Redis (another process's write or clear); "
        "this one was not applied",
        newer=newer,
    )


def _glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so a namespace matches only itself."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


async def _mget(client: Any, names: list[str], cluster: bool) -> list[Any]:
    """GET of many keys in one round trip (one per shard on a cluster)."""
    if cluster:
        return list(await client.mget_nonatomic(names))
    return list(await client.mget(names))


async def _connected(client: Any) -> None:
    """Nothing to do: ``_call`` has connected by the time it runs this."""


async def _all(calls: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run ``calls`` concurrently; on the first failure cancel the rest and raise it (not a
    group): a bulk operation stops where it failed rather than running on unseen."""
    try:
        async with asyncio.TaskGroup() as group:
            for call in calls:
                group.create_task(call)
    except BaseExceptionGroup as failed:
        first = failed.exceptions[0]
        raise first from first.__cause__  # its own cause (or none), not the group


class _Progress:
    """How far a bulk operation got (updated page by page)."""

    __slots__ = ("done", "noun")

    def __init__(self) -> None:
        self.done = 0
        self.noun = "memories"


async def _items_page(client: Any, base: str, after: str, topology: str | None) -> Any:
    """The next page of a partition's live memories after sequence ``after``.

    Returns ``(next after, or "" when done; [(key, payload, PTTL ms), ...])``; memories that
    expired or were deleted since they were indexed are left out.
    """
    start = after if after == "-inf" else "(" + after
    rows = await client.zrangebyscore(
        base + "r", start, "+inf", start=0, num=_ITEMS_PAGE, withscores=True,
        score_cast_func=_raw,
    )  # fmt: skip
    keys = [key.decode() for key, _ in rows]
    names = [base + "v:" + key for key in keys]
    values = await _values_and_ttls(client, names, topology) if names else []
    found = [(key, payload, pttl) for key, (payload, pttl) in zip(keys, values, strict=True)
             if payload is not None]  # fmt: skip
    if len(rows) < _ITEMS_PAGE:
        return "", found
    last = rows[-1][1]
    return (last.decode() if isinstance(last, bytes) else str(last)), found


def _raw(score: Any) -> Any:
    """Keep a zset score as Redis sent it (a sequence in microseconds: exact, no float)."""
    return score


async def _values_and_ttls(client: Any, names: Sequence[Any], topology: str | None) -> list[Any]:
    """(value, PTTL ms) per name, in one pipeline (on a cluster too: a page is one slot)."""
    pipe = client.pipeline(transaction=False) if topology != "cluster" else client.pipeline()
    for name in names:
        pipe.get(name)
        pipe.pttl(name)
    flat = await pipe.execute()
    return list(zip(flat[::2], flat[1::2], strict=True))
