"""Zero setup: memory in this process, no Redis, no configuration."""

import asyncio

from tta_dev_primitives import MemoryPrimitive


async def main() -> None:
    memory = MemoryPrimitive(max_size=100)
    await memory.add("user_turn_1", {"role": "user", "content": "What is a primitive?"})
    await memory.add(
        "assistant_turn_1",
        {"role": "assistant", "content": "A primitive is a composable building block."},
    )
    print("get:", await memory.get("user_turn_1"))
    for hit in await memory.search("primitive"):
        print("search hit:", hit["role"], "-", hit["content"])
    print("backend:", memory.get_backend_info()["backend"])


if __name__ == "__main__":
    asyncio.run(main())
