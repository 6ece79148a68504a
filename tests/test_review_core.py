"""Review of the composition core, CachePrimitive and their telemetry, through the public API."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from conftest import namespace, run_python
from tta_dev_primitives import (
    CachePrimitive,
    LambdaPrimitive,
    MemoryPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)
from tta_dev_primitives.exceptions import BackendRefusedError, StaleWriteError
from tta_dev_primitives.stores import StorageBackend
from tta_dev_primitives.testing import capture_spans


class RefusingBackend(StorageBackend):
    """A shared store (your own service) that answers every read with a miss and refuses every
    write with ``error``: as Redis does when full, or when another process's change stands."""

    kind = "refusing"
    serializes = True

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def put(
        self, key: str, payload: Any, ttl: float | None = None, *, version: str = ""
    ) -> None:
        raise self.error

    async def get(self, key: str) -> Any | None:
        return None

    async def delete(self, key: str, *, version: str = "") -> bool:
        return False

    async def clear(self, *, version: str = "") -> None:
        pass

    async def size(self) -> int:
        return 0

    async def items(self) -> AsyncIterator[tuple[str, Any, float | None]]:
        for item in ():
            yield item


@pytest.mark.parametrize(
    "error",
    [
        StaleWriteError("a newer change of user7QZXJ:s1:prompt stands"),
        BackendRefusedError("refused to store user7QZXJ:s1:prompt"),
    ],
    ids=["stale", "refused"],
)
async def test_a_cache_store_that_fails_puts_no_key_on_the_span(error: Exception) -> None:
    """observability.md: user ids and contents never go on spans, and the library's errors are
    recorded by their type only, since they name keys. A cache whose store was refused (or lost
    to a newer change) put its key (``{user}:{session}:...``, or the prompt itself, as the docs'
    own keys are) on a ``cache.store_stale`` event, and the refusal's message on a
    ``cache.store_failed`` event."""
    cache = CachePrimitive(
        lambda prompt, ctx: f"answer to {prompt}",
        lambda prompt, ctx: f"{ctx.user_id}:{ctx.session_id}:{prompt}",
        backend=RefusingBackend(error),
    )
    ctx = WorkflowContext(user_id="user7QZXJ", session_id="s1")
    with capture_spans() as spans:
        assert await cache.execute("prompt", ctx) == "answer to prompt"
    span = spans.one("CachePrimitive")
    assert span.attributes["cache.stored"] is False
    assert span.events  # the failed store is still marked
    shown = [*span.attributes.values(), *(v for e in span.events for v in e.attributes.values())]
    assert not [v for v in shown if "QZXJ" in str(v)], shown


@pytest.mark.parametrize("switched_off", ["noop_provider", "sdk_disabled"])
def test_tracing_switched_off_costs_what_no_provider_costs(switched_off: str) -> None:
    """concepts.md: with no SDK a run checks once and skips the span. Tracing switched off the
    standard ways (a ``NoOpTracerProvider``, or the SDK's provider under
    ``OTEL_SDK_DISABLED=true``) records nothing either, yet every step went through the span
    wrapper (an extra coroutine and a no-op span: 0.5 us a step became 5 us)."""
    setup = {
        "noop_provider": "trace.set_tracer_provider(trace.NoOpTracerProvider())",
        "sdk_disabled": (
            "os.environ['OTEL_SDK_DISABLED'] = 'true'\n"
            "from opentelemetry.sdk.trace import TracerProvider\n"
            "trace.set_tracer_provider(TracerProvider())"
        ),
    }[switched_off]
    out = run_python(
        f"""
import asyncio, os
from opentelemetry import trace
{setup}
from tta_dev_primitives import LambdaPrimitive, WorkflowContext
from tta_dev_primitives.telemetry._tracing import get_tracer
p = LambdaPrimitive(lambda x, ctx: x)
print(asyncio.run(p.execute(1, WorkflowContext())), get_tracer() is None)
coro = p.execute(1, WorkflowContext())
print(coro.cr_code.co_qualname)
coro.close()
        """
    )
    assert out.split("\n") == ["1 True", "LambdaPrimitive.execute"]


class DictBackend(StorageBackend):
    """A shared dict standing in for your key/value service, as in concepts.md."""

    kind = "dict"
    serializes = True

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def put(
        self, key: str, payload: Any, ttl: float | None = None, *, version: str = ""
    ) -> None:
        self.data[key] = payload

    async def get(self, key: str) -> Any | None:
        return self.data.get(key)

    async def delete(self, key: str, *, version: str = "") -> bool:
        return self.data.pop(key, None) is not None

    async def clear(self, *, version: str = "") -> None:
        self.data.clear()

    async def size(self) -> int:
        return len(self.data)

    async def items(self) -> AsyncIterator[tuple[str, Any, float | None]]:
        for key, payload in list(self.data.items()):
            yield key, payload, None


async def test_callers_sharing_a_miss_of_a_shared_cache_get_outputs_of_their_own() -> None:
    """A shared cache returns each hit its own JSON copy, so one caller changing its output
    never changes another's. Callers waiting on one miss all got the leader's very object:
    one caller's change showed in the others' outputs."""
    gate = asyncio.Event()

    async def step(question: str, ctx: WorkflowContext) -> dict[str, Any]:
        await gate.wait()
        return {"sources": ["doc1"]}

    cache = CachePrimitive(step, lambda q, ctx: q, backend=DictBackend())
    calls = [asyncio.create_task(cache.execute("q", WorkflowContext())) for _ in range(3)]
    for _ in range(5):
        await asyncio.sleep(0)  # the leader runs the step, the others wait on it
    gate.set()
    outputs = await asyncio.gather(*calls)
    assert cache.stats()["misses"] == 1  # one run, shared
    outputs[0]["sources"].append("added by the first caller")
    assert outputs[1] == outputs[2] == {"sources": ["doc1"]}
    hit = await cache.execute("q", WorkflowContext())
    assert hit == {"sources": ["doc1"]}


class BuggyBackend(DictBackend):
    """A backend of the user's with a bug of its own in ``get``."""

    async def get(self, key: str) -> Any | None:
        return self.data[key]  # KeyError for a miss


async def test_a_users_backend_failing_on_its_own_is_not_blamed_on_a_proxy() -> None:
    """A user's backend that raises a builtin error (its own bug) raises it as it is: it was
    reported as a reply the library could not read, asking whether something between it and
    the server changed replies (review R17)."""
    cache = CachePrimitive(lambda q, ctx: q.upper(), lambda q, ctx: q, backend=BuggyBackend())
    with pytest.raises(KeyError, match="q"):
        await cache.execute("q", WorkflowContext())

    class CalledRedis(BuggyBackend):  # its kind is a label, not what tells ours apart (R20)
        kind = "redis"

    cache = CachePrimitive(lambda q, ctx: q.upper(), lambda q, ctx: q, backend=CalledRedis())
    with pytest.raises(KeyError, match="q"):
        await cache.execute("q", WorkflowContext())


async def test_a_traced_run_cancelled_before_it_starts_leaves_no_unawaited_coroutine() -> None:
    """With an SDK, a run cancelled before its first step (a task cancelled at once, a timeout
    already due, a sibling in a TaskGroup failing first) made Python warn "coroutine
    'SequentialPrimitive.execute' was never awaited": the span wrapper made the step's
    coroutine before its own had started, and a cancelled wrapper never awaits it. Under
    ``-W error`` (or pytest's ``filterwarnings = error``) that warning is an error."""
    workflow = LambdaPrimitive(lambda x, ctx: x) >> (lambda x, ctx: x)
    with capture_spans(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = asyncio.create_task(workflow.execute(1, WorkflowContext()))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        del task
        gc.collect()
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


class UnprintableError(Exception):
    """An error whose message cannot be made (a broken ``__str__``, as some libraries' are
    when built without the arguments they expect)."""

    def __str__(self) -> str:
        raise AttributeError("no message")


async def test_a_step_error_that_cannot_be_printed_reaches_the_caller_as_raised() -> None:
    """concepts.md: a step's exception reaches the caller as it was raised. With an SDK, the
    span recorded the error's message, and an error whose ``str()`` raises reached the caller
    as that other error (``AttributeError``) instead: tracing changed what the code sees."""

    def step(x: int, ctx: WorkflowContext) -> int:
        raise UnprintableError

    workflow = LambdaPrimitive(step) >> (lambda x, ctx: x)
    with capture_spans() as spans, pytest.raises(UnprintableError):
        await workflow.execute(1, WorkflowContext())
    span = spans.one("step")
    assert span.status.status_code.name == "ERROR"
    assert [e.attributes["exception.type"] for e in span.events] == [f"{__name__}.UnprintableError"]


@pytest.mark.redis
async def test_an_operation_redis_refused_is_redis_s_on_its_span(redis_server: Any) -> None:
    """observability.md: each memory span says which backend served it (``memory.backend``,
    which the ``tta.memory.operations`` counter is labelled with too). An add that Redis
    refused (here WRONGTYPE: a key of the namespace holds another type) said ``in_memory``:
    a dashboard counted Redis's refusals as operations served in-process."""
    ns = namespace()
    memory = MemoryPrimitive(redis_server.url, namespace=ns)
    client = aioredis.Redis.from_url(redis_server.url)
    facts = f"{ns}:{{{ns}#0}}:n"  # the namespace's facts hash (stores._redis.layout)
    try:
        await memory.add("u1:s1:a", {"content": "first"})
        assert memory.using_redis
        assert await client.exists(facts)
        await client.delete(facts)
        await client.set(facts, "another type")
        with capture_spans() as spans, pytest.raises(BackendRefusedError):
            await memory.add("u1:s1:b", {"content": "second"})
        add = spans.one("memory.add")
        assert add.attributes["memory.backend"] == "redis"
        assert "memory.fallback" not in add.attributes
        assert add.status.status_code.name == "ERROR"
    finally:
        await client.delete(facts)
        await client.aclose()
        await memory.aclose()


def test_a_model_answer_the_llm_cache_cannot_store_is_still_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """llm-cache.md / README: a cache returns what the model computed, uncached, with one
    warning per cause. An answer whose metadata held an infinity or NaN (a logprob of -inf, as
    OpenAI-compatible servers send for masked tokens) is not JSON, and LLMCache raised from
    ``update``, after the model had answered: every such model call failed."""
    pytest.importorskip("langchain_core")
    from langchain_core.globals import set_llm_cache
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    from tta_dev_primitives.integrations.langchain_cache import LLMCache

    class Model(BaseChatModel):
        calls: int = 0

        @property
        def _llm_type(self) -> str:
            return "review"

        def _generate(
            self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
        ) -> ChatResult:
            self.calls += 1
            message = AIMessage("Lisbon.", response_metadata={"logprobs": [float("-inf"), -0.1]})
            return ChatResult(generations=[ChatGeneration(message=message)])

    model = Model()
    set_llm_cache(LLMCache())
    try:
        assert model.invoke("Where does Ana live?").content == "Lisbon."
        assert model.invoke("Where does Ana live?").content == "Lisbon."
    finally:
        set_llm_cache(None)
    assert model.calls == 2  # not cached: each call asked the model
    warned = [r for r in caplog.records if "could not store" in r.getMessage()]
    assert len(warned) == 1


class Scaled(WorkflowPrimitive[int, int]):
    """A primitive whose ``execute`` takes an option of its own past (input, context)."""

    async def execute(
        self, input_data: int, context: WorkflowContext, scale: int = 2, *, offset: int = 0
    ) -> int:
        return input_data * scale + offset


@pytest.mark.parametrize("traced", [False, True])
async def test_a_subclass_execute_with_options_of_its_own_takes_them(traced: bool) -> None:
    """concepts.md: subclass WorkflowPrimitive and implement execute; every subclass is traced
    "without further work". The tracing wrapper took exactly (input, context), so a subclass's
    own options raised ``TypeError: Scaled.execute() got an unexpected keyword argument``,
    with or without an SDK."""
    step = Scaled()
    with contextlib.ExitStack() as stack:
        spans = stack.enter_context(capture_spans()) if traced else None
        assert await step.execute(1, WorkflowContext()) == 2
        assert await step.execute(1, WorkflowContext(), 3) == 3
        assert await step.execute(1, WorkflowContext(), scale=3, offset=1) == 4
        assert await (step >> (lambda x, ctx: x + 1)).execute(1, WorkflowContext()) == 3
    if spans is not None:
        assert spans.names().count("Scaled") == 4
