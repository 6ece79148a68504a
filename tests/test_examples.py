"""Every script in examples/ runs to completion on the zero-setup default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from redis_server import free_port

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.py"))

# What each example must print: proof it did its job, not merely that it exited.
EXPECTED = {
    "zero_setup.py": "backend: in-memory",
    "conversation_agent.py": "'Give me a primitive example' with 3 remembered turns",
    "wrap_llm_call.py": "remembering ['tell me about primitives', \"Answer to 'tell me",
    "routing_on_memory.py": "(model) I don't know yet: Peru capital city?",
    "caching_llm_responses.py": "model calls: 2, cache hits: 2, misses: 2",
    "redis_with_fallback.py": "backend: in-memory",
    "tracing.py": "memory.search",
}


def test_every_example_has_an_expectation() -> None:
    """A new example must say what it should print."""
    assert {p.name for p in EXAMPLES} == set(EXPECTED)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path: Path) -> None:
    """The example exits 0 and prints what shows it worked."""
    env = dict(os.environ)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: the fallback
    result = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert EXPECTED[path.name] in result.stdout, result.stdout
