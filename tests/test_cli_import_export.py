"""The CLI's file store and import/export: TTLs age, expired rows, all-or-nothing imports."""

from __future__ import annotations

import json
import time
from pathlib import Path
from uuid import uuid4

import pytest

from redis_server import RedisServer
from test_cli import cli, jsonl


def store_rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_file_store_ttls_count_down_between_runs(tmp_path: Path) -> None:
    """The file keeps a deadline, so a memory whose deadline passed is gone on the next run."""
    store = tmp_path / "memory.jsonl"
    rows = [{"key": "u:s:short", "value": {"v": 1}, "ttl": 600},
            {"key": "u:s:kept", "value": {"v": 2}, "ttl": None}]  # fmt: skip
    assert cli("memory", "--file", str(store), "import", "-", stdin=jsonl(rows)).returncode == 0
    saved = {row["key"]: row for row in store_rows(store)}
    deadline = saved["u:s:short"]["expires"]
    assert isinstance(deadline, float)
    assert deadline > time.time() + 500
    assert saved["u:s:kept"]["expires"] is None
    # Ten minutes pass: move the deadline back as the clock would have moved forward.
    store.write_text(
        "".join(json.dumps({**row, "expires": deadline - 601}) + "\n" if row["key"] == "u:s:short"
                else json.dumps(row) + "\n" for row in store_rows(store))
    )  # fmt: skip
    assert cli("memory", "--file", str(store), "get", "u:s:short").returncode == 1
    stats = json.loads(cli("memory", "--file", str(store), "--json", "stats").stdout)
    assert stats["count"] == 1


def test_old_file_stores_with_ttl_rows_still_work(tmp_path: Path) -> None:
    """Rows of the old format (seconds left), even 'ttl 0.0' ones, never break a command."""
    store = tmp_path / "memory.jsonl"
    store.write_text(jsonl([{"key": "u:s:a", "value": {"v": 1}, "ttl": 30.0},
                            {"key": "u:s:gone", "value": {"v": 2}, "ttl": 0.0}]))  # fmt: skip
    for action in (["stats"], ["export"], ["get", "u:s:a"]):
        result = cli("memory", "--file", str(store), *action)
        assert result.returncode == 0, result.stderr
    assert cli("memory", "--file", str(store), "get", "u:s:gone").returncode == 1
    assert cli("memory", "--file", str(store), "clear", "--yes").returncode == 0
    assert store_rows(store) == []


def test_expired_rows_are_skipped_and_counted_never_written_as_zero(tmp_path: Path) -> None:
    """Import skips rows with ttl <= 0 and says how many; export never writes 'ttl 0.0'."""
    store = str(tmp_path / "memory.jsonl")
    rows = [{"key": "u:s:a", "value": {"v": 1}, "ttl": 0.0},
            {"key": "u:s:b", "value": {"v": 2}, "ttl": -3},
            {"key": "u:s:c", "value": {"v": 3}, "ttl": 0.0004}]  # fmt: skip
    result = cli("memory", "--file", store, "--json", "import", "-", stdin=jsonl(rows))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["expired_skipped"] == 2
    assert "skipped 2 expired" in result.stderr
    exported = cli("memory", "--file", store, "export").stdout
    for line in exported.splitlines():
        ttl = json.loads(line)["ttl"]
        assert ttl is None or ttl > 0


def test_a_bad_line_imports_nothing_and_names_its_number(tmp_path: Path) -> None:
    """Import checks every line first: a bad third line stores nothing, and says 'line 3'."""
    store = tmp_path / "memory.jsonl"
    good = jsonl([{"key": "u:s:a", "value": {"v": 1}}, {"key": "u:s:b", "value": {"v": 2}}])
    for bad in ['{"key": "u:s:c", "value": {"v": 3}, "ttl": "soon"}\n', "not json\n",
                '{"key": "", "value": {}}\n', '{"key": "u:s:c", "value": [1]}\n']:  # fmt: skip
        result = cli("memory", "--file", str(store), "import", "-", stdin=good + bad)
        assert result.returncode == 1
        assert result.stderr.startswith("tta-primitives memory: line 3: ")
        assert "nothing was imported" in result.stderr
        assert not store.exists()


@pytest.mark.redis
def test_a_bad_line_imports_nothing_into_redis(redis_server: RedisServer) -> None:
    """On Redis too, a bad line anywhere in the input stores none of the lines before it."""
    where = ["--redis-url", redis_server.url, "--namespace", f"imp{uuid4().hex[:8]}"]
    lines = jsonl([{"key": "u:s:a", "value": {"v": 1}}]) + '{"key": 5, "value": {}}\n'
    result = cli("memory", *where, "import", "-", stdin=lines)
    assert result.returncode == 1
    assert "line 2" in result.stderr
    assert json.loads(cli("memory", *where, "--json", "stats").stdout)["count"] == 0


def test_repeated_keys_count_once_and_the_last_line_wins(tmp_path: Path) -> None:
    """Three lines for two keys import two memories; the note says the last line wins."""
    store = str(tmp_path / "memory.jsonl")
    rows = [{"key": "u:s:a", "value": {"v": 1}}, {"key": "u:s:b", "value": {"v": 2}},
            {"key": "u:s:a", "value": {"v": 3}}]  # fmt: skip
    result = cli("memory", "--file", store, "--json", "import", "-", stdin=jsonl(rows))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["imported"] == 2
    assert "imported 2 memories" in result.stderr
    assert "last line of each key wins" in result.stderr
    assert json.loads(cli("memory", "--file", store, "--json", "get", "u:s:a").stdout) == {"v": 3}
    assert json.loads(cli("memory", "--file", store, "--json", "stats").stdout)["count"] == 2


def test_a_400_digit_ttl_is_a_one_line_error(tmp_path: Path) -> None:
    """An absurd ttl is a one-line error with status 1, not a traceback."""
    store = str(tmp_path / "memory.jsonl")
    line = '{"key": "u:s:a", "value": {"v": 1}, "ttl": ' + "9" * 400 + "}\n"
    result = cli("memory", "--file", store, "import", "-", stdin=line)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "line 1: ttl must be a positive number" in result.stderr
