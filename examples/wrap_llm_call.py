"""Wrap an LLM call with recall and store: memory.recall(...) >> llm >> memory.remember(...)."""

import asyncio

from tta_dev_primitives import MemoryPrimitive, WorkflowContext, turn_key

memory = MemoryPrimitive()


async def llm(prompt: str, ctx: WorkflowContext) -> str:
    """Your model call goes here; recalled memories are in ctx.state["memories"]."""
    # Quote only the start of each recalled answer: quoting them whole would nest every
    # earlier answer inside the next one, and a memory's value is capped at 8 MiB.
    recalled = [m["content"][:40] for m in ctx.state["memories"]]
    return f"Answer to {prompt!r}, remembering {recalled}"


def session(prompt: str, ctx: WorkflowContext) -> str:
    return f"{ctx.user_id}:{ctx.session_id}"


def next_key(text: str, ctx: WorkflowContext) -> str:
    assert ctx.user_id is not None
    assert ctx.session_id is not None
    return turn_key(ctx.user_id, ctx.session_id)  # a new key for every turn


chat = (
    memory.recall(lambda prompt, ctx: prompt, scope=session, limit=3)
    >> memory.remember(next_key, lambda prompt, ctx: {"role": "user", "content": prompt})
    >> llm
    >> memory.remember(next_key, lambda reply, ctx: {"role": "assistant", "content": reply})
)


async def main() -> None:
    for prompt in ["tell me about primitives", "more about primitives please"]:
        ctx = WorkflowContext(user_id="ada", session_id="s1")  # one context per turn
        print(await chat.execute(prompt, ctx))
    await memory.aclose()


if __name__ == "__main__":
    asyncio.run(main())
