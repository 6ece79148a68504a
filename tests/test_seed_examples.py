"""The design document's examples, verbatim (the caller supplies `llm_generate`)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
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


# -- the same examples, read from the document itself ------------------------------------------
# tests/seed/MemoryPrimitive.md is a copy of the design document. Each of its blocks that imports
# the package runs unchanged in a fresh interpreter, with top-level await allowed (as in an
# async REPL) and ``llm_generate`` supplied; the one substitution is the Redis URL, pointed at a
# test server (or at a closed port) instead of localhost:6379.

SEED = Path(__file__).resolve().parent / "seed" / "MemoryPrimitive.md"
SEED_URL = "redis://localhost:6379"

RUNNER = """
import ast, asyncio, json, sys

async def llm_generate(user_input, context):
    return f"Answer to {user_input!r} using {len(context)} memories"

code = compile(sys.stdin.read(), "<seed>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
scope = {"__name__": "__main__", "llm_generate": llm_generate}

async def main():
    done = eval(code, scope)
    if done is not None:
        await done
    names = ("result", "results", "r1", "r2", "key", "kept")
    print(json.dumps({n: scope[n] for n in names if n in scope}, sort_keys=True))

asyncio.run(main())
"""


def seed_examples() -> list[str]:
    """The document's Python blocks that use the package (not its signature listings)."""
    blocks = re.findall(r"^```python\n(.*?)^```", SEED.read_text(), re.DOTALL | re.MULTILINE)
    return [block for block in blocks if "from tta_dev_primitives" in block]


def run_seed(block: str) -> tuple[dict[str, Any], list[str]]:
    """Run one block as written; what it bound, and the lines it printed before that."""
    result = subprocess.run(
        [sys.executable, "-c", RUNNER], input=block, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    *printed, bound = result.stdout.splitlines()
    return json.loads(bound), printed


def seed_block(marker: str) -> str:
    (block,) = [b for b in seed_examples() if marker in b]
    return block


def test_seed_document_has_the_five_examples() -> None:
    """Helper, zero-setup, conversation, Redis and InMemoryStore: each is run below."""
    assert len(seed_examples()) == 5


def test_seed_copy_is_the_design_document() -> None:
    """The copy has not drifted from the design document, where a checkout sits beside it."""
    original = SEED.parents[2].parent / "shared" / "seed" / "MemoryPrimitive.md"
    if not original.exists():
        pytest.skip("the design document is not beside this checkout (a clean clone in CI)")
    assert SEED.read_bytes() == original.read_bytes()


def test_seed_helper_block_as_written() -> None:
    bound, _ = run_seed(seed_block('user_id="user_123"'))
    digest = hashlib.md5(json.dumps({"task": "coding"}, sort_keys=True).encode()).hexdigest()
    assert bound["key"] == f"user_123:session_abc:{digest[:8]}"


def test_seed_zero_setup_block_as_written() -> None:
    bound, _ = run_seed(seed_block("MemoryPrimitive(max_size=100)"))
    assert bound["result"]["content"] == "What is a primitive?"
    assert {r["role"] for r in bound["results"]} == {"user", "assistant"}


def test_seed_conversation_block_as_written() -> None:
    """Whether or not both turns fall in one second, each search finds the turn just stored."""
    bound, _ = run_seed(seed_block("def handle_conversation("))
    assert bound["r1"] == "Answer to 'What is a primitive?' using 1 memories"
    assert bound["r2"] == "Answer to 'Give me an example' using 1 memories"


def test_seed_redis_block_falls_back_as_written() -> None:
    from redis_server import free_port

    block = seed_block("redis_url=")
    assert SEED_URL in block
    bound, printed = run_seed(block.replace(SEED_URL, f"redis://localhost:{free_port()}"))
    assert bound["result"] == {"data": "value"}
    assert printed == ["Using in-memory fallback"]


@pytest.mark.redis
def test_seed_redis_block_uses_redis_as_written(redis_server: Any) -> None:
    block = seed_block("redis_url=")
    bound, printed = run_seed(block.replace(SEED_URL, redis_server.url))
    assert bound["result"] == {"data": "value"}
    assert printed == ["Using Redis backend"]


def test_seed_inmemorystore_block_as_written() -> None:
    """It prints what its comments say: 2, then the two keys oldest first."""
    bound, printed = run_seed(seed_block("InMemoryStore(max_size=500)"))
    assert bound["result"] == {"data": "value1"}
    assert printed == ["2", "['key1', 'key2']"]


def test_seed_conversation_block_loses_a_turn_within_one_second() -> None:
    """migration.md warns that the original's conversation example keys each turn by the
    whole second: run as written, with both turns in one second (a clock that stands still,
    as two requests of one session at once see it), the second turn's memories replace the
    first's, 2 of 4 kept."""
    block = seed_block("def handle_conversation(")
    frozen = "import time\ntime.time = lambda: 1_700_000_000.5\n"
    bound, _ = run_seed(frozen + block + "\nkept = await memory.size()\n")
    assert bound["kept"] == 2
