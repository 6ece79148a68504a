"""Which embedder a namespace's vectors came from: recorded once, checked once per process.

Two processes on one namespace whose embedders make vectors of the same size but by different
models (a rolling deploy that changes the model) would score one model's question against the
other's memories: nonsense, silently (review R35). So the first process that writes a memory
with a vector records its embedder (``layout.EMBEDDER_RECORD``: ``'<dims> <model_id>'``, one
small hash in partition 0's slot), and every process with an embedder reads the record before
its first write with a vector (recording itself if there is none, ``HSETNX``) and before its
first semantic or hybrid search. The verdict is kept per backend: once it matches, no further
round trip. A mismatch raises ``EmbedderMismatchError`` (a refusal: nothing stored, nothing
journalled, no fallback), and is read again next time (the namespace may have been cleared).

A clear removes the record (a cleared namespace may take a new model). A replay of writes
journalled during an outage is never refused for a mismatch: they were acknowledged, so they
are stored, and one error is logged naming the mismatch (``check(..., replaying=True)``). A
replay records nothing either: a durable journal (``journal_path``) may hold another process's
writes, whose vectors this process's embedder did not make (the file does not say whose).
A process without an embedder (``model`` None) is not checked and records nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from tta_dev_primitives.exceptions import EmbedderMismatchError
from tta_dev_primitives.stores._redis.connection import Connection, pipeline, text_of, unreadable
from tta_dev_primitives.stores._redis.layout import FIELD_EMBEDDER, Layout

__all__ = ["EmbedderRecord"]

log = logging.getLogger("tta_dev_primitives.memory")


class EmbedderRecord:
    """One backend's view of its namespace's embedder record, and its cached verdict."""

    def __init__(self, connection: Connection, layout: Layout, model: str | None) -> None:
        self.connection = connection
        self.layout = layout
        #: This process's embedder's ``model_id``; None: no embedder, nothing checked.
        self.model = model
        #: The record as this process last read it: ``(model_id, dims)``, None if there was
        #: none, or ``"unread"`` before the first read.
        self.recorded: tuple[str, int] | str | None = "unread"
        self._matched: int | None = None  # the dims a read found recorded as this model's
        self._logged = False  # a replay's mismatch was logged (once per backend)

    def describe(self) -> dict[str, Any] | str | None:
        """The record as last read, for ``get_backend_info()``."""
        if isinstance(self.recorded, tuple):
            return {"model": self.recorded[0], "dims": self.recorded[1]}
        return "unknown (not read yet)" if self.recorded == "unread" else None

    async def check(self, dims: int, *, write: bool, replaying: bool = False) -> None:
        """Before this process's write with a vector of ``dims`` (``write``: recording this
        embedder if none is) or semantic search: raise ``EmbedderMismatchError`` if the
        namespace's vectors are another embedder's. A replay (``replaying``) logs it instead,
        and only reads the record (its vectors may be another process's: see above).

        Raises ``BackendUnavailableError`` (and the like) as any call, if Redis cannot answer.
        """
        if self.model is None or self._matched == dims:
            return
        await self.connection.ready()  # (partition 0's name depends on the topology)
        name = self.layout.embedder_record()
        mine = f"{dims} {self.model}"
        write = write and not replaying

        async def read(client: Any) -> Any:
            if not write:
                return await client.hget(name, FIELD_EMBEDDER)
            pipe = pipeline(client)
            pipe.hsetnx(name, FIELD_EMBEDDER, mine)
            pipe.hget(name, FIELD_EMBEDDER)
            return (await pipe.execute())[-1]

        reply = await self.connection.call(read)
        if reply is None:  # none yet (a search; or cleared between the two commands)
            self.recorded = None
            return  # not kept: the next check reads again, until a vector's writer records
        if not isinstance(reply, bytes | str):
            raise unreadable(reply)
        recorded = _parse(text_of(reply))
        self.recorded = recorded
        if recorded == (self.model, dims):
            self._matched = dims
            return
        error = self._mismatch(recorded, (self.model, dims))
        if not replaying:
            raise error
        if not self._logged:
            self._logged = True
            log.error(
                "replaying writes journalled during an outage whose vectors do not match the "
                "namespace's embedder; they are stored, as acknowledged, but score as nonsense "
                "in semantic search until re-written: %s", error,
            )  # fmt: skip

    def forget(self) -> None:
        """This process cleared the namespace (removing the record): read it again next time."""
        self._matched = None
        self.recorded = "unread"

    async def remove(self) -> None:
        """Remove the namespace's record (a clear: the namespace may take a new model)."""
        await self.connection.ready()
        name = self.layout.embedder_record()
        await self.connection.call(lambda client: client.delete(name))
        self.forget()

    def _mismatch(self, recorded: tuple[str, int], mine: tuple[str, int]) -> EmbedderMismatchError:
        namespace = self.layout.namespace
        return EmbedderMismatchError(
            f"namespace {namespace!r} holds vectors of embedder {recorded[0]!r} "
            f"({recorded[1]} dims) but this process embeds with {mine[0]!r} ({mine[1]} dims): "
            "its vectors would score against the other's as nonsense, so nothing was stored "
            "or searched. Use the same embedder (model_id and dims) in every process of a "
            "namespace, a new namespace for a new model, or clear() the namespace to let it "
            "take the new model (docs/semantic-memory.md, 'Changing the model'); keyword "
            "search, get, delete and listing still work",
            namespace=namespace, recorded=recorded, mine=mine,
        )  # fmt: skip


def _parse(text: str) -> tuple[str, int]:
    """``'<dims> <model_id>'`` as ``(model_id, dims)``; ``unreadable`` if it is not that."""
    size, _, model = text.partition(" ")
    if not (size.isascii() and size.isdigit() and model):
        raise unreadable(text)
    return model, int(size)
