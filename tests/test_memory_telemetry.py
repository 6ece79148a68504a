"""Memory spans: names, backend, hit, result count, and nesting under workflow spans."""

from __future__ import annotations

import contextlib

from tta_dev_primitives import MemoryPrimitive, WorkflowContext
from tta_dev_primitives.testing import capture_spans


async def test_memory_operations_produce_named_spans_with_attributes() -> None:
    """add/get/search/delete/clear each make a memory.* span with the documented attributes."""
    memory = MemoryPrimitive()
    with capture_spans() as spans:
        await memory.add("k", {"content": "traced value"})
        await memory.get("k")
        await memory.get("missing")
        await memory.search("traced")
        await memory.delete("k")
        await memory.clear()
    assert spans.names() == ["memory.add", "memory.get", "memory.get", "memory.search",
                             "memory.delete", "memory.clear"]  # fmt: skip
    for span in spans:
        assert span.attributes["memory.backend"] == "in_memory"
        assert span.attributes["memory.namespace"] == "tta:memory"
        assert "memory.fallback" not in span.attributes
    hit, miss = spans.named("memory.get")
    assert hit.attributes["memory.hit"] is True
    assert miss.attributes["memory.hit"] is False
    assert spans.one("memory.search").attributes["memory.result_count"] == 1


async def test_memory_spans_nest_under_recall_and_remember_steps() -> None:
    """In a workflow, memory.search is a child of the recall step's span."""
    memory = MemoryPrimitive()
    wf = (
        memory.recall("x")
        >> (lambda x, ctx: x)
        >> memory.remember("k", lambda out, ctx: {"content": out})
    )
    with capture_spans() as spans:
        await wf.execute("hello", WorkflowContext())
    recall = spans.one("memory.recall")
    remember = spans.one("memory.remember")
    assert [s.name for s in spans.children(recall)] == ["memory.search"]
    assert [s.name for s in spans.children(remember)] == ["memory.add"]
    assert spans.children(spans.roots()[0])[0] is recall


async def test_a_refused_value_is_a_failed_span_and_nothing_is_stored() -> None:
    """Validation happens before any storage; the refused call is still a ``memory.add`` span
    (observability.md: every memory operation is one), marked failed by the error's type."""
    memory = MemoryPrimitive()
    with capture_spans() as spans, contextlib.suppress(TypeError):
        await memory.add("k", {"bad": {1, 2}})
    [span] = spans.named("memory.add")
    assert [e.attributes["exception.type"] for e in span.events] == [
        "tta_dev_primitives.exceptions.InvalidMemoryValueError"
    ]
    assert await memory.size() == 0


def metric_points(reader: object, name: str) -> dict[tuple[tuple[str, object], ...], int]:
    data = reader.get_metrics_data()  # type: ignore[attr-defined]
    points: dict[tuple[tuple[str, object], ...], int] = {}
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    for p in metric.data.data_points:
                        points[tuple(sorted(p.attributes.items()))] = p.value
    return points


async def test_operation_counters_by_op_backend_and_outcome() -> None:
    """tta.memory.operations counts each operation with its backend and outcome."""
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    memory = MemoryPrimitive()
    await memory.add("k", {"content": "counted"})
    await memory.get("k")
    await memory.get("k")
    await memory.get("nope")
    points = metric_points(reader, "tta.memory.operations")
    base = (("memory.backend", "in_memory"),)

    def key(op: str, outcome: str) -> tuple[tuple[str, object], ...]:
        return tuple(sorted((*base, ("memory.operation", op), ("memory.outcome", outcome))))

    assert points[key("add", "ok")] == 1
    assert points[key("get", "hit")] == 2
    assert points[key("get", "miss")] == 1
