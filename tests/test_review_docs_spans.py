"""observability.md: "User ids and memory contents are never put on spans", failures included.

The success paths are tested in test_observability_promises.py. Here each call fails, and the
library's own errors name keys and scopes (``forget('u1')``, ``touch('u1:s1:...')``): recorded
on a span as they were, with their message and traceback, they put the user id there.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from conftest import Factory, fast_recovery
from tta_dev_primitives import LambdaPrimitive, MemoryPrimitive, WorkflowContext
from tta_dev_primitives.exceptions import BackendError, EmbeddingError, InvalidMemoryKeyError
from tta_dev_primitives.testing import CapturedSpans, capture_spans

MARK = "QZXJ"


def shown(spans: CapturedSpans) -> list[str]:
    """Everything a span exporter would send: attributes, events' attributes, status text."""
    found: list[str] = []
    for span in spans:
        found += [str(v) for v in span.attributes.values()]
        found += [str(v) for e in span.events for v in e.attributes.values()]
        found.append(str(span.status.description))
    return found


def assert_no_mark(spans: CapturedSpans) -> None:
    leaked = [text[:200] for text in shown(spans) if MARK in text]
    assert not leaked, leaked


@pytest.mark.redis
async def test_forget_and_touch_during_an_outage_keep_the_user_off_spans(
    redis_server_factory: Factory,
) -> None:
    """forget and touch raise during an outage, naming the scope and key: the spans record
    that they failed, and how, but not the user they were for."""
    server = redis_server_factory()
    memory = fast_recovery(server.url)
    user = f"user{MARK}"
    await memory.add(f"{user}:s1:1", {"content": "hello"})
    server.kill()
    with capture_spans() as spans:
        with pytest.raises(BackendError) as forgot:
            await memory.forget(user)
        with pytest.raises(BackendError) as touched:
            await memory.touch(f"{user}:s1:1", 60)
    assert user in str(forgot.value)  # the caller is told
    assert user in str(touched.value)
    for name in ("memory.forget", "memory.touch"):
        (span,) = spans.named(name)
        assert span.status.status_code.name == "ERROR"
        assert [e.name for e in span.events if e.name == "exception"] == ["exception"]
    assert_no_mark(spans)
    server.start()
    await memory.aclose()


async def test_a_failing_remember_step_keeps_the_user_off_its_spans() -> None:
    """A remember whose key is refused (it names the key's start) fails its step's span and
    the sequence's, without the key."""
    memory = MemoryPrimitive()
    workflow = (lambda q, ctx: q) >> memory.remember(
        lambda out, ctx: f"{ctx.user_id}:{ctx.session_id}:" + "x" * 2_000,
        lambda out, ctx: {"content": out},
    )
    with capture_spans() as spans, pytest.raises(InvalidMemoryKeyError) as refused:
        await workflow.execute("hi", WorkflowContext(user_id=f"user{MARK}", session_id="s1"))
    assert MARK in str(refused.value)
    assert spans.one("memory.remember").status.status_code.name == "ERROR"
    assert spans.one("SequentialPrimitive").status.status_code.name == "ERROR"
    assert_no_mark(spans)


async def test_a_failing_embedder_keeps_the_memory_off_the_embed_span() -> None:
    """An embedder whose error quotes the text (as providers' errors may): the add raises,
    and neither the memory.embed span nor the memory.add span carries the text."""

    def embed(texts: list[str]) -> list[list[float]]:
        raise ValueError(f"cannot embed {texts!r}")

    memory = MemoryPrimitive(embed=embed, dims=2)
    with capture_spans() as spans, pytest.raises(EmbeddingError):
        await memory.add("u1:s1:1", {"content": f"secret {MARK} words"})
    assert spans.named("memory.embed"), spans.names()
    assert all(s.status.status_code.name == "ERROR" for s in spans.named("memory.embed"))
    assert_no_mark(spans)
    await memory.aclose()


async def test_a_users_own_step_error_is_still_recorded_in_full() -> None:
    """Errors of the caller's own steps are theirs: recorded with their message as before."""

    def boom(x: Any, ctx: WorkflowContext) -> Any:
        raise ValueError("the step's own words")

    with capture_spans() as spans, contextlib.suppress(ValueError):
        await (LambdaPrimitive(lambda x, ctx: x) >> boom).execute(0, WorkflowContext())
    (event,) = [e for e in spans.one("boom").events if e.name == "exception"]
    assert event.attributes["exception.message"] == "the step's own words"
