"""``MemoryCheckpointSaver``: LangGraph's conformance suite in-process and on Redis, real graphs,
and checkpoints written during an outage replayed like any other write."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, TypedDict

import pytest

pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.initializer import RegisteredCheckpointer
from langgraph.graph import START, StateGraph

from conftest import Factory, fast_recovery, namespace, replayed, run_python
from redis_server import RedisServer
from tta_dev_primitives.exceptions import InvalidArgumentError, InvalidArgumentTypeError
from tta_dev_primitives.integrations.langgraph_checkpoint import MemoryCheckpointSaver

#: What the saver implements: the five base capabilities, copy_thread and prune.
IMPLEMENTED = {"put", "put_writes", "get_tuple", "list", "delete_thread", "copy_thread", "prune"}


def registered(url: str | None, **options: Any) -> RegisteredCheckpointer:
    """The conformance suite's factory: a fresh saver on its own namespace per capability."""

    @checkpointer_test(name=f"MemoryCheckpointSaver({url or 'in-process'})")
    async def factory() -> AsyncIterator[BaseCheckpointSaver[Any]]:
        saver = MemoryCheckpointSaver.from_url(url, namespace=namespace(), **options)
        yield saver
        await saver.memory.clear()
        await saver.aclose()

    return factory


async def assert_conformant(url: str | None, **options: Any) -> None:
    report = await validate(registered(url, **options))
    failures = {
        name: [f"{f.test_name}: {f.error}" for f in result.failures]
        for name, result in report.results.items()
        if result.passed is False
    }
    assert not failures, failures
    assert report.passed_all_base()
    passed = {name for name, result in report.results.items() if result.passed}
    assert passed == IMPLEMENTED


async def test_conformance_in_process() -> None:
    """langgraph-checkpoint-conformance passes on an in-process memory."""
    await assert_conformant(None)


@pytest.mark.redis
@pytest.mark.parametrize("resume_in_outage", [True, False])
async def test_conformance_on_redis(redis_server: RedisServer, resume_in_outage: bool) -> None:
    """langgraph-checkpoint-conformance passes on a plain redis-server (no modules), in both
    outage modes."""
    await assert_conformant(redis_server.url, resume_in_outage=resume_in_outage)


@pytest.mark.redis
@pytest.mark.parametrize(
    ("fixture", "engine"), [("redis_cluster", "auto"), ("redis_query_engine", "redis")]
)
async def test_conformance_on_a_cluster_and_the_query_engine(
    request: pytest.FixtureRequest, fixture: str, engine: str
) -> None:
    """It also passes on a Redis Cluster, and where the Redis Query Engine searches."""
    server = request.getfixturevalue(fixture)
    await assert_conformant(server.url, search_engine=engine)


class Chat(TypedDict):
    turns: list[str]


def chat_graph(saver: MemoryCheckpointSaver) -> Any:
    """A one-node graph that appends a reply to the turns it was given (state is checkpointed)."""

    def reply(state: Chat) -> dict[str, list[str]]:
        return {"turns": [*state["turns"], f"reply {len(state['turns'])}"]}

    builder = StateGraph(Chat)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    return builder.compile(checkpointer=saver)


def worker(
    server: RedisServer, ns: str, resume_in_outage: bool = True, **options: Any
) -> MemoryCheckpointSaver:
    """A saver as one worker process has it: its own memory of namespace ``ns`` on ``server``,
    probing a failed Redis often (``fast_recovery``)."""
    memory = fast_recovery(server.url, ns, text_fields=("_not_indexed",), **options)
    return MemoryCheckpointSaver(memory, resume_in_outage=resume_in_outage)


async def test_a_graph_resumes_its_thread_from_the_saver() -> None:
    """A compiled graph reads back what it checkpointed: state, history and parent links."""
    saver = MemoryCheckpointSaver.from_url(None)
    graph = chat_graph(saver)
    config = {"configurable": {"thread_id": "t1"}}
    await graph.ainvoke({"turns": ["hi"]}, config)
    state = await graph.aget_state(config)
    out = await graph.ainvoke({"turns": [*state.values["turns"], "again"]}, config)
    assert out["turns"] == ["hi", "reply 1", "again", "reply 3"]
    history = [s async for s in graph.aget_state_history(config)]
    assert history[0].values["turns"] == out["turns"]
    assert all(s.parent_config for s in history[:-1])
    assert history[-1].parent_config is None
    assert (await graph.aget_state({"configurable": {"thread_id": "t2"}})).values == {}
    await saver.aclose()


def test_sync_methods_run_a_sync_graph() -> None:
    """``graph.invoke`` (the sync API) checkpoints through the saver's sync methods."""
    saver = MemoryCheckpointSaver.from_url(None)
    graph = chat_graph(saver)
    config = {"configurable": {"thread_id": "sync"}}
    graph.invoke({"turns": ["a"]}, config)
    assert graph.get_state(config).values["turns"] == ["a", "reply 1"]
    assert len(list(saver.list(config))) == len(list(graph.get_state_history(config)))
    saver.delete_thread("sync")
    assert saver.get_tuple(config) is None


async def test_bad_input_raises_and_stores_nothing() -> None:
    """A config without a thread id, or a saver on something else, raises a typed error."""
    saver = MemoryCheckpointSaver.from_url(None)
    with pytest.raises(InvalidArgumentError, match="thread_id"):
        await saver.aget_tuple({"configurable": {}})
    with pytest.raises(InvalidArgumentTypeError, match="configurable"):
        await saver.aget_tuple({})  # type: ignore[typeddict-item]
    with pytest.raises(InvalidArgumentError, match="checkpoint_id"):
        await saver.aput_writes({"configurable": {"thread_id": "t"}}, [("ch", 1)], "task")
    with pytest.raises(InvalidArgumentError, match="strategy"):
        await saver.aprune(["t"], strategy="oldest")
    with pytest.raises(InvalidArgumentTypeError, match="MemoryPrimitive"):
        MemoryCheckpointSaver({})  # type: ignore[arg-type]
    assert await saver.memory.size() == 0


async def test_records_never_reach_the_word_index() -> None:
    """The memory ``from_url`` builds indexes no record field: base64 never becomes a term."""
    saver = MemoryCheckpointSaver.from_url(None)
    await chat_graph(saver).ainvoke({"turns": ["zebra"]}, {"configurable": {"thread_id": "t"}})
    assert await saver.memory.size() > 0
    assert await saver.memory.search("zebra") == []
    await saver.aclose()


async def test_thread_ids_with_separators_stay_apart() -> None:
    """Thread ids and namespaces containing ':' or '%' or that are prefixes never mix."""
    saver = MemoryCheckpointSaver.from_url(None)
    graph = chat_graph(saver)
    for thread in ("a", "a:b", "a%3Ab", "a%"):
        await graph.ainvoke({"turns": [thread]}, {"configurable": {"thread_id": thread}})
    for thread in ("a", "a:b", "a%3Ab", "a%"):
        state = await graph.aget_state({"configurable": {"thread_id": thread}})
        assert state.values["turns"] == [thread, "reply 1"]
    await saver.adelete_thread("a")
    assert (await graph.aget_state({"configurable": {"thread_id": "a"}})).values == {}
    kept = await graph.aget_state({"configurable": {"thread_id": "a:b"}})
    assert kept.values["turns"] == ["a:b", "reply 1"]


# -- outages: a checkpoint is a write like any other ---------------------------------------------


READ_BACK = """
import asyncio, json
from tta_dev_primitives.integrations.langgraph_checkpoint import MemoryCheckpointSaver

async def main():
    saver = MemoryCheckpointSaver.from_url({url!r}, namespace={ns!r})
    tup = await saver.aget_tuple({{"configurable": {{"thread_id": "t", "checkpoint_ns": ""}}}})
    ids = [t.checkpoint["id"] async for t in saver.alist({{"configurable": {{"thread_id": "t"}}}})]
    print(json.dumps({{"turns": tup.checkpoint["channel_values"]["turns"], "ids": ids}}))
    await saver.aclose()

asyncio.run(main())
"""


@pytest.mark.redis
async def test_a_thread_resumes_while_redis_is_stalled(redis_server_factory: Factory) -> None:
    """A stalled Redis (SIGSTOP: connections open, no replies) is an outage too: the graph
    reads its thread from the in-process copy (the blank search the saver lists with is served
    there) and goes on."""
    server = redis_server_factory(appendonly=True)
    saver = MemoryCheckpointSaver.from_url(server.url, namespace=namespace(), redis_timeout=0.5)
    graph = chat_graph(saver)
    config = {"configurable": {"thread_id": "t"}}
    await graph.ainvoke({"turns": ["before"]}, config)
    with server.stalled():
        state = await graph.aget_state(config)
        assert state.values["turns"] == ["before", "reply 1"]
        out = await graph.ainvoke({"turns": [*state.values["turns"], "during"]}, config)
        assert out["turns"] == ["before", "reply 1", "during", "reply 3"]
        assert not saver.memory.using_redis
    await replayed(saver.memory)
    assert (await graph.aget_state(config)).values["turns"] == out["turns"]
    await saver.memory.clear()
    await saver.aclose()


async def test_a_checkpoint_written_during_an_outage_is_replayed(
    redis_server_factory: Factory,
) -> None:
    """Checkpoints written while Redis is down are served in-process, replayed on its return,
    and read by another process afterwards, with the ones written before."""
    server = redis_server_factory(appendonly=True)
    ns = namespace()
    saver = worker(server, ns)
    memory = saver.memory
    graph = chat_graph(saver)
    config = {"configurable": {"thread_id": "t"}}
    await graph.ainvoke({"turns": ["before"]}, config)
    assert memory.using_redis

    server.kill()
    state = await graph.aget_state(config)
    out = await graph.ainvoke({"turns": [*state.values["turns"], "during"]}, config)
    assert out["turns"] == ["before", "reply 1", "during", "reply 3"]
    assert not memory.using_redis
    assert memory.get_backend_info()["journal_size"] > 0
    during = [t.checkpoint["id"] async for t in saver.alist(config)]

    server.start()
    await replayed(memory)
    read = json.loads(run_python(READ_BACK.format(url=server.url, ns=ns)))
    assert read["turns"] == out["turns"]
    assert read["ids"] == during
    await saver.aclose()


class Profiled(TypedDict, total=False):
    turns: list[str]
    profile: str


def profiled_graph(saver: MemoryCheckpointSaver) -> Any:
    """A graph whose ``profile`` channel is written by the first turn only: later checkpoints
    name the value that turn stored."""

    def reply(state: Profiled) -> dict[str, Any]:
        update: dict[str, Any] = {"turns": [*state["turns"], f"reply {len(state['turns'])}"]}
        if "profile" not in state:
            update["profile"] = "lives in Lisbon"
        return update

    builder = StateGraph(Profiled)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    return builder.compile(checkpointer=saver)


@pytest.mark.redis
@pytest.mark.parametrize("case", ["another process's thread", "an idle process", "a value"])
async def test_an_outage_turn_the_copy_cannot_resume_fails_instead_of_forking_the_thread(
    redis_server_factory: Factory, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """During an outage a thread resumes from this process's copy only if the copy holds its
    latest checkpoint and the values that checkpoint names. A worker that never wrote the
    thread, or one idle before the outage (its copy is not served), found no checkpoint and
    started the thread again from nothing: an interrupted graph re-ran its nodes, and after
    the outage the thread's latest checkpoint was that new root (R11). A checkpoint whose
    channel value another process stored came back without that channel. Each such turn
    now raises ``BackendUnavailableError`` (the graph's turn fails, nothing is written);
    once Redis is back the same turn resumes the whole thread."""
    from tta_dev_primitives.exceptions import BackendUnavailableError
    from tta_dev_primitives.stores import _copies

    server = redis_server_factory(appendonly=True)
    ns = namespace()
    first, second = worker(server, ns), worker(server, ns)
    config = {"configurable": {"thread_id": "t"}}
    await profiled_graph(first).ainvoke({"turns": ["I live in Lisbon"]}, config)
    resumer = first
    if case == "an idle process":
        monkeypatch.setattr(_copies, "VOUCHED_FOR", 0.2)  # (3 s as shipped)
        await asyncio.sleep(0.5)  # no call meanwhile: the copy is not vouched for
    else:
        resumer = second
        if case == "a value":  # the second writes the latest checkpoint, naming first's profile
            state = await profiled_graph(second).aget_state(config)
            await profiled_graph(second).ainvoke({"turns": [*state.values["turns"], "hi"]}, config)
    graph = profiled_graph(resumer)
    before = (await graph.aget_state(config)).values
    server.kill()
    with pytest.raises(BackendUnavailableError, match="thread 't'"):
        await graph.ainvoke({"turns": [*before["turns"], "during"]}, config)
    assert not resumer.memory.using_redis

    server.start()
    await replayed(resumer.memory)
    assert (await graph.aget_state(config)).values == before  # nothing forked the thread
    out = await graph.ainvoke({"turns": [*before["turns"], "after"]}, config)
    assert out["profile"] == "lives in Lisbon"
    assert out["turns"][: len(before["turns"])] == before["turns"]
    await first.memory.clear()
    for saver in (first, second):
        await saver.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("resume_in_outage", [True, False])
async def test_a_thread_two_workers_alternate_forks_in_an_outage_unless_it_needs_redis(
    redis_server_factory: Factory, resume_in_outage: bool
) -> None:
    """docs/langgraph.md: a thread whose turns go to several workers can fork around an
    outage: the worker that wrote its latest checkpoint resumes it from its copy, the other
    recovers first and serves the next turn from Redis, which lacks the first's journalled
    turn, so that answered turn drops out of the thread's state (review R15: 6 of 37 turns).
    With ``resume_in_outage=False`` the outage turn raises instead, and every answered turn
    stays in the thread."""
    from tta_dev_primitives.exceptions import BackendUnavailableError

    server = redis_server_factory(appendonly=True)
    ns = namespace()

    first = worker(  # recovers when flushed
        server, ns, resume_in_outage, recovery_interval=60, max_recovery_interval=60
    )
    second = worker(server, ns, resume_in_outage)
    config = {"configurable": {"thread_id": "t"}}
    answered: list[str] = []

    async def turn(saver: MemoryCheckpointSaver, text: str) -> None:
        graph = chat_graph(saver)
        state = await graph.aget_state(config)
        await graph.ainvoke({"turns": [*state.values.get("turns", []), text]}, config)
        answered.append(text)

    await turn(first, "one")
    await turn(second, "two")
    await turn(first, "three")  # the first wrote the latest checkpoint
    server.kill()
    if resume_in_outage:
        await turn(first, "during")  # resumed from its copy, journalled
    else:
        with pytest.raises(BackendUnavailableError, match="resume_in_outage=False"):
            await turn(first, "during")
        assert first.memory.get_backend_info()["journal_size"] == 0  # nothing written
    server.start()
    await turn(second, "after")  # from Redis, which lacks the first's outage turn
    await replayed(first.memory)
    reader = worker(server, ns, resume_in_outage)
    final = (await chat_graph(reader).aget_state(config)).values["turns"]
    missing = [text for text in answered if text not in final]
    assert missing == (["during"] if resume_in_outage else [])
    await reader.memory.clear()
    for saver in (first, second, reader):
        await saver.aclose()


@pytest.mark.redis
async def test_a_thread_is_not_copied_from_the_in_process_copy_in_an_outage(
    redis_server_factory: Factory,
) -> None:
    """copy_thread reads the whole thread: during an outage the copy holds only what this
    process wrote, so it raises and copies nothing (review R16: it returned normally, and the
    target lacked the other worker's checkpoint)."""
    from tta_dev_primitives.exceptions import BackendUnavailableError

    server = redis_server_factory(appendonly=True)
    ns = namespace()
    first, second = worker(server, ns), worker(server, ns)
    config = {"configurable": {"thread_id": "t"}}
    await chat_graph(first).ainvoke({"turns": ["one"]}, config)
    state = await chat_graph(second).aget_state(config)
    await chat_graph(second).ainvoke({"turns": [*state.values["turns"], "two"]}, config)
    with server.stalled(), pytest.raises(BackendUnavailableError, match="nothing was copied"):
        await first.acopy_thread("t", "t2")
    await replayed(first.memory)
    await first.acopy_thread("t", "t2")  # Redis back: the whole thread
    copied = await chat_graph(first).aget_state({"configurable": {"thread_id": "t2"}})
    assert copied.values["turns"] == ["one", "reply 1", "two", "reply 3"]
    await first.memory.clear()
    for saver in (first, second):
        await saver.aclose()


def test_resume_in_outage_must_be_a_bool() -> None:
    with pytest.raises(InvalidArgumentTypeError, match="resume_in_outage"):
        MemoryCheckpointSaver.from_url(None, resume_in_outage="no")  # type: ignore[arg-type]


@pytest.mark.redis
async def test_a_prune_keeps_the_values_of_a_checkpoint_written_while_it_runs(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One saver prunes a thread (keep the latest) while another writes a newer checkpoint,
    after the prune listed the thread's checkpoints: the new checkpoint, whose ``aput``
    returned, keeps its channel values (the prune deleted every value the checkpoint it had
    listed did not name); older values of the kept channel are still pruned."""
    from langgraph.checkpoint.base import empty_checkpoint

    ns = namespace()
    writer = MemoryCheckpointSaver.from_url(redis_server.url, namespace=ns)
    pruner = MemoryCheckpointSaver.from_url(redis_server.url, namespace=ns)
    config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    version = None

    async def put(turn: str) -> Any:
        nonlocal version
        version = writer.get_next_version(version, None)
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": [turn]}
        checkpoint["channel_versions"] = {"messages": version}
        return await writer.aput(config, checkpoint, {}, {"messages": version})

    first = await put("first")
    second = await put("second")
    listed = pruner._headers
    written: list[Any] = []

    async def then_a_checkpoint_is_written(*args: Any) -> Any:
        found = await listed(*args)
        written.append(await put("written during the prune"))
        return found

    monkeypatch.setattr(pruner, "_headers", then_a_checkpoint_is_written)
    await pruner.aprune(["t"], strategy="keep_latest")
    latest = await writer.aget_tuple(written[0])
    assert latest is not None
    assert latest.checkpoint["channel_values"] == {"messages": ["written during the prune"]}
    assert await writer.aget_tuple(first) is None  # pruned, with its value
    kept = await writer.aget_tuple(second)  # the newest the prune listed, kept whole
    assert kept is not None
    assert kept.checkpoint["channel_values"] == {"messages": ["second"]}
    values = await writer.memory.list_memories("b:t", limit=10)
    assert len(values.items) == 2  # the first's value is gone
    await writer.adelete_thread("t")
    await writer.aclose()
    await pruner.aclose()
