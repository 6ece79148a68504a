"""The demo: the README's first command, on the zero-setup default, on Redis, and on no Redis."""

from __future__ import annotations

import json
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


ROOT = Path(__file__).resolve().parent.parent
DEV_TOOLS = {"pytest", "hypothesis", "ruff", "mypy", "build", "hatchling", "mkdocs",
             "langchain_core", "langgraph", "usearch"}  # fmt: skip


def test_scripts_demo_installs_only_the_demo_extra() -> None:
    """scripts/demo installs the 'demo' extra, which is the OpenTelemetry SDK and nothing else."""
    import tomllib

    script = (ROOT / "scripts" / "demo").read_text()
    assert re.findall(r"^ensure_venv (\S+)$", script, re.MULTILINE) == ["demo"]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert extras["optional-dependencies"]["demo"] == ["opentelemetry-sdk>=1.24"]


def test_demo_imports_nothing_from_the_dev_toolchain() -> None:
    """A demo run imports the OpenTelemetry SDK (its span tree) and no dev tool or adapter."""
    code = (
        "import contextlib, io, json, sys\n"
        "from tta_dev_primitives.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    status = main(['demo'])\n"
        "print(json.dumps([status, sorted(sys.modules)]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    status, modules = json.loads(result.stdout)
    assert status == 0
    assert "opentelemetry.sdk.trace" in modules
    assert not {m.split(".")[0] for m in modules} & DEV_TOOLS
