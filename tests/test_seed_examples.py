"""The design document's examples, verbatim (the caller supplies `llm_generate`)."""

from __future__ import annotations

from typing import Any

import pytest

from tta_dev_primitives.exceptions import UnsentWritesError


async def llm_generate(user_input: str, context: list[dict[str, Any]]) -> str:
    """A deterministic stand-in LLM that says how much context it was given."""
    return f"Answer to {user_input!r} using {len(context)} memories"


async def test_zero_setup_example() -> None:
    """Zero-Setup Mode: add two turns, get one back, find both by keyword."""
    from tta_dev_primitives.performance import MemoryPrimitive

    # Works immediately - no Docker, no Redis, no setup!
    memory = MemoryPrimitive(max_size=100)

    # Add conversation turns
    await memory.add("user_turn_1", {
        "role": "user",
        "content": "What is a primitive?",
        "timestamp": "2025-12-03T10:00:00Z"
    })  # fmt: skip

    await memory.add("assistant_turn_1", {
        "role": "assistant",
        "content": "A primitive is a composable building block...",
        "timestamp": "2025-12-03T10:00:01Z"
    })  # fmt: skip

    # Retrieve by key
    result = await memory.get("user_turn_1")

    # Search by keyword
    results = await memory.search("primitive")

    assert result == {"role": "user", "content": "What is a primitive?",
                      "timestamp": "2025-12-03T10:00:00Z"}  # fmt: skip
    assert {r["role"] for r in results} == {"user", "assistant"}


async def test_conversational_agent_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    """Conversational Agent Pattern: each turn stores two memories and searches history.

    The document's keys use whole-second timestamps, so two turns in one second would share
    keys; the clock here advances a second per call to make the count deterministic.
    """
    import time

    from tta_dev_primitives.performance import MemoryPrimitive, create_memory_key

    ticks = iter(range(1_700_000_000, 1_800_000_000))
    monkeypatch.setattr(time, "time", lambda: float(next(ticks)))

    memory = MemoryPrimitive(max_size=1000)

    async def handle_conversation(
        user_id: str,
        session_id: str,
        user_input: str
    ) -> str:  # fmt: skip
        """Handle a conversation turn with memory."""
        timestamp = str(int(time.time()))

        # Store user message
        user_key = create_memory_key(user_id, session_id, {"turn": "user", "ts": timestamp})
        await memory.add(user_key, {
            "role": "user",
            "content": user_input,
            "timestamp": timestamp
        })  # fmt: skip

        # Search for relevant context
        history = await memory.search(user_input.split()[0], limit=5)

        # Generate response with context
        response = await llm_generate(user_input, context=history)

        # Store assistant response
        assistant_key = create_memory_key(
            user_id, session_id, {"turn": "assistant", "ts": timestamp}
        )
        await memory.add(assistant_key, {
            "role": "assistant",
            "content": response,
            "timestamp": timestamp
        })  # fmt: skip

        return response

    # Multi-turn conversation
    r1 = await handle_conversation("u1", "s1", "What is a primitive?")
    r2 = await handle_conversation("u1", "s1", "Give me an example")  # Has context!

    # The first search is for "What", a query of nothing but a stop word: it searches that
    # word, and finds the turn just stored that starts with it, capitalised; the second, for
    # "Give", finds the turn just stored.
    assert r1 == "Answer to 'What is a primitive?' using 1 memories"
    assert r2 == "Answer to 'Give me an example' using 1 memories"
    assert await memory.size() == 4


async def test_redis_enhancement_example_falls_back_when_redis_is_absent() -> None:
    """With Redis Enhancement: nothing listens on localhost:6379 here, so it runs in-process."""
    from redis_server import free_port
    from tta_dev_primitives.performance import MemoryPrimitive

    # Optional: Enable Redis for persistence and scaling
    # Falls back to in-memory if Redis unavailable
    memory = MemoryPrimitive(
        redis_url=f"redis://localhost:{free_port()}",  # the document says :6379
        enable_redis=True,
        max_size=10000  # Fallback capacity
    )  # fmt: skip

    # Same API - no code changes needed!
    await memory.add("key", {"data": "value"})
    result = await memory.get("key")

    # Check which backend is active
    if memory.using_redis:
        print("Using Redis backend")
    else:
        print("Using in-memory fallback")

    assert result == {"data": "value"}
    assert memory.using_redis is False
    assert memory.get_backend_info()["backend"] == "in-memory"
    with pytest.raises(UnsentWritesError):  # (not the seed's code) closing says what was lost
        await memory.aclose()


async def test_redis_enhancement_example_uses_redis_when_present(redis_server: Any) -> None:
    """With Redis Enhancement: pointed at a live Redis, the same code reports the Redis backend."""
    from tta_dev_primitives.performance import MemoryPrimitive

    memory = MemoryPrimitive(redis_url=redis_server.url, enable_redis=True, max_size=10000)
    await memory.add("key", {"data": "value"})
    result = await memory.get("key")
    assert result == {"data": "value"}
    assert memory.using_redis
    assert memory.get_backend_info()["backend"] == "redis"
    await memory.clear()
    await memory.aclose()


def test_inmemorystore_example() -> None:
    """InMemoryStore Class: direct synchronous usage, search and management."""
    from tta_dev_primitives.performance import InMemoryStore

    # Direct usage (if you don't need async API)
    store = InMemoryStore(max_size=500)

    store.add("key1", {"data": "value1"})
    store.add("key2", {"data": "value2"})

    result = store.get("key1")  # Returns {"data": "value1"}

    # Search
    results = store.search("value", limit=10)

    # Management
    print(store.size())  # 2
    print(store.keys())  # ["key1", "key2"]
    store.clear()  # Empty store

    assert result == {"data": "value1"}
    assert results == [{"data": "value2"}, {"data": "value1"}]  # prefix match; tie: newest first
    assert store.size() == 0


def test_inmemorystore_keys_are_oldest_written_first() -> None:
    """keys() lists oldest writes first, as the document prints, even after a get."""
    from tta_dev_primitives.performance import InMemoryStore

    store = InMemoryStore(max_size=500)
    store.add("key1", {"data": "value1"})
    store.add("key2", {"data": "value2"})
    store.get("key1")
    assert store.keys() == ["key1", "key2"]


def test_create_memory_key_example() -> None:
    """Helper Functions: plain and context-hashed keys, as documented."""
    import hashlib
    import json

    from tta_dev_primitives.performance import create_memory_key

    key = create_memory_key(
        user_id="user_123",
        session_id="session_abc",
        context={"task": "coding"}  # Optional
    )  # fmt: skip
    digest = hashlib.md5(json.dumps({"task": "coding"}, sort_keys=True).encode()).hexdigest()[:8]
    assert key == f"user_123:session_abc:{digest}"
    assert create_memory_key("user_123", "session_abc") == "user_123:session_abc"
