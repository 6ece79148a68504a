"""A LangGraph checkpointer on ``MemoryPrimitive``: plain Redis or Valkey, with the fallback.

Needs ``langgraph`` (``pip install 'tta-dev-primitives[langgraph]'``). Pass it wherever LangGraph
takes a checkpointer (``graph.compile(checkpointer=...)``). Every record is a memory, so a
checkpoint written while Redis is down is kept in-process, journalled, and replayed when Redis
returns, exactly like any other write; no Redis module (RedisJSON, Query Engine) is needed.

Records, one memory each (labels escaped: ``%`` as ``%25``, ``:`` as ``%3A``, ``""`` as ``%``):

- ``c:{thread}:{ns}:{checkpoint_id}``: the checkpoint without its channel values, its metadata
  and its parent's id;
- ``b:{thread}:{ns}:{channel}:{version}``: one channel value, stored once per version;
- ``w:{thread}:{ns}:{checkpoint_id}:{task_id}:{idx}``: one pending write;
- ``h:{thread}:{ns}``: the id of the thread's latest checkpoint in ``ns``, rewritten by each
  ``put``. Redis's listing needs none; during an outage it says whether this process's copy
  holds the latest checkpoint (the copy drops a key another process changed since this one
  wrote it), so a thread resumes from it only then, and never forks from an older one.

Listing a thread reads that thread's checkpoint records only (the memory's scoped listing of
``c:{thread}``), never other threads'. Values are serialized with the saver's ``serde``
(LangGraph's ``JsonPlusSerializer`` by default, which never unpickles) and kept as base64.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from tta_dev_primitives._blocked import heavy_in_own_thread
from tta_dev_primitives._checks import is_integer
from tta_dev_primitives.exceptions import (
    BackendUnavailableError,
    IncompleteOperationError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
)
from tta_dev_primitives.memory import MemoryPrimitive

from ._portal import run_sync

__all__ = ["MemoryCheckpointSaver"]

#: The checkpointer never word-searches its records: the memory it builds indexes this field,
#: which no record has, so base64 payloads never reach the word index.
NOT_INDEXED = ("_not_indexed",)
#: Records read per scoped listing at first; the page grows fourfold until the scope is read.
_FIRST_PAGE = 64
#: A stored value (base64) is decoded on the event loop up to this many characters: a few ms.
_LOAD_HERE = 64 * 1024


def _label(text: str) -> str:
    """A key segment for ``text``: never empty, never containing ``:``."""
    return text.replace("%", "%25").replace(":", "%3A") or "%"


def _key(*parts: str) -> str:
    return ":".join(_label(part) for part in parts)


def _version_order(version: str) -> tuple[int, str]:
    """How channel versions sort: by their leading number (``get_next_version``'s padded
    counter, or an int's text), then as text."""
    head = version.split(".", 1)[0]
    return (int(head) if head.isdigit() else -1, version)


def _configurable(config: RunnableConfig | None) -> dict[str, Any]:
    if not isinstance(config, dict) or not isinstance(config.get("configurable"), dict):
        raise InvalidArgumentTypeError("config must be a dict with a 'configurable' dict")
    return config["configurable"]


def _thread_id(configurable: dict[str, Any]) -> str:
    thread_id = configurable.get("thread_id")
    if isinstance(thread_id, int) and not isinstance(thread_id, bool):
        return str(thread_id)
    if not isinstance(thread_id, str) or not thread_id:
        raise InvalidArgumentError(
            f"config['configurable']['thread_id'] must be a non-empty str, got {thread_id!r}"
        )
    return thread_id


def _namespace(configurable: dict[str, Any]) -> str:
    ns = configurable.get("checkpoint_ns", "")
    if not isinstance(ns, str):
        raise InvalidArgumentTypeError(f"checkpoint_ns must be str, got {type(ns).__name__}")
    return ns


def _checkpoint_config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


class MemoryCheckpointSaver(BaseCheckpointSaver[str]):
    """A LangGraph ``BaseCheckpointSaver`` whose checkpoints are memories of a ``MemoryPrimitive``.

    Give it a memory of its own (``from_url`` builds one): its records are not meant for word
    search. With Redis, the memory's in-process copy of the most recent ``max_size`` records is
    what a thread can resume from during an outage; in-process only, ``max_size`` is how many
    records it keeps (each checkpoint is one record, plus one per changed channel and one per
    pending write), so ``from_url`` defaults to 100,000. Async methods are native; sync ones run
    on a private loop (from inside a running loop too, blocking it while they run).
    """

    def __init__(
        self,
        memory: MemoryPrimitive,
        *,
        serde: SerializerProtocol | None = None,
        resume_in_outage: bool = True,
    ) -> None:
        if not isinstance(memory, MemoryPrimitive):
            raise InvalidArgumentTypeError(
                f"memory must be a MemoryPrimitive, got {type(memory).__name__}"
            )
        if not isinstance(resume_in_outage, bool):
            raise InvalidArgumentTypeError(
                f"resume_in_outage must be a bool, got {type(resume_in_outage).__name__}"
            )
        super().__init__(serde=serde)
        self.memory = memory
        #: False: during an outage every turn raises, none resumes from the copy (a thread
        #: whose turns go to several workers can fork otherwise: docs/langgraph.md).
        self.resume_in_outage = resume_in_outage

    @classmethod
    def from_url(
        cls,
        redis_url: str | None = None,
        *,
        namespace: str = "tta:checkpoints",
        max_size: int = 100_000,
        serde: SerializerProtocol | None = None,
        resume_in_outage: bool = True,
        **memory_options: Any,
    ) -> MemoryCheckpointSaver:
        """A saver on a new ``MemoryPrimitive(redis_url, ...)`` of its own namespace.

        Close it with ``await saver.aclose()`` (which replays anything journalled first).
        """
        memory_options.setdefault("text_fields", NOT_INDEXED)
        # A stalled Redis is found within 2 s (not the default 10) and read in-process
        # (``_newest``); a replica's load goes on as long as pages keep arriving.
        memory_options.setdefault("load_timeout", 2.0)
        memory = MemoryPrimitive(redis_url, max_size, namespace=namespace, **memory_options)
        return cls(memory, serde=serde, resume_in_outage=resume_in_outage)

    async def aclose(self) -> None:
        """Close the memory (replaying journalled writes first if Redis is back)."""
        await self.memory.aclose()

    # -- encoding --------------------------------------------------------------------------------

    def _dump(self, obj: Any) -> list[str]:
        kind, data = self.serde.dumps_typed(obj)
        return [kind, base64.b64encode(data).decode("ascii")]

    def _load(self, typed: Any) -> Any:
        kind, data = typed
        return self.serde.loads_typed((kind, base64.b64decode(data)))

    async def _loaded(self, typed: Any) -> Any:
        """``_load``, on a worker thread for a large value: a state of 5,000 messages (2.3 MB)
        is 100-150 ms of rebuilding objects, which on the loop delays every other request."""
        if isinstance(typed, list | tuple) and len(typed) == 2 and len(typed[1]) > _LOAD_HERE:
            return await heavy_in_own_thread(self._load, typed)
        return self._load(typed)

    # -- reading ---------------------------------------------------------------------------------

    async def _scoped(self, scope: str) -> list[tuple[str, dict[str, Any]]]:
        """Every record under ``scope``, read in pages that grow until the scope is exhausted."""
        limit = _FIRST_PAGE
        while True:
            found = await self._newest(scope, limit)
            if len(found) < limit:
                return found
            limit *= 4

    async def _newest(self, scope: str, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """The ``limit`` newest records under ``scope``: a blank search (the index's listing of
        one scope), which a Redis that does not answer serves from the in-process copy, so a
        thread resumes during an outage."""
        return await self.memory.search_items("", limit=limit, scope=scope, mode="keyword")

    async def _headers(self, thread_id: str, ns: str | None) -> list[tuple[str, dict[str, Any]]]:
        """``(checkpoint_id, record)`` of a thread's checkpoints (in ``ns``, or all), newest
        first."""
        scope = _key("c", thread_id) if ns is None else _key("c", thread_id, ns)
        records = [
            (record["checkpoint_id"], record)
            for _, record in await self._scoped(scope)
            if record.get("thread_id") == thread_id and isinstance(record.get("checkpoint_id"), str)
        ]
        records.sort(key=lambda item: item[0], reverse=True)
        return records

    async def _tuple(self, record: dict[str, Any]) -> CheckpointTuple:
        thread_id, ns = record["thread_id"], record["checkpoint_ns"]
        checkpoint_id = record["checkpoint_id"]
        checkpoint: Checkpoint = await self._loaded(record["checkpoint"])
        versions = checkpoint["channel_versions"]
        blobs = await asyncio.gather(
            *(self.memory.get(_key("b", thread_id, ns, c, str(v))) for c, v in versions.items())
        )
        if None in blobs and self._listed_in_process():
            # A value an earlier checkpoint stored (another process's, or read from Redis
            # only): without it the state would lack that channel.
            raise self._not_held(thread_id, f"a channel value of checkpoint {checkpoint_id!r}")
        values = {
            channel: await self._loaded(blob["value"])
            for channel, blob in zip(versions, blobs, strict=True)
            if blob is not None and blob["value"][0] != "empty"
        }
        writes = [
            w
            for _, w in await self._scoped(_key("w", thread_id, ns, checkpoint_id))
            if "task_id" in w
        ]
        writes.sort(key=lambda w: writes_sort_key(w["task_path"], w["task_id"], w["idx"]))
        pending: list[PendingWrite] = [
            (w["task_id"], w["channel"], await self._loaded(w["value"])) for w in writes
        ]
        parent = record.get("parent_checkpoint_id")
        return CheckpointTuple(
            config=_checkpoint_config(thread_id, ns, checkpoint_id),
            checkpoint={**checkpoint, "channel_values": values},
            metadata=self._load(record["metadata"]),
            parent_config=_checkpoint_config(thread_id, ns, parent) if parent else None,
            pending_writes=pending,
        )

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or the thread's latest in its namespace; or None."""
        configurable = _configurable(config)
        thread_id, ns = _thread_id(configurable), _namespace(configurable)
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id:
            record = await self.memory.get(_key("c", thread_id, ns, checkpoint_id))
            self._check_served(thread_id, f"checkpoint {checkpoint_id!r}")
            if record is None and self._listed_in_process():
                raise self._not_held(thread_id, f"checkpoint {checkpoint_id!r}")
        else:
            headers = await self._headers(thread_id, ns)
            self._check_served(thread_id, "the latest checkpoint")
            if self._listed_in_process():
                head = await self.memory.get(_key("h", thread_id, ns))
                newest = headers[0][0] if headers else None
                if not isinstance(head, dict) or head.get("checkpoint_id") != newest:
                    raise self._not_held(thread_id, "the latest checkpoint")
            record = headers[0][1] if headers else None
        if record is None:
            return None
        return await self._tuple(record)

    def _check_served(self, thread_id: str, what: str) -> None:
        """With ``resume_in_outage=False``, raise unless Redis served the calls just made."""
        if not self.resume_in_outage and self._listed_in_process():
            raise self._outage(thread_id, what)

    def _check_up(self, thread_id: str, what: str) -> None:
        """With ``resume_in_outage=False``, raise before writing if Redis is known to be down:
        a checkpoint journalled now would come back as the thread's latest once replayed,
        after the turn that wrote it failed."""
        if not self.resume_in_outage:
            info = self.memory.get_backend_info()
            if info["redis_configured"] and info["degraded"]:
                raise self._outage(thread_id, what)

    def _outage(self, thread_id: str, what: str) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"thread {thread_id!r}: {what} needs Redis (resume_in_outage=False), which is not "
            "answering; run the turn again once Redis is back"
        )

    def _not_held(self, thread_id: str, what: str) -> BackendUnavailableError:
        """During an outage, ``what`` of a thread is not in this process's copy: answering
        without it (no checkpoint, an older one, a state missing a channel) would start the
        thread again or fork it, and re-run its nodes, so the call fails instead."""
        return BackendUnavailableError(
            f"thread {thread_id!r}: {what} is not in this process's copy and Redis is not "
            "answering (another process wrote it, or this one was idle before the outage); "
            "run the turn again once Redis is back"
        )

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """A thread's checkpoints, newest first; ``filter`` matches metadata values exactly.

        ``config=None`` lists every thread's checkpoints (reads every checkpoint record).
        """
        if limit is not None and not is_integer(limit):
            raise InvalidArgumentTypeError(f"limit must be an int or None, got {limit!r}")
        if filter is not None and not isinstance(filter, dict):
            raise InvalidArgumentTypeError(f"filter must be a dict or None, got {filter!r}")
        wanted_id: str | None = None
        if config is None:
            records = [(r["checkpoint_id"], r) for _, r in await self._scoped("c")]
            self._check_served("*", "the checkpoints")
            records.sort(key=lambda item: item[0], reverse=True)
        else:
            configurable = _configurable(config)
            ns = configurable.get("checkpoint_ns")
            if ns is not None:
                ns = _namespace(configurable)
            records = await self._headers(_thread_id(configurable), ns)
            self._check_served(_thread_id(configurable), "its checkpoints")
            wanted_id = get_checkpoint_id(config)
        before_id = get_checkpoint_id(before) if before else None
        left = limit
        for checkpoint_id, record in records:
            if left is not None and left <= 0:
                return
            if wanted_id and checkpoint_id != wanted_id:
                continue
            if before_id and checkpoint_id >= before_id:
                continue
            if filter:
                metadata = self._load(record["metadata"])
                if not all(metadata.get(k) == v for k, v in filter.items()):
                    continue
            if left is not None:
                left -= 1
            yield await self._tuple(record)

    # -- writing ---------------------------------------------------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint: its new channel values first, then the checkpoint record."""
        configurable = _configurable(config)
        thread_id, ns = _thread_id(configurable), _namespace(configurable)
        saved: dict[str, Any] = dict(checkpoint)
        values: dict[str, Any] = saved.pop("channel_values", {})
        blobs = {
            _key("b", thread_id, ns, channel, str(version)): {
                "value": self._dump(values[channel]) if channel in values else ["empty", ""]
            }
            for channel, version in new_versions.items()
        }
        record = {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint["id"],
            "parent_checkpoint_id": configurable.get("checkpoint_id"),
            "checkpoint": self._dump(saved),
            "metadata": self._dump(get_checkpoint_metadata(config, metadata)),
        }
        self._check_up(thread_id, "a checkpoint")
        for key, blob in blobs.items():
            await self.memory.add(key, blob)
        await self.memory.add(_key("c", thread_id, ns, checkpoint["id"]), record)
        head = {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}
        await self.memory.add(_key("h", thread_id, ns), head)
        # Journalled (the outage began during the turn): raised all the same, and replayed
        # when Redis is back, as a write whose reply was lost.
        self._check_served(thread_id, "a checkpoint")
        return _checkpoint_config(thread_id, ns, checkpoint["id"])

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes; a regular write already stored is kept as it was."""
        configurable = _configurable(config)
        thread_id, ns = _thread_id(configurable), _namespace(configurable)
        checkpoint_id = configurable.get("checkpoint_id")
        if not isinstance(checkpoint_id, str) or not checkpoint_id:
            raise InvalidArgumentError("put_writes needs config['configurable']['checkpoint_id']")
        records = []
        for idx, (channel, value) in enumerate(writes):
            slot = WRITES_IDX_MAP.get(channel, idx)
            key = _key("w", thread_id, ns, checkpoint_id, task_id, str(slot))
            record = {
                "task_id": task_id,
                "task_path": task_path,
                "channel": channel,
                "idx": slot,
                "value": self._dump(value),
            }
            records.append((key, slot, record))
        self._check_up(thread_id, "a task's writes")
        for key, slot, record in records:
            if slot >= 0 and await self.memory.get(key) is not None:
                continue
            await self.memory.add(key, record)
        if records:  # (calls were made: ``using_redis`` speaks of them)
            self._check_served(thread_id, "a task's writes")

    def _listed_in_process(self) -> bool:
        """True if the memory has Redis but the last listing was served in-process (an
        outage): it shows this process's copy, not every record."""
        info = self.memory.get_backend_info()
        return bool(info["redis_configured"]) and not self.memory.using_redis

    async def _delete_scope(self, scope: str) -> None:
        """Delete every record under ``scope``."""
        while True:
            found = await self._newest(scope, 500)
            for key, _ in found:
                await self.memory.delete(key)
            if len(found) < 500:
                return

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, channel value and pending write of ``thread_id``.

        A ``forget`` of each of its scopes: on Redis it needs Redis (during an outage it raises
        rather than delete only what this process's copy holds), and a write of the thread
        older than it, replayed later by another process, does not bring it back.
        """
        thread_id = _thread_id({"thread_id": thread_id})
        for kind in ("h", "c", "w", "b"):
            await self.memory.forget(_key(kind, thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every record of one thread to another (the target's own records stay)."""
        source = _thread_id({"thread_id": source_thread_id})
        target = _thread_id({"thread_id": target_thread_id})
        found = []
        for kind in ("b", "w", "c", "h"):  # checkpoints last: none is seen half-copied
            found.append((kind, await self._scoped(_key(kind, source))))
            if self._listed_in_process():
                # The copy holds what this process wrote, not the thread: copying it would
                # make a thread without others' checkpoints (review R16). Nothing copied.
                raise BackendUnavailableError(
                    f"copy_thread({source!r}, ...) needs Redis to read the whole thread, and "
                    "Redis is not answering; nothing was copied: copy it once Redis is back"
                )
        for kind, records in found:
            prefix = _key(kind, source) + ":"
            for key, record in records:
                if not key.startswith(prefix):
                    continue
                if kind in ("c", "h"):
                    record = {**record, "thread_id": target}
                await self.memory.add(_key(kind, target) + ":" + key[len(prefix) :], record)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``"keep_latest"``: keep each namespace's newest checkpoint (with its writes and
        channel values); ``"delete"``: delete the threads."""
        if strategy not in ("keep_latest", "delete"):
            raise InvalidArgumentError(
                f"strategy must be 'keep_latest' or 'delete', got {strategy!r}"
            )
        for thread_id in thread_ids:
            if strategy == "delete":
                await self.adelete_thread(thread_id)
                continue
            thread_id = _thread_id({"thread_id": thread_id})
            latest: dict[str, dict[str, Any]] = {}
            headers = await self._headers(thread_id, None)
            if self._listed_in_process():
                await self.memory.flush()  # a replay still on its way lands first
                headers = await self._headers(thread_id, None)
            if self._listed_in_process():
                # The copy need not hold the thread's newest checkpoint (another process's):
                # pruning by it would keep the wrong one. Like forget, this needs Redis.
                raise IncompleteOperationError(
                    f"prune of thread {thread_id!r} needs Redis, which is not answering; run "
                    "it again once Redis is back",
                    done=0,
                )
            for checkpoint_id, record in headers:
                ns = record["checkpoint_ns"]
                if ns in latest:
                    await self._delete_scope(_key("w", thread_id, ns, checkpoint_id))
                    await self.memory.delete(_key("c", thread_id, ns, checkpoint_id))
                else:
                    latest[ns] = record
            for ns, record in latest.items():
                versions = self._load(record["checkpoint"])["channel_versions"]
                await self._prune_values(thread_id, ns, versions)

    async def _prune_values(self, thread_id: str, ns: str, versions: dict[str, Any]) -> None:
        """Delete the channel values older than the versions the kept checkpoint names. Not
        those it does not name, nor newer ones: a checkpoint being written now (by another
        process, or task) writes its values before its record, so pruning by what was listed
        would delete values of a checkpoint that returned (found by a review: 31 of 3,003)."""
        kept = {_key("b", thread_id, ns, channel): _version_order(str(version))
                for channel, version in versions.items()}  # fmt: skip
        doomed = []
        cursor: str | None = None
        while True:
            page = await self.memory.list_memories(
                _key("b", thread_id, ns), limit=500, cursor=cursor
            )
            for key, _ in page.items:
                channel, _, version = key.rpartition(":")
                if channel in kept and _version_order(version) < kept[channel]:
                    doomed.append(key)
            if (cursor := page.cursor) is None:
                break
        for key in doomed:
            await self.memory.delete(key)

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Versions that sort as strings: a zero-padded counter and a random tie-breaker."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(str(current).split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # -- sync: the async methods on the portal loop ---------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Sync ``aget_tuple``."""
        return run_sync(self.aget_tuple(config), instead="aget_tuple()", in_loop=True)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Sync ``alist`` (reads the whole listing before yielding)."""

        async def collect() -> list[CheckpointTuple]:
            return [t async for t in self.alist(config, filter=filter, before=before, limit=limit)]

        return iter(run_sync(collect(), instead="alist()", in_loop=True))

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Sync ``aput``."""
        return run_sync(
            self.aput(config, checkpoint, metadata, new_versions), instead="aput()", in_loop=True
        )

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Sync ``aput_writes``."""
        run_sync(
            self.aput_writes(config, writes, task_id, task_path),
            instead="aput_writes()",
            in_loop=True,
        )

    def delete_thread(self, thread_id: str) -> None:
        """Sync ``adelete_thread``."""
        run_sync(self.adelete_thread(thread_id), instead="adelete_thread()", in_loop=True)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Sync ``acopy_thread``."""
        run_sync(
            self.acopy_thread(source_thread_id, target_thread_id),
            instead="acopy_thread()",
            in_loop=True,
        )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Sync ``aprune``."""
        run_sync(self.aprune(thread_ids, strategy=strategy), instead="aprune()", in_loop=True)

    def __repr__(self) -> str:
        return f"MemoryCheckpointSaver(memory={self.memory!r})"
