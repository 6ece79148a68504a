"""The observability page's setup, run with the SDK's in-memory exporters, sees our telemetry."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "observability.md"

CHECK = """
import asyncio

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tta_dev_primitives import MemoryPrimitive, WorkflowContext

spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
setup_telemetry(spans, reader)


async def main() -> None:
    memory = MemoryPrimitive()
    await memory.add("u1:s1:1", {"content": "hello"})
    workflow = memory.recall("hello", scope="u1") >> (lambda x, ctx: x)
    await workflow.execute("hi", WorkflowContext())


asyncio.run(main())
from opentelemetry import trace

trace.get_tracer_provider().force_flush()
names = {span.name for span in spans.get_finished_spans()}
assert {"memory.add", "memory.recall", "memory.search"} <= names, names
data = reader.get_metrics_data()
counters = {
    metric.name
    for resource in data.resource_metrics
    for scope in resource.scope_metrics
    for metric in scope.metrics
}
assert "tta.memory.operations" in counters, counters
print("ok")
"""


def setup_block() -> str:
    """The page's Python block that defines setup_telemetry."""
    blocks = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), re.DOTALL | re.MULTILINE)
    return next(block for block in blocks if "def setup_telemetry(" in block)


def test_documented_setup_exports_spans_and_counters() -> None:
    """setup_telemetry from the docs, given in-memory exporters, receives spans and counters."""
    code = setup_block() + CHECK
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_documented_setup_wires_otlp_and_a_periodic_reader() -> None:
    """The production path uses the OTLP exporters and a PeriodicExportingMetricReader."""
    block = setup_block()
    assert "OTLPSpanExporter()" in block
    assert "PeriodicExportingMetricReader(" in block
    assert "OTLPMetricExporter()" in block
