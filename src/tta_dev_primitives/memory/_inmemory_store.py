"""``InMemoryStore``: the seed's synchronous, thread-safe, LRU-bounded store with search."""

from __future__ import annotations

from typing import Any

from tta_dev_primitives._checks import (
    check_key,
    check_limit,
    check_max_size,
    check_new_key,
    check_query,
    check_scope,
    check_ttl,
)
from tta_dev_primitives.memory._values import decode_value, encode_value
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.stores._base import Document
from tta_dev_primitives.stores._local import LocalStore

__all__ = ["InMemoryStore"]


class InMemoryStore:
    """Memories in this process: ``add``/``get``/``search``, LRU eviction past ``max_size``.

    Values are validated and stored as JSON, so what you stored and what you get back are
    independent copies. Safe to share between threads. ``MemoryPrimitive`` uses the same engine.
    """

    __slots__ = ("_indexing", "_store")

    def __init__(self, max_size: int = 1000) -> None:
        self._store = LocalStore(check_max_size(max_size))
        self._indexing = Indexing()

    @property
    def max_size(self) -> int:
        """Most memories kept before the least recently used is evicted."""
        return self._store.max_size

    @property
    def evicted(self) -> int:
        """Memories evicted (least recently used first) to stay within ``max_size``."""
        return self._store.evicted

    def add(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        """Add or replace the memory under ``key`` (a ``get`` or ``add`` makes it most recent)."""
        key, ttl = check_new_key(key), check_ttl(ttl)
        payload = encode_value(value)
        self._store.put(key, payload, ttl, Document(self._indexing.terms(value)))

    def get(self, key: str) -> dict[str, Any] | None:
        """A copy of the memory under ``key``, or None."""
        payload = self._store.get(check_key(key))
        return None if payload is None else decode_value(payload)  # type: ignore[arg-type]

    def search(
        self, query: str, limit: int = 5, *, scope: str | None = None
    ) -> list[dict[str, Any]]:
        """Memories matching ``query``'s words, best first (see the memory guide)."""
        analysed = self._indexing.query(check_query(query))
        found = self._store.search(analysed, check_limit(limit), check_scope(scope))
        return [v for _, p, _ in found if (v := decode_value(p)) is not None]  # type: ignore[arg-type]

    def delete(self, key: str) -> bool:
        """Remove the memory under ``key``; True if there was one."""
        return self._store.delete(check_key(key))

    def clear(self) -> None:
        """Remove every memory."""
        self._store.clear()

    def size(self) -> int:
        """How many memories are stored."""
        return self._store.size()

    def keys(self) -> list[str]:
        """Keys from oldest to newest write (``add``); eviction is by least recent use."""
        return self._store.keys()

    def __len__(self) -> int:
        return self._store.size()

    def __repr__(self) -> str:
        return f"InMemoryStore(max_size={self.max_size}, size={self.size()})"
