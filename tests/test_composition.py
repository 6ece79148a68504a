"""Laws and behaviour of >>, |, SequentialPrimitive, ParallelPrimitive and LambdaPrimitive."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tta_dev_primitives import (
    LambdaPrimitive,
    ParallelPrimitive,
    SequentialPrimitive,
    WorkflowContext,
    WorkflowPrimitive,
)


class Add(WorkflowPrimitive[int, int]):
    """A user-defined primitive: adds a constant."""

    def __init__(self, n: int) -> None:
        self.n = n

    async def execute(self, input_data: int, context: WorkflowContext) -> int:
        return input_data + self.n


def make_step(kind: str, n: int) -> Any:
    """A step of one of the four kinds that can stand in a composition."""
    if kind == "primitive":
        return Add(n)
    if kind == "lambda":
        return LambdaPrimitive(lambda x, ctx: x + n)
    if kind == "sync":
        return lambda x, ctx: x + n

    async def async_step(x: int, ctx: WorkflowContext) -> int:
        return x + n

    return async_step


steps_strategy = st.lists(
    st.tuples(st.sampled_from(["primitive", "lambda", "sync", "async"]), st.integers(-9, 9)),
    min_size=3,
    max_size=8,
)


def first_primitive(steps: list[Any]) -> list[Any]:
    """Make sure an operator chain starts with a primitive (two bare functions cannot >>)."""
    if isinstance(steps[0], WorkflowPrimitive) or isinstance(steps[1], WorkflowPrimitive):
        return steps
    return [LambdaPrimitive(steps[0]), *steps[1:]]


def fold(op: str, steps: list[Any], split: int) -> Any:
    """Combine steps with the operator, left part and right part grouped separately."""

    def combine(a: Any, b: Any) -> Any:
        return a >> b if op == ">>" else a | b

    def chain(items: list[Any]) -> Any:
        acc = items[0] if isinstance(items[0], WorkflowPrimitive) else LambdaPrimitive(items[0])
        for item in items[1:]:
            acc = combine(acc, item)
        return acc

    if 1 <= split < len(steps):
        return combine(chain(steps[:split]), chain(steps[split:]))
    return chain(steps)


@given(spec=steps_strategy, split=st.integers(0, 8), op=st.sampled_from([">>", "|"]))
def test_operator_chains_flatten_whatever_the_grouping(
    spec: list[tuple[str, int]], split: int, op: str
) -> None:
    """(a op b) op c and a op (b op c) hold the same flat list of steps for >> and |."""
    steps = first_primitive([make_step(k, n) for k, n in spec])
    left_assoc = fold(op, steps, 0)
    regrouped = fold(op, steps, split)
    expected_type = SequentialPrimitive if op == ">>" else ParallelPrimitive
    assert type(left_assoc) is expected_type
    assert type(regrouped) is expected_type
    assert len(left_assoc.primitives) == len(steps)
    assert [type(p) for p in left_assoc.primitives] == [type(p) for p in regrouped.primitives]
    for original, held in zip(steps, left_assoc.primitives, strict=True):
        if isinstance(original, WorkflowPrimitive):
            assert held is original
        else:
            assert isinstance(held, LambdaPrimitive)
            assert held.func is original


@given(spec=steps_strategy, start=st.integers(-100, 100))
async def test_sequential_equals_folding_the_steps_by_hand(
    spec: list[tuple[str, int]], start: int
) -> None:
    """Running a >> chain gives what calling each step on the previous output gives."""
    steps = first_primitive([make_step(k, n) for k, n in spec])
    ctx = WorkflowContext()
    expected = start
    for step in steps:
        if isinstance(step, WorkflowPrimitive):
            expected = await step.execute(expected, ctx)
        else:
            out = step(expected, ctx)
            expected = await out if asyncio.iscoroutine(out) else out
    assert await fold(">>", steps, 0).execute(start, ctx) == expected
    assert expected == start + sum(n for _, n in spec)


@given(spec=steps_strategy, start=st.integers(-100, 100))
async def test_parallel_output_order_is_branch_order(
    spec: list[tuple[str, int]], start: int
) -> None:
    """A | chain returns each branch's output at that branch's position."""
    steps = first_primitive([make_step(k, n) for k, n in spec])
    result = await fold("|", steps, 0).execute(start, WorkflowContext())
    assert result == [start + n for _, n in spec]


async def test_parallel_order_holds_when_later_branches_finish_first() -> None:
    """Branch order, not completion order, decides the output list."""
    order: list[int] = []

    def branch(i: int, delay_turns: int) -> Any:
        async def run(x: int, ctx: WorkflowContext) -> int:
            for _ in range(delay_turns):
                await asyncio.sleep(0)
            order.append(i)
            return i

        return run

    par = ParallelPrimitive([branch(0, 5), branch(1, 0), branch(2, 2)])
    assert await par.execute(None, WorkflowContext()) == [0, 1, 2]
    assert order == [1, 2, 0]


def test_functions_compose_on_either_side() -> None:
    """A plain function on the left of >> or | is wrapped in a LambdaPrimitive."""

    def f(x: int, ctx: WorkflowContext) -> int:
        return x

    p = Add(1)
    for combined in (f >> p, p >> f, f | p, p | f):
        assert len(combined.primitives) == 2
        assert all(isinstance(s, WorkflowPrimitive) for s in combined.primitives)


def test_composing_a_non_callable_is_a_type_error() -> None:
    """Composing something that is neither a primitive nor a function names the type."""
    with pytest.raises(TypeError, match="'int'"):
        Add(1) >> 3  # type: ignore[operator]


def test_sequential_flattening_does_not_mutate_operands() -> None:
    """Extending a chain leaves the original chain as it was."""
    a, b, c = Add(1), Add(2), Add(3)
    ab = a >> b
    abc = ab >> c
    assert ab.primitives == [a, b]
    assert abc.primitives == [a, b, c]


def test_mixed_operators_nest_instead_of_flattening() -> None:
    """(a | b) >> c is a sequence whose first step is the parallel."""
    a, b, c = Add(1), Add(2), Add(3)
    wf = (a | b) >> c
    assert isinstance(wf, SequentialPrimitive)
    assert isinstance(wf.primitives[0], ParallelPrimitive)
    assert wf.primitives[1] is c


@pytest.mark.parametrize("cls", [SequentialPrimitive, ParallelPrimitive])
def test_empty_composites_are_refused(cls: type) -> None:
    """An empty Sequential or Parallel raises ValueError."""
    with pytest.raises(ValueError, match="at least one"):
        cls([])


@pytest.mark.parametrize("cls", [SequentialPrimitive, ParallelPrimitive])
def test_a_step_where_a_list_belongs_is_named(cls: type) -> None:
    """One step (or function) instead of a list of them: a TypeError saying a list is wanted,
    not "object is not iterable"."""
    step = LambdaPrimitive(lambda x, ctx: x)
    for wrong in (step, lambda x, ctx: x, "step"):
        with pytest.raises(TypeError, match=f"{cls.__name__} takes a list of"):
            cls(wrong)


@pytest.mark.parametrize("cls", [SequentialPrimitive, ParallelPrimitive])
def test_a_dict_or_a_set_of_steps_is_refused(cls: type) -> None:
    """A dict of steps (LangChain's RunnableParallel takes one) would run its keys, and a set
    has no order, so outputs would come in another order each run (review R17)."""
    step = LambdaPrimitive(lambda x, ctx: x)
    for wrong in ({"a": step}, {step}, frozenset({step})):
        with pytest.raises(TypeError, match=r"in the order their outputs come.*list\(steps"):
            cls(wrong)


def test_a_generator_function_is_refused_as_a_step() -> None:
    """A generator function's output would be the generator object, never run (review R17)."""

    async def stream(x: Any, ctx: WorkflowContext) -> Any:
        yield x

    def chunks(x: Any, ctx: WorkflowContext) -> Any:
        yield x

    for func in (stream, chunks):
        with pytest.raises(TypeError, match="generator function; a step returns its output"):
            LambdaPrimitive(func)
        with pytest.raises(TypeError, match="generator function"):
            LambdaPrimitive(lambda x, ctx: x) >> func


async def test_sequential_steps_share_the_callers_context() -> None:
    """Every sequential step sees the same context object the caller passed."""
    seen: list[WorkflowContext] = []

    def record(x: int, ctx: WorkflowContext) -> int:
        seen.append(ctx)
        ctx.state[f"step{len(seen)}"] = x
        return x + 1

    ctx = WorkflowContext()
    await (LambdaPrimitive(record) >> record >> record).execute(0, ctx)
    assert all(c is ctx for c in seen)
    assert ctx.state == {"step1": 0, "step2": 1, "step3": 2}


async def test_parallel_branches_get_child_contexts() -> None:
    """Each branch gets its own child context: same ids, separate state."""
    contexts: list[WorkflowContext] = []

    def record(x: int, ctx: WorkflowContext) -> int:
        contexts.append(ctx)
        ctx.state["mine"] = len(contexts)
        return x

    parent = WorkflowContext(workflow_id="w", session_id="s", user_id="u")
    await (LambdaPrimitive(record) | record).execute(0, parent)
    assert len(contexts) == 2
    assert parent.state == {}
    for child in contexts:
        assert child is not parent
        assert (child.workflow_id, child.session_id, child.user_id) == ("w", "s", "u")
        assert child.correlation_id == parent.correlation_id
    assert {c.state["mine"] for c in contexts} == {1, 2}
    assert [c.path for c in contexts] == [("ParallelPrimitive[0]",), ("ParallelPrimitive[1]",)]


async def test_failing_branch_cancels_its_siblings() -> None:
    """When one branch raises, a sibling blocked forever is cancelled before the error returns."""
    started = asyncio.Event()
    sibling_cancelled = asyncio.Event()

    async def blocked(x: int, ctx: WorkflowContext) -> int:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            sibling_cancelled.set()
            raise
        return x

    async def failing(x: int, ctx: WorkflowContext) -> int:
        await started.wait()
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await (LambdaPrimitive(blocked) | failing).execute(0, WorkflowContext())
    assert sibling_cancelled.is_set()


async def test_branch_exception_is_not_wrapped_in_a_group() -> None:
    """The failing branch's own exception propagates, with its own type and identity."""
    error = RuntimeError("own")

    async def failing(x: int, ctx: WorkflowContext) -> int:
        raise error

    with pytest.raises(RuntimeError) as info:
        await (LambdaPrimitive(failing) | Add(1)).execute(0, WorkflowContext())
    assert info.value is error


async def test_lowest_index_failure_wins_when_branches_fail_together() -> None:
    """Two branches failing in the same turn: the earlier branch's exception propagates."""

    async def fail_with(msg: str) -> Any:
        async def run(x: int, ctx: WorkflowContext) -> int:
            raise ValueError(msg)

        return run

    par = ParallelPrimitive([await fail_with("first"), await fail_with("second")])
    with pytest.raises(ValueError, match="first"):
        await par.execute(0, WorkflowContext())


async def test_cancelling_the_parallel_cancels_every_branch() -> None:
    """Cancelling the task running a Parallel cancels and awaits all its branches."""
    running = 0
    all_started = asyncio.Event()
    cancelled: list[int] = []

    def branch(i: int) -> Any:
        async def run(x: int, ctx: WorkflowContext) -> int:
            nonlocal running
            running += 1
            if running == 3:
                all_started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(i)
                raise
            return i

        return run

    task = asyncio.create_task(
        ParallelPrimitive([branch(i) for i in range(3)]).execute(0, WorkflowContext())
    )
    await all_started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(cancelled) == [0, 1, 2]


async def test_lambda_accepts_sync_async_and_awaitable_returning_callables() -> None:
    """LambdaPrimitive awaits a result that is awaitable even from a non-async callable."""

    class AsyncCallable:
        async def __call__(self, x: int, ctx: WorkflowContext) -> int:
            return x * 10

    assert await LambdaPrimitive(lambda x, ctx: x + 1).execute(1, WorkflowContext()) == 2
    assert await LambdaPrimitive(AsyncCallable()).execute(2, WorkflowContext()) == 20


def test_lambda_refuses_a_non_callable() -> None:
    """LambdaPrimitive(3) is a TypeError naming the type."""
    with pytest.raises(TypeError, match="callable"):
        LambdaPrimitive(3)  # type: ignore[arg-type]


def test_a_subclass_without_execute_cannot_be_instantiated() -> None:
    """WorkflowPrimitive is abstract: execute must be implemented."""

    class Incomplete(WorkflowPrimitive[int, int]):
        pass

    with pytest.raises(TypeError, match="execute"):
        Incomplete()  # type: ignore[abstract]


async def test_every_failed_branch_exception_is_retrieved() -> None:
    """When several branches fail, asyncio reports none of them as 'never retrieved'."""
    import gc

    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    async def fail(x: int, ctx: WorkflowContext) -> int:
        raise ValueError(str(x))

    try:
        with pytest.raises(ValueError, match="0"):
            await ParallelPrimitive([fail, fail, fail]).execute(0, WorkflowContext())
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert reported == []


def test_a_chain_built_a_step_at_a_time_converts_each_step_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``wf = wf >> step`` in a loop (a pipeline built from config): each ``>>`` used to pass
    every step so far through the constructor's conversion again, quadratic in Python (5,000
    steps: 2 s). Counted, not timed: the conversions grow with the steps, not their square."""
    from tta_dev_primitives.core import _composite

    converted = 0
    real = _composite.as_primitive

    def counting(step: Any) -> Any:
        nonlocal converted
        converted += 1
        return real(step)

    monkeypatch.setattr(_composite, "as_primitive", counting)
    step = LambdaPrimitive(lambda x, ctx: x + 1)
    wf: Any = step
    for _ in range(200):
        wf = wf >> step
    assert len(wf.primitives) == 201
    assert converted <= 201
    assert asyncio.run(wf.execute(0, WorkflowContext())) == 201
