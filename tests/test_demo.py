"""The demo: the README's first command, on the zero-setup default, on Redis, and on no Redis."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from redis_server import RedisServer, free_port


def demo(*args: str, module: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the demo as a user would, with no standard input."""
    if module:
        command = [sys.executable, "-m", "tta_dev_primitives", "demo", *args]
    else:  # the console script installed next to this interpreter
        script = shutil.which("tta-primitives", path=str(Path(sys.executable).parent))
        assert script, "the tta-primitives console script is not installed"
        command = [script, "demo", *args]
    return subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def turns(output: str) -> list[str]:
    return re.findall(r"^turn \d+ +user +> (.*)$", output, re.MULTILINE)


def test_zero_setup_demo_shows_conversation_backend_cache_and_span_tree() -> None:
    """No arguments: five turns in-process, a cache hit on the repeated question, a span tree."""
    result = demo(module=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert len(turns(out)) == 5
    assert out.count("memory: in_memory") == 5
    assert "cache: hit" in out
    assert "cache: miss" in out
    assert "route     : note" in out
    # The last turn's answer comes from what was recalled: memory did its job.
    assert "You told me: 'Remember that my favourite backend is Redis.'" in out
    tree = out.split("span tree of the last turn:")[1]
    for span in ("SequentialPrimitive", "memory.recall", "memory.search", "RouterPrimitive",
                 "CachePrimitive", "stand_in_llm", "memory.remember", "memory.add"):  # fmt: skip
        assert span in tree, span
    assert "memory.backend='in_memory'" in tree
    assert "Traceback" not in result.stderr


def test_demo_without_redis_shows_the_fallback_not_a_traceback() -> None:
    """Pointed at a port nothing listens on: same conversation, served in-process, said so."""
    result = demo("--redis-url", f"redis://:secret-pw@127.0.0.1:{free_port()}/0")
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert len(turns(result.stdout)) == 5
    assert "unavailable" in out
    assert "memory: in_memory (fallback)" in result.stdout
    assert "Traceback" not in out
    assert "secret-pw" not in out


@pytest.mark.redis
def test_demo_on_redis_is_served_by_redis(redis_server_factory: Any) -> None:
    """A live Redis serves every turn, and the banner never shows the password."""
    server: RedisServer = redis_server_factory(password="demo-pw")
    result = demo("--redis-url", server.url)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert len(turns(out)) == 5
    assert out.count("memory: redis") == 5
    assert "memory.backend='redis'" in out
    assert "demo-pw" not in out + result.stderr
    assert "Traceback" not in result.stderr
