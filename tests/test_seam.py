"""The storage seam: a narrow key/value interface, search apart, the hybrid reporting who served.

These are the promises ``docs/concepts.md`` makes about the seam: any ``StorageBackend`` can back
a cache and gets the same fallback and replay as Redis does; the hybrid says which backend
served each call and tells its listener (not a telemetry object) about fallbacks and recoveries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from conftest import eventually
from tta_dev_primitives import CachePrimitive, WorkflowContext
from tta_dev_primitives.exceptions import (
    BackendUnavailableError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
)
from tta_dev_primitives.search._indexing import Indexing
from tta_dev_primitives.stores import (
    Document,
    InProcessBackend,
    SearchableBackend,
    StorageBackend,
)
from tta_dev_primitives.stores._backoff import Backoff
from tta_dev_primitives.stores._factory import backend_from_url
from tta_dev_primitives.stores._hybrid import HybridStore, Served
from tta_dev_primitives.stores._inprocess import InProcessSearchBackend
from tta_dev_primitives.stores._redis.backend import RedisBackend
from tta_dev_primitives.stores._redis.search import RedisSearchBackend


class Flaky(StorageBackend):
    """A dict-backed remote that can be switched off."""

    kind = "flaky"
    serializes = True

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.up = True

    def _check(self) -> None:
        if not self.up:
            raise BackendUnavailableError("switched off")

    async def put(
        self, key: str, payload: Any, ttl: float | None = None, *, version: str = ""
    ) -> None:
        self._check()
        self.data[key] = payload

    async def get(self, key: str) -> Any | None:
        self._check()
        return self.data.get(key)

    async def delete(self, key: str, *, version: str = "") -> bool:
        self._check()
        return self.data.pop(key, None) is not None

    async def clear(self, *, version: str = "") -> None:
        self._check()
        self.data.clear()

    async def size(self) -> int:
        self._check()
        return len(self.data)

    async def items(self) -> AsyncIterator[tuple[str, Any, float | None]]:
        self._check()
        for key, payload in list(self.data.items()):
            yield key, payload, None

    async def probe(self) -> None:
        self._check()


class Recorder:
    """A ``StoreEvents`` listener that keeps what it is told."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def fallback(self, error: BaseException) -> None:
        self.seen.append(("fallback", type(error).__name__))

    def journal_dropped(self, dropped: int) -> None:
        self.seen.append(("journal_dropped", dropped))

    def dead_letters(self, count: int) -> None:
        self.seen.append(("dead_letters", count))

    def recovery_started(self) -> object:
        return "token"

    def recovery_ended(
        self, token: object, served: Served[int], error: BaseException | None = None
    ) -> None:
        stopped = None if error is None else type(error).__name__
        self.seen.append(("recovery_ended", (token, served.value, served.backend, stopped)))


async def test_the_hybrid_reports_who_served_and_tells_its_listener() -> None:
    """Served names the backend; the listener hears of the fallback and of the replay."""
    remote, events = Flaky(), Recorder()
    store = HybridStore(InProcessBackend(), remote, events=events, backoff=Backoff(0.01, 0.01))
    assert await store.put("a", "1", None) == Served(None, "flaky")
    remote.up = False
    assert await store.put("b", "2", None) == Served(None, "in_memory", fallback=True)
    assert await store.get("b") == Served("2", "in_memory", fallback=True)
    assert events.seen == [("fallback", "BackendUnavailableError")]
    remote.up = True
    assert await store.flush() == Served(True, "flaky")
    assert events.seen[-1] == ("recovery_ended", ("token", 1, "flaky", None))
    assert remote.data == {"a": "1", "b": "2"}
    assert await store.get("b") == Served("2", "flaky")
    await store.aclose()


async def test_any_storage_backend_backs_a_cache_with_fallback_and_replay() -> None:
    """A cache on a custom backend keeps answering while it is down, and catches it up after."""
    remote = Flaky()
    calls: list[str] = []

    def shout(prompt: str, ctx: WorkflowContext) -> str:
        calls.append(prompt)
        return prompt.upper()

    cache = CachePrimitive(shout, lambda prompt, ctx: prompt, backend=remote)
    ctx = WorkflowContext()
    remote.up = False
    assert await cache.execute("down", ctx) == "DOWN"
    assert await cache.execute("down", ctx) == "DOWN"  # served from the in-process copy
    assert calls == ["down"]
    remote.up = True

    async def replayed() -> bool:
        await cache.execute("poke", ctx)  # a call finds the probe due and starts the replay
        return "down" in remote.data

    await eventually(replayed, within=10)
    assert remote.data["down"] == '{"v": "DOWN"}'
    await cache.aclose()


def test_a_cache_backend_of_the_wrong_type_is_refused() -> None:
    """Only None, a URL or a StorageBackend: anything else is a typed error at construction."""
    with pytest.raises(InvalidArgumentTypeError, match="backend must be"):
        CachePrimitive(lambda x, ctx: x, lambda x, ctx: "k", backend=object())  # type: ignore[arg-type]


def test_search_is_a_capability_a_cache_store_does_not_carry() -> None:
    """The key/value backends have no search; memory's backends do."""
    assert not isinstance(InProcessBackend(), SearchableBackend)
    assert not hasattr(InProcessBackend(), "search")
    assert isinstance(InProcessSearchBackend(), SearchableBackend)
    assert not issubclass(RedisBackend, SearchableBackend)
    assert issubclass(RedisSearchBackend, SearchableBackend)


def test_one_factory_turns_a_url_into_a_backend() -> None:
    """Without indexing a key/value backend, with it a searchable one; bad URLs hide passwords."""
    plain = backend_from_url("redis://localhost:1/0", namespace="ns", timeout=1.0)
    assert type(plain) is RedisBackend
    searchable = backend_from_url(
        "redis://localhost:1/0", namespace="ns", timeout=1.0, indexing=Indexing()
    )
    assert isinstance(searchable, RedisSearchBackend)
    with pytest.raises(InvalidArgumentError) as info:
        backend_from_url("http://user:hunter2@localhost", namespace="ns", timeout=1.0)
    assert "hunter2" not in str(info.value)


async def test_a_document_is_indexed_only_by_searchable_backends() -> None:
    """The same write carries its document; the key/value backend stores just the payload."""
    from tta_dev_primitives.search._analyzer import Analyzer
    from tta_dev_primitives.stores._base import Put, send

    document = Document(Analyzer().term_counts(["hiking in the alps"]))
    plain, searchable = InProcessBackend(), InProcessSearchBackend()
    for backend in (plain, searchable):
        await send(backend, Put("k", '{"content": "hiking in the alps"}', None, document))
        assert await backend.get("k") == '{"content": "hiking in the alps"}'
    found = await searchable.search(Analyzer().query("hike?"), 5, None)
    assert [key for key, _, _ in found] == ["k"]
