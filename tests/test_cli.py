"""The command line: the operator's memory commands, on a JSONL file and on a real Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from redis_server import RedisServer, free_port


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tta_dev_primitives", *args],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


ROWS = [
    {"key": "u1:s1:a", "value": {"role": "user", "content": "What is a primitive?"}, "ttl": None},
    {"key": "u1:s1:b", "value": {"role": "assistant", "content": "A composable step"}, "ttl": 600},
    {"key": "u10:s1:c", "value": {"role": "user", "content": "another primitive"}, "ttl": None},
]


def jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_file_store_import_search_get_delete_export(tmp_path: Path) -> None:
    """On a JSONL file: import, stats, scoped search, get, delete and export agree."""
    store = str(tmp_path / "memory.jsonl")
    assert cli("memory", "--file", store, "import", "-", stdin=jsonl(ROWS)).returncode == 0
    stats = json.loads(cli("memory", "--file", store, "--json", "stats").stdout)
    assert stats["count"] == 3
    found = json.loads(cli("memory", "--file", store, "--json", "search", "primitive",
                           "--scope", "u1").stdout)  # fmt: skip
    assert found == [
        {"key": "u1:s1:a", "value": {"role": "user", "content": "What is a primitive?"}}
    ]
    text = cli("memory", "--file", store, "search", "primitive").stdout.splitlines()
    # BM25: "What is a primitive?" is one term long once stop words go, so it ranks first.
    assert [line.split()[0] for line in text] == ["u1:s1:a", "u10:s1:c"]
    got = json.loads(cli("memory", "--file", store, "--json", "get", "u1:s1:b").stdout)
    assert got == {"role": "assistant", "content": "A composable step"}
    assert json.loads(cli("memory", "--file", store, "--json", "delete", "u1:s1:b").stdout) == {
        "deleted": True
    }
    out = cli("memory", "--file", store, "export").stdout
    exported = [json.loads(line) for line in out.splitlines()]
    assert [r["key"] for r in exported] == ["u1:s1:a", "u10:s1:c"]


def test_errors_are_one_line_with_a_status(tmp_path: Path) -> None:
    """Missing keys, no store, bad input and an unconfirmed clear: one line, non-zero status."""
    store = str(tmp_path / "m.jsonl")
    cases = [
        (cli("memory", "--file", store, "get", "absent"), 1, "no memory under 'absent'"),
        (cli("memory", "stats"), 2, "--redis-url URL or --file PATH"),
        (cli("memory", "--file", store, "clear", stdin=""), 2, "add --yes"),
        (cli("memory", "--file", store, "import", "-", stdin="not json\n"), 1, "line 1"),
        (cli("memory", "--redis-url", "nope://x", "stats"), 1, "scheme must be one of"),
    ]
    for result, status, message in cases:
        assert result.returncode == status, result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.redis
def test_redis_export_then_import_into_another_namespace(redis_server: RedisServer) -> None:
    """Export from one Redis namespace and import into another: same memories, TTLs kept."""
    source, target = f"cli:{uuid4().hex[:8]}", f"cli:{uuid4().hex[:8]}"
    url = redis_server.url
    assert cli("memory", "--redis-url", url, "--namespace", source, "import", "-",
               stdin=jsonl(ROWS)).returncode == 0  # fmt: skip
    exported = cli("memory", "--redis-url", url, "--namespace", source, "export").stdout
    rows = sorted((json.loads(line) for line in exported.splitlines()), key=lambda r: r["key"])
    assert [r["key"] for r in rows] == ["u10:s1:c", "u1:s1:a", "u1:s1:b"]
    assert rows[0]["ttl"] is None
    assert 590 < rows[2]["ttl"] <= 600
    assert cli("memory", "--redis-url", url, "--namespace", target, "import", "-",
               stdin=exported).returncode == 0  # fmt: skip
    stats = json.loads(cli("memory", "--redis-url", url, "--namespace", target, "--json",
                           "stats").stdout)  # fmt: skip
    assert stats["count"] == 3
    assert stats["backend"] == "redis"
    for ns in (source, target):
        done = cli("memory", "--redis-url", url, "--namespace", ns, "clear", "--yes")
        assert done.returncode == 0


@pytest.mark.redis
def test_wrong_password_and_unreachable_server_are_one_line(
    redis_server_factory: Any,
) -> None:
    """A refused password or a dead server: one line, non-zero, and never the password."""
    server: RedisServer = redis_server_factory(password="right-one")
    for url in (f"redis://:wrong-one@127.0.0.1:{server.port}/0",
                f"redis://:wrong-one@127.0.0.1:{free_port()}/0"):  # fmt: skip
        for action in (["stats"], ["get", "k"], ["export"]):
            result = cli("memory", "--redis-url", url, *action)
            assert result.returncode == 1, (url, action, result.stdout)
            assert "unavailable" in result.stderr
            assert "wrong-one" not in result.stderr + result.stdout
            assert "Traceback" not in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
