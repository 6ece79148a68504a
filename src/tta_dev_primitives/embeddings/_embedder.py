"""``Embedder``: one async batch embedder with a cache, single-flight and batching around a model.

Why not ``CachePrimitive``'s machinery: it runs its wrapped step once per key, so reusing it
would send the model one text per call. Embedding models are paid (or timed) per call, not per
text, so here each text gets its own in-flight future (the same single-flight idea: concurrent
misses share one result, failures reach every waiter and are not cached) while the texts that
miss are sent to the model together, in batches.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import inspect
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tta_dev_primitives._checks import DEFAULT_EMBED_TIMEOUT, check_count, check_seconds
from tta_dev_primitives.exceptions import (
    EmbeddingError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
)

from ._threads import DaemonExecutor
from ._vectors import Vectors, check_dims, rows_or_errors

__all__ = ["DEFAULT_EMBED_TIMEOUT", "BatchFunction", "Embedder", "to_async_batch"]

Side = Literal["documents", "query"]

#: A batch embedding function: texts in, one vector per text out (sync or async).
BatchFunction = Callable[[list[str]], Any]

_AsyncBatch = Callable[[list[str]], Awaitable[object]]
#: Runs a sync batch function off the event loop: ``await run(function, texts)``.
SyncRunner = Callable[[Callable[[list[str]], object], list[str]], Awaitable[object]]

DEFAULT_CACHE_SIZE = 20_000
DEFAULT_BATCH_SIZE = 64
DEFAULT_MAX_CONCURRENCY = 4


def to_async_batch(function: BatchFunction, run_sync: SyncRunner) -> _AsyncBatch:
    """``function`` as a coroutine function; a sync one runs via ``run_sync`` (off the loop).

    A sync-looking callable that returns an awaitable (a lambda around a coroutine) is awaited.
    """
    if inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 (an object with an async __call__)
    ):

        async def call_async(texts: list[str]) -> object:
            try:
                result: object = await function(texts)
            except SystemExit as exc:
                raise _ModelExit(exc) from exc
            return result

        return call_async

    async def call_in_thread(texts: list[str]) -> object:
        try:
            result = await run_sync(function, texts)
            if inspect.isawaitable(result):
                result = await result
        except (SystemExit, KeyboardInterrupt) as exc:  # (raised by the model in its thread)
            raise _ModelExit(exc) from exc
        return result

    return call_in_thread


class _ModelExit(Exception):
    """The model raised ``SystemExit`` (or, in its thread, ``KeyboardInterrupt``): its call
    failed. Left as it was, asyncio ends the event loop with it, and the program (R25)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__name__}({exc})")


class _Overdue(Exception):
    """The model call outlived ``embed_timeout``."""


def _retrieve(task: asyncio.Future[Any]) -> None:
    """A model call left behind: its outcome is read, so that asyncio does not log it."""
    if not task.cancelled():
        task.exception()


@dataclass
class _Pending:
    key: bytes
    text: str
    future: asyncio.Future[Vectors]
    waiters: int = 0  # callers awaiting this text now
    batch: _Batch | None = None


@dataclass
class _Batch:
    """One model call's texts and the task making it (cancelled once no caller waits)."""

    items: list[_Pending]
    task: asyncio.Task[None] | None = None


@dataclass
class _LoopState:
    """What one event loop's calls share: in-flight futures, the queue to flush, the bound."""

    semaphore: asyncio.Semaphore
    inflight: dict[bytes, _Pending] = field(default_factory=dict)
    pending: dict[Side, list[_Pending]] = field(
        default_factory=lambda: {"documents": [], "query": []}
    )
    flush_scheduled: bool = False
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class Embedder:
    """Texts to unit-norm float32 vectors, each text embedded once.

    ``embed_documents`` (and ``embed_query``, for models that embed questions differently) are
    batch functions ``list[str] -> vectors``, sync (run in a thread) or async. Around them:

    - **Checks**: every result must be ``len(texts)`` finite, non-zero vectors of ``dims``
      numbers; ``dims=None`` learns it from the first result and then holds to it. Anything else
      raises ``EmbeddingError`` and is not cached, so a later call retries: a bad vector fails
      only its own text, a result wrong as a whole (too few vectors) every text of the call.
    - **Cache**: an in-process LRU of ``cache_size`` vectors (``dims * 4`` bytes each; 0 turns
      it off), keyed by a blake2b hash of ``model_id`` and the text.
    - **Single-flight and batching**: texts repeated in a call are embedded once; a text already
      being embedded by another call is waited for, not sent again. Misses from every call made
      in the same event-loop tick are sent together, ``batch_size`` texts per model call, at
      most ``max_concurrency`` calls at a time.
    - **Bounds**: a model call that takes longer than ``embed_timeout`` seconds (default 30)
      fails its texts with ``EmbeddingError`` and frees its slot, so a hung model never wedges
      later calls; a call no caller waits for any more (all cancelled) is cancelled too. A
      vector that fails the checks fails only its own text, not the others in its batch; a
      call the model raises for is sent again in halves, so one refused text fails alone.
    - **Threads**: a sync function runs on this embedder's own daemon threads, so a hung one
      never keeps the program from exiting; ``aclose()`` ends the idle ones.

    Use ``as_embedder`` to make one from a function, a LangChain ``Embeddings``, a
    sentence-transformers model or a ``"provider:model"`` string.
    """

    def __init__(
        self,
        embed_documents: BatchFunction,
        embed_query: BatchFunction | None = None,
        *,
        dims: int | None = None,
        model_id: str | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        embed_timeout: float = DEFAULT_EMBED_TIMEOUT,
    ) -> None:
        if not callable(embed_documents):
            raise InvalidArgumentTypeError(
                "embed_documents must be a function list[str] -> vectors"
            )
        if embed_query is not None and not callable(embed_query):
            raise InvalidArgumentTypeError("embed_query must be a function list[str] -> vectors")
        if model_id is None:
            model_id = _function_name(embed_documents)
        if not isinstance(model_id, str) or not model_id:
            raise InvalidArgumentTypeError(f"model_id must be a non-empty str, got {model_id!r}")
        self._executor: DaemonExecutor | None = None  # made at the first sync model call
        self._documents = to_async_batch(embed_documents, self._run_sync)
        self._query = (
            self._documents if embed_query is None else to_async_batch(embed_query, self._run_sync)
        )
        self._asymmetric = embed_query is not None
        self._given_dims = check_dims(dims)
        self._dims = self._given_dims
        self._model_id = model_id
        self._key_prefix = f"{model_id}\x00{self._given_dims or ''}\x00".encode()
        self._cache_size = _check_count_or_zero("cache_size", cache_size)
        self._batch_size = check_count("batch_size", batch_size)
        self._max_concurrency = check_count("max_concurrency", max_concurrency)
        self._timeout = check_seconds("embed_timeout", embed_timeout)
        self._cache: OrderedDict[bytes, Vectors] = OrderedDict()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._hits = 0
        self._shared = 0
        self._misses = 0
        self._model_calls = 0

    @property
    def dims(self) -> int | None:
        """The vectors' dimension: as given, else learned from the first result (``None`` until)."""
        return self._dims

    @property
    def model_id(self) -> str:
        """What the cache keys name as the model (texts from different models never collide)."""
        return self._model_id

    @property
    def hits(self) -> int:
        """Texts answered without the model: from the cache or by waiting on another call."""
        return self._hits + self._shared

    @property
    def misses(self) -> int:
        """Texts sent to the model (each distinct text of a call counts once)."""
        return self._misses

    def stats(self) -> dict[str, int | float]:
        """Hits (cache and shared in-flight), misses, model calls, hit rate and cached vectors."""
        total = self.hits + self._misses
        return {
            "hits": self.hits,
            "cache_hits": self._hits,
            "shared": self._shared,
            "misses": self._misses,
            "model_calls": self._model_calls,
            "hit_rate": self.hits / total if total else 0.0,
            "cached": len(self._cache),
        }

    def fix_dims(self, dims: int) -> None:
        """Hold this embedder to ``dims``; an embedder that already knows another one refuses."""
        checked = check_dims(dims)
        if self._dims is not None and self._dims != checked:
            raise InvalidArgumentError(
                f"this embedder's vectors have {self._dims} dims, not {dims}"
            )
        self._dims = checked

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """``embed_documents``: one unit-norm float32 row per text, shape ``(len(texts), dims)``."""
        return await self._embed(texts, "documents")

    async def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Vectors for texts to be stored and searched (memories)."""
        return await self._embed(texts, "documents")

    async def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """Vectors for search queries (the model's query side, if it has one)."""
        return await self._embed(texts, "query")

    async def embed_query(self, text: str) -> Vectors:
        """One query's vector, shape ``(dims,)``."""
        if not isinstance(text, str):
            raise InvalidArgumentTypeError(f"query must be a str, got {type(text).__name__}")
        vector: Vectors = (await self._embed([text], "query"))[0]
        return vector

    def clear_cache(self) -> None:
        """Forget every cached vector (the counters stay)."""
        self._cache.clear()

    async def _embed(self, texts: Sequence[str], side: Side) -> Vectors:
        batch = _check_texts(texts)
        if not batch:
            return np.empty((0, self._dims or 0), dtype=np.float32)
        loop = asyncio.get_running_loop()
        state = self._state(loop)
        keys = [self._key(side, text) for text in batch]
        rows: dict[bytes, Vectors] = {}
        waits: dict[bytes, _Pending] = {}
        queued = False
        for key, text in zip(keys, batch, strict=True):
            if key in rows or key in waits:
                continue  # a repeat within this call
            row = self._cached(key)
            if row is not None:
                rows[key] = row
                self._hits += 1
                continue
            item = state.inflight.get(key)
            if item is not None:
                self._shared += 1
            else:
                item = _Pending(key, text, loop.create_future())
                state.inflight[key] = item
                state.pending[side].append(item)
                self._misses += 1
                queued = True
            item.waiters += 1
            waits[key] = item
        if queued and not state.flush_scheduled:
            state.flush_scheduled = True
            loop.call_soon(self._flush, loop, state)
        if waits:
            # asyncio.wait never cancels what it waits on: if we are cancelled, the batch goes
            # on for its other callers (and the cache), or stops if no caller is left.
            try:
                await asyncio.wait([item.future for item in waits.values()])
            finally:
                self._leave(state, waits.values())
            for key, item in waits.items():
                rows[key] = item.future.result()
        stacked: Vectors = np.stack([rows[key] for key in keys])
        return stacked

    def _state(self, loop: asyncio.AbstractEventLoop) -> _LoopState:
        state = self._loops.get(loop)
        if state is None:
            state = _LoopState(asyncio.Semaphore(self._max_concurrency))
            self._loops[loop] = state
        return state

    def _key(self, side: Side, text: str) -> bytes:
        digest = hashlib.blake2b(self._key_prefix, digest_size=16)
        if self._asymmetric:
            digest.update(side.encode())
        digest.update(b"\x00")
        digest.update(text.encode("utf-8", "surrogatepass"))
        return digest.digest()

    def _cached(self, key: bytes) -> Vectors | None:
        row = self._cache.get(key)
        if row is not None:
            self._cache.move_to_end(key)
        return row

    def _remember(self, key: bytes, row: Vectors) -> None:
        if self._cache_size == 0:
            return
        self._cache[key] = row
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    @staticmethod
    def _leave(state: _LoopState, items: Iterable[_Pending]) -> None:
        """A caller stops waiting: a batch no caller waits for any more is cancelled.

        So a cancelled (or timed-out) caller frees the batch's concurrency slot and its texts'
        in-flight entries: the same text is embedded afresh by the next call.
        """
        for item in items:
            item.waiters -= 1
            batch = item.batch
            if item.future.done() or item.waiters > 0:
                continue
            if batch is None:  # not sent yet: _flush skips it
                _forget(state, item)
                item.future.cancel()
            elif batch.task is not None and all(i.waiters == 0 for i in batch.items):
                for abandoned in batch.items:
                    _forget(state, abandoned)
                batch.task.cancel()

    def _flush(self, loop: asyncio.AbstractEventLoop, state: _LoopState) -> None:
        """Send everything queued this tick to the model, ``batch_size`` texts per call."""
        state.flush_scheduled = False
        for side in ("documents", "query"):
            queued, state.pending[side] = state.pending[side], []
            queued = [item for item in queued if not item.future.done()]  # callers left
            for start in range(0, len(queued), self._batch_size):
                batch = _Batch(queued[start : start + self._batch_size])
                for item in batch.items:
                    item.batch = batch
                batch.task = loop.create_task(self._run_batch(state, side, batch.items))
                state.tasks.add(batch.task)
                batch.task.add_done_callback(state.tasks.discard)

    async def _run_batch(self, state: _LoopState, side: Side, chunk: list[_Pending]) -> None:
        source = f"embedder {self._model_id!r} ({side})"
        try:
            error, raised = await self._attempt(state, side, chunk, source)
            if error is None:
                return
            if raised and len(chunk) > 1:
                await self._isolate(state, side, chunk, source, error)
            else:
                self._fail(state, chunk, error, error.__cause__)
        except BaseException as exc:  # cancelled (no caller left, or the loop shutting down)
            self._fail(state, chunk, EmbeddingError(f"{source} was cancelled"), exc)
            raise

    async def _isolate(
        self,
        state: _LoopState,
        side: Side,
        chunk: list[_Pending],
        source: str,
        error: EmbeddingError,
    ) -> None:
        """The model raised for ``chunk``'s texts: embed each half again, and keep halving the
        one half that still raises, so a text the model refuses (too many tokens, say) fails
        only its own callers, not everyone batched with it in the same tick. When both halves
        fail, as when the model is down, the search stops: three calls, not one per text."""
        while len(chunk) > 1:
            middle = len(chunk) // 2
            halves = (chunk[:middle], chunk[middle:])
            outcomes = await asyncio.gather(
                *(self._attempt(state, side, half, source) for half in halves)
            )
            failed = [
                (half, half_error, raised)
                for half, (half_error, raised) in zip(halves, outcomes, strict=True)
                if half_error is not None
            ]
            if len(failed) == 1 and failed[0][2]:  # only one half raised: the text is there
                chunk, error, _ = failed[0]
                continue
            for half, half_error, _ in failed:
                self._fail(state, half, half_error, half_error.__cause__)
            return
        self._fail(state, chunk, error, error.__cause__)

    async def _attempt(
        self, state: _LoopState, side: Side, chunk: list[_Pending], source: str
    ) -> tuple[EmbeddingError | None, bool]:
        """One model call for ``chunk``'s texts. On an answer, settle each text (a bad row fails
        its own text only) and return ``(None, False)``; otherwise return the error, and whether
        the model raised it (as opposed to overrunning ``embed_timeout`` or answering with
        something unusable as a whole), leaving the texts for the caller to fail or retry."""
        texts = [item.text for item in chunk]
        function = self._query if side == "query" else self._documents
        try:
            async with state.semaphore:
                self._model_calls += 1
                raw = await self._within_timeout(function(texts))
        except _Overdue:
            return EmbeddingError(
                f"{source} took longer than embed_timeout={self._timeout:g} s"
            ), False
        except _ModelExit as exc:
            error = EmbeddingError(f"{source} raised {exc}")
            error.__cause__ = exc
            return error, False
        except EmbeddingError as exc:
            return exc, True
        except Exception as exc:
            error = EmbeddingError(f"{source} raised {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            return error, True
        try:
            results = rows_or_errors(raw, len(texts), self._dims, source)
        except EmbeddingError as exc:
            return exc, False
        except Exception as exc:  # numpy on an odd object: waiters must still hear of it
            error = EmbeddingError(f"{source} returned vectors that could not be checked")
            error.__cause__ = exc
            return error, False
        for item, result in zip(chunk, results, strict=True):
            if isinstance(result, EmbeddingError):
                self._fail(state, [item], result, None)  # a bad row fails its own text only
                continue
            if self._dims is None:
                self._dims = int(result.shape[0])
            kept = result.copy()
            kept.setflags(write=False)  # shared by every caller and the cache
            self._remember(item.key, kept)
            _forget(state, item)
            if not item.future.done():
                item.future.set_result(kept)
        return None, False

    async def _within_timeout(self, call: Awaitable[object]) -> object:
        """Await the model ``call`` for at most ``embed_timeout``. Past it (or if this batch is
        cancelled), the call is cancelled and left behind, not awaited: one that swallows its
        cancellation held its slot for good, and past ``max_concurrency`` such calls every
        later embedding waited forever (review R25)."""
        task = asyncio.ensure_future(call)
        done: set[asyncio.Future[object]] = set()
        try:
            done, _ = await asyncio.wait([task], timeout=self._timeout)
        finally:
            if not done:  # overdue, or this batch cancelled: the call is left behind
                task.cancel()
                task.add_done_callback(_retrieve)
        if not done:
            raise _Overdue
        return task.result()

    async def _run_sync(self, function: Callable[[list[str]], object], texts: list[str]) -> object:
        """A sync model call on this embedder's daemon threads (see ``DaemonExecutor``)."""
        if self._executor is None:
            self._executor = DaemonExecutor(f"tta-embed-{self._model_id[:24]}")
        context = contextvars.copy_context()
        return await asyncio.wrap_future(self._executor.submit(context.run, function, texts))

    async def aclose(self) -> None:
        """End this embedder's idle model threads (a later call starts new ones)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)

    @staticmethod
    def _fail(
        state: _LoopState,
        chunk: list[_Pending],
        error: EmbeddingError,
        cause: BaseException | None,
    ) -> None:
        if cause is not None and error.__cause__ is None:
            error.__cause__ = cause
        for item in chunk:
            _forget(state, item)
            if not item.future.done():
                item.future.set_exception(error)
                item.future.exception()  # retrieved: a cancelled waiter may never look

    def __repr__(self) -> str:
        return f"Embedder({self._model_id!r}, dims={self._dims})"


def _forget(state: _LoopState, item: _Pending) -> None:
    """Drop ``item``'s in-flight entry (unless a newer call for its text has replaced it)."""
    if state.inflight.get(item.key) is item:
        del state.inflight[item.key]


def _check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str | bytes) or not isinstance(texts, Sequence):
        raise InvalidArgumentTypeError(
            f"texts must be a list of str (not {type(texts).__name__}); wrap one text in a list"
        )
    batch = list(texts)
    for text in batch:
        if not isinstance(text, str):
            raise InvalidArgumentTypeError(f"texts must all be str, got {type(text).__name__}")
    return batch


def _check_count_or_zero(name: str, value: Any) -> int:
    if value == 0 and isinstance(value, int) and not isinstance(value, bool):
        return 0
    return check_count(name, value)


def _function_name(function: Any) -> str:
    module = getattr(function, "__module__", None) or type(function).__module__
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}.{name}"
