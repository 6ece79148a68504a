"""A conversational agent: store each turn, search the session's history, answer."""

import asyncio
import time

from tta_dev_primitives import MemoryPrimitive, turn_key

# One memory for every user of this process. In-process it keeps the most recent max_size
# memories of all of them and drops older ones (counted, with a warning): size it for
# your users, or give it a Redis URL (MemoryPrimitive("redis://...")), where every turn
# is kept.
memory = MemoryPrimitive(max_size=100_000)


async def llm_generate(user_input: str, context: list[dict[str, str]]) -> str:
    """A stand-in for your LLM call: it just says what it was given."""
    return f"(answered {user_input!r} with {len(context)} remembered turns)"


async def handle_conversation(user_id: str, session_id: str, user_input: str) -> str:
    timestamp = str(time.time_ns())
    # turn_key gives every turn its own key, even when two turns say the same thing.
    user_key = turn_key(user_id, session_id)
    await memory.add(user_key, {"role": "user", "content": user_input, "timestamp": timestamp})

    # Only this user's session: scopes match whole key segments, so "u1" never sees "u10".
    history = await memory.search(user_input, limit=5, scope=f"{user_id}:{session_id}")
    response = await llm_generate(user_input, context=history)

    assistant_key = turn_key(user_id, session_id)
    await memory.add(
        assistant_key, {"role": "assistant", "content": response, "timestamp": timestamp}
    )
    return response


async def main() -> None:
    print(await handle_conversation("u1", "s1", "What is a primitive?"))
    print(await handle_conversation("u1", "s1", "Give me a primitive example"))
    print(await handle_conversation("u10", "s1", "What is a primitive?"))  # sees none of u1's


if __name__ == "__main__":
    asyncio.run(main())
