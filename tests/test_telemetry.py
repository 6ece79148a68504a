"""Spans: one per primitive run, nested as the composition is, with the documented attributes."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap

import pytest

from tta_dev_primitives import (
    CachePrimitive,
    LambdaPrimitive,
    ParallelPrimitive,
    RouterPrimitive,
    SequentialPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)
from tta_dev_primitives.testing import capture_spans


def named(name: str) -> LambdaPrimitive[object, object]:
    def step(x: object, ctx: WorkflowContext) -> object:
        return x

    return LambdaPrimitive(step, name=name)


async def test_span_tree_matches_nested_composition() -> None:
    """Sequential inside Parallel inside Sequential: every span's parent is its composite's span."""
    inner = SequentialPrimitive([named("inner_a"), named("inner_b")])
    par = ParallelPrimitive([inner, named("branch")])
    outer = SequentialPrimitive([named("first"), par, named("last")])
    with capture_spans() as spans:
        await outer.execute(0, WorkflowContext())

    assert sorted(spans.names()) == sorted(
        ["SequentialPrimitive", "first", "ParallelPrimitive", "SequentialPrimitive",
         "inner_a", "inner_b", "branch", "last"]
    )  # fmt: skip
    [root] = spans.roots()
    assert root.name == "SequentialPrimitive"
    assert [s.name for s in spans.children(root)] == ["first", "ParallelPrimitive", "last"]
    par_span = spans.one("ParallelPrimitive")
    children = spans.children(par_span)
    assert sorted(s.name for s in children) == ["SequentialPrimitive", "branch"]
    inner_span = next(s for s in children if s.name == "SequentialPrimitive")
    assert [s.name for s in spans.children(inner_span)] == ["inner_a", "inner_b"]
    assert len({s.context.trace_id for s in spans}) == 1


async def test_a_branch_cancelled_by_its_siblings_failure_says_so_on_its_span() -> None:
    """A branch cancelled because another failed ends with a ``tta.cancelled`` event and no
    error status; it read as a short successful run (review R17)."""
    from opentelemetry.trace import StatusCode

    started = asyncio.Event()

    async def slow(x: object, ctx: WorkflowContext) -> object:
        started.set()
        await asyncio.sleep(60)
        return x

    async def fails(x: object, ctx: WorkflowContext) -> object:
        await started.wait()
        raise RuntimeError("boom")

    with capture_spans() as spans, pytest.raises(RuntimeError):
        await (LambdaPrimitive(slow) | LambdaPrimitive(fails)).execute(0, WorkflowContext())
    slow_span, failed = spans.one("slow"), spans.one("fails")
    assert [e.name for e in slow_span.events] == ["tta.cancelled"]
    assert slow_span.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert "tta.cancelled" not in [e.name for e in failed.events]


async def test_a_subclass_calling_super_execute_is_one_span() -> None:
    """A subclass whose ``execute`` adds to its parent class's and calls ``super().execute()``
    is one run: one span (with the subclass's attributes), its step a child of it, not a span
    of the same name inside another. The same primitive run twice in a row is two spans."""

    class Logged(CachePrimitive[object, object]):
        async def execute(self, input_data: object, context: WorkflowContext) -> object:
            return await super().execute(input_data, context)

    cached = Logged(named("model"), lambda x, ctx: str(x))
    with capture_spans() as spans:
        await cached.execute(1, WorkflowContext())
        await (cached >> named("after")).execute(2, WorkflowContext())
    logged = spans.named("Logged")
    assert len(logged) == 2
    assert all(s.parent is None or s.parent.span_id not in {x.context.span_id for x in logged}
               for s in logged)  # fmt: skip
    assert [spans.children(s)[0].name for s in logged] == ["model", "model"]
    assert all(s.attributes["tta.primitive.type"] == "Logged" for s in logged)


async def test_a_primitive_running_itself_again_is_a_span_each_time() -> None:
    """Recursion (a primitive whose ``execute`` runs ``self.execute`` on a smaller input) is a
    run each time: nested spans, one per level, unlike ``super().execute`` above."""

    class Countdown(WorkflowPrimitive[int, int]):
        async def execute(self, input_data: int, context: WorkflowContext) -> int:
            return 0 if input_data == 0 else await self.execute(input_data - 1, context)

    with capture_spans() as spans:
        await Countdown().execute(3, WorkflowContext())
    runs = spans.named("Countdown")
    assert len(runs) == 4
    assert len(spans.roots()) == 1


async def test_spans_carry_context_ids_and_primitive_type() -> None:
    """Each span names the primitive type and the workflow, session and correlation ids."""
    ctx = WorkflowContext(workflow_id="wf-1", session_id="sess-1", user_id="secret-user")
    with capture_spans() as spans:
        await named("step").execute(0, ctx)
    attrs = spans.one("step").attributes
    assert attrs["tta.primitive.type"] == "LambdaPrimitive"
    assert attrs["tta.workflow_id"] == "wf-1"
    assert attrs["session.id"] == "sess-1"
    assert attrs["tta.correlation_id"] == ctx.correlation_id
    assert "secret-user" not in str(dict(attrs))


async def test_router_span_carries_the_route() -> None:
    """The router's span has router.route, and router.requested when it defaulted."""
    router = RouterPrimitive(
        {"a": named("route_a"), "b": named("route_b")}, lambda x, ctx: "zzz", default="b"
    )
    with capture_spans() as spans:
        await router.execute(0, WorkflowContext())
    span = spans.one("RouterPrimitive")
    assert span.attributes["router.route"] == "b"
    assert span.attributes["router.requested"] == "zzz"
    assert [s.name for s in spans.children(span)] == ["route_b"]


async def test_a_classifier_s_whole_reply_is_not_put_on_the_router_span() -> None:
    """A router_fn that answers with a sentence quoting the user (an LLM classifier) puts only
    its type and length on the span: a review found a 1 MB attribute with an email in it."""
    reply = "I think this is about billing, since you wrote: my email is a@b.example " * 1000
    router = RouterPrimitive({"billing": named("billing")}, lambda x, ctx: reply, default="billing")
    with capture_spans() as spans:
        await router.execute(0, WorkflowContext())
    requested = spans.one("RouterPrimitive").attributes["router.requested"]
    assert requested == f"(str of {len(reply):,} characters)"
    router = RouterPrimitive({"billing": named("billing")}, lambda x, ctx: 7, default="billing")
    with capture_spans() as spans:
        await router.execute(0, WorkflowContext())
    assert spans.one("RouterPrimitive").attributes["router.requested"] == "(int)"


async def test_failing_step_marks_its_span_as_error() -> None:
    """An exception in a step is recorded on that step's span and its parents'."""

    def boom(x: int, ctx: WorkflowContext) -> int:
        raise ValueError("bad")

    with capture_spans() as spans, contextlib.suppress(ValueError):
        await (named("ok") >> boom).execute(0, WorkflowContext())
    assert spans.one("boom").status.status_code.name == "ERROR"
    assert spans.one("SequentialPrimitive").status.status_code.name == "ERROR"


async def test_tree_rendering_lists_spans_with_attributes() -> None:
    """CapturedSpans.tree() indents children under parents."""
    with capture_spans() as spans:
        await (named("a") >> named("b")).execute(0, WorkflowContext(workflow_id="w"))
    assert spans.tree(["tta.workflow_id"]).splitlines() == [
        "SequentialPrimitive  [tta.workflow_id='w']",
        "  a  [tta.workflow_id='w']",
        "  b  [tta.workflow_id='w']",
    ]


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def test_no_sdk_path_makes_no_spans_and_adds_no_coroutine() -> None:
    """With no provider, execute returns the implementation's own coroutine (one check, no span)."""
    out = run_python(
        """
        import asyncio
        from tta_dev_primitives import LambdaPrimitive, WorkflowContext
        from tta_dev_primitives.telemetry._tracing import get_tracer
        p = LambdaPrimitive(lambda x, ctx: x)
        coro = p.execute(1, WorkflowContext())
        print(get_tracer() is None, coro.cr_code.co_qualname)
        coro.close()
        """
    )
    assert out == "True LambdaPrimitive.execute"


def test_provider_installed_after_import_is_picked_up() -> None:
    """Setting a tracer provider after importing the library turns spans on."""
    out = run_python(
        """
        import asyncio
        from tta_dev_primitives import LambdaPrimitive, WorkflowContext
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        p = LambdaPrimitive(lambda x, ctx: x, name="late")
        asyncio.run(p.execute(1, WorkflowContext()))
        provider = TracerProvider()
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        asyncio.run(p.execute(1, WorkflowContext()))
        print([s.name for s in exporter.get_finished_spans()])
        """
    )
    assert out == "['late']"


def test_import_does_not_load_redis_or_the_sdk() -> None:
    """import tta_dev_primitives loads neither redis nor opentelemetry.sdk."""
    out = run_python(
        """
        import sys
        import tta_dev_primitives, tta_dev_primitives.core
        print(sorted(m for m in sys.modules if m.split('.')[0] in {'redis', 'opentelemetry'}
                     and (m.startswith('redis') or m.startswith('opentelemetry.sdk'))))
        """
    )
    assert out == "[]"


def test_a_memory_with_no_setup_never_loads_redis() -> None:
    """The zero-setup memory (the serverless cold start): adding, searching, reading and
    listing in-process import no Redis client (about half the import's time went there)."""
    out = run_python(
        """
        import asyncio, sys
        from tta_dev_primitives import (
            CachePrimitive, LambdaPrimitive, MemoryPrimitive, WorkflowContext,
        )

        async def main():
            memory = MemoryPrimitive()
            turn = {"content": "my sister visits in October"}
            await memory.add("u1:t1", turn)
            assert await memory.search("when does my sister visit?") == [turn]
            assert await memory.get("u1:t1") == turn
            assert [key async for key, *_ in memory.items()] == ["u1:t1"]
            cached = CachePrimitive(LambdaPrimitive(lambda x, ctx: x * 2), lambda x, ctx: str(x))
            assert await cached.execute(2, WorkflowContext()) == 4

        asyncio.run(main())
        print(sorted(m for m in sys.modules if m == "redis" or m.startswith("redis.")
                     or m.startswith("tta_dev_primitives.stores._redis")))
        """
    )
    assert out == "[]"
