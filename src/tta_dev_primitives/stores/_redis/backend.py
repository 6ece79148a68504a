"""The Redis backend: plain Redis 7 (or Valkey), no modules; the operations of the seam.

It says what to read and write; where (key names: ``layout``), how (scripts: ``lua``) and
over what (clients, timeouts, retries, cluster: ``connection``) are each one module's job. A
searchable backend (``search``) composes a search index into it: the index adds its data to
each write and hears of clears, as ``LocalStore(searchable=True)`` does in-process.

A Redis Cluster is detected on first connect and its namespace spread over
``CLUSTER_PARTITIONS`` partitions; nothing else changes. Failures become
``BackendUnavailableError`` (Redis cannot serve now) or ``BackendRefusedError`` (an operator
must act: an ACL, maxmemory, a key of the wrong type), as ``connection`` translates them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from functools import partial
from typing import Any, ClassVar, Protocol

import redis.asyncio as aioredis
from redis import exceptions as rexc

from tta_dev_primitives._checks import check_count, check_namespace, check_seconds
from tta_dev_primitives._gather import gather_all
from tta_dev_primitives.exceptions import (
    BackendRefusedError,
    BackendUnavailableError,
    IncompleteOperationError,
    StaleWriteError,
)
from tta_dev_primitives.stores._base import (
    ApplyProgress,
    Clear,
    Delete,
    Document,
    PartitionsUnavailableError,
    Put,
    StorageBackend,
    Write,
    report_outcomes,
    send,
)
from tta_dev_primitives.stores._redis import errors, lua
from tta_dev_primitives.stores._redis.bulk import (
    Progress,
    clear_partitions,
    items_page,
    unlink_namespace,
)
from tta_dev_primitives.stores._redis.connection import (
    Connection,
    pipeline,
    reply_text,
    text_of,
    unreadable,
)
from tta_dev_primitives.stores._redis.layout import (
    CLUSTER_PARTITIONS,
    FACT_NEWEST,
    PARTITIONS_AT_ONCE,
    Layout,
)
from tta_dev_primitives.stores._redis.listing import scope_page
from tta_dev_primitives.stores._redis.replication import confirm
from tta_dev_primitives.stores._redis.sizes import size_of
from tta_dev_primitives.stores._urls import check_redis_url, redact_url
from tta_dev_primitives.stores._versions import VersionClock

__all__ = ["Indexer", "RedisBackend"]

_REPLAY_CHUNK = 200
_REPLAY_BYTES = 1 << 20  # payload bytes per pipelined chunk (a 1 MB value goes alone)
_SCRIPTS = ("PUT", "DELETE", "TOUCH", "SIZE", "CHANGES", "CLEAR_MARK", "CLEAR_PAGE", "INDEX_PAGE",
            "FORGET_MARK", "SWEEP")  # fmt: skip


class Indexer(Protocol):
    """What a search index composed into the backend takes part in."""

    def extra(self, key: str, document: Document | None) -> Sequence[Any]:
        """What a write stores beside the value for search (PUT's arguments past the value)."""

    def cleared(self) -> None:
        """The namespace was (perhaps partly) cleared by this process."""


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
        url = check_redis_url(url)
        self.namespace = check_namespace(namespace)
        self.timeout = check_seconds("timeout", timeout)
        self.layout = Layout(self.namespace, check_count("partitions", partitions))
        self._segmented: set[str] = set()  # partitions known to keep per-user feeds
        self.connection = Connection(
            url, self.timeout,
            scripts={name: getattr(lua, name) for name in _SCRIPTS},
            own_keys=self.layout.own_keys, on_cluster=self._on_cluster,
        )  # fmt: skip
        #: The search index that takes part in writes and clears (``search``), if any.
        self.index: Indexer | None = None
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

    @property
    def partitions(self) -> int:
        return self.layout.partitions

    @property
    def topology(self) -> str | None:
        """``"standalone"`` or ``"cluster"``, known after connecting."""
        return self.connection.topology

    def _on_cluster(self) -> None:
        """The server is a cluster node: spread the namespace over hash slots (unless told)."""
        if self.layout.partitions == 1:
            self.layout.repartition(CLUSTER_PARTITIONS)

    def _extra(self, key: str, document: Document | None) -> Sequence[Any]:
        return () if self.index is None else self.index.extra(key, document)

    def _report_stale(self, exc: StaleWriteError, key: str) -> None:
        """A replayed write was older than what stands: tell the listener (the hybrid)."""
        if self.on_stale is not None:
            self.on_stale(exc, key)

    # -- the seam ------------------------------------------------------------------------------

    def partition_of(self, key: str) -> Hashable | None:
        """On a cluster, ``key``'s partition (its base): each on its own hash slot, so on a
        master that may fail while the others answer (``_apply_per_partition``). On one server
        every partition fails with it: None."""
        return self.layout.base(key) if self.connection.cluster else None

    async def put(
        self, key: str, payload: Any, ttl: float | None = None, *, version: str = ""
    ) -> None:
        await self._put(key, payload, ttl, version)

    async def _put(
        self,
        key: str,
        payload: Any,
        ttl: float | None,
        version: str,
        document: Document | None = None,
    ) -> int:
        """Run the PUT script; the write's sequence number (Redis's time, observed by the
        version clock). Raises ``StaleWriteError`` if a newer write of the key stands."""
        await self.connection.ready()  # partitions depend on the topology
        base = self.layout.base(key)
        args = _put_args(base, key, payload, ttl, version, self._extra(key, document))
        reply = await self._write("PUT", base, key, args)
        if reply_text(reply).startswith("stale"):
            raise _stale(key, reply_text(reply))
        seq = _sequence(reply)
        self.versions.observe(seq)
        return seq

    async def _write(self, script: str, base: str, key: str, args: list[Any]) -> Any:
        """Run one of the write scripts on ``key`` (in partition ``base``), returning once a
        replica has it if its master has one (``Connection.write``); the script's reply."""
        return await self.connection.write(script, self.connection.declared(base, key), args)

    async def get(self, key: str) -> Any | None:
        await self.connection.ready()
        name = self.layout.value(key)

        async def fetch(client: aioredis.Redis) -> Any:
            try:
                return await client.get(name)
            except rexc.ResponseError as exc:
                if str(exc).startswith("WRONGTYPE"):
                    return b""  # not ours or corrupt: the layer above reads it as a miss
                raise

        value = await self.connection.call(fetch)
        if value is not None and not isinstance(value, bytes | str):
            raise unreadable(value)
        return value

    async def delete(self, key: str, *, version: str = "") -> bool:
        await self.connection.ready()
        base = self.layout.base(key)
        removed = await self._write("DELETE", base, key, [base, key, version])
        if isinstance(removed, bytes | str) and text_of(removed).startswith("stale"):
            raise _stale(key, text_of(removed))
        if removed not in (0, 1) or isinstance(removed, bool):
            raise unreadable(removed)
        return bool(removed)

    async def touch(self, key: str, ttl: float | None, *, version: str = "") -> bool:
        await self.connection.ready()
        base = self.layout.base(key)
        args = [base, key, _ttl_ms(ttl), version]
        reply = reply_text(await self._write("TOUCH", base, key, args))
        if reply.startswith("stale"):
            raise _stale(key, reply)
        if not reply:
            return False
        seq, _, replaced = reply.partition(" ")
        self.versions.observe(_sequence(seq))
        if replaced and not self.versions.issued(replaced) and self.on_changed is not None:
            # Another process wrote the memory after this one: the touch takes the version,
            # so this process's copy must go now (its check would think it current).
            self.on_changed(key, None)
        return True

    async def current_versions(self, keys: Sequence[str]) -> list[str | None] | None:
        """Each key's version: the newer of its partition's ``w`` and ``t`` (a touch's, while
        the ``w`` it was made over is still there), one ``HMGET`` of each per partition,
        pipelined."""
        await self.connection.ready()
        by_base: dict[str, list[str]] = {}
        for key in keys:
            by_base.setdefault(self.layout.base(key), []).append(key)

        groups = list(by_base.items())

        async def read(client: Any) -> list[Any]:
            # One call (one slot, one timeout) whatever the partitions: on a cluster the
            # pipeline sends each node its partitions' HMGETs at once.
            pipe = pipeline(client)
            for base, names in groups:
                pipe.hmget(Layout.versions(base), names)
                pipe.hmget(Layout.touches(base), names)
            return list(await pipe.execute())

        replies = await self.connection.call(read)
        found: dict[str, str | None] = {}
        for i, (_, names) in enumerate(groups):
            written, touched = replies[2 * i], replies[2 * i + 1]
            for key, version, touch in zip(names, written, touched, strict=True):
                found[key] = _newest(
                    None if version is None else text_of(version),
                    None if touch is None else text_of(touch),
                )
        return [found[key] for key in keys]

    async def scope_page(
        self, scope: str | None, after: tuple[int, str] | None, limit: int
    ) -> tuple[list[tuple[str, Any, int]], tuple[int, str] | None]:
        await self.connection.ready()
        return await scope_page(self.connection, self.layout, self._segmented, scope, after, limit)

    async def size(self) -> int:
        await self.connection.ready()
        counts = await gather_all(
            *(self._size_in(base) for base in self.layout.bases), at_most=PARTITIONS_AT_ONCE
        )
        return sum(counts)

    async def _size_in(self, base: str) -> int:
        reply = await self.connection.run_script("SIZE", self.connection.declared(base), [base])
        if not isinstance(reply, int) or isinstance(reply, bool) or reply < 0:
            raise unreadable(reply)
        return reply

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
        progress = Progress()
        if version:
            await self.connection.ready()
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

    async def forget_mark(self, scope: str, version: str) -> None:
        """Before a forget of ``scope`` deletes its memories: in every partition, writes of keys
        in ``scope`` older than ``version`` become stale, so an outage write of one that another
        process replays after the forget is not applied (it would bring the memory back)."""
        await self.connection.ready()

        async def mark(base: str) -> None:
            # (The script's key only routes it to the partition's slot, as every name there.)
            await self._write("FORGET_MARK", base, scope, [base, scope, version])

        await gather_all(*(mark(base) for base in self.layout.bases), at_most=PARTITIONS_AT_ONCE)

    async def _check_newest(self, version: str) -> None:
        """Before a live clear: raise ``StaleWriteError`` if a write newer than ``version``
        stands in any partition (this machine's clock is behind a writer's). The hybrid then
        retries with a version past it, so the clear removes every write acknowledged before
        it, whatever the clocks say."""

        async def newest(client: Any, base: str) -> Any:
            return await client.hget(Layout.facts(base), FACT_NEWEST)

        reads = (self.connection.call(partial(newest, base=base)) for base in self.layout.bases)
        found = await gather_all(*reads, at_most=PARTITIONS_AT_ONCE)
        newer = max((text_of(v) for v in found if v is not None), default="")
        if newer > version:
            raise StaleWriteError(
                f"a write newer than this clear stands in namespace {self.namespace!r} "
                "(clocks differ between machines)",
                newer=newer,
            )

    async def _clear_pages(self, version: str, progress: Progress) -> None:
        await self.connection.ready()
        try:
            if not version:
                progress.noun = "keys"
                await unlink_namespace(self.connection, self.layout, progress)
            else:
                progress.noun = "memories"
                await clear_partitions(self.connection, self.layout, version, progress)
        finally:  # even part-way: a search index reloads what is left
            if self.index is not None:
                self.index.cleared()

    async def apply(
        self, writes: Sequence[Write], *, progress: ApplyProgress | None = None
    ) -> None:
        """Replay writes in order, pipelined in chunks; a Clear splits the pipeline.

        A chunk (one call under the timeout) holds at most ``_REPLAY_CHUNK`` writes and about
        ``_REPLAY_BYTES`` of payload, so large values do not make one call too long.
        ``progress`` hears of each chunk as it is sent and once its replies are in: a replay
        cancelled (or failed) in between knows that only that chunk's fate is unknown.
        """
        report = progress or _no_progress
        await self.connection.ready()
        chunk: list[Put | Delete] = []
        size = 0
        start = 0  # the position in ``writes`` of the chunk's first write
        for position, write in enumerate(writes):
            if isinstance(write, Clear):
                await self._chunk(chunk, start, report)
                # A replayed clear that stops part-way stays unavailable (not incomplete): the
                # journal keeps it and the next replay finishes it (a versioned clear is
                # idempotent).
                report(position + 1, position)
                await self._clear_pages(write.version, Progress())
                report(position + 1, position + 1)
                chunk, size, start = [], 0, position + 1
            else:
                chunk.append(write)
                size += len(write.payload) if isinstance(write, Put) else 0
                if len(chunk) >= _REPLAY_CHUNK or size >= _REPLAY_BYTES:
                    await self._chunk(chunk, start, report)
                    chunk, size, start = [], 0, position + 1
        await self._chunk(chunk, start, report)

    async def _chunk(
        self, chunk: Sequence[Put | Delete], start: int, report: ApplyProgress
    ) -> None:
        """One chunk of ``apply``, at ``start`` in its writes, reported sent, then applied."""
        if chunk:
            end = start + len(chunk)
            report(end, start)
            await self._pipeline(chunk, partial(report_outcomes, report, start))
            report(end, end)

    async def _pipeline(
        self,
        writes: Sequence[Put | Delete],
        answered: Callable[[list[bool | None]], None] = lambda outcomes: None,
    ) -> None:
        """Send ``writes`` in one pipeline (partition by partition on a cluster). If one fails,
        ``answered`` hears each write's fate before the first failure is raised
        (``report_outcomes``): applied, refused with nothing left behind (Redis full, or our
        scripts' checks: ``_untouched``), or unknown. Redis runs a pipeline's writes after a
        refused one, so the applied ones need not come first."""
        if not writes:
            return
        connection = self.connection
        if connection.cluster:
            await self._apply_per_partition(writes, answered)
            return

        calls: list[tuple[str, str, list[Any]]] = []  # (script, key's value, arguments)
        for write in writes:
            base = self.layout.base(write.key)
            name = Layout.value_in(base, write.key)
            if isinstance(write, Put):
                extra = self._extra(write.key, write.document)
                args = _put_args(base, write.key, write.payload, write.ttl, write.version, extra)
                calls.append(("PUT", name, args))
            else:
                calls.append(("DELETE", name, [base, write.key, write.version]))
        sending = sum(size_of(args) for _, _, args in calls)

        async def run(client: aioredis.Redis) -> list[Any]:
            master, needed = await connection.replicas.master_with_replica(client, "")
            # Reset on the way out, however it ends: execute() checks the scripts (SCRIPT
            # EXISTS) on the pipeline's connection before the part of it that resets the
            # pipeline, so a timeout there left that connection out of the pool for good.
            async with pipeline(client) as pipe:
                for script, name, args in calls:
                    # Awaiting only queues the call: the pipeline sends it on execute().
                    await connection.script(script)(keys=[name], args=args, client=pipe)
                if master is not None:  # after the writes, on their connection
                    connection.replicas.queue_wait(pipe, master, needed)
                replies = list(await pipe.execute(raise_on_error=False))
            first = next((i for i, r in enumerate(replies) if isinstance(r, Exception)), None)
            if first is not None:  # raised as execute() would, the first in order
                mine = replies[: len(writes)]
                # Applied only once a replica confirms them (``replication``), if one must, and
                # only beside refusals that left nothing: after another failure (NOREPLICAS as a
                # failover starts) they stay journalled, sent again (a no-op if they landed),
                # and are taken in (``_settle``: a stale one reported) then, not twice.
                kept = (master is None or _confirms(replies[-1], needed)) and all(
                    _untouched(reply) for reply in mine if isinstance(reply, Exception)
                )
                if kept:
                    done = [i for i, reply in enumerate(mine) if not isinstance(reply, Exception)]
                    self._settle([writes[i] for i in done], [mine[i] for i in done])

                def fate(reply: Any) -> bool | None:
                    if isinstance(reply, Exception):
                        return False if _untouched(reply) else None
                    return True if kept else None

                answered([fate(reply) for reply in mine])
                raise replies[first]
            if master is not None:
                confirm(replies.pop(), needed)
            return replies

        self._settle(writes, await connection.call(run, sending=sending, key=calls[0][1]))

    def _settle(self, writes: Sequence[Put | Delete], replies: Sequence[Any]) -> None:
        """Take in what Redis answered each applied write: a stale one reported (its copy then
        dropped), a put's sequence observed."""
        for write, reply in zip(writes, replies, strict=True):
            if isinstance(reply, bytes | str) and text_of(reply).startswith("stale"):
                self._report_stale(_stale(write.key, text_of(reply)), write.key)
            elif isinstance(write, Put):
                self.versions.observe(_sequence(reply))

    async def _apply_per_partition(
        self, writes: Sequence[Put | Delete], answered: Callable[[list[bool | None]], None]
    ) -> None:
        """On a cluster: each partition's writes in order, partitions concurrently. A
        partition stops at its first failure, the others go on; then ``answered`` hears each
        write's fate (``_pipeline``) and the first failure in order is raised: as a
        ``PartitionsUnavailableError`` naming the partitions that could not be reached if it
        is one of those (and no other partition was refused by an operator's setting)."""
        groups: dict[str, list[int]] = {}
        for position, write in enumerate(writes):
            groups.setdefault(self.layout.base(write.key), []).append(position)
        outcomes: list[bool | None] = [False] * len(writes)  # (never sent: nothing left)
        failures: list[tuple[int, Exception]] = []

        async def run(group: list[int]) -> None:
            for position in group:
                write = writes[position]
                outcomes[position] = None
                try:
                    await send(self, write)
                except StaleWriteError as exc:
                    self._report_stale(exc, write.key)
                except Exception as exc:
                    outcomes[position] = False if errors.left_nothing(exc) else None
                    failures.append((position, exc))
                    return
                outcomes[position] = True

        await gather_all(*(run(group) for group in groups.values()))
        if failures:
            # Each write here went on its own, returning once a replica had it if its master
            # has one (``Connection.write``): one applied is as safe as a write that returned,
            # whatever failed in another partition, and leaves the journal. (Marked unknown
            # beside a timeout, one stalled master kept every partition's writes journalled:
            # the replay landed none while it was stalled, and past the cap the writes to the
            # masters that answered were dropped; review R38.)
            answered(outcomes)
            first = min(failures, key=lambda failure: failure[0])[1]
            if isinstance(first, BackendUnavailableError) and not any(
                isinstance(exc, BackendRefusedError) for _, exc in failures
            ):
                # Which partitions could not be reached: a replay goes on with the others'
                # writes (the journal's later ones too), while a stalled master keeps its own
                # (review R40: once the journal's oldest chunk held only the stalled master's
                # writes, every replay timed out on it and landed nothing else).
                unreachable = frozenset(
                    self.layout.base(writes[position].key)
                    for position, exc in failures
                    if isinstance(exc, BackendUnavailableError)
                )
                raise PartitionsUnavailableError(str(first), partitions=unreachable) from first
            raise first

    async def items(self) -> AsyncIterator[tuple[str, Any, float | None]]:
        """Every live memory of the namespace, partition by partition, oldest write first.

        Keys come from each partition's live index (exact names: a key may contain any
        text, ``}:v:`` included), a page at a time; a page's values and TTLs are read in the
        same call, under the timeout. If Redis fails part-way, ``IncompleteOperationError``
        says how many memories were read. A memory rewritten while the listing runs moves to
        the end of its partition's order, so it may be listed twice (the newer value last).
        """
        await self.connection.ready()
        done = 0
        try:
            for base in self.layout.bases:
                after = "-inf"
                while after:
                    page = await self.connection.call(partial(items_page, base=base, after=after))
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
        await self.connection.call(lambda c: c.ping())

    def describe(self) -> dict[str, Any]:
        connection = self.connection
        return {
            "url": redact_url(connection.url),
            "namespace": self.namespace,
            "partitions": self.partitions,
            "topology": connection.topology or "unknown (not connected yet)",
            **({"nodes": connection.nodes} if connection.cluster else {}),
        }

    async def aclose(self) -> None:
        await self.connection.aclose()


def _no_progress(sent: int, applied: int) -> None:
    """``apply``'s report when nobody asked for one."""


def _put_args(
    base: str, key: str, payload: Any, ttl: float | None, version: str, extra: Sequence[Any]
) -> list[Any]:
    return [base, key, payload, _ttl_ms(ttl), version, *extra]


def _ttl_ms(ttl: float | None) -> int:
    """A TTL as the scripts take it: whole milliseconds, at least 1; 0 for none."""
    return 0 if ttl is None else max(1, round(ttl * 1000))


def _sequence(reply: object) -> int:
    """A write script's sequence number (digits), or ``unreadable``."""
    text = reply_text(reply)
    if not (text.isascii() and text.isdigit()):
        raise unreadable(reply)
    return int(text)


def _stale(key: str, reply: str) -> StaleWriteError:
    """The error for a script's ``stale <newer version>`` reply about ``key``."""
    newer = reply[len("stale") :].strip()
    return StaleWriteError(
        f"a newer change of key {key!r} stands in Redis (another process's write or clear); "
        "this one was not applied",
        newer=newer,
    )


def _newest(written: str | None, touched: str | None) -> str | None:
    """A key's version from ``w`` and ``t``: the touch's (``'<version> <w then>'``) counts only
    while ``w`` is the one it was made over; a process of the version before writes ``w``
    without clearing ``t``."""
    if touched is not None:
        version, _, over = touched.partition(" ")
        if over == (written or "") and (written is None or version > written):
            return version
    return written


def _untouched(reply: Any) -> bool:
    """Whether a pipeline's reply refused its write with nothing left behind
    (``errors.untouched``): for memory, or by our scripts' checks before any change. Redis's
    own ACL refusal may stop a script after its value was set (review R16)."""
    if isinstance(reply, rexc.OutOfMemoryError):
        return True
    return isinstance(reply, rexc.ResponseError) and errors.untouched(errors.reply(str(reply)))


def _confirms(waited: Any, needed: int) -> bool:
    """Whether ``WAIT``'s reply says ``needed`` replicas have the writes before it."""
    try:
        confirm(waited, needed)
    except Exception:  # (an error reply, or no replica in time: the writes stay in doubt)
        return False
    return True
