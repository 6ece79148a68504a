"""``CachePrimitive``: cache a primitive's output by key, on the same storage seam as memory."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Generic, TypeVar, overload

from tta_dev_primitives._blocked import heavy_in_own_thread
from tta_dev_primitives._checks import (
    check_max_size,
    check_namespace,
    check_seconds,
    check_ttl,
    is_unencodable,
)
from tta_dev_primitives.core._base import WorkflowPrimitive, as_primitive
from tta_dev_primitives.core._context import WorkflowContext
from tta_dev_primitives.exceptions import (
    BackendError,
    BackendRefusedError,
    CacheKeyError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    StaleWriteError,
)
from tta_dev_primitives.memory._prepared import DECODE_BYTES, is_small
from tta_dev_primitives.stores._base import StorageBackend
from tta_dev_primitives.stores._factory import backend_from_url
from tta_dev_primitives.stores._hybrid import HybridStore
from tta_dev_primitives.stores._inprocess import InProcessBackend
from tta_dev_primitives.telemetry._memory_ops import (
    StoreTelemetry,
    current_span_attribute,
    current_span_event,
)
from tta_dev_primitives.telemetry._metrics import instruments

__all__ = ["CachePrimitive"]

log = logging.getLogger("tta_dev_primitives.cache")

#: The namespace of a cache whose backend is in-process or a ``StorageBackend`` object.
DEFAULT_NAMESPACE = "tta:cache"

T = TypeVar("T")
U = TypeVar("U")

_MISSING = object()

#: The in-flight misses this run is computing (inherited by the tasks it starts): a call that
#: meets one of them is inside that computation (the step asked its own cache for its own key,
#: directly or from a parallel branch), and waiting for it would wait for itself forever.
_leading: ContextVar[frozenset[asyncio.Future[Any]]] = ContextVar(
    "tta_cache_leading", default=frozenset()
)


def _encode(result: Any) -> str:
    """The JSON a shared cache stores for ``result``; ``TypeError``/``ValueError`` if none."""
    payload = json.dumps({"v": result}, ensure_ascii=False, allow_nan=False)
    if not payload.isascii() and is_unencodable(payload):
        # A lone surrogate (text cut inside a pair) stays an escape that UTF-8 can carry.
        payload = json.dumps({"v": result}, allow_nan=False)
    return payload


def _value_of(payload: str | bytes) -> Any:
    return json.loads(payload)["v"]


async def _decoded(payload: str | bytes) -> Any:
    """The output a stored ``payload`` holds: decoded on a worker thread past ``DECODE_BYTES``
    (a multi-MB output is tens of ms of JSON, which on the loop delays every other request)."""
    if len(payload) <= DECODE_BYTES:
        return _value_of(payload)
    return await heavy_in_own_thread(_value_of, payload)


class CachePrimitive(WorkflowPrimitive[T, U], Generic[T, U]):
    """Runs ``primitive`` once per ``cache_key_fn(input, ctx)`` and reuses the output.

    The default backend is in-process, LRU-bounded by ``max_size``, and keeps outputs as they
    are (no copy). Pass ``backend="redis://..."`` with a ``namespace`` of this cache's own (two
    caches of different steps in one namespace would answer with each other's outputs), or a
    ``StorageBackend``, to share a cache between processes: outputs are then stored as JSON (and
    returned as JSON gives them back, on a miss as on a hit), and Redis failures fall back to
    the in-process cache exactly as ``MemoryPrimitive`` does. An output the backend cannot
    store (not JSON, or Redis refusing: full) is still returned, only not cached, with a
    warning. Concurrent misses on one key (on one event loop) run ``primitive`` once; an
    exception is not cached and reaches every caller waiting on that key. ``ttl_seconds=None``
    caches until evicted.
    """

    @overload
    def __init__(
        self,
        primitive: WorkflowPrimitive[T, U] | Callable[[T, WorkflowContext], Awaitable[U]],
        cache_key_fn: Callable[[T, WorkflowContext], str],
        ttl_seconds: float | None = 3600.0,
        backend: StorageBackend | str | None = None,
        *,
        max_size: int = 1000,
        namespace: str | None = None,
        redis_timeout: float = 1.0,
    ) -> None: ...
    @overload
    def __init__(
        self,
        primitive: Callable[[T, WorkflowContext], U],
        cache_key_fn: Callable[[T, WorkflowContext], str],
        ttl_seconds: float | None = 3600.0,
        backend: StorageBackend | str | None = None,
        *,
        max_size: int = 1000,
        namespace: str | None = None,
        redis_timeout: float = 1.0,
    ) -> None: ...
    def __init__(
        self,
        primitive: WorkflowPrimitive[T, U] | Callable[[T, WorkflowContext], Any],
        cache_key_fn: Callable[[T, WorkflowContext], str],
        ttl_seconds: float | None = 3600.0,
        backend: StorageBackend | str | None = None,
        *,
        max_size: int = 1000,
        namespace: str | None = None,
        redis_timeout: float = 1.0,
    ) -> None:
        if not callable(cache_key_fn):
            raise InvalidArgumentTypeError("cache_key_fn must be a function (input, ctx) -> str")
        if inspect.iscoroutinefunction(cache_key_fn):
            raise InvalidArgumentTypeError(
                "cache_key_fn must be a plain (sync) function (input, ctx) -> str: the key is "
                "needed before anything is awaited"
            )
        self._primitive = as_primitive(primitive)
        self._key_fn = cache_key_fn
        self._ttl = check_ttl(ttl_seconds)
        if namespace is None and isinstance(backend, str):
            raise InvalidArgumentError(
                "a cache shared on Redis needs namespace= of its own (e.g. "
                "namespace='tta:cache:summaries'): caches of different steps in one namespace "
                "would answer with each other's outputs"
            )
        self._namespace = DEFAULT_NAMESPACE if namespace is None else namespace
        self._store = cache_store(backend, self._namespace, redis_timeout, max_size)
        self._failures = StoreFailures(self)
        remote = self._store.remote
        self._serialize = remote is not None and remote.serializes
        # In-flight misses by (event loop, key): a future belongs to its loop, so a caller on
        # another loop (thread) computes on its own rather than await a foreign future.
        # Each holds the output and, on a shared cache, the JSON it was decoded from.
        self._inflight: dict[
            tuple[asyncio.AbstractEventLoop, str], asyncio.Future[tuple[Any, str | None]]
        ] = {}
        self._hits = 0
        self._misses = 0
        self._clears = 0  # clear() calls so far: an output computed across one is not stored

    @property
    def hits(self) -> int:
        """Calls answered from the cache (including callers that waited on an in-flight miss)."""
        return self._hits

    @property
    def misses(self) -> int:
        """Calls that ran the wrapped primitive."""
        return self._misses

    def stats(self) -> dict[str, int | float]:
        """Hits, misses and hit rate."""
        total = self._hits + self._misses
        return {
            "hits": self._hits,
            "misses": self._misses,
            "hit_rate": self._hits / total if total else 0.0,
        }

    @property
    def primitive(self) -> WorkflowPrimitive[T, U]:
        """The wrapped primitive."""
        return self._primitive

    def _key(self, input_data: T, context: WorkflowContext) -> str:
        try:
            key = self._key_fn(input_data, context)
        except Exception as exc:
            raise CacheKeyError(f"cache_key_fn raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(key, str) or not key:
            raise CacheKeyError(f"cache_key_fn must return a non-empty str, got {key!r}")
        if not key.isascii() and is_unencodable(key):
            # (Refused on every backend alike: Redis could not be sent it.)
            raise CacheKeyError(
                f"cache_key_fn returned {key[:80]!r}, which holds a lone surrogate: UTF-8 (and "
                "so Redis) cannot store it"
            )
        return key

    async def execute(self, input_data: T, context: WorkflowContext) -> U:
        """Return the cached output for this input's key, computing it once on a miss."""
        key = self._key(input_data, context)
        loop = asyncio.get_running_loop()
        flight = (loop, key)
        while True:
            value = await self._lookup(key)
            if value is not _MISSING:
                self._record(hit=True)
                return value  # type: ignore[no-any-return]
            pending = self._inflight.get(flight)
            if pending is None:
                break
            if pending in _leading.get():
                # Re-entered from inside the computation of this very key: compute it
                # again here, as with no cache, rather than wait for ourselves.
                self._record(hit=False)
                output = await self._primitive.execute(input_data, context)
                return (await self._save_or_warn(key, output))[0]  # type: ignore[no-any-return]
            try:
                result, payload = await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if pending.cancelled() and (task is None or not task.cancelling()):
                    continue  # the leader was cancelled, not us: try again
                raise  # we were cancelled (perhaps with the leader): so we stay
            self._record(hit=True)
            if payload is not None:  # a copy of its own, as every hit of a shared cache gets
                return await _decoded(payload)  # type: ignore[no-any-return]
            return result  # type: ignore[no-any-return]

        future: asyncio.Future[tuple[Any, str | None]] = loop.create_future()
        self._inflight[flight] = future
        self._record(hit=False)
        clears = self._clears
        leading = _leading.set(_leading.get() | {future})
        try:
            try:
                result = await self._primitive.execute(input_data, context)
            finally:
                _leading.reset(leading)
            if self._clears != clears:
                # Computed before a clear (a new model, new data): the caller gets it, the
                # cache does not, or it would serve what the clear was meant to drop.
                current_span_attribute("cache.stored", False)
                payload = None
            else:
                result, payload = await self._save_or_warn(key, result)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # mark retrieved: waiters may be none
            raise
        else:
            future.set_result((result, payload))
            return result  # type: ignore[no-any-return]
        finally:
            if self._inflight.get(flight) is future:  # (a clear let later calls run anew)
                del self._inflight[flight]

    async def _lookup(self, key: str) -> Any:
        served = await self._store.get(key)
        if self._store.remote is not None:  # which store answered, as memory spans say
            current_span_attribute("cache.backend", served.backend)
            if served.fallback:
                current_span_attribute("cache.fallback", True)
        payload = served.value
        if payload is None:
            return _MISSING
        if not self._serialize:
            return payload.value  # boxed so a cached None is a hit
        try:
            return await _decoded(payload)
        except (ValueError, KeyError, TypeError):
            instruments().invalid_values.add(1)
            return _MISSING

    async def _save_or_warn(self, key: str, result: Any) -> tuple[Any, str | None]:
        """Store ``result`` and return what a hit will return: on a shared cache its JSON copy
        (a tuple comes back a list, an int key a str: the same on the miss as on every hit),
        with the JSON it was decoded from, for each caller waiting on this miss to decode a
        copy of its own (a caller changing its output must not change another's, as on hits).
        If it cannot be stored (not JSON, or the backend refusing it), the caller still gets it
        as it is, and no JSON: an unstored output is only a later miss (``StoreFailures``)."""
        if not self._serialize:
            await self._failures.put(self._store, key, _Boxed(result), self._ttl)
            return result, None
        try:
            payload = (
                _encode(result) if is_small(result) else await heavy_in_own_thread(_encode, result)
            )
        except (TypeError, ValueError, RuntimeError) as exc:
            # (RuntimeError: nested past json's recursion limit, or changed while encoded.)
            self._failures.failed(
                "encode",
                InvalidArgumentTypeError(
                    f"a shared (Redis) cache stores JSON; {type(result).__name__} output "
                    f"cannot be cached: {exc}"
                ),
            )
            return result, None
        if await self._failures.put(self._store, key, payload, self._ttl):
            return await _decoded(payload), payload
        return result, None

    def _record(self, *, hit: bool) -> None:
        if hit:
            self._hits += 1
        else:
            self._misses += 1
        instruments().cache_requests.add(1, {"cache.hit": hit})
        current_span_attribute("cache.hit", hit)

    async def clear(self) -> None:
        """Drop every cached output (this namespace only, on Redis). An output this cache is
        computing meanwhile goes to its callers but is not stored, and a call after the clear
        computes anew rather than wait for it. (Another process's, on a shared cache, may
        still be stored after the clear.)"""
        self._clears += 1
        self._inflight.clear()
        await self._store.clear()

    async def aclose(self) -> None:
        """Send what was cached during an outage if Redis is back, then close connections."""
        await close_cache_store(self._store)

    def __repr__(self) -> str:
        return f"CachePrimitive({self._primitive!r})"


class _Boxed(Generic[U]):
    """An in-process cached output (so that a cached ``None`` is still a hit)."""

    __slots__ = ("value",)

    def __init__(self, value: U) -> None:
        self.value = value


class StoreFailures:
    """A cache's stores never raise once its caller has an output (the step, or the model, has
    run): one that loses to newer changes of other processes (``StaleWriteError``, even on
    the retry) leaves theirs standing; one that cannot be stored (Redis refusing it: full, or
    an ACL; or not JSON) is only a later miss, warned once per reason. Both are marked on the
    current span, the error by its type only: a key holds a user id or the prompt, and a
    refusal's message may quote it. Shared by ``CachePrimitive`` and ``LLMCache``."""

    __slots__ = ("_owner", "_warned")

    def __init__(self, owner: object) -> None:
        self._owner = owner
        self._warned: set[str] = set()

    async def put(
        self, store: HybridStore[StorageBackend], key: str, payload: Any, ttl: float | None
    ) -> bool:
        """Store an entry; True if the cache holds one for ``key`` after (this one, or a newer
        one of another process), False if it was refused."""
        try:
            await store.put(key, payload, ttl)
        except StaleWriteError:
            current_span_attribute("cache.stored", False)
            current_span_event("cache.store_stale", {})
        except BackendRefusedError as exc:
            self.failed(type(exc).__name__, exc)
            return False
        return True

    def failed(self, reason: str, exc: Exception) -> None:
        """An entry could not be stored, for ``reason``: warned once per reason."""
        if reason not in self._warned:
            self._warned.add(reason)
            log.warning("%r could not store an entry, returned uncached: %s", self._owner, exc)
        current_span_attribute("cache.stored", False)
        current_span_event("cache.store_failed", {"cache.error": type(exc).__name__})


async def close_cache_store(store: HybridStore[StorageBackend]) -> None:
    """Close a cache's store, as a memory's ``aclose`` does: entries cached during an outage
    are sent first if Redis is back (closed right after an outage, a worker left them all to
    be computed again elsewhere: review R23); if not, each is only a later miss."""
    try:
        with contextlib.suppress(BackendError):
            await store.flush()
    finally:
        await store.aclose()


def cache_store(
    backend: Any, namespace: str, redis_timeout: float, max_size: int
) -> HybridStore[StorageBackend]:
    """A cache's store: in-process, fronting ``backend`` (None, a Redis URL or a
    ``StorageBackend``) with the memory's fallback. An unsent entry is only a later miss, so
    ``aclose()`` does not report it."""
    remote: StorageBackend | None
    if isinstance(backend, str):
        remote = backend_from_url(
            backend,
            namespace=check_namespace(namespace),
            timeout=check_seconds("redis_timeout", redis_timeout),
        )
    elif backend is None or isinstance(backend, StorageBackend):
        remote = backend
    else:
        raise InvalidArgumentTypeError(
            f"backend must be None, a Redis URL or a StorageBackend, got {type(backend).__name__}"
        )
    local = InProcessBackend(check_max_size(max_size))
    return HybridStore(
        local, remote, events=StoreTelemetry(namespace), report_unsent=False,
        patience=check_seconds("redis_timeout", redis_timeout),
    )  # fmt: skip
