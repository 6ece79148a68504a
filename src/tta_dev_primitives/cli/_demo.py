"""``tta-primitives demo``: a memory-wrapped LLM workflow, end to end, with its span tree.

A deterministic stand-in LLM answers; ``memory.recall(...) >> router >> memory.remember(...)``
gives it the user's earlier turns, a ``RouterPrimitive`` picks how to answer, and a
``CachePrimitive`` answers a repeated question without calling the LLM again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from tta_dev_primitives import (
    CachePrimitive,
    MemoryPrimitive,
    RouterPrimitive,
    WorkflowContext,
    turn_key,
)
from tta_dev_primitives.exceptions import UnsentWritesError

TURNS = [
    "What is a primitive?",
    "Remember that my favourite backend is Redis.",
    "How do primitives compose?",
    "What is a primitive?",
    "Which backend do I like?",
]


def add_parser(sub: Any) -> None:
    from tta_dev_primitives.cli import EXIT_STATUSES, HelpFormatter

    parser = sub.add_parser(
        "demo",
        help="run a short memory-wrapped LLM conversation",
        description="A deterministic five-turn conversation through recall >> router >>\n"
        "remember, with the span tree of the last turn. No API keys, no setup.",
        epilog=EXIT_STATUSES,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--redis-url",
        help="use Redis (e.g. redis://localhost:6379); falls back in-process if unreachable "
        "(default: none, in-process)",
    )
    parser.add_argument(
        "--user", default="demo-user", help="user id for memory keys (default: %(default)s)"
    )
    parser.set_defaults(run=run, _parser=parser)


async def stand_in_llm(prompt: str, ctx: WorkflowContext) -> str:
    """A deterministic 'LLM': answers from what memory recalled for this user."""
    memories: list[dict[str, Any]] = ctx.state.get("memories", [])
    said = [m["content"] for m in memories if m.get("role") == "user"]
    if "backend" in prompt.lower() and said:
        liked = next((s for s in said if "backend" in s.lower()), None)
        if liked:
            return f"You told me: {liked!r}"
    if "compose" in prompt.lower():
        return "With >> they run in sequence, with | in parallel; spans nest the same way."
    if "primitive" in prompt.lower():
        return "A primitive is a composable async step: execute(input, context) -> output."
    return f"I have {len(memories)} related memories, but no answer for that yet."


async def note(prompt: str, ctx: WorkflowContext) -> str:
    return "Noted. I'll remember that."


def route(prompt: str, ctx: WorkflowContext) -> str:
    return "note" if prompt.lower().startswith("remember") else "answer"


def build(memory: MemoryPrimitive) -> tuple[Any, CachePrimitive[str, str]]:
    """The workflow: recall this session's memories, route, answer (cached), remember."""
    llm = CachePrimitive(stand_in_llm, lambda prompt, ctx: prompt.strip().lower())
    router = RouterPrimitive({"answer": llm, "note": note}, route, default="answer")

    def scope(prompt: str, ctx: WorkflowContext) -> str:
        return f"{ctx.user_id}:{ctx.session_id}"

    def key(reply: str, ctx: WorkflowContext) -> str:
        """A new key for every turn: never derived from a count or the text, which repeat."""
        assert ctx.user_id is not None
        assert ctx.session_id is not None
        return turn_key(ctx.user_id, ctx.session_id)

    async def remember_user_turn(prompt: str, ctx: WorkflowContext) -> str:
        await memory.add(key(prompt, ctx), {"role": "user", "content": prompt})
        return prompt

    workflow: Any = (
        memory.recall(lambda prompt, ctx: prompt, scope=scope, limit=3)
        >> remember_user_turn
        >> router
        >> memory.remember(key, lambda reply, ctx: {"role": "assistant", "content": reply})
    )
    return workflow, llm


async def converse(redis_url: str | None, user: str) -> int:
    from tta_dev_primitives.cli._render import Tracing

    tracing = Tracing.start()
    memory = MemoryPrimitive(redis_url=redis_url, redis_timeout=0.5, namespace="tta:demo")
    workflow, llm = build(memory)
    where = "Redis at " + memory.get_backend_info()["url"] if redis_url else "in-process"
    print(f"tta-dev-primitives demo: memory {where}, no API keys, deterministic stand-in LLM")
    print(f"workflow: {workflow!r}\n", flush=True)
    await memory.clear()  # the demo's own namespace only
    for turn, prompt in enumerate(TURNS, 1):
        ctx = WorkflowContext(user_id=user, session_id="session-1", workflow_id="demo")
        tracing.reset()
        hits_before = llm.hits
        reply = await workflow.execute(prompt, ctx)
        recalled = ctx.state.get("memories", [])
        backend = tracing.backends()
        cache = "hit" if llm.hits > hits_before else ("miss" if route(prompt, ctx) == "answer"
                                                      else "-")  # fmt: skip
        print(f"turn {turn}  user      > {prompt}")
        print(f"        recalled  : {len(recalled)} memories"
              + "".join(f"\n          {i}. {_short(m['content'])}"
                        for i, m in enumerate(recalled, 1)))  # fmt: skip
        print(f"        route     : {route(prompt, ctx)}   cache: {cache}   memory: {backend}")
        print(f"        assistant > {reply}\n")
    info = memory.get_backend_info()
    print(f"memories stored: {await memory.size()}   backend now: {info['backend']}"
          f"   cache hits/misses: {llm.hits}/{llm.misses}")  # fmt: skip
    print("\nspan tree of the last turn:")
    print(tracing.tree())
    await memory.clear()
    try:
        await memory.aclose()
    except UnsentWritesError as lost:  # Redis never came back: say what that cost
        print(f"\nclosed during the outage: {lost.unsent} journalled writes were never sent "
              "(journal_path= keeps them for the next run)")  # fmt: skip
    return 0


def _short(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(converse(args.redis_url, args.user))
    except ValueError as exc:  # a malformed --redis-url: one line, never a traceback
        print(f"tta-primitives demo: {exc}", file=sys.stderr)
        return 2
