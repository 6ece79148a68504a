"""A namespace remembers which embedder wrote its vectors (review R35 F2).

Two processes on one Redis namespace whose embedders make vectors of the same size but by
different models (a rolling deploy that changes the model) scored one model's questions against
the other's memories, silently, on every Redis backend. Now the first process to write a vector
records its embedder and another model is refused with ``EmbedderMismatchError``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from conftest import REDIS_BACKENDS, fast_recovery, namespace, replayed
from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.embeddings import Embedder
from tta_dev_primitives.exceptions import BackendRefusedError, EmbedderMismatchError
from tta_dev_primitives.stores._redis.layout import FIELD_EMBEDDER, Layout

pytestmark = pytest.mark.redis

DIMS = 4


def _model(shift: int) -> Callable[[list[str]], list[list[float]]]:
    """A deterministic embedder of ``DIMS`` dims; another ``shift`` is another model."""

    def embed(texts: list[str]) -> list[list[float]]:
        return [
            [float((sum(map(ord, t)) * (i + 1 + shift)) % 11 + 1) for i in range(DIMS)]
            for t in texts
        ]

    return embed


def embedder(model_id: str) -> Embedder:
    return Embedder(_model(len(model_id)), model_id=model_id, dims=DIMS)


@pytest.fixture(params=["redis", "redis_cluster", "redis_engine", "redis_engine_cluster"])
def make(request: pytest.FixtureRequest) -> Callable[..., MemoryPrimitive]:
    """Memories on one namespace of one backend: ``make(model_id or None)``."""
    fixture, engine = REDIS_BACKENDS[request.param]
    server = request.getfixturevalue(fixture)
    ns = namespace()
    made: list[MemoryPrimitive] = []

    def new(model_id: str | None) -> MemoryPrimitive:
        memory = MemoryPrimitive(
            server.url, namespace=ns, search_engine=engine, redis_timeout=10.0,
            embed=None if model_id is None else embedder(model_id),
        )  # fmt: skip
        made.append(memory)
        return memory

    new.made = made  # type: ignore[attr-defined]
    return new


@pytest.fixture
async def closing(make: Any) -> AsyncIterator[Callable[..., MemoryPrimitive]]:
    yield make
    if make.made:
        await make.made[0].clear()
    for memory in make.made:
        await memory.aclose()


async def test_another_model_of_the_same_size_is_refused_and_stores_nothing(
    closing: Callable[..., MemoryPrimitive],
) -> None:
    old, new = closing("model-old"), closing("model-new")
    await old.add("u1:s1:1", {"content": "the cat sat on the mat"})
    with pytest.raises(EmbedderMismatchError) as raised:
        await new.add("u1:s1:2", {"content": "a dog in the fog"})
    error = raised.value
    assert isinstance(error, BackendRefusedError)
    text = str(error)
    assert "model-old" in text
    assert "model-new" in text
    assert new.get_backend_info()["namespace"] in text
    assert "clear()" in text
    assert "namespace" in text
    assert error.recorded == ("model-old", DIMS)
    assert error.mine == ("model-new", DIMS)
    assert await new.get("u1:s1:2") is None  # nothing stored, in Redis or the copy
    assert await old.get("u1:s1:2") is None
    assert await old.size() == 1
    info = new.get_backend_info()
    assert info["journal_size"] == 0
    assert not info["degraded"]
    assert info["embedder"]["recorded"] == {"model": "model-old", "dims": DIMS}
    assert info["embedder"]["model"] == "model-new"
    for mode in ("semantic", "hybrid"):
        with pytest.raises(EmbedderMismatchError):
            await new.search("cat", mode=mode)  # type: ignore[arg-type]
    with pytest.raises(EmbedderMismatchError):
        await new.search("cat")  # (hybrid, by default with an embedder)
    assert not new.get_backend_info()["degraded"]  # no fallback either
    # Keyword-only calls keep working.
    assert [v["content"] for v in await new.search("cat", mode="keyword")] == [
        "the cat sat on the mat"
    ]
    assert await new.get("u1:s1:1") == {"content": "the cat sat on the mat"}
    await new.add("u1:s1:3", {"content": "no vector here"}, vector_text="")
    assert await new.delete("u1:s1:3")


async def test_the_same_model_in_another_process_is_accepted(
    closing: Callable[..., MemoryPrimitive],
) -> None:
    first, second = closing("model-a"), closing("model-a")
    await first.add("u1:s1:1", {"content": "the cat sat on the mat"})
    await second.add("u1:s1:2", {"content": "a dog in the fog"})
    found = await second.search("cat on a mat", mode="semantic", limit=5)
    assert len(found) == 2
    assert second.get_backend_info()["embedder"]["recorded"] == {"model": "model-a", "dims": DIMS}


async def test_a_cleared_namespace_takes_a_new_model(
    closing: Callable[..., MemoryPrimitive],
) -> None:
    old, new = closing("model-old"), closing("model-new")
    await old.add("u1:s1:1", {"content": "the cat sat on the mat"})
    with pytest.raises(EmbedderMismatchError):
        await new.add("u1:s1:2", {"content": "a dog in the fog"})
    await new.clear()  # the documented migration
    await new.add("u1:s1:2", {"content": "a dog in the fog"})
    assert [v["content"] for v in await new.search("dog", mode="semantic")] == ["a dog in the fog"]
    # Now the old model is the other one: a process of it that starts now is refused. (One
    # that checked before the clear keeps its verdict: docs/semantic-memory.md says to stop
    # the old model's processes before the clear.)
    again = closing("model-old")
    with pytest.raises(EmbedderMismatchError):
        await again.add("u1:s1:3", {"content": "the old model again"})
    with pytest.raises(EmbedderMismatchError):
        await again.search("dog", mode="semantic")
    assert old is not again


async def test_a_process_without_an_embedder_is_not_checked(
    closing: Callable[..., MemoryPrimitive],
) -> None:
    plain, embedded = closing(None), closing("model-a")
    await embedded.add("u1:s1:1", {"content": "the cat sat on the mat"})
    await plain.add("u1:s1:2", {"content": "the cat again"})
    assert len(await plain.search("cat")) == 2
    assert "embedder" not in plain.get_backend_info()
    assert len(await embedded.search("cat", mode="hybrid")) == 2


async def test_a_namespace_without_a_record_is_recorded_by_its_next_vector_writer(
    closing: Callable[..., MemoryPrimitive],
) -> None:
    """A namespace written before the record existed (its record removed here) takes the
    embedder of the first process that writes a vector into it."""
    old = closing("model-old")
    await old.add("u1:s1:1", {"content": "the cat sat on the mat"})
    remote: Any = old._store.remote
    await remote.connection.call(lambda c: c.delete(remote.layout.embedder_record()))
    new = closing("model-new")
    assert await new.search("cat", mode="semantic")  # nothing recorded: nothing to refuse
    assert new.get_backend_info()["embedder"]["recorded"] is None
    await new.add("u1:s1:2", {"content": "a dog in the fog"})
    assert new.get_backend_info()["embedder"]["recorded"] == {"model": "model-new", "dims": DIMS}
    with pytest.raises(EmbedderMismatchError):  # a later process of the old model
        await closing("model-old").add("u1:s1:3", {"content": "old"})


async def test_writes_journalled_before_the_check_are_replayed_and_the_mismatch_logged(
    redis_server_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A process that starts during an outage cannot check: its acknowledged writes are
    replayed when Redis returns, whatever the record says, and one error names the mismatch."""
    server = redis_server_factory(appendonly=True)
    ns = namespace()
    old = MemoryPrimitive(server.url, namespace=ns, embed=embedder("model-old"))
    await old.add("u1:s1:1", {"content": "the cat sat on the mat"})
    await old.aclose()
    server.kill()
    new = fast_recovery(server.url, ns, embed=embedder("model-new"))
    try:
        await new.add("u1:s1:2", {"content": "a dog in the fog"})  # journalled
        assert new.get_backend_info()["journal_size"] == 1
        server.start()
        with caplog.at_level(logging.ERROR, logger="tta_dev_primitives.memory"):
            await replayed(new)
        assert any("model-old" in r.getMessage() and "model-new" in r.getMessage()
                   for r in caplog.records if r.levelno == logging.ERROR)  # fmt: skip
        client = aioredis.Redis.from_url(server.url)
        try:
            assert await client.get(Layout(ns).value("u1:s1:2")) is not None  # stored
            record = await client.hget(Layout(ns).embedder_record(), FIELD_EMBEDDER)
            assert record == f"{DIMS} model-old".encode()  # the record stays the first's
        finally:
            await client.aclose()
        with pytest.raises(EmbedderMismatchError):  # a live write is refused again
            await new.add("u1:s1:3", {"content": "another"})
    finally:
        await new.aclose()


async def test_a_replay_records_no_embedder(redis_server_factory: Any) -> None:
    """A replayed journal may hold another process's writes (a ``journal_path`` file), whose
    vectors the replaying process's embedder did not make: it records nothing."""
    server = redis_server_factory()
    ns = namespace()
    server.kill()
    memory = fast_recovery(server.url, ns, embed=embedder("model-a"))
    try:
        await memory.add("u1:s1:1", {"content": "written in the outage"})
        server.start()
        await replayed(memory)
        client = aioredis.Redis.from_url(server.url)
        try:
            assert await client.get(Layout(ns).value("u1:s1:1")) is not None
            assert await client.hget(Layout(ns).embedder_record(), FIELD_EMBEDDER) is None
            await memory.add("u1:s1:2", {"content": "a live write"})  # records itself
            record = await client.hget(Layout(ns).embedder_record(), FIELD_EMBEDDER)
            assert record == f"{DIMS} model-a".encode()
        finally:
            await client.aclose()
    finally:
        await memory.aclose()
