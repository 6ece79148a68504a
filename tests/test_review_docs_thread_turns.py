"""langgraph.md, what to notice: two requests of one thread at once both start from its latest
checkpoint, and the thread keeps the run that ends last, without the other's turn (every
LangGraph checkpointer works this way, ours and InMemorySaver alike); the store keeps both
turns, and a lock per thread keeps both in the thread too."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from typing import Any

import pytest

pytest.importorskip("langgraph")

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.runtime import Runtime

from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.integrations.langgraph import MemoryPrimitiveStore
from tta_dev_primitives.integrations.langgraph_checkpoint import MemoryCheckpointSaver


async def respond(
    state: MessagesState, config: RunnableConfig, runtime: Runtime[dict[str, str]]
) -> dict[str, list[AIMessage]]:
    question = state["messages"][-1].content
    await asyncio.sleep(0.02)  # the model: long enough for the other request to start
    turns = ("chat", runtime.context["user_id"], config["configurable"]["thread_id"])
    await runtime.store.aput(turns, uuid.uuid4().hex, {"role": "user", "content": question})
    return {"messages": [AIMessage(f"noted: {question}")]}


def graph(memory: MemoryPrimitive) -> Any:
    builder = StateGraph(MessagesState, context_schema=dict)
    builder.add_node("respond", respond)
    builder.add_edge(START, "respond")
    saver = MemoryCheckpointSaver(MemoryPrimitive(max_size=100_000))
    return builder.compile(checkpointer=saver, store=MemoryPrimitiveStore(memory))


THREAD = {"configurable": {"thread_id": "t1"}}
ME = {"user_id": "u1"}


async def said(compiled: Any) -> list[str]:
    state = await compiled.aget_state(THREAD)
    return sorted(m.content for m in state.values["messages"] if isinstance(m, HumanMessage))


async def test_two_requests_of_one_thread_at_once_keep_one_turn_in_the_thread() -> None:
    memory = MemoryPrimitive()
    compiled = graph(memory)
    await asyncio.gather(
        *(compiled.ainvoke({"messages": [HumanMessage(q)]}, THREAD, context=ME)
          for q in ("first", "second"))
    )  # fmt: skip
    assert len(await said(compiled)) == 1  # the thread kept one of the two turns
    stored = await memory.search("", scope="chat:u1:t1", limit=10)
    assert sorted(m["value"]["content"] for m in stored) == ["first", "second"]  # store: both


async def test_a_lock_per_thread_keeps_every_turn() -> None:
    compiled = graph(MemoryPrimitive())
    locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def ask(question: str) -> None:
        async with locks[THREAD["configurable"]["thread_id"]]:
            await compiled.ainvoke({"messages": [HumanMessage(question)]}, THREAD, context=ME)

    await asyncio.gather(ask("first"), ask("second"))
    assert await said(compiled) == ["first", "second"]
