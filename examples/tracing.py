"""Trace a workflow: spans to the console by default, or to an OTLP collector.

Console (default): python examples/tracing.py
OTLP: pip install opentelemetry-exporter-otlp-proto-http (as docs/observability.md), then
      OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 python examples/tracing.py
"""

import asyncio
import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

from tta_dev_primitives import MemoryPrimitive, WorkflowContext


def exporter() -> tuple[SpanExporter, bool]:
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(), True
    return ConsoleSpanExporter(formatter=lambda s: f"{s.name}  {dict(s.attributes or {})}\n"), False


def setup() -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "tta-example"}))
    span_exporter, batched = exporter()
    processor = BatchSpanProcessor if batched else SimpleSpanProcessor
    provider.add_span_processor(processor(span_exporter))
    trace.set_tracer_provider(provider)


async def main() -> None:
    setup()
    memory = MemoryPrimitive()
    await memory.add("u1:s1:fact", {"content": "spans nest as the workflow composes"})

    def answer(question: str, ctx: WorkflowContext) -> str:
        return f"{len(ctx.state['memories'])} memories about {question!r}"

    workflow = memory.recall(lambda q, ctx: q, scope="u1:s1") >> answer
    print(await workflow.execute("spans", WorkflowContext(workflow_id="tracing-example")))
    trace.get_tracer_provider().shutdown()  # type: ignore[attr-defined]


if __name__ == "__main__":
    asyncio.run(main())
