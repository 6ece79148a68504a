"""Route on what memory knows: answer from memory when it has something, else ask the model."""

import asyncio

from tta_dev_primitives import MemoryPrimitive, RouterPrimitive, WorkflowContext

memory = MemoryPrimitive()


async def from_memory(question: str, ctx: WorkflowContext) -> str:
    return f"From memory: {ctx.state['facts'][0]['content']}"


async def ask_model(question: str, ctx: WorkflowContext) -> str:
    return f"(model) I don't know yet: {question}"


def choose(question: str, ctx: WorkflowContext) -> str:
    return "memory" if ctx.state["facts"] else "model"


# Only the facts ("fact:..." keys): memories of users kept in the same memory stay out.
answer = memory.recall(lambda q, ctx: q, scope="fact", into="facts", limit=1) >> RouterPrimitive(
    {"memory": from_memory, "model": ask_model}, choose
)


async def main() -> None:
    await memory.add("fact:redis", {"content": "Redis keeps the shared memory for all workers"})
    print(await answer.execute("where is shared memory kept? redis", WorkflowContext()))
    print(await answer.execute("Peru capital city?", WorkflowContext()))


if __name__ == "__main__":
    asyncio.run(main())
