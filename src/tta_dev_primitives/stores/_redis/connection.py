"""The connection to one Redis (or Redis Cluster): every line that touches redis-py's or asyncio's
machinery, so that the backend above it only says what to read and write.

A Redis Cluster is detected on first connect (``INFO cluster``) and then served by redis-py's
cluster client; the owner hears of it (``on_cluster``) and spreads its keys wider. A later
client (after a failure, or on another loop) is made from every node the last slot map named,
not from the URL's node alone, which may be the master that died; a URL may also name several
nodes of a cluster (``redis://h1:7000,h2:7000``), any of which serves to discover it. Every call
is bounded by ``timeout``, which measures the server round trip (``deadline``): waiting for
one of the ``MAX_IN_FLIGHT`` call slots of the loop (one pooled connection each) happens before
the timer starts, so a burst of calls queues instead of timing out. Failures are translated at
this seam (``errors``), with the URL's password scrubbed from the message. A pooled connection
found dead (a server restart, ``CLIENT KILL``) is retried once on a fresh connection before
the call counts as failed; on a cluster a failed call drops the client, so the next one
rediscovers the slot map. A call refused because a slot it needs is being resharded is sent
again while its deadline leaves room (``_patiently``): the move ends in milliseconds. Scripts
are registered per client (redis-py's ``Script`` sends EVALSHA and falls back to EVAL when the
server lost its script cache).

A client belongs to one event loop, so there is one per loop the connection is used from (sync
adapters run on a portal loop); ``aclose()`` closes all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tta_dev_primitives._blocked import blocked_loop, fork_safe
from tta_dev_primitives.exceptions import (
    BackendError,
    BackendRefusedError,
    BackendUnavailableError,
)
from tta_dev_primitives.stores._redis import errors
from tta_dev_primitives.stores._redis.deadline import AnswerWithin
from tta_dev_primitives.stores._redis.layout import Layout
from tta_dev_primitives.stores._redis.replication import ReplicaWait
from tta_dev_primitives.stores._redis.sentinel import follow_primary, reason, sentinel_client
from tta_dev_primitives.stores._redis.sizes import (
    PROBE_FROM,
    TAKES_WRITES,
    budget,
    closed_by_server,
    refused_for_size,
    size_of,
)
from tta_dev_primitives.stores._redis.sockets import abandon, close_client, drop_sockets
from tta_dev_primitives.stores._urls import SENTINEL_SCHEME, cluster_nodes, redact_url, scrub

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_IN_FLIGHT",
    "Connection",
    "mget",
    "pipeline",
    "reply_text",
    "text_of",
    "unreadable",
    "values_and_ttls",
]

R = TypeVar("R")

log = logging.getLogger("tta_dev_primitives.memory")

MAX_CONNECTIONS = 1000  # per process and event loop; Redis's default maxclients is 10000
# Calls in flight per event loop, each on its own pooled connection; more wait for a slot
# (outside the timeout). 64 keeps a localhost Redis busy; a burst of thousands queues.
MAX_IN_FLIGHT = 64

#: A call that meets a slot being resharded is sent again after these pauses (doubling), as
#: long as its deadline leaves room for the pause twice and ``_ROOM`` more (``_patiently``).
_FIRST_PAUSE, _LONGEST_PAUSE, _ROOM = 0.005, 0.1, 0.05

#: The name ``sizes.TAKES_WRITES`` is registered under, with the owner's scripts.
_TAKES_WRITES = "TAKES_WRITES"

#: Forks this process is away from the one that imported the module (a server's worker is 1):
#: a loop's client made before the fork belongs to the parent (see ``_LoopClient.fork``).
_forks = 0


def _forked() -> None:
    global _forks
    _forks += 1


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_forked)


def text_of(value: bytes | str) -> str:
    """A Redis reply's string, whether the client decoded it or not."""
    return value.decode() if isinstance(value, bytes) else value


def reply_text(value: object) -> str:
    """``text_of`` a reply that must be a string: ``unreadable`` if it is not one."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise unreadable(value) from None
    raise unreadable(value)


def unreadable(reply: object) -> BackendError:
    """The error for a reply of a shape no Redis sends to the command (a proxy or a server that
    only claims to be Redis garbled it): typed, instead of whatever parsing it would raise, and
    not an outage. Whether the command took effect is unknown, as for a lost reply."""
    return BackendError(
        f"Redis sent a reply this library cannot read (of type {type(reply).__name__}, not "
        "what Redis sends to that command): is something between it and Redis changing replies?"
    )


class _LoopClient:
    """The client of one event loop, its scripts, and the slots that bound its calls.

    A client dropped (a cluster client after a failure, any client at ``aclose``) may still
    serve calls that started on it, and those can open connections after it was closed; it is
    kept in ``retired`` until the last of them ends, which closes what they opened (``leave``).
    """

    __slots__ = (
        "client", "closed", "connecting", "failures", "fork", "retired", "scripts", "slots",
        "users",
    )  # fmt: skip

    def __init__(self) -> None:
        # The process it was made in: in a forked child (a server's worker) its loop is the
        # parent's, which no thread of the child runs (the sync portal's), and its sockets are
        # the parent's connections. The child makes its own; these it only closes its copy of.
        self.fork = _forks
        self.client: Any = None  # aioredis.Redis or RedisCluster
        self.scripts: dict[str, Any] = {}
        self.connecting = asyncio.Lock()  # one connect at a time
        self.slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.failures = 0  # unavailable errors so far: a waiting call seeing one gives up
        self.users: dict[int, int] = {}  # id(client) -> calls running on it
        self.retired: dict[int, Any] = {}  # id(client) -> a dropped client calls still run on
        self.closed = False  # aclose() dropped this state: every call's last user closes its client

    def enter(self, client: Any) -> None:
        """A call starts running on ``client``."""
        key = id(client)
        self.users[key] = self.users.get(key, 0) + 1

    def leave(self, client: Any) -> None:
        """A call on ``client`` ended; the last one on a dropped client closes its sockets."""
        key = id(client)
        left = self.users[key] - 1
        if left:
            self.users[key] = left
            return
        del self.users[key]
        retired = self.retired.pop(key, None)
        if retired is not None:
            abandon(retired)
        elif self.closed:  # a call that connected, or got its slot, after aclose()
            abandon(client)

    def retire(self, client: Any) -> None:
        """``client`` is dropped: if calls still run on it, the last of them closes it."""
        if id(client) in self.users:
            self.retired[id(client)] = client

    async def close(self) -> None:
        """On this state's own loop: retired clients at once (calls still on them are cut
        off), the current one politely; a call still on it closes what it reopens."""
        for retired in list(self.retired.values()):
            abandon(retired)
        if self.client is not None:
            self.retire(self.client)
            await close_client(self.client)

    def drop_sockets(self) -> None:
        """Its loop is closed and can no longer close its clients: their sockets go now."""
        for client in (self.client, *self.retired.values()):
            drop_sockets(client)


class Connection:
    """Clients (one per event loop) to the Redis at ``url``, and the bounded call over them.

    ``scripts`` are the Lua scripts by name; ``own_keys`` names the owner's keys and their types
    (a WRONGTYPE refusal warns about those that hold another); ``on_cluster`` is called once,
    when the server is first found to be a cluster node.
    """

    def __init__(
        self,
        url: str,
        timeout: float,
        *,
        scripts: Mapping[str, str],
        own_keys: Callable[[], Mapping[str, str]],
        on_cluster: Callable[[], None],
    ) -> None:
        self.url = url  # as given (shown redacted)
        # A URL may name several nodes of one cluster (``host:port,host:port``): clients are
        # made from the first's URL (the credentials and options are the same for all).
        self._url, self._seeds = cluster_nodes(url)
        self.timeout = timeout
        self.topology: str | None = None  # "standalone" or "cluster", known after connecting
        self.nodes = 0  # a cluster's primaries
        # Every node (masters and replicas) of the last slot map a cluster client read: a new
        # client (after a failure, on another loop) discovers the cluster through any of them,
        # so the URL's node may be the master that died.
        self.known: list[tuple[str, int]] = []
        self._sources = {**scripts, _TAKES_WRITES: TAKES_WRITES}
        self._own_keys = own_keys
        self._on_cluster = on_cluster
        self._loops: dict[asyncio.AbstractEventLoop, _LoopClient] = {}
        # Threads (each with its loop) change the table together: held for each change and for
        # aclose()'s swap, never across an await or a loop's is_closed().
        self._table = fork_safe(threading.Lock())
        self._warned_types: set[str] = set()
        self._policy_checked = False  # maxmemory-policy: checked on the first connect it answers
        self.replicas = ReplicaWait(timeout)  # WAIT 1 after writes to a master with a replica

    @property
    def cluster(self) -> bool:
        return self.topology == "cluster"

    def _state(self) -> _LoopClient:
        """The running loop's client state, made on first use there."""
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None or state.fork != _forks:
            self._drop_closed_loops()
            with self._table:
                state = self._loops.get(loop)
                if state is None or state.fork != _forks:
                    state = self._loops[loop] = _LoopClient()
        return state

    def _drop_closed_loops(self) -> None:
        """Forget the states of closed loops, and those a parent process made (``_LoopClient``),
        closing their sockets (nothing else could). Another thread may be doing the same: each
        state is dropped by the one that takes it out."""
        with self._table:
            loops = list(self._loops.items())
        for old, state in loops:
            if old.is_closed() or state.fork != _forks:
                with self._table:
                    if self._loops.get(old) is not state:
                        continue  # (taken out, or replaced, by another thread)
                    del self._loops[old]
                state.drop_sockets()

    def script(self, name: str) -> Any:
        """The running loop's registered script ``name`` (a script is bound to its client)."""
        return self._state().scripts[name]

    @property
    def connected(self) -> bool:
        """True if the running loop has a client (the topology is known)."""
        state = self._loops.get(asyncio.get_running_loop())
        return state is not None and state.client is not None and state.fork == _forks

    async def ready(self) -> None:
        """Connect (learning the topology) if the running loop has no client yet."""
        if not self.connected:
            await self.call(_connected)

    async def _connect(self, state: _LoopClient) -> Any:
        """The client for the running loop, made on first use."""
        async with state.connecting:
            if state.client is None:
                client = await self._new_client()
                state.scripts = {name: client.register_script(source)
                                 for name, source in self._sources.items()}  # fmt: skip
                state.client = client
        return state.client

    async def _new_client(self) -> Any:
        """A standalone client, swapped for redis-py's cluster client if the server says it is
        a cluster node; a cluster client at once if a cluster was seen (from any node it knew
        of: ``_cluster_client``) or the URL names several nodes."""
        common: dict[str, Any] = {
            # One bound per call, ours (AnswerWithin in call), not a second per read or
            # connect: redis-py's would count time this loop spends elsewhere (a burst).
            "socket_timeout": None,
            "socket_connect_timeout": None,
            # No retries of redis-py's own: ours is one, on a fresh connection (``call``);
            # and a retried cluster pipeline would route a write and its WAIT apart
            # (``replication``).
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0,
        }
        # redis-py's default cap (100) fails the 101st concurrent call as if Redis were down;
        # a blocking pool avoids that but costs ~10 us a call, so: a plain pool, high cap.
        client: Any
        if self._seeds or (self.cluster and self.known):
            client = await self._cluster_client(common)
        elif self.url.startswith(f"{SENTINEL_SCHEME}://"):
            client = sentinel_client(self.url, self.timeout, MAX_CONNECTIONS, common)
        else:
            pool = aioredis.ConnectionPool.from_url(
                self._url, max_connections=MAX_CONNECTIONS, **common
            )
            client = aioredis.Redis(connection_pool=pool)
        try:
            client = await self._discover(client, common)
            if not self._policy_checked:
                await self._check_eviction(client)
            return client
        except BaseException:
            abandon(client)  # the call's timeout cancelled the connect: no socket outlives it
            raise

    async def _discover(self, client: Any, common: dict[str, Any]) -> Any:
        """``client``, or the cluster client that replaces it if the server is a cluster node."""
        if isinstance(client, RedisCluster):
            return client  # (made from the nodes known: the topology is known)
        if self.topology is None or self.topology == "cluster":
            info = await client.info("cluster")
            if info.get("cluster_enabled"):
                await client.aclose(close_connection_pool=True)
                client = await self._cluster_client(common)
            else:
                self.topology = "standalone"
        return client

    async def _cluster_client(self, common: dict[str, Any]) -> Any:
        """redis-py's cluster client, its slot map read from the first node that answers (in
        an order redis-py varies) of those the last slot map named, the URL's and those a list
        in the URL names: once a cluster was seen, the URL's node may be down (the master that
        died) and the client is still made, from the others. A URL naming several nodes is a
        cluster's: one that answers as a standalone server is a refusal (the URL is wrong)."""
        named = dict.fromkeys([*self.known, *self._seeds])
        nodes = [ClusterNode(host, port) for host, port in named]
        cluster = RedisCluster.from_url(
            self._url, startup_nodes=nodes, max_connections=MAX_CONNECTIONS, **common
        )
        try:
            await cluster.initialize()
        except rexc.RedisClusterException as exc:
            abandon(cluster)
            if not self._seeds or self.topology is not None or "not enabled" not in str(exc):
                raise
            raise BackendRefusedError(
                f"Redis at {redact_url(self.url)} refused: the URL names several nodes, as for "
                "a Redis Cluster, and none of those that answered took CLUSTER SLOTS (a server "
                "without cluster mode, to be named alone, or a Redis user without "
                "+cluster|slots); nothing was stored"
            ) from None
        except BaseException:
            abandon(cluster)
            raise
        self._remember_nodes(cluster)
        self.nodes = len(cluster.get_primaries())
        first, self.topology = self.topology is None, "cluster"
        if first:
            self._on_cluster()
        return cluster

    def _remember_nodes(self, cluster: Any) -> None:
        """Keep the nodes of ``cluster``'s slot map (the last one it read), if it has one."""
        found = [(node.host, int(node.port)) for node in cluster.nodes_manager.nodes_cache.values()]
        if found:
            self.known = found

    async def _check_eviction(self, client: Any) -> None:
        """Warn once if Redis may evict this library's keys. ``allkeys-*`` evicts its own keys
        too (the feed, versions, partition facts): search, size, get and the ordering of writes
        then disagree. ``volatile-*`` evicts keys with a TTL: memories added with ``ttl=``, gone
        before it runs out while size and search still count them (review R14: half of 4,000
        such adds, at once). ``noeviction`` is what the docs ask for."""
        try:
            info = await client.info("memory")
        except rexc.ResponseError:
            info = {}  # INFO refused (an ACL without +info): nothing to check
        # Checked once an answer came: a connect that failed before it checks on the next one.
        # Two loops' first connects may both get here; the flag makes the warning one.
        if self._policy_checked:
            return
        self._policy_checked = True
        policy = text_of(info.get("maxmemory_policy", b"") or b"")
        if policy.startswith("allkeys"):
            log.warning(
                "Redis at %s has maxmemory-policy %s: it may evict this library's own keys, "
                "and then search, size and get disagree and ordering is lost. Set "
                "maxmemory-policy to noeviction for this database "
                "(see 'Memory limits' in docs/production.md)",
                redact_url(self.url), policy,
            )  # fmt: skip
        elif policy.startswith("volatile"):
            log.warning(
                "Redis at %s has maxmemory-policy %s: memories added with a ttl may be evicted "
                "before it runs out, while size and search still count them. Set "
                "maxmemory-policy to noeviction for this database if this namespace uses ttl "
                "(see 'Memory limits' in docs/production.md)",
                redact_url(self.url), policy,
            )  # fmt: skip

    async def call(
        self,
        work: Callable[[aioredis.Redis], Awaitable[R]],
        *,
        bounded: bool = True,
        sending: int = 0,
        key: str = "",
    ) -> R:
        """Run ``work`` within the timeout, translating Redis failures at the seam.

        The timeout starts once the call has a slot: waiting for one is not a server failure.
        A call that waited while another failed for availability gives up without trying.
        ``bounded=False`` leaves the bound to the caller (a replica's load has its own budget).
        ``sending``: the bytes of a write (``key``: the first key it names), given time to
        cross the link, and told apart from an outage when Redis closes the connection on
        them (``sizes``).
        """
        state = self._state()
        seen = state.failures
        seconds = budget(self.timeout, sending)
        async with state.slots:
            if state.failures != seen:
                raise BackendUnavailableError(
                    f"Redis at {redact_url(self.url)} unavailable: failed while this call waited"
                )
            resent = False
            while True:
                client = None
                try:
                    async with AnswerWithin(seconds if bounded else None) as timer:
                        client = state.client
                        if client is None:
                            client = await self._connect(state)
                        state.enter(client)
                        try:
                            return await self._patiently(work, client, timer)
                        except rexc.ConnectionError:
                            if timer.expired or not await self._drop_dead_connections(client):
                                raise
                            return await work(client)  # once, on a fresh connection
                        finally:
                            state.leave(client)
                except errors.REFUSED as exc:  # first: ResponseError subclasses
                    raise await self._refused(state, client, exc) from None
                except errors.UNAVAILABLE as exc:
                    message = scrub(reason(exc) or str(exc) or type(exc).__name__, self.url)
                    if (
                        sending >= PROBE_FROM
                        and closed_by_server(exc)
                        and await self._takes_writes(state, key)
                    ):
                        # Closed while its master takes writes: its size, or an idle connection
                        # reset (a cluster's are not retried above) or a restart in between.
                        # Sent again; closed again, it is its size.
                        if resent:
                            where = redact_url(self.url)
                            raise refused_for_size(where, sending, message) from None
                        resent = True
                        continue
                    await self._unavailable(state, client, isinstance(exc, rexc.ReadOnlyError))
                    raise BackendUnavailableError(
                        f"Redis at {redact_url(self.url)} unavailable: {message}"
                    ) from None
                except rexc.ResponseError as exc:
                    message = scrub(errors.reply(str(exc)), self.url)
                    if errors.refused(message):
                        raise await self._refused(state, client, exc) from None
                    if errors.unavailable(message):
                        readonly = message.upper().startswith("READONLY")
                        await self._unavailable(state, client, readonly)
                        raise BackendUnavailableError(f"Redis refused: {message}") from None
                    raise BackendError(f"Redis error: {message}") from None
                except (rexc.DataError, UnicodeError) as exc:  # a value the client cannot send
                    raise BackendError(f"Redis refused the data: {type(exc).__name__}") from None
                except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
                    if errors.not_redis(exc):
                        await self._unavailable(state, client, False)
                        raise BackendUnavailableError(
                            f"Redis at {redact_url(self.url)} unavailable: what answers there "
                            f"does not speak Redis ({type(exc).__name__} reading its reply to "
                            "a new connection's handshake)"
                        ) from None
                    if not errors.unknown_node(exc):
                        raise
                    # An ASK to a master added since the slot map was read: the slots are
                    # moving (``errors.unknown_node``). The map is read again at the next probe.
                    await self._unavailable(state, client, False)
                    raise BackendUnavailableError(
                        f"Redis at {redact_url(self.url)} unavailable: the cluster sent a "
                        "command to a node this client does not know yet (a slot moving to a "
                        "master added since the slot map was read)"
                    ) from None

    def _still_moving(self, exc: Exception) -> BackendUnavailableError:
        """A call whose slot was still moving when its time ran out (``_patiently`` gives up):
        an outage for the caller, but not the connection's, so it passes ``call``'s handling of
        Redis's errors. Its nodes serve and its client is sound, so the client is kept:
        dropping it (``_unavailable``) closed it under every other call in flight, which then
        failed too ("Connection closed by server")."""
        message = scrub(reason(exc) or str(exc) or type(exc).__name__, self.url)
        return BackendUnavailableError(
            f"Redis at {redact_url(self.url)} unavailable: a slot this call needs was still "
            f"being resharded when its time ran out ({message})"
        )

    async def _patiently(
        self, work: Callable[[Any], Awaitable[R]], client: Any, timer: AnswerWithin
    ) -> R:
        """``work``, sent again while a slot it needs is being resharded and the call's deadline
        leaves room (``errors.slot_moving``; a call without one waits at most the timeout): a
        slot moves in milliseconds, and a failed call would serve the whole process
        in-process until its recovery replays, answering ``None`` for what others wrote. Once
        the room is gone, ``_still_moving``."""
        pause, until = _FIRST_PAUSE, None
        while True:
            try:
                return await work(client)
            except Exception as exc:
                if not (self.cluster and errors.slot_moving(exc)):
                    raise
                left = timer.remaining()
                if left is None:
                    now = asyncio.get_running_loop().time()
                    until = until or now + self.timeout
                    left = until - now
                if left < 2 * pause + _ROOM:
                    if errors.unknown_node(exc):
                        raise  # (``call`` drops the client: its map lacks a master)
                    raise self._still_moving(exc) from None
                if errors.unknown_node(exc) or isinstance(exc, errors.SlotsMoved):
                    await client.nodes_manager.initialize()  # the map lags: read it again
            log.debug("a slot is being resharded; sending again in %.3fs", pause)
            await asyncio.sleep(pause)
            pause = min(2 * pause, _LONGEST_PAUSE)

    def declared(self, base: str, key: str | None = None, seg: str | None = None) -> list[str]:
        """The keys a script on partition ``base`` names to Redis: on a cluster every one it
        may touch (``Layout.declared``: a slot being resharded must not run it where only some
        are); on one server, where nothing moves, only the first (``key``'s value, or the
        partition's facts), as every name is one more argument per call."""
        if self.cluster:
            return Layout.declared(base, key, seg)
        return [Layout.value_in(base, key)] if key is not None else [Layout.facts(base)]

    async def run_script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """One call of the script ``name``, under the timeout."""
        return await self.call(lambda c: self.script(name)(keys=keys, args=args))

    async def _refused(self, state: _LoopClient, client: Any, exc: Exception) -> Exception:
        refusal = errors.refusal(exc, self.url)
        # Only on the current client, held while it asks: a dropped or closed one would reopen
        # connections nothing closes.
        current = client is not None and client is state.client and not state.closed
        if current and "WRONGTYPE" in str(refusal).upper():
            state.enter(client)
            try:
                await self._warn_wrong_types(client)
            finally:
                state.leave(client)
        return refusal

    async def _unavailable(self, state: _LoopClient, client: Any, replica: bool) -> None:
        """After a failure of availability: counted (calls that waited for a slot give up), a
        cluster's slot map forgotten, and after READONLY (``replica``) the pooled connections
        dropped: behind a fixed address (a managed endpoint's name, a floating IP) those opened
        before a failover still reach the old primary, a replica now; new ones reach the new
        primary."""
        state.failures += 1
        await self._forget_topology(state, client)
        if replica and client is not None:
            await self._drop_dead_connections(client)
        if client is not None:
            await follow_primary(client)  # (Sentinel's: the primary may have moved)

    async def _drop_dead_connections(self, client: Any) -> bool:
        """After a connection error, drop the client's idle pooled connections (a restart,
        ``CLIENT KILL`` or the server's idle ``timeout`` left them all dead): True if a retry,
        on fresh connections, is worth it. On a cluster, every node's: a managed cluster that
        closes idle clients did so on each, and the first call after a quiet spell on any node
        was taken for an outage (a review: every process fell back after CLIENT KILL)."""
        if isinstance(client, RedisCluster):
            nodes = client.get_nodes()
            with contextlib.suppress(Exception):
                await asyncio.gather(*(node.disconnect_free_connections() for node in nodes))
            return True
        if not isinstance(client, aioredis.Redis):
            return False
        with contextlib.suppress(Exception):
            await client.connection_pool.disconnect(inuse_connections=False)
        return True

    async def _warn_wrong_types(self, client: Any) -> None:
        """Name the owner's keys that hold the wrong type (someone else wrote them)."""
        wanted = dict(self._own_keys())
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.timeout):
                types = [await client.type(name) for name in wanted]
            for (name, want), found in zip(wanted.items(), types, strict=True):
                if text_of(found) not in (want, "none") and name not in self._warned_types:
                    self._warned_types.add(name)
                    log.warning(
                        "Redis key %r holds a %s, not the %s this namespace keeps there: "
                        "calls that use it are refused until it is fixed (delete the key, or "
                        "clear())",
                        name, text_of(found), want,
                    )  # fmt: skip

    async def _forget_topology(self, state: _LoopClient, failed: Any) -> None:
        """On a cluster, drop the client after a failure: the next call rediscovers the slots.

        redis-py's cluster client keeps routing to a dead master after its replica took over;
        a fresh client asks a live node for the current slot map.
        """
        if not self.cluster or failed is None or state.client is not failed:
            return  # not a cluster, or another call already replaced the failed client
        self._remember_nodes(failed)  # its slot map may be newer than the one it began with
        state.client = None
        state.retire(failed)  # calls still running on it may open connections after the close
        try:
            async with asyncio.timeout(self.timeout):
                await close_client(failed)
        except Exception:
            abandon(failed)  # a stalled node: its sockets are closed without its answer

    async def write(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """One call of the write script ``name``, under the timeout (longer for a large write,
        ``sizes``); when its master has a replica in sync, it returns only once one has the
        write (``replication``), so that a failover cannot lose a write that returned."""
        return await self.call(
            lambda c: self.replicas.write(c, self.script(name), keys, args),
            sending=size_of(args),
            key=keys[0],
        )

    async def _takes_writes(self, state: _LoopClient, key: str) -> bool:
        """Whether the server holding ``key`` runs a write script within the timeout
        (``sizes.TAKES_WRITES``): then a large write it closed the connection on, just now,
        was refused for its size."""
        client = state.client
        if not key or client is None or state.closed:
            return False
        state.enter(client)
        try:
            async with AnswerWithin(self.timeout):
                await self.script(_TAKES_WRITES)(keys=[key], args=[])
        except Exception:
            return False
        finally:
            state.leave(client)
        return True

    async def scan(self, pattern: str, each: Callable[[Any, list[bytes]], Awaitable[None]]) -> None:
        """SCAN ``pattern`` over the whole keyspace (every primary on a cluster), one SCAN
        step and ``each`` of its keys per call under the timeout."""
        cursors: dict[Any, int] | None = None  # node name (or None standalone) -> cursor

        async def step(client: Any) -> dict[Any, int]:
            if not self.cluster:
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
            cursors = await self.call(step)

    async def aclose(self) -> None:
        """Close every loop's client: this loop's here, a running loop's on that loop, and a
        closed loop's sockets directly (nothing else could close them)."""
        with self._table:
            loops, self._loops = self._loops, {}
        running = asyncio.get_running_loop()
        blocked = blocked_loop.get()  # a loop waiting for this very call (a sync close in it)
        elsewhere: dict[asyncio.Future[None], tuple[asyncio.AbstractEventLoop, _LoopClient]] = {}
        for loop, state in loops.items():
            state.closed = True  # calls still running (or connecting) close what they open
            if state.fork != _forks:  # the parent's: its loop never runs here
                state.drop_sockets()
            elif loop is running:
                await state.close()
            elif loop.is_running():  # its own loop touches its state (another thread)
                try:
                    closing = _close_on(loop, state)
                except RuntimeError:  # it closed meanwhile
                    state.drop_sockets()
                else:
                    if loop is not blocked:  # that one closes its client once we return
                        elsewhere[asyncio.wrap_future(closing)] = (loop, state)
            else:
                state.drop_sockets()
        if elsewhere:
            # One bound for them all. A close not yet run is not withdrawn: a loop blocked now
            # closes its client when it runs again. One that closed first never will: its
            # sockets are closed here.
            await asyncio.wait(elsewhere, timeout=self.timeout + 1)
            for future, (loop, state) in elsewhere.items():
                if not future.done() and loop.is_closed():
                    state.drop_sockets()


def _close_on(loop: asyncio.AbstractEventLoop, state: _LoopClient) -> Future[None]:
    """Have ``loop`` (running in another thread) close ``state``; done when it has. Nothing is
    made before that loop runs the request, so one that never does leaves nothing behind."""
    done: Future[None] = Future()

    def finished(task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            task.exception()  # read, not raised: close_client abandoned what it could not close
        if not done.done():
            done.set_result(None)

    def start() -> None:
        loop.create_task(state.close()).add_done_callback(finished)

    loop.call_soon_threadsafe(start)
    return done


async def _connected(client: Any) -> None:
    """Nothing to do: ``call`` has connected by the time it runs this."""


async def mget(client: Any, names: list[str]) -> list[Any]:
    """GET of many keys in one round trip (one per shard on a cluster)."""
    if isinstance(client, RedisCluster):
        return list(await client.mget_nonatomic(names))
    return list(await client.mget(names))


def pipeline(client: Any) -> Any:
    """A pipeline of plain commands (on a cluster, sent to each key's master: one round trip
    per master)."""
    if isinstance(client, RedisCluster):
        return client.pipeline()
    return client.pipeline(transaction=False)


async def values_and_ttls(client: Any, names: Sequence[Any]) -> list[tuple[Any, Any]]:
    """(value, PTTL ms) per name, in one pipeline (on a cluster too: all in one slot)."""
    pipe = pipeline(client)
    for name in names:
        pipe.get(name)
        pipe.pttl(name)
    flat = await pipe.execute()
    return list(zip(flat[::2], flat[1::2], strict=True))
