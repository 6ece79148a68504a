"""Per-step cost of composition: bare awaits, this library (with and without an OTel SDK), LCEL.

Run: ``.venv/bin/python benchmarks/bench_composition.py`` (needs the ``bench`` extra for
langchain-core; ``--quick`` for a smoke run, ``--json PATH`` to save the figures).

All in one process and one run, so the ratios compare like with like:

- a 10-step chain of ``async def step(x, ctx): return x + 1``, per step;
- a 4-way fan-out of the same step, per run;
- cold import of ``tta_dev_primitives`` and of LCEL's ``RunnableLambda`` as whole processes.

The SDK can be installed only once per process and then stays, so the no-SDK figures are taken
first. LCEL's ``|`` is sequential (our ``>>``); its fan-out is ``RunnableParallel``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from _timing import bench_main, per_call_us, process_ms, table
from tta_dev_primitives import LambdaPrimitive, WorkflowContext, WorkflowPrimitive

STEPS = 10
WIDTH = 4


async def step(x: int, ctx: WorkflowContext) -> int:
    return x + 1


async def lc_step(x: int) -> int:
    return x + 1


def chain_of(n: int) -> WorkflowPrimitive[int, int]:
    workflow: Any = LambdaPrimitive(step)
    for _ in range(n - 1):
        workflow = workflow >> step
    return workflow  # type: ignore[no-any-return]


def fan_out_of(n: int) -> WorkflowPrimitive[int, list[int]]:
    workflow: Any = LambdaPrimitive(step)
    for _ in range(n - 1):
        workflow = workflow | step
    return workflow  # type: ignore[no-any-return]


async def measure(quick: bool) -> dict[str, Any]:
    try:
        from langchain_core.runnables import RunnableLambda, RunnableParallel
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise SystemExit("install the bench extra: pip install -e '.[bench]'") from exc

    n = 300 if quick else 20_000
    rounds = 3 if quick else 5  # per_call_us: the median of this many rounds
    ctx = WorkflowContext()
    chain, fan_out = chain_of(STEPS), fan_out_of(WIDTH)

    async def bare_chain() -> int:
        x = 0
        for _ in range(STEPS):
            x = await step(x, ctx)
        return x

    async def bare_fan_out() -> list[int]:
        return list(await asyncio.gather(*(step(0, ctx) for _ in range(WIDTH))))

    lc_chain: Any = RunnableLambda(lc_step)
    for _ in range(STEPS - 1):
        lc_chain = lc_chain | RunnableLambda(lc_step)
    lc_fan_out = RunnableParallel({f"b{i}": RunnableLambda(lc_step) for i in range(WIDTH)})
    lc_n = 60 if quick else max(200, n // 20)

    out: dict[str, Any] = {"steps": STEPS, "width": WIDTH}
    out["bare_step_us"] = await per_call_us(bare_chain, n, rounds) / STEPS
    out["ours_step_us"] = await per_call_us(lambda: chain.execute(0, ctx), n, rounds) / STEPS
    out["lcel_step_us"] = await per_call_us(lambda: lc_chain.ainvoke(0), lc_n, rounds) / STEPS
    out["bare_fanout_us"] = await per_call_us(bare_fan_out, n, rounds)
    out["ours_fanout_us"] = await per_call_us(lambda: fan_out.execute(0, ctx), n, rounds)
    out["lcel_fanout_us"] = await per_call_us(lambda: lc_fan_out.ainvoke(0), lc_n, rounds)

    # Now install the SDK (for good) and measure spans.
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("bench")

    async def with_sdk_chain() -> int:
        exporter.clear()
        return await chain.execute(0, ctx)

    attributes = {"tta.primitive.type": "LambdaPrimitive", "tta.correlation_id": "c" * 32}

    async def spans_only() -> None:
        exporter.clear()
        for _ in range(STEPS + 1):  # the steps' spans and the chain's own, same attributes
            with tracer.start_as_current_span("x", attributes=attributes):
                pass

    sdk_n = 100 if quick else max(500, n // 10)
    out["ours_sdk_step_us"] = await per_call_us(with_sdk_chain, sdk_n, rounds) / STEPS
    out["span_us_per_step"] = await per_call_us(spans_only, sdk_n, rounds) / STEPS
    out["ours_sdk_fanout_us"] = await per_call_us(lambda: fan_out.execute(0, ctx), sdk_n, rounds)
    exporter.clear()

    runs = 1 if quick else 15
    out["import_python_ms"] = process_ms("pass", runs)
    out["import_ours_ms"] = process_ms("import tta_dev_primitives", runs)
    out["import_ours_used_ms"] = process_ms(
        "from tta_dev_primitives import LambdaPrimitive, WorkflowContext; WorkflowContext()", runs
    )
    out["import_lcel_ms"] = process_ms("from langchain_core.runnables import RunnableLambda", runs)
    return out


def report(r: dict[str, Any]) -> None:
    print(f"{r['steps']}-step chain, per step (microseconds):")
    print(table(["", "us/step", "x bare"], [
        ["bare await", r["bare_step_us"], 1.0],
        ["tta (no SDK)", r["ours_step_us"], r["ours_step_us"] / r["bare_step_us"]],
        ["tta (SDK, in-memory exporter)", r["ours_sdk_step_us"],
         r["ours_sdk_step_us"] / r["bare_step_us"]],
        ["  span cost, SDK alone (same attrs)", r["span_us_per_step"],
         r["span_us_per_step"] / r["bare_step_us"]],
        ["LangChain LCEL", r["lcel_step_us"], r["lcel_step_us"] / r["bare_step_us"]],
    ]))  # fmt: skip
    print(f"\nLCEL / tta (no SDK): {r['lcel_step_us'] / r['ours_step_us']:,.0f}x per step")
    overhead = r["ours_sdk_step_us"] - r["bare_step_us"]
    print(f"tta with SDK minus bare: {overhead:.2f} us/step; SDK span alone: "
          f"{r['span_us_per_step']:.2f} us/step")  # fmt: skip
    print(f"\n{r['width']}-way fan-out, per run (microseconds):")
    print(table(["", "us/run"], [
        ["asyncio.gather", r["bare_fanout_us"]],
        ["tta | (no SDK)", r["ours_fanout_us"]],
        ["tta | (SDK)", r["ours_sdk_fanout_us"]],
        ["LCEL RunnableParallel", r["lcel_fanout_us"]],
    ]))  # fmt: skip
    print(f"LCEL / tta (no SDK): {r['lcel_fanout_us'] / r['ours_fanout_us']:,.1f}x per run")
    print("\ncold import, whole process (milliseconds):")
    ours = r["import_ours_ms"] - r["import_python_ms"]
    lcel = r["import_lcel_ms"] - r["import_python_ms"]
    used = r["import_ours_used_ms"] - r["import_python_ms"]
    print(table(["", "ms", "minus python"], [
        ["python -c pass", r["import_python_ms"], 0.0],
        ["import tta_dev_primitives", r["import_ours_ms"], ours],
        ["  + first WorkflowContext()", r["import_ours_used_ms"], used],
        ["from langchain_core.runnables import RunnableLambda", r["import_lcel_ms"], lcel],
    ]))  # fmt: skip
    print(f"LCEL / tta: {r['import_lcel_ms'] / r['import_ours_ms']:.1f}x (whole process), "
          f"{lcel / ours:.1f}x (import alone), "
          f"{r['import_lcel_ms'] / r['import_ours_used_ms']:.1f}x (with first use)")  # fmt: skip


def main() -> None:
    bench_main(__doc__ or "", lambda args: measure(args.quick), report)


if __name__ == "__main__":
    main()
