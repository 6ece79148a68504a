"""memory.md: "MemoryPrimitive(text_fields=("content", "title")) searches only the fields you
name" and "Use the same settings in every process that shares a Redis namespace". The
operator's command is such a process: restoring a backup with ``import`` wrote each memory's
search terms from every string field, and in the Query Engine (which keeps the writer's terms)
the application's searches then found restored memories by fields it never searches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import namespace
from tta_dev_primitives import MemoryPrimitive

ROW = {"key": "u1:s1:old", "value": {"content": "restored turn", "note": "zebra"}, "ttl": None}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tta_dev_primitives", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.redis
@pytest.mark.parametrize(("fixture", "engine"), [("redis_query_engine", "redis"),
                                                 ("redis_server", "replica")])  # fmt: skip
async def test_an_import_with_the_apps_text_fields_searches_as_the_app(
    request: pytest.FixtureRequest, fixture: str, engine: str, tmp_path: Path
) -> None:
    server = request.getfixturevalue(fixture)
    ns = namespace()
    backup = tmp_path / "backup.jsonl"
    backup.write_text(json.dumps(ROW) + "\n")
    app = MemoryPrimitive(
        server.url, namespace=ns, text_fields=("content",), search_engine=engine,
        redis_timeout=10,
    )  # fmt: skip
    await app.add("u1:s1:new", {"content": "a newer turn", "note": "zebra"})
    where = ("--redis-url", server.url, "--namespace", ns, "--text-fields", "content")
    imported = cli("memory", *where, "import", str(backup))
    assert imported.returncode == 0, imported.stderr
    assert await app.get("u1:s1:old") == ROW["value"]
    assert await app.search("zebra") == []  # a note, in neither memory's searched text
    assert [k for k, _ in await app.search_items("restored")] == ["u1:s1:old"]
    found = cli("memory", *where, "--json", "search", "zebra")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == []  # the command reads as the application does
    await app.clear()
    await app.aclose()


def test_text_fields_must_name_fields() -> None:
    result = cli("memory", "--file", "x.jsonl", "--text-fields", "content,,", "stats")
    assert result.returncode == 2
    assert "--text-fields" in result.stderr


def test_the_option_is_in_every_actions_help() -> None:
    for action in ("search", "import", "list"):
        out: Any = cli("memory", action, "--help").stdout
        assert "--text-fields" in out, action


@pytest.mark.redis
async def test_imported_memories_have_no_vectors_and_are_found_by_keyword(
    redis_server: Any, tmp_path: Path
) -> None:
    """README: the command embeds nothing, so what it imports is found by keyword only."""

    def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0, float(len(t) % 5) + 1.0] for t in texts]

    ns = namespace()
    backup = tmp_path / "backup.jsonl"
    backup.write_text(json.dumps(ROW) + "\n")
    app = MemoryPrimitive(redis_server.url, namespace=ns, embed=embed, dims=2)
    await app.add("u1:s1:new", {"content": "a newer turn"})
    imported = cli("memory", "--redis-url", redis_server.url, "--namespace", ns, "import",
                   str(backup))  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    by_meaning = await app.search_items("restored turn", mode="semantic", limit=5)
    assert [k for k, _ in by_meaning] == ["u1:s1:new"]
    by_words = await app.search_items("restored", mode="keyword")
    assert [k for k, _ in by_words] == ["u1:s1:old"]
    await app.clear()
    await app.aclose()
