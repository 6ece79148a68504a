"""CLI export and import never cost data: a failed export keeps the old backup; errors: one line."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from uuid import uuid4

import pytest
import redis

from redis_server import RedisServer
from test_cli import cli, jsonl


def leftovers(directory: Path, name: str) -> list[str]:
    """Temporary files an export left beside ``name``."""
    return [p.name for p in directory.iterdir() if p.name != name]


@pytest.mark.redis
def test_an_export_that_fails_part_way_leaves_the_old_backup_intact(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A value that cannot be written fails the export; the previous backup is byte-identical."""
    where = ["--redis-url", redis_server.url, "--namespace", f"exp{uuid4().hex[:8]}"]
    rows = [{"key": f"u:s:{i:03}", "value": {"content": f"memory {i}"}} for i in range(200)]
    rows.insert(100, {"key": "u:s:bad", "value": {"content": "placeholder"}})
    assert cli("memory", *where, "import", "-", stdin=jsonl(rows)).returncode == 0
    backup = tmp_path / "backup.jsonl"
    assert cli("memory", *where, "export", str(backup)).returncode == 0
    before = backup.read_bytes()
    assert len(before.splitlines()) == 201
    # Another program writes a value UTF-8 cannot encode (a lone surrogate, escaped in JSON).
    client = redis.Redis.from_url(redis_server.url)
    (name,) = [n for n in client.scan_iter(match="*v:u:s:bad") if n.endswith(b"v:u:s:bad")]
    client.set(name, '{"content": "\\ud800"}')
    client.close()
    result = cli("memory", *where, "export", str(backup))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert backup.read_bytes() == before
    assert leftovers(tmp_path, "backup.jsonl") == []


def test_an_export_replaces_the_backup_whole_and_keeps_its_permissions(tmp_path: Path) -> None:
    """A successful export swaps in the complete file, with the old file's mode."""
    store = tmp_path / "store.jsonl"
    rows = [{"key": f"u:s:{i}", "value": {"content": str(i)}} for i in range(3)]
    assert cli("memory", "--file", str(store), "import", "-", stdin=jsonl(rows)).returncode == 0
    backup = tmp_path / "backup.jsonl"
    backup.write_text("an older backup\n")
    backup.chmod(0o600)
    assert cli("memory", "--file", str(store), "export", str(backup)).returncode == 0
    assert [json.loads(line)["key"] for line in backup.read_text().splitlines()] == [
        "u:s:0", "u:s:1", "u:s:2"
    ]  # fmt: skip
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert sorted(leftovers(tmp_path, "backup.jsonl")) == ["store.jsonl"]


NESTED = "[" * 100_000


@pytest.mark.parametrize(
    "line",
    [NESTED, '{"key": "k", "value": {"v": ' + NESTED + "}"],
    ids=["nested line", "nested value"],
)
def test_a_deeply_nested_import_line_is_one_line_of_error(tmp_path: Path, line: str) -> None:
    """JSON nested past the recursion limit is a one-line error naming the line, no traceback."""
    store = tmp_path / "store.jsonl"
    good = jsonl([{"key": "u:s:a", "value": {"v": 1}}])
    result = cli("memory", "--file", str(store), "import", "-", stdin=good + line + "\n")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr[:500]
    assert "line 2" in result.stderr
    assert "nested too deeply" in result.stderr
    assert not store.exists()


def test_a_deeply_nested_store_row_is_one_line_of_error(tmp_path: Path) -> None:
    """A --file store holding a too-deep row fails every action in one line, naming the row."""
    store = tmp_path / "store.jsonl"
    store.write_text(jsonl([{"key": "u:s:a", "value": {"v": 1}, "expires": None}]) + NESTED + "\n")
    result = cli("memory", "--file", str(store), "stats")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr[:500]
    assert "line 2" in result.stderr


def test_an_import_into_a_file_store_streams_the_store_through(tmp_path: Path) -> None:
    """Rows the import leaves alone are copied line for line; replaced keys take the new row."""
    store = tmp_path / "store.jsonl"
    old = [{"key": f"u:s:{i}", "value": {"content": f"old {i}"},
            "expires": None if i % 2 else 4_102_444_800.125} for i in range(1000)]  # fmt: skip
    store.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in old))
    new = [{"key": "u:s:5", "value": {"content": "new 5"}}, {"key": "u:t:x", "value": {"v": 1}}]
    result = cli("memory", "--file", str(store), "--json", "import", "-", stdin=jsonl(new))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["imported"] == 2
    lines = store.read_text().splitlines()
    kept = [json.dumps(row) for row in old if row["key"] != "u:s:5"]
    assert lines[:-2] == kept  # streamed through unchanged, in order
    assert [json.loads(line)["key"] for line in lines[-2:]] == ["u:s:5", "u:t:x"]
    assert json.loads(cli("memory", "--file", str(store), "get", "u:s:5").stdout) == {
        "content": "new 5"
    }
    assert os.listdir(tmp_path) == ["store.jsonl"]


def test_an_export_through_a_symlink_replaces_the_file_and_keeps_the_link(tmp_path: Path) -> None:
    """Exporting to a symlink writes the file it points to; the link stays a link."""
    store = tmp_path / "store.jsonl"
    rows = [{"key": "u:s:a", "value": {"content": "a"}}]
    assert cli("memory", "--file", str(store), "import", "-", stdin=jsonl(rows)).returncode == 0
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(real)
    assert cli("memory", "--file", str(store), "export", str(link)).returncode == 0
    assert link.is_symlink()
    assert json.loads(real.read_text())["key"] == "u:s:a"


def test_an_export_to_a_device_writes_to_it(tmp_path: Path) -> None:
    """A path that is not a regular file (here /dev/null) is written directly, never replaced."""
    store = tmp_path / "store.jsonl"
    rows = [{"key": "u:s:a", "value": {"content": "a"}}]
    assert cli("memory", "--file", str(store), "import", "-", stdin=jsonl(rows)).returncode == 0
    result = cli("memory", "--file", str(store), "export", os.devnull)
    assert result.returncode == 0, result.stderr
    assert not Path(os.devnull).is_file()
