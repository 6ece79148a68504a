"""A LangChain model cache (``set_llm_cache``) on the storage ``CachePrimitive`` uses.

Needs ``langchain-core`` (``pip install 'tta-dev-primitives[langchain]'``). In-process by
default; with a Redis URL it is shared between processes, and a Redis failure falls back to the
in-process cache exactly as ``CachePrimitive`` and ``MemoryPrimitive`` do.

An entry is keyed on the model's full prompt AND its ``llm_string`` (the model's name and every
parameter: temperature, tools, stop words...), so a different model or setting never reuses an
answer. Generations (``Generation``, ``ChatGeneration`` with its ``AIMessage``, tool calls
included) are stored as langchain-core's own JSON (``dumpd``) and read back with ``load``,
restricted to generation and message classes, so a shared Redis cannot make it build anything
else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from langchain_core._api import suppress_langchain_beta_warning
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.load import Serializable, dumpd, load
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, Generation, GenerationChunk

from tta_dev_primitives._checks import check_namespace, check_ttl, is_unencodable
from tta_dev_primitives.caching._primitive import StoreFailures, cache_store, close_cache_store
from tta_dev_primitives.exceptions import InvalidArgumentTypeError
from tta_dev_primitives.stores._base import StorageBackend
from tta_dev_primitives.telemetry._metrics import instruments

from ._portal import run_sync

__all__ = ["LLMCache"]

#: What a cached entry may rebuild: generations and the messages they carry, nothing else.
_ALLOWED: list[type[Serializable]] = [
    Generation,
    GenerationChunk,
    ChatGeneration,
    ChatGenerationChunk,
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
]


def _check_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(f"{name} must be str, got {type(value).__name__}")
    return value


def _has_placeholder(obj: Any) -> bool:
    """True if ``dumpd`` output holds a ``not_implemented`` placeholder anywhere."""
    if isinstance(obj, dict):
        if obj.get("lc") == 1 and obj.get("type") == "not_implemented":
            return True
        return any(_has_placeholder(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_placeholder(v) for v in obj)
    return False


class LLMCache(BaseCache):
    """``set_llm_cache(LLMCache(...))``: model answers cached by prompt and model settings.

    Args:
        backend: ``None`` (in-process only), a Redis URL, or a ``StorageBackend``.
        ttl_seconds: how long an answer is reused; ``None`` (the default) until evicted or
            cleared.
        max_size: most answers the in-process cache keeps (least recently used go first);
            with Redis, the size of the in-process stand-by copy.
        namespace: key prefix in Redis; ``clear()`` removes this namespace only.
        redis_timeout: seconds a Redis call may take before it is served in-process.
    """

    def __init__(
        self,
        backend: StorageBackend | str | None = None,
        *,
        ttl_seconds: float | None = None,
        max_size: int = 1000,
        namespace: str = "tta:llm-cache",
        redis_timeout: float = 1.0,
    ) -> None:
        self._ttl = check_ttl(ttl_seconds)
        self._namespace = namespace = check_namespace(namespace)
        self._store = cache_store(backend, namespace, redis_timeout, max_size)
        self._failures = StoreFailures(self)

    @staticmethod
    def _key(prompt: str, llm_string: str) -> str:
        """A fixed-length key over both texts (unambiguous: JSON keeps them apart)."""
        both = json.dumps([prompt, llm_string], ensure_ascii=False)
        # (A lone surrogate in a prompt is hashed as it is; other text as UTF-8, as always.)
        return "llm:" + hashlib.sha256(both.encode("utf-8", "surrogatepass")).hexdigest()

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The cached generations for this prompt and model settings, or None."""
        prompt, llm_string = _check_text("prompt", prompt), _check_text("llm_string", llm_string)
        payload = (await self._store.get(self._key(prompt, llm_string))).value
        if payload is None:
            return None
        try:
            entry = json.loads(payload)
            if entry["prompt"] != prompt or entry["llm_string"] != llm_string:
                return None  # a hash collision, however unlikely, is a miss
            # ``load`` is marked beta; it is how langchain-core itself reads ``dumpd`` output.
            with suppress_langchain_beta_warning():
                generations = [load(g, allowed_objects=_ALLOWED) for g in entry["generations"]]
        except (ValueError, KeyError, TypeError, NotImplementedError):
            # NotImplementedError: a ``not_implemented`` placeholder (an entry stored by an
            # older version for an answer holding a datetime, bytes...): a miss, never an error.
            instruments().invalid_values.add(1)
            return None
        if not all(isinstance(g, Generation) for g in generations):
            instruments().invalid_values.add(1)
            return None
        return generations

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Cache ``return_val`` (generations) for this prompt and model settings."""
        prompt, llm_string = _check_text("prompt", prompt), _check_text("llm_string", llm_string)
        if isinstance(return_val, str | bytes) or not isinstance(return_val, Sequence):
            raise InvalidArgumentTypeError(
                f"return_val must be a sequence of Generation, got {type(return_val).__name__}"
            )
        for generation in return_val:
            if not isinstance(generation, Generation):
                raise InvalidArgumentTypeError(
                    f"return_val must hold Generation objects, got {type(generation).__name__}"
                )
        entry = {
            "prompt": prompt,
            "llm_string": llm_string,
            "generations": [dumpd(g) for g in return_val],
        }
        if _has_placeholder(entry["generations"]):
            # dumpd keeps what it cannot serialize (a datetime or bytes in the metadata) as a
            # ``not_implemented`` placeholder, which ``load`` refuses: storing it would make
            # every later call with this prompt fail. Returned uncached instead, as for NaN.
            self._failures.failed(
                "encode",
                InvalidArgumentTypeError("generations hold a value langchain cannot serialize"),
            )
            return
        # The model has answered, and LangChain calls this after: an answer that cannot be
        # stored (not JSON: a logprob of -inf in its metadata; Redis full; newer changes
        # standing) is only a later miss, warned once per reason, never an error
        # (``StoreFailures``).
        try:
            payload = json.dumps(entry, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            self._failures.failed(
                "encode",
                InvalidArgumentTypeError(f"generations are not JSON-serializable: {exc}"),
            )
            return
        if not payload.isascii() and is_unencodable(payload):
            # A lone surrogate (a prompt cut inside a pair) stays an escape UTF-8 can carry.
            payload = json.dumps(entry, allow_nan=False)
        await self._failures.put(self._store, self._key(prompt, llm_string), payload, self._ttl)

    async def aclear(self, **kwargs: Any) -> None:
        """Forget every cached answer (this namespace only, on Redis)."""
        await self._store.clear()

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """Sync ``alookup``."""
        return run_sync(self.alookup(prompt, llm_string), instead="alookup()", in_loop=True)

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Sync ``aupdate``."""
        run_sync(self.aupdate(prompt, llm_string, return_val), instead="aupdate()", in_loop=True)

    def clear(self, **kwargs: Any) -> None:
        """Sync ``aclear``."""
        run_sync(self.aclear(), instead="aclear()", in_loop=True)

    async def aclose(self) -> None:
        """Send what was cached during an outage if Redis is back, then close connections."""
        await close_cache_store(self._store)

    def close(self) -> None:
        """Sync ``aclose``: for a cache used through the sync methods."""
        run_sync(self.aclose(), instead="aclose()", in_loop=True)

    def __repr__(self) -> str:
        return f"LLMCache(namespace={self._namespace!r})"
