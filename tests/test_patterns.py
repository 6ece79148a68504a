"""Every documented conversation pattern keeps every turn: 20 turns in each of 3 threads.

Each pattern is loaded from where users read it (a README or docs code block run without its
``asyncio.run(main())`` line, a script in ``examples/``, the CLI demo) and driven with turns that
interleave three threads of one user. A pattern whose keys come from a count or from the text
(``{"n": len(reply)}``, ``f"t{len(messages)}"``, ``f"{session}:reply"``) overwrites earlier turns
and fails here. On Redis the memory class the snippets import is swapped for one bound to the test
server, so the snippets run as written.
"""

from __future__ import annotations

import re
import runpy
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import tta_dev_primitives
from redis_server import RedisServer
from tta_dev_primitives import MemoryPrimitive, WorkflowContext

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
RUN_MAIN = "\nasyncio.run(main())\n"
TURNS = 20
THREADS = ("monday", "wednesday", "friday")

Turn = Callable[[str, int, str], Awaitable[Any]]  # (thread, turn number, message)


def doc_block(relative: str, marker: str) -> dict[str, Any]:
    """Run the one python block of ``relative`` that contains ``marker``, without its main()."""
    path = ROOT / relative
    text = path.read_text()
    blocks = [m for m in BLOCK.finditer(text) if marker in m.group(1)]
    assert len(blocks) == 1, f"{relative}: {len(blocks)} python blocks contain {marker!r}"
    code = blocks[0].group(1)
    assert code.endswith(RUN_MAIN), f"{relative}: the block no longer ends with asyncio.run(main())"
    line = text[: blocks[0].start(1)].count("\n") + 1
    namespace: dict[str, Any] = {"__name__": "documented_pattern"}
    exec(compile(code[: -len(RUN_MAIN)], f"{relative}:{line}", "exec"), namespace)
    return namespace


def example(name: str) -> dict[str, Any]:
    """The globals of ``examples/name`` imported (its ``__main__`` block does not run)."""
    return runpy.run_path(str(ROOT / "examples" / name), run_name="documented_pattern")


def new_memory() -> MemoryPrimitive:
    """A memory of the class the docs import: on Redis, the test's bound one."""
    memory: MemoryPrimitive = tta_dev_primitives.MemoryPrimitive()
    return memory


def context(thread: str) -> WorkflowContext:
    return WorkflowContext(user_id="ada", session_id=thread)


@dataclass
class Pattern:
    """A documented pattern: how to set it up, and how many memories one turn stores."""

    name: str
    per_turn: int
    start: Callable[[], tuple[MemoryPrimitive, Turn]]


def readme() -> tuple[MemoryPrimitive, Turn]:
    ns = doc_block("README.md", "memory.remember(")
    return ns["memory"], lambda thread, n, message: ns["chat"].execute(message, context(thread))


def getting_started() -> tuple[MemoryPrimitive, Turn]:
    ns = doc_block("docs/getting-started.md", "memory.remember(")
    return ns["memory"], lambda thread, n, message: ns["chat"].execute(message, context(thread))


def wrap_llm_call() -> tuple[MemoryPrimitive, Turn]:
    ns = example("wrap_llm_call.py")
    return ns["memory"], lambda thread, n, message: ns["chat"].execute(message, context(thread))


def conversation_agent() -> tuple[MemoryPrimitive, Turn]:
    ns = example("conversation_agent.py")
    handle = ns["handle_conversation"]
    return ns["memory"], lambda thread, n, message: handle("ada", thread, message)


def langgraph_guide() -> tuple[MemoryPrimitive, Turn]:
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.memory import InMemorySaver

    from tta_dev_primitives.integrations.langgraph import MemoryPrimitiveStore

    ns = doc_block("docs/langgraph.md", "class Context(")
    memory = new_memory()
    graph = ns["builder"].compile(checkpointer=InMemorySaver(), store=MemoryPrimitiveStore(memory))

    def turn(thread: str, n: int, message: str) -> Awaitable[Any]:
        config = {"configurable": {"thread_id": thread}}
        said = {"messages": [HumanMessage(message)]}
        return graph.ainvoke(said, config, context=ns["Context"](user_id="ada"))

    return memory, turn


def comparison_lcel_inside() -> tuple[MemoryPrimitive, Turn]:
    ns = doc_block("docs/comparison.md", "from_runnable(prompt | model")
    memory = new_memory()
    workflow = ns["chat_workflow"](memory)
    return memory, lambda thread, n, message: workflow.execute(message, context(thread))


def comparison_message_history() -> tuple[MemoryPrimitive, Turn]:
    ns = doc_block("docs/comparison.md", "RunnableWithMessageHistory(")
    memory = new_memory()
    chat = ns["chat_with_history"](memory)

    def turn(thread: str, n: int, message: str) -> Awaitable[Any]:
        return chat.ainvoke({"question": message}, {"configurable": {"session_id": thread}})

    return memory, turn


def comparison_store() -> tuple[MemoryPrimitive, Turn]:
    from tta_dev_primitives.integrations.langgraph import MemoryPrimitiveStore

    ns = doc_block("docs/comparison.md", "runtime.store.aput(")
    memory = new_memory()
    graph = ns["builder"].compile(store=MemoryPrimitiveStore(memory))

    def turn(thread: str, n: int, message: str) -> Awaitable[Any]:
        state = {"user": "ada", "message": message, "reply": ""}
        return graph.ainvoke(state, {"configurable": {"thread_id": thread}})

    return memory, turn


def cli_demo() -> tuple[MemoryPrimitive, Turn]:
    from tta_dev_primitives.cli._demo import build

    memory = new_memory()
    workflow, _ = build(memory)

    def turn(thread: str, n: int, message: str) -> Awaitable[Any]:
        ctx = WorkflowContext(user_id="ada", session_id=thread, workflow_id="demo")
        return workflow.execute(message, ctx)

    return memory, turn


PATTERNS = [
    Pattern("README", 2, readme),
    Pattern("getting-started", 2, getting_started),
    Pattern("examples/wrap_llm_call", 2, wrap_llm_call),
    Pattern("examples/conversation_agent", 2, conversation_agent),
    Pattern("langgraph-guide", 2, langgraph_guide),
    Pattern("comparison-lcel-inside", 2, comparison_lcel_inside),
    Pattern("comparison-message-history", 2, comparison_message_history),
    Pattern("comparison-store", 1, comparison_store),
    Pattern("cli-demo", 2, cli_demo),
]


@pytest.fixture(params=["in-process", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """In-process as documented, or every ``MemoryPrimitive()`` the docs make bound to Redis."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        namespace = f"patterns:{uuid.uuid4().hex}"

        class OnRedis(MemoryPrimitive):
            def __init__(self, redis_url: str | None = None, *args: Any, **kwargs: Any) -> None:
                kwargs.setdefault("namespace", namespace)
                kwargs.setdefault("redis_timeout", 10.0)  # load alone never makes it fall back
                super().__init__(redis_url or server.url, *args, **kwargs)

        monkeypatch.setattr(tta_dev_primitives, "MemoryPrimitive", OnRedis)
    return str(request.param)


def message(thread: str, n: int) -> str:
    """A different message every turn; some repeat words, as real users do."""
    return f"Note {n} from {thread}: remember item {n % 4} for the {thread} trip"


@pytest.mark.parametrize("pattern", PATTERNS, ids=[p.name for p in PATTERNS])
async def test_pattern_keeps_every_turn(pattern: Pattern, backend: str) -> None:
    """20 turns in each of 3 interleaved threads leave 20 x 3 turns' memories, none overwritten."""
    memory, turn = pattern.start()
    try:
        for n in range(1, TURNS + 1):
            for thread in THREADS:
                await turn(thread, n, message(thread, n))
        stored = await memory.size()
        assert stored == TURNS * len(THREADS) * pattern.per_turn, (
            f"{pattern.name}: {stored} memories after {TURNS * len(THREADS)} turns"
        )
        if backend == "redis":
            assert memory.using_redis, memory.get_backend_info()["last_error"]
    finally:
        await memory.clear()
        await memory.aclose()
