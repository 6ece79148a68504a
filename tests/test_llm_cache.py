"""``LLMCache``: langchain-tests' cache suites in-process and on Redis, chat messages through a
shared Redis, keys on prompt and model settings, and the fallback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest

pytest.importorskip("langchain_tests")

from langchain_core.caches import BaseCache
from langchain_core.globals import set_llm_cache
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation
from langchain_tests.integration_tests.cache import AsyncCacheTestSuite, SyncCacheTestSuite

from conftest import Factory, every_store_loses, namespace, run_python
from redis_server import RedisServer
from tta_dev_primitives.exceptions import InvalidArgumentTypeError
from tta_dev_primitives.integrations.langchain_cache import LLMCache


@pytest.fixture(params=["in-process", "redis"])
def cache_url(request: pytest.FixtureRequest) -> str | None:
    """``None`` for the in-process cache, else a plain redis-server's URL."""
    if request.param == "in-process":
        return None
    request.applymarker(pytest.mark.redis)
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


class TestSyncSuite(SyncCacheTestSuite):
    """langchain-tests' sync cache suite."""

    @pytest.fixture
    def cache(self, cache_url: str | None) -> Iterator[BaseCache]:
        made = LLMCache(cache_url, namespace=namespace())
        yield made
        made.clear()
        made.close()


class TestAsyncSuite(AsyncCacheTestSuite):
    """langchain-tests' async cache suite."""

    @pytest.fixture
    async def cache(self, cache_url: str | None) -> AsyncIterator[BaseCache]:
        made = LLMCache(cache_url, namespace=namespace())
        yield made
        await made.aclear()
        await made.aclose()


def chat_generation() -> ChatGeneration:
    """An answer with what a real chat model returns: tool calls, usage, response metadata."""
    message = AIMessage(
        content="Lisbon.",
        tool_calls=[{"name": "lookup", "args": {"city": "Lisbon"}, "id": "call_1"}],
        usage_metadata={"input_tokens": 5, "output_tokens": 2, "total_tokens": 7},
        response_metadata={"model_name": "m", "finish_reason": "stop"},
        id="run-1",
    )
    return ChatGeneration(message=message, generation_info={"finish_reason": "stop"})


async def test_chat_generations_round_trip(cache_url: str | None) -> None:
    """An AIMessage with tool calls and usage comes back equal, on Redis as in-process."""
    cache = LLMCache(cache_url, namespace=namespace())
    answer = [chat_generation(), Generation(text="plain")]
    await cache.aupdate("Where does Ana live?", "model=m temperature=0", answer)
    assert await cache.alookup("Where does Ana live?", "model=m temperature=0") == answer
    await cache.aclose()


async def test_a_lone_surrogate_in_a_prompt_or_an_answer_is_cached(cache_url: str | None) -> None:
    """Text cut inside a surrogate pair (a JSON body's "\\ud83d" escape) is text a model
    answers: the cache looks it up and stores it as any other, rather than fail the call with
    UnicodeEncodeError (the key's hash) or Redis's BackendError (the entry)."""
    cache = LLMCache(cache_url, namespace=namespace())
    assert await cache.alookup("cut \ud83d", "model=m") is None
    await cache.aupdate("cut \ud83d", "model=m", [Generation(text="half \ude00")])
    assert await cache.alookup("cut \ud83d", "model=m") == [Generation(text="half \ude00")]
    assert await cache.alookup("cut \ud83e", "model=m") is None
    await cache.aclose()


async def test_keyed_on_the_prompt_and_the_model_settings(cache_url: str | None) -> None:
    """Another prompt, model or parameter misses: only the exact pair hits."""
    cache = LLMCache(cache_url, namespace=namespace())
    await cache.aupdate("p", "model=a temperature=0", [Generation(text="a0")])
    assert await cache.alookup("p", "model=a temperature=0") == [Generation(text="a0")]
    assert await cache.alookup("p", "model=a temperature=1") is None
    assert await cache.alookup("p", "model=b temperature=0") is None
    assert await cache.alookup("p ", "model=a temperature=0") is None
    # JSON keeps the two texts apart: moving text across the boundary is another key.
    await cache.aupdate("ab", "c", [Generation(text="x")])
    assert await cache.alookup("a", "bc") is None
    await cache.aclose()


async def test_bad_input_raises_and_stores_nothing() -> None:
    """Non-str prompts and returns that are not generations raise a typed error."""
    cache = LLMCache()
    with pytest.raises(InvalidArgumentTypeError, match="Generation"):
        await cache.aupdate("p", "m", ["text"])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentTypeError, match="sequence"):
        await cache.aupdate("p", "m", "text")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentTypeError, match="prompt"):
        await cache.alookup(1, "m")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentTypeError, match="backend"):
        LLMCache(3)  # type: ignore[arg-type]
    assert await cache.alookup("p", "m") is None


@pytest.mark.redis
async def test_an_entry_naming_another_class_is_a_miss(redis_server: RedisServer) -> None:
    """A Redis entry that would build something other than generations is never built."""
    cache = LLMCache(redis_server.url, namespace=namespace())
    forged = {
        "prompt": "p",
        "llm_string": "m",
        "generations": [
            {
                "lc": 1,
                "type": "constructor",
                "id": ["langchain", "prompts", "prompt", "PromptTemplate"],
                "kwargs": {"template": "{x}", "input_variables": ["x"]},
            }
        ],
    }
    await cache._store.put(LLMCache._key("p", "m"), json.dumps(forged), None)
    assert await cache.alookup("p", "m") is None
    await cache.aclose()


def test_set_llm_cache_answers_a_model_call_from_the_cache() -> None:
    """Through ``set_llm_cache`` a repeated call is answered without reaching the model."""
    model = FakeListChatModel(responses=["first", "second"])
    set_llm_cache(LLMCache())
    try:
        assert model.invoke("hello").content == "first"
        assert model.invoke("hello").content == "first"  # cached: the model would say "second"
        assert model.invoke("other").content == "second"
    finally:
        set_llm_cache(None)


READ_BACK = """
import asyncio
from tta_dev_primitives.integrations.langchain_cache import LLMCache

async def main():
    cache = LLMCache({url!r}, namespace={ns!r})
    found = await cache.alookup("Where does Ana live?", "model=m")
    message = found[0].message
    print(message.tool_calls[0]["args"]["city"], message.usage_metadata["total_tokens"])
    await cache.aclose()

asyncio.run(main())
"""


@pytest.mark.redis
async def test_another_process_reads_the_answer(redis_server: RedisServer) -> None:
    """An answer cached on Redis by one process is a hit, message intact, in another."""
    ns = namespace()
    cache = LLMCache(redis_server.url, namespace=ns)
    await cache.aupdate("Where does Ana live?", "model=m", [chat_generation()])
    assert run_python(READ_BACK.format(url=redis_server.url, ns=ns)) == "Lisbon 7"
    await cache.aclose()


@pytest.mark.redis
async def test_redis_down_falls_back_in_process(redis_server_factory: Factory) -> None:
    """With Redis gone, updates and lookups are served in-process and return normally."""
    server = redis_server_factory()
    cache = LLMCache(server.url, namespace=namespace(), redis_timeout=0.5)
    await cache.aupdate("p", "m", [Generation(text="before")])
    server.kill()
    assert await cache.alookup("p", "m") == [Generation(text="before")]
    await cache.aupdate("q", "m", [chat_generation()])
    assert await cache.alookup("q", "m") == [chat_generation()]
    await cache.aclose()


@pytest.mark.redis
async def test_answers_cached_in_an_outage_reach_redis_when_the_cache_closes(
    redis_server_factory: Factory,
) -> None:
    """Closed soon after Redis is back (a batch job ending, a worker recycled): the answers
    cached during the outage are sent first, as a memory's aclose replays its journal. They
    were left behind, to be computed again by every other process (review R23: 0 of 5)."""
    server = redis_server_factory()
    ns = namespace()
    cache = LLMCache(server.url, namespace=ns, redis_timeout=0.5)
    await cache.aupdate("warm", "m", [Generation(text="w")])
    server.kill()
    for i in range(5):
        await cache.aupdate(f"p{i}", "m", [Generation(text=f"answer {i}")])
    server.start()
    await cache.aclose()
    other = LLMCache(server.url, namespace=ns)
    assert [await other.alookup(f"p{i}", "m") for i in range(5)] == [
        [Generation(text=f"answer {i}")] for i in range(5)
    ]
    await other.aclose()


def test_sync_methods_work(cache_url: str | None) -> None:
    """The sync methods (what LangChain's ``invoke`` calls) update, look up and clear."""
    cache = LLMCache(cache_url, namespace=namespace())
    cache.update("p", "m", [Generation(text="x")])
    assert cache.lookup("p", "m") == [Generation(text="x")]
    cache.clear()
    assert cache.lookup("p", "m") is None
    cache.close()


@pytest.mark.redis
async def test_a_full_redis_never_fails_the_model_call(
    redis_server_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """LangChain stores an answer after the model has run: on a full Redis (maxmemory +
    noeviction) the store is refused, and the call still returns the answer, uncached, with one
    warning however often it happens; answers stored before are still found."""
    import logging

    server = redis_server_factory(extra=("--maxmemory", "3mb", "--maxmemory-policy", "noeviction"))
    cache = LLMCache(server.url, namespace=namespace())
    pad = "x" * 4000
    with caplog.at_level(logging.WARNING, logger="tta_dev_primitives.cache"):
        stored = 0
        for i in range(2_000):  # bounded: 8 MB would be well past the limit
            await cache.aupdate(f"prompt {i}", "model", [Generation(text=f"answer {i} {pad}")])
            if caplog.records:
                break
            stored += 1
        assert caplog.records, "Redis never filled up"
        await cache.aupdate("one more", "model", [Generation(text=pad)])  # no raise
    assert len(caplog.records) == 1
    assert "full" in caplog.records[0].getMessage()
    found = await cache.alookup("prompt 0", "model")
    assert found is not None
    assert found[0].text.startswith("answer 0 ")
    assert await cache.alookup(f"prompt {stored}", "model") is None
    await cache.aclear()
    await cache.aclose()


@pytest.mark.redis
async def test_an_update_that_loses_to_newer_changes_does_not_raise(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process changes the entry after this answer was issued, before its store and its
    retry (``StaleWriteError`` from Redis): the model has answered, the update does not raise."""
    ns = namespace()
    cache = LLMCache(redis_server.url, namespace=ns)
    other = LLMCache(redis_server.url, namespace=ns)
    every_store_loses(cache, other.aclear, monkeypatch)
    try:
        await cache.aupdate("prompt", "llm", [Generation(text="answer")])
    finally:
        await cache.aclose()
        await other.aclose()


def test_an_answer_dumpd_cannot_serialize_is_returned_uncached(cache_url: str | None) -> None:
    """R23: a datetime in an answer's metadata became a ``not_implemented`` placeholder, and
    every later call with that prompt raised NotImplementedError from the lookup."""
    import datetime

    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    cache = LLMCache(cache_url, namespace=namespace())
    answer = AIMessage("Lisbon.", response_metadata={"created_at": datetime.datetime(2026, 1, 1)})
    set_llm_cache(cache)
    try:
        model = GenericFakeChatModel(messages=iter([answer, answer]))
        assert model.invoke("Where does Ana live?").content == "Lisbon."
        assert model.invoke("Where does Ana live?").content == "Lisbon."  # a miss, not an error
    finally:
        set_llm_cache(None)
        cache.clear()
        cache.close()
