"""The LangChain adapters against real LangChain: LCEL, RunnableWithMessageHistory, chat history.

The history runs on every backend of the behaviour suite (in-process, Redis, Redis Cluster) and
through a Redis outage.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import Generation
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory

from conftest import eventually
from redis_server import RedisServer
from tta_dev_primitives import LambdaPrimitive, MemoryPrimitive, WorkflowContext
from tta_dev_primitives.exceptions import InvalidArgumentTypeError, InvalidMemoryKeyError
from tta_dev_primitives.integrations import langchain as langchain_integration
from tta_dev_primitives.integrations._portal import run_sync
from tta_dev_primitives.integrations.langchain import (
    MemoryChatMessageHistory,
    RunnablePrimitive,
    as_runnable,
    from_runnable,
)
from tta_dev_primitives.integrations.langchain_cache import LLMCache
from tta_dev_primitives.testing import capture_spans

# RunnableWithMessageHistory still works in langchain-core 1.x but warns that it is deprecated.
with_history_warning = pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")


def conversation() -> list[BaseMessage]:
    return [
        SystemMessage("You are terse."),
        HumanMessage("I like pizza with olives"),
        AIMessage("Noted: pizza, olives.", id="ai-1"),
        HumanMessage("and my dog is called Rex", name="sam"),
        ToolMessage("42", tool_call_id="call-1"),
    ]


def echo_llm(prompt: Any) -> AIMessage:
    """A deterministic model: says how many messages it saw and repeats the last."""
    messages = prompt.to_messages()
    return AIMessage(f"{len(messages)} messages; last: {messages[-1].content}")


def chain_with_history(memory: MemoryPrimitive) -> RunnableWithMessageHistory:
    prompt = ChatPromptTemplate.from_messages(
        [MessagesPlaceholder("history"), ("human", "{question}")]
    )
    return RunnableWithMessageHistory(
        prompt | RunnableLambda(echo_llm),
        lambda session_id: MemoryChatMessageHistory(memory, session_id),
        input_messages_key="question",
        history_messages_key="history",
    )


# -- primitives as runnables -----------------------------------------------------------------


async def test_a_primitive_runs_inside_an_lcel_chain() -> None:
    double = as_runnable(LambdaPrimitive(lambda x, ctx: x * 2))
    chain = RunnableLambda(lambda x: x + 1) | double | RunnableLambda(str)
    assert await chain.ainvoke(1) == "4"
    assert await double.abatch([1, 2, 3]) == [2, 4, 6]


def test_a_primitive_runnable_is_callable_from_sync_code() -> None:
    double = as_runnable(LambdaPrimitive(lambda x, ctx: x * 2))
    assert double.invoke(21) == 42
    assert double.batch([1, 2]) == [2, 4]


def test_a_slow_sync_step_never_holds_up_another_thread_s_sync_call() -> None:
    """Every thread's sync calls share the library's one event loop; a sync step run there
    (``invoke``) runs in a worker thread. So while one thread's step waits (here: until the
    other thread's call has returned), another thread's ``invoke`` completes. Before, it
    waited behind the step: here, for ever (the 30 s bounds are hang guards)."""
    from concurrent.futures import ThreadPoolExecutor

    release = threading.Event()
    slow = as_runnable(LambdaPrimitive(lambda x, ctx: release.wait(30) and x))
    quick = as_runnable(LambdaPrimitive(lambda x, ctx: x * 2))
    with ThreadPoolExecutor(2) as pool:
        waiting = pool.submit(slow.invoke, "slow")
        assert pool.submit(quick.invoke, 21).result(timeout=30) == 42
        release.set()
        assert waiting.result(timeout=30) == "slow"


def test_a_sync_step_can_make_a_sync_call_of_its_own() -> None:
    """A sync step whose LangChain model reads ``LLMCache`` synchronously, run through
    ``as_runnable(...).invoke``: its sync call finds the library's loop free (the step is in a
    worker thread), where it used to raise UsageError (the loop would wait for itself)."""
    cache = LLMCache()
    cache.update("prompt", "model", [Generation(text="cached answer")])

    def step(x: str, ctx: WorkflowContext) -> str:
        found = cache.lookup(x, "model")
        assert found is not None
        return found[0].text

    assert as_runnable(LambdaPrimitive(step)).invoke("prompt") == "cached answer"
    assert as_runnable(LambdaPrimitive(step)).batch(["prompt", "prompt"]) == ["cached answer"] * 2
    cache.close()


def test_sync_steps_making_nested_sync_calls_never_run_out_of_threads() -> None:
    """Eight sync steps of a batch, all running at once (a barrier), each making a nested sync
    call whose own sync step needs a thread too: each step gets a thread of its own, so none
    waits for a pool thread the others hold. (On the loop's default pool, 6 threads here, the
    barrier broke; without it the batch hung.) The 60 s is a hang guard only."""
    from concurrent.futures import ThreadPoolExecutor

    width = 8
    together = threading.Barrier(width, timeout=30)
    inner = as_runnable(LambdaPrimitive(lambda x, ctx: x + 1))

    def outer_step(x: int, ctx: WorkflowContext) -> int:
        together.wait()
        return inner.invoke(x)

    outer = as_runnable(LambdaPrimitive(outer_step))
    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(outer.batch, list(range(width)), {"max_concurrency": width})
        assert done.result(timeout=60) == [x + 1 for x in range(width)]


def test_a_sync_step_under_invoke_runs_with_no_event_loop_as_under_lcel() -> None:
    """As a sync ``RunnableLambda`` under LCEL's ``invoke``: the step's thread has no running
    loop (it is not the library's loop, which other threads' calls share)."""

    def step(x: int, ctx: WorkflowContext) -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return True
        return False

    assert as_runnable(LambdaPrimitive(step)).invoke(1) is True


def test_composing_a_runnable_directly_names_from_runnable() -> None:
    """``step >> RunnableLambda(...)`` cannot work (LCEL's Runnable is no primitive); the error
    says what does."""
    with pytest.raises(InvalidArgumentTypeError, match="from_runnable"):
        _ = LambdaPrimitive(lambda x, ctx: x) >> RunnableLambda(lambda x: x)  # type: ignore[operator]


async def test_sync_invoke_inside_a_running_loop_says_to_await() -> None:
    double = as_runnable(LambdaPrimitive(lambda x, ctx: x * 2))
    with pytest.raises(RuntimeError, match=r"await ainvoke\(\)"):
        double.invoke(1)


async def test_the_context_comes_from_the_run_config() -> None:
    seen: list[WorkflowContext] = []
    runnable = as_runnable(LambdaPrimitive(lambda x, ctx: seen.append(ctx) or x))
    config: RunnableConfig = {
        "configurable": {"session_id": "s1", "user_id": "u1", "other": 3},
        "metadata": {"team": "a"},
    }
    await runnable.ainvoke("x", config)
    await runnable.ainvoke("y")
    assert (seen[0].session_id, seen[0].user_id, seen[0].metadata["team"]) == ("s1", "u1", "a")
    assert seen[1].session_id is None
    assert seen[0].correlation_id != seen[1].correlation_id  # a fresh context per run


async def test_int_and_uuid_ids_are_kept_and_other_types_are_refused() -> None:
    """LangGraph takes an int ``thread_id``; an int or UUID ``user_id`` reaches the context as
    its str (two users' runs never share "None:None" scopes), and any other type is refused
    before the run rather than dropped."""
    seen: list[WorkflowContext] = []
    runnable = as_runnable(LambdaPrimitive(lambda x, ctx: seen.append(ctx) or x))
    user = uuid4()
    await runnable.ainvoke("x", {"configurable": {"user_id": 1001, "session_id": 1}})
    await runnable.ainvoke("x", {"configurable": {"user_id": user, "session_id": "s"}})
    assert [(c.user_id, c.session_id) for c in seen] == [("1001", "1"), (str(user), "s")]
    for bad in (1.5, True, ["u1"]):
        with pytest.raises(InvalidArgumentTypeError, match="configurable\\['user_id'\\]"):
            await runnable.ainvoke("x", {"configurable": {"user_id": bad}})
    assert len(seen) == 2


async def test_a_given_context_is_the_parent_of_each_run() -> None:
    parent = WorkflowContext(session_id="s1", state={"k": 1})
    seen: list[WorkflowContext] = []

    def step(x: int, ctx: WorkflowContext) -> int:
        ctx.state["k"] = x
        seen.append(ctx)
        return x

    runnable = as_runnable(LambdaPrimitive(step), context=parent)
    await runnable.abatch([5, 6])
    assert {c.correlation_id for c in seen} == {parent.correlation_id}
    assert sorted(c.state["k"] for c in seen) == [5, 6]
    assert parent.state == {"k": 1}  # runs do not write into the parent


async def test_a_context_function_must_return_a_context() -> None:
    runnable = as_runnable(LambdaPrimitive(lambda x, ctx: x), context=lambda config: "nope")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="not WorkflowContext"):
        await runnable.ainvoke(1)


def test_only_primitives_and_runnables_are_adapted() -> None:
    with pytest.raises(TypeError, match="WorkflowPrimitive"):
        as_runnable(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Runnable"):
        from_runnable(lambda x: x)  # type: ignore[arg-type]


# -- runnables as primitives -------------------------------------------------------------------


async def test_a_runnable_is_a_step_with_the_context_ids() -> None:
    seen: list[RunnableConfig] = []

    def model(text: str, config: RunnableConfig) -> str:
        seen.append(config)
        return text.upper()

    step = from_runnable(RunnableLambda(model), name="model")
    workflow = (lambda x, ctx: f"{x}!") >> step >> (lambda x, ctx: [x])
    ctx = WorkflowContext(session_id="s1", user_id="u1", metadata={"team": "a"})
    with capture_spans() as spans:
        assert await workflow.execute("hi", ctx) == ["HI!"]
    assert isinstance(step, RunnablePrimitive)
    assert repr(step) == "RunnablePrimitive(model)"
    assert seen[0]["configurable"]["session_id"] == "s1"
    assert seen[0]["metadata"]["correlation_id"] == ctx.correlation_id
    assert seen[0]["metadata"]["team"] == "a"
    assert "model" in [span.name for span in spans]


async def test_runnables_run_in_parallel_branches() -> None:
    upper = from_runnable(RunnableLambda(str.upper))
    lower = from_runnable(RunnableLambda(str.lower))
    assert await (upper | lower).execute("Hi", WorkflowContext()) == ["HI", "hi"]


# -- chat history ------------------------------------------------------------------------------


async def test_history_round_trips_every_message_type_in_order(memory: MemoryPrimitive) -> None:
    history = MemoryChatMessageHistory(memory, "u1:s1")
    sent = conversation()
    await history.aadd_messages(sent[:2])
    await history.aadd_messages(sent[2:])
    assert await history.aget_messages() == sent


async def test_history_messages_are_searchable_memories(memory: MemoryPrimitive) -> None:
    await MemoryChatMessageHistory(memory, "u1:s1").aadd_messages(conversation())
    await MemoryChatMessageHistory(memory, "u1:s2").aadd_messages([HumanMessage("olives too")])
    found = await memory.search("olives", scope="u1:s1")
    assert sorted(v["data"]["content"] for v in found) == [
        "I like pizza with olives",
        "Noted: pizza, olives.",
    ]
    assert len(await memory.search("olives", scope="u1")) == 3


async def test_sessions_are_kept_apart(memory: MemoryPrimitive) -> None:
    one, ten = MemoryChatMessageHistory(memory, "u1"), MemoryChatMessageHistory(memory, "u10")
    await one.aadd_messages([HumanMessage("one")])
    await ten.aadd_messages([HumanMessage("ten")])
    assert [m.content for m in await one.aget_messages()] == ["one"]
    await ten.aclear()
    assert [m.content for m in await one.aget_messages()] == ["one"]
    assert await ten.aget_messages() == []


async def test_a_session_named_inside_another_is_kept_apart(memory: MemoryPrimitive) -> None:
    """Session "u1:s1:messages" keeps its messages under "u1:s1:messages:messages:...", inside
    the scope session "u1:s1" reads ("u1:s1:messages"): "u1:s1" listed them as its own, and
    its clear deleted them."""
    outer = MemoryChatMessageHistory(memory, "u1:s1")
    inner = MemoryChatMessageHistory(memory, "u1:s1:messages")
    await outer.aadd_messages([HumanMessage("outer")])
    await inner.aadd_messages([HumanMessage("inner")])
    assert [m.content for m in await outer.aget_messages()] == ["outer"]
    await outer.aclear()
    assert await outer.aget_messages() == []
    assert [m.content for m in await inner.aget_messages()] == ["inner"]


async def test_max_messages_returns_the_latest(memory: MemoryPrimitive) -> None:
    history = MemoryChatMessageHistory(memory, "u1:s1", max_messages=2)
    await history.aadd_messages([HumanMessage(str(i)) for i in range(5)])
    assert [m.content for m in await history.aget_messages()] == ["3", "4"]
    await history.aclear()  # clears all five, not only the window
    assert await MemoryChatMessageHistory(memory, "u1:s1").aget_messages() == []


async def test_a_history_longer_than_a_page_is_read_whole(
    memory: MemoryPrimitive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session is listed a page at a time (pages of 3 here): every message, in order, and
    the latest ones for ``max_messages``; other sessions' messages never join in."""
    monkeypatch.setattr(langchain_integration, "_PAGE", 3)
    history = MemoryChatMessageHistory(memory, "u1:s1")
    await history.aadd_messages([HumanMessage(str(i)) for i in range(10)])
    await MemoryChatMessageHistory(memory, "u1:s10").aadd_messages([HumanMessage("other")])
    assert [m.content for m in await history.aget_messages()] == [str(i) for i in range(10)]
    latest = MemoryChatMessageHistory(memory, "u1:s1", max_messages=4)
    assert [m.content for m in await latest.aget_messages()] == ["6", "7", "8", "9"]
    await history.aclear()
    assert await history.aget_messages() == []
    assert len(await MemoryChatMessageHistory(memory, "u1:s10").aget_messages()) == 1


async def test_clear_keeps_other_memories_of_the_session(memory: MemoryPrimitive) -> None:
    await memory.add("u1:s1:profile", {"likes": "pizza"})
    history = MemoryChatMessageHistory(memory, "u1:s1")
    await history.aadd_messages(conversation())
    await history.aclear()
    assert await history.aget_messages() == []
    assert await memory.get("u1:s1:profile") == {"likes": "pizza"}
    assert await memory.size() == 1


async def test_a_bad_message_stores_nothing(memory: MemoryPrimitive) -> None:
    history = MemoryChatMessageHistory(memory, "u1:s1")
    with pytest.raises(TypeError, match="BaseMessage, got str"):
        await history.aadd_messages([HumanMessage("ok"), "not a message"])  # type: ignore[list-item]
    assert await memory.size() == 0


async def test_messages_expire_after_their_ttl(memory: MemoryPrimitive) -> None:
    # Long enough that a busy machine reads it back first; expiry is what is tested.
    history = MemoryChatMessageHistory(memory, "u1:s1", ttl=2.0)
    await history.aadd_messages([HumanMessage("soon gone")])
    assert len(await history.aget_messages()) == 1

    async def gone() -> bool:
        return await history.aget_messages() == []

    await eventually(gone, within=10)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"session_id": ""}, InvalidMemoryKeyError, "non-empty"),
        ({"session_id": "u1::s1"}, InvalidMemoryKeyError, "segments"),
        ({"session_id": 7}, TypeError, "session_id must be str"),
        ({"max_messages": 0}, ValueError, "max_messages"),
        ({"max_messages": True}, ValueError, "max_messages"),
        ({"ttl": -1}, ValueError, "ttl"),
        ({"memory": {}}, TypeError, "MemoryPrimitive"),
    ],
)
def test_bad_history_arguments_are_named(kwargs: dict[str, Any], error: type, match: str) -> None:
    args: dict[str, Any] = {"memory": MemoryPrimitive(), "session_id": "u1:s1", **kwargs}
    with pytest.raises(error, match=match):
        MemoryChatMessageHistory(**args)


def test_the_sync_history_api_works_outside_a_loop() -> None:
    history = MemoryChatMessageHistory(MemoryPrimitive(), "u1:s1")
    history.add_user_message("hello")
    history.add_ai_message("hi")
    assert [m.content for m in history.messages] == ["hello", "hi"]
    history.clear()
    assert history.messages == []


async def test_the_sync_history_api_inside_a_loop_says_what_to_await() -> None:
    history = MemoryChatMessageHistory(MemoryPrimitive(), "u1:s1")
    with pytest.raises(RuntimeError, match=r"await aget_messages\(\)"):
        _ = history.messages


@pytest.mark.redis
def test_the_sync_history_api_works_on_redis(redis_server: RedisServer) -> None:
    memory = MemoryPrimitive(redis_server.url, namespace=f"test:{uuid4().hex[:12]}")
    history = MemoryChatMessageHistory(memory, "u1:s1")
    history.add_messages(conversation())
    assert memory.using_redis
    assert history.messages == conversation()
    history.clear()
    assert history.messages == []
    run_sync(memory.aclose(), instead="")


@with_history_warning
async def test_runnable_with_message_history_remembers_turns(memory: MemoryPrimitive) -> None:
    chain = chain_with_history(memory)
    config: RunnableConfig = {"configurable": {"session_id": "u1:s1"}}
    first = await chain.ainvoke({"question": "I like pizza"}, config)
    second = await chain.ainvoke({"question": "what do I like?"}, config)
    assert first.content == "1 messages; last: I like pizza"
    assert second.content == "3 messages; last: what do I like?"
    other = await chain.ainvoke({"question": "hi"}, {"configurable": {"session_id": "u2:s1"}})
    assert other.content == "1 messages; last: hi"
    assert len(await memory.search("pizza", scope="u1:s1")) == 2


@with_history_warning
async def test_a_history_chain_is_a_step_keyed_by_the_context_session(
    memory: MemoryPrimitive,
) -> None:
    step = from_runnable(chain_with_history(memory))
    ctx = WorkflowContext(session_id="u1:s1")
    await step.execute({"question": "I like pizza"}, ctx)
    reply = await step.execute({"question": "again"}, ctx)
    assert reply.content == "3 messages; last: again"


@with_history_warning
def test_runnable_with_message_history_works_from_sync_code() -> None:
    chain = chain_with_history(MemoryPrimitive())
    config: RunnableConfig = {"configurable": {"session_id": "u1:s1"}}
    chain.invoke({"question": "one"}, config)
    assert chain.invoke({"question": "two"}, config).content == "3 messages; last: two"


texts = st.text(min_size=0, max_size=30)
messages = st.lists(
    st.one_of(texts.map(HumanMessage), texts.map(AIMessage), texts.map(SystemMessage)),
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(messages, max_size=4))
def test_history_equals_everything_added_in_order(batches: list[list[BaseMessage]]) -> None:
    """Law: after any sequence of appends, the history is their concatenation."""

    async def run() -> list[BaseMessage]:
        history = MemoryChatMessageHistory(MemoryPrimitive(max_size=10_000), "u:s")
        for batch in batches:
            await history.aadd_messages(batch)
        return await history.aget_messages()

    assert asyncio.run(run()) == [m for batch in batches for m in batch]


# -- through a Redis outage ----------------------------------------------------------------------


@pytest.mark.redis
async def test_history_survives_redis_dying_and_lands_in_redis_after(
    redis_server_factory: Any,
) -> None:
    server: RedisServer = redis_server_factory(appendonly=True)
    ns = f"test:{uuid4().hex[:12]}"
    options: dict[str, Any] = {
        "namespace": ns,
        "redis_timeout": 0.5,
        "recovery_interval": 0.05,
        "max_recovery_interval": 0.2,
    }
    async with MemoryPrimitive(server.url, **options) as memory:
        history = MemoryChatMessageHistory(memory, "u1:s1")
        await history.aadd_messages(conversation()[:2])
        assert memory.using_redis
        server.kill()
        await history.aadd_messages(conversation()[2:])  # served in-process, journalled
        assert not memory.using_redis
        assert await history.aget_messages() == conversation()
        server.start()

        async def replayed() -> bool:
            return await memory.flush() and memory.using_redis

        await eventually(replayed, within=15)
    async with MemoryPrimitive(server.url, namespace=ns) as reader:
        assert await MemoryChatMessageHistory(reader, "u1:s1").aget_messages() == conversation()


@pytest.mark.redis
async def test_max_messages_after_an_outage_returns_the_latest_said(
    redis_server_factory: Any,
) -> None:
    """A message journalled in an outage lands at its replay, after newer messages other
    processes added meanwhile: ``max_messages`` still returns the latest said, not the latest
    Redis applied."""
    from conftest import fast_recovery, namespace, replayed

    server = redis_server_factory(appendonly=True)
    ns = namespace()
    a = fast_recovery(server.url, ns, recovery_interval=3600, max_recovery_interval=3600)
    b = fast_recovery(server.url, ns)  # "another process"
    try:
        await a.size()
        await b.size()
        server.kill()
        await MemoryChatMessageHistory(a, "u1:s1").aadd_messages([HumanMessage("old")])
        server.start()
        await replayed(b)
        later = MemoryChatMessageHistory(b, "u1:s1")
        for text in ("one", "two", "three"):
            await later.aadd_messages([HumanMessage(text)])
        await replayed(a)  # "old" lands now, after "three"
        history = MemoryChatMessageHistory(b, "u1:s1", max_messages=3)
        assert [m.content for m in await history.aget_messages()] == ["one", "two", "three"]
        everything = await MemoryChatMessageHistory(b, "u1:s1").aget_messages()
        assert [m.content for m in everything] == ["old", "one", "two", "three"]
    finally:
        await a.aclose()
        await b.aclose()


async def test_a_message_json_cannot_hold_stores_nothing_of_the_batch() -> None:
    """R23: the answer's metadata held a datetime; the question was stored, the answer not."""
    import datetime

    from tta_dev_primitives.exceptions import InvalidMemoryValueError

    async with MemoryPrimitive() as memory:
        history = MemoryChatMessageHistory(memory, "u1:s1")
        bad = AIMessage("hi", response_metadata={"at": datetime.datetime(2026, 1, 1)})
        with pytest.raises(InvalidMemoryValueError, match="datetime"):
            await history.aadd_messages([HumanMessage("hello"), bad])
        assert await history.aget_messages() == []
