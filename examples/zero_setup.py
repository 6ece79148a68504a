"""Zero setup: memory in this process, no Redis, no configuration."""

import asyncio

from tta_dev_primitives import MemoryPrimitive, turn_key


async def main() -> None:
    memory = MemoryPrimitive(max_size=100)
    question = turn_key("u1", "s1")  # a new key for every turn: none replaces another
    await memory.add(question, {"role": "user", "content": "What is a primitive?"})
    await memory.add(
        turn_key("u1", "s1"),
        {"role": "assistant", "content": "A primitive is a composable building block."},
    )
    print("get:", await memory.get(question))
    for hit in await memory.search("primitive"):
        print("search hit:", hit["role"], "-", hit["content"])
    print("backend:", memory.get_backend_info()["backend"])


if __name__ == "__main__":
    asyncio.run(main())
