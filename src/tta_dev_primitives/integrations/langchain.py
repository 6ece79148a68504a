"""LangChain adapters: primitives as LCEL runnables, runnables as primitives, and chat history.

Needs ``langchain-core`` (``pip install 'tta-dev-primitives[langchain]'``).

- ``as_runnable(primitive)`` puts a primitive (a whole workflow, memory recall included) into an
  LCEL chain. LCEL's ``|`` is sequential; ours is ``>>``.
- ``from_runnable(runnable)`` puts an LCEL chain (a prompt, a model) into a workflow; the
  context's ``session_id`` and ``user_id`` reach it as ``configurable`` values.
- ``MemoryChatMessageHistory`` keeps a conversation in a ``MemoryPrimitive`` for
  ``RunnableWithMessageHistory``: one memory per message, so ``memory.search`` and
  ``memory.recall`` find past turns, on Redis with the same fallback as every other memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, cast
from uuid import UUID

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

from tta_dev_primitives._blocked import fork_safe, heavy_in_own_thread
from tta_dev_primitives._checks import check_ttl, is_integer, is_real
from tta_dev_primitives.core import WorkflowContext, WorkflowPrimitive
from tta_dev_primitives.exceptions import (
    IncompleteOperationError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidMemoryKeyError,
)
from tta_dev_primitives.memory import MemoryPrimitive, _keys
from tta_dev_primitives.memory._values import encode_value

from ._portal import run_sync

__all__ = ["MemoryChatMessageHistory", "RunnablePrimitive", "as_runnable", "from_runnable"]

ContextSource = WorkflowContext | Callable[[RunnableConfig], WorkflowContext] | None

_CONTEXT_IDS = ("session_id", "user_id", "workflow_id")


def _context_from_config(config: RunnableConfig) -> WorkflowContext:
    """A context whose ids come from ``configurable`` and whose metadata is the run's. An int
    or UUID id (LangGraph takes an int ``thread_id``) becomes its ``str``; any other type is
    an error, never a run without the id: scopes made from it would mix users."""
    configurable = config.get("configurable") or {}
    ids: dict[str, str] = {}
    for name in _CONTEXT_IDS:
        value = configurable.get(name)
        if value is None or isinstance(value, str):
            if value is not None:
                ids[name] = value
        elif isinstance(value, int | UUID) and not isinstance(value, bool):
            ids[name] = str(value)
        else:
            raise InvalidArgumentTypeError(
                f"configurable[{name!r}] must be a str, an int or a UUID, got "
                f"{type(value).__name__}"
            )
    return WorkflowContext.model_validate({**ids, "metadata": dict(config.get("metadata") or {})})


def as_runnable(
    primitive: WorkflowPrimitive[Any, Any], *, context: ContextSource = None
) -> Runnable[Any, Any]:
    """An LCEL ``Runnable`` that runs ``primitive`` (``invoke``, ``ainvoke``, ``batch``, ...).

    Each run gets its own context: by default built from the run's config (``configurable``
    ``session_id``/``user_id``/``workflow_id``, and its ``metadata``); pass a ``WorkflowContext``
    to run in a child of it, or a function ``config -> WorkflowContext``.
    """
    if not isinstance(primitive, WorkflowPrimitive):
        raise InvalidArgumentTypeError(
            f"as_runnable needs a WorkflowPrimitive, got {type(primitive).__name__}"
        )

    def make_context(config: RunnableConfig) -> WorkflowContext:
        if context is None:
            return _context_from_config(config)
        if isinstance(context, WorkflowContext):
            return context.child(primitive.name)
        made = context(config)
        if not isinstance(made, WorkflowContext):
            raise InvalidArgumentTypeError(
                f"context function returned {type(made).__name__}, not WorkflowContext"
            )
        return made

    async def arun(input_data: Any, config: RunnableConfig) -> Any:
        return await primitive.execute(input_data, make_context(config))

    def run(input_data: Any, config: RunnableConfig) -> Any:
        return run_sync(arun(input_data, config), instead="ainvoke()")

    return RunnableLambda(run, afunc=arun, name=primitive.name)


class RunnablePrimitive(WorkflowPrimitive[Any, Any]):
    """A workflow step that awaits an LCEL runnable's ``ainvoke`` with the context's ids."""

    def __init__(self, runnable: Runnable[Any, Any], *, name: str | None = None) -> None:
        if not isinstance(runnable, Runnable):
            raise InvalidArgumentTypeError(
                f"from_runnable needs a langchain Runnable, got {type(runnable).__name__}"
            )
        self._runnable = runnable
        self._name = name or runnable.get_name()

    @property
    def name(self) -> str:
        """The runnable's name (also its LangChain run name)."""
        return self._name

    @property
    def runnable(self) -> Runnable[Any, Any]:
        """The wrapped runnable."""
        return self._runnable

    async def execute(self, input_data: Any, context: WorkflowContext) -> Any:
        """``ainvoke`` with ``configurable`` ids and the correlation id in the run metadata."""
        ids = {k: v for k in _CONTEXT_IDS if (v := getattr(context, k)) is not None}
        config: RunnableConfig = {
            "run_name": self._name,
            "configurable": dict(ids),
            "metadata": {**context.metadata, **ids, "correlation_id": context.correlation_id},
        }
        return await self._runnable.ainvoke(input_data, config)

    def __repr__(self) -> str:
        return f"RunnablePrimitive({self._name})"


def from_runnable(runnable: Runnable[Any, Any], *, name: str | None = None) -> RunnablePrimitive:
    """A primitive for ``>>`` and ``|`` that runs an LCEL runnable (a prompt, a model, a chain)."""
    return RunnablePrimitive(runnable, name=name)


class _Clock:
    """Nanosecond stamps that never repeat or go backwards within this process."""

    def __init__(self) -> None:
        # Free again in a forked worker, had another thread held it at the fork.
        self._lock = fork_safe(threading.Lock())
        self._last = 0

    def next(self) -> int:
        with self._lock:
            self._last = max(time.time_ns(), self._last + 1)
            return self._last


_clock = _Clock()


#: Messages listed per call when a history is read.
_PAGE = 1000
#: Messages rebuilt on the event loop at most (about 1.5 ms); more go to a worker thread.
_BUILT_HERE = 256


class MemoryChatMessageHistory(BaseChatMessageHistory):
    """A LangChain chat history kept in a ``MemoryPrimitive``, one memory per message.

    Messages of ``session_id`` live under ``{session_id}:messages:{stamp}{tag}`` (``stamp`` is
    the write time in nanoseconds, which orders them; ``tag`` is this process's own, so two
    processes writing within one tick of a coarse clock never share a key), so
    ``memory.search(q, scope=session_id)`` finds past turns, ``memory.clear()`` forgets them,
    and Redis outages fall back as for any memory. ``max_messages`` returns only the latest
    that many (by when they were added; the session is read whole to find them); ``ttl``
    (seconds) expires each message after that long. Async methods are native; sync ones run
    on a private loop.
    """

    def __init__(
        self,
        memory: MemoryPrimitive,
        session_id: str,
        *,
        max_messages: int | None = None,
        ttl: float | None = None,
    ) -> None:
        if not isinstance(memory, MemoryPrimitive):
            raise InvalidArgumentTypeError(
                f"memory must be a MemoryPrimitive, got {type(memory).__name__}"
            )
        if not isinstance(session_id, str):
            raise InvalidArgumentTypeError(
                f"session_id must be str, got {type(session_id).__name__}"
            )
        if not session_id or "" in session_id.split(":"):
            raise InvalidMemoryKeyError(
                f"session_id {session_id!r} must be non-empty ':'-separated segments"
            )
        if max_messages is not None and (not is_integer(max_messages) or max_messages < 1):
            raise InvalidArgumentError(
                f"max_messages must be a positive int or None, got {max_messages!r}"
            )
        if ttl is not None and (not is_real(ttl) or ttl <= 0):
            raise InvalidArgumentError(
                f"ttl must be a positive number of seconds or None, got {ttl!r}"
            )
        self.memory = memory
        self.session_id = session_id
        self.max_messages = None if max_messages is None else int(max_messages)
        self.ttl = check_ttl(ttl)
        self._scope = f"{session_id}:messages"

    async def _stored(self) -> list[tuple[str, dict[str, Any]]]:
        """``(key, message)`` pairs, oldest first (at most ``max_messages``: the latest).

        The whole session is listed, a page at a time, then the latest are chosen by their
        stamps: a listing goes by the order Redis applied the writes, and a message journalled
        during an outage is applied at its replay, after newer messages of other processes, so
        the newest writes are not always the latest said. (Listing reads the session's own
        feed; sizing the namespace first, as this did, took 8 ms a read on a Redis Cluster.)
        """
        found: dict[str, dict[str, Any]] = {}
        cursor = None
        while True:
            page = await self.memory.list_memories(self._scope, limit=_PAGE, cursor=cursor)
            found.update(page.items)
            if (cursor := page.cursor) is None:
                break
        # Only this session's own keys, ``<scope>:<stamp>``: session "u1:s1:messages" keeps
        # its messages inside scope "u1:s1:messages", which is this scope of session "u1:s1".
        start = len(self._scope) + 1
        stored = [
            (k, v)
            for k, v in found.items()
            if ":" not in k[start:] and isinstance(v.get("at"), int) and "type" in v and "data" in v
        ]
        stored.sort(key=lambda item: (cast(int, item[1]["at"]), item[0]))
        if self.max_messages is not None:
            stored = stored[-self.max_messages :]
        return stored

    async def aget_messages(self) -> list[BaseMessage]:
        """The conversation so far, oldest first (a long one rebuilt on a worker thread: 5,000
        messages are 30-110 ms of pydantic validation, which on the loop delays every other
        request)."""
        stored = [message for _, message in await self._stored()]
        if len(stored) <= _BUILT_HERE:
            return messages_from_dict(stored)
        return await heavy_in_own_thread(messages_from_dict, stored)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store ``messages`` in order (checked first: on a bad one nothing is stored)."""
        for message in messages:
            if not isinstance(message, BaseMessage):
                raise InvalidArgumentTypeError(
                    f"expected a langchain BaseMessage, got {type(message).__name__}"
                )
        values = [message_to_dict(message) for message in messages]
        for value in values:
            encode_value({**value, "at": 0})  # a value JSON cannot hold: raise, nothing stored
        for value in values:
            stamp = _clock.next()
            value = {**value, "at": stamp}
            # The process's tag (drawn anew in a forked worker), as turn_key's: the stamp is
            # unique within the process only.
            key = f"{self._scope}:{stamp:020d}{_keys._process_tag}"
            await self.memory.add(key, value, ttl=self.ttl)

    async def aclear(self) -> None:
        """Forget this session's messages (other memories under ``session_id`` stay).

        On Redis it needs Redis, as ``forget`` does: during an outage the listing would be this
        process's in-process copy, which need not hold other processes' messages, so it raises
        ``IncompleteOperationError`` (run it again) rather than clear only part of them.
        """
        deleted = 0
        while True:
            stored = await self._stored()
            if self.memory.get_backend_info()["redis_configured"] and not self.memory.using_redis:
                await self.memory.flush()  # a replay still on its way lands first
                stored = await self._stored()
                if not self.memory.using_redis:
                    raise IncompleteOperationError(
                        f"clearing session {self.session_id!r} deleted {deleted:,} messages: "
                        "Redis is not answering; run it again once Redis is back",
                        done=deleted,
                    )
            if not stored:
                return
            for key, _ in stored:
                await self.memory.delete(key)
                deleted += 1
            if self.max_messages is None:
                return

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The conversation so far (sync; inside a running loop use ``aget_messages``)."""
        return run_sync(self.aget_messages(), instead="aget_messages()")

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store ``messages`` in order (sync)."""
        run_sync(self.aadd_messages(messages), instead="aadd_messages()")

    def clear(self) -> None:
        """Forget this session's messages (sync)."""
        run_sync(self.aclear(), instead="aclear()")

    def __repr__(self) -> str:
        return f"MemoryChatMessageHistory(session_id={self.session_id!r}, memory={self.memory!r})"
