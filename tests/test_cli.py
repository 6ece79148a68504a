"""The command line: the operator's memory commands, on a JSONL file and on a real Redis."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis

from redis_server import RedisServer, free_port
from tta_dev_primitives import MemoryPrimitive


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
        (cli("memory", "--file", store, "import", "-", stdin=""), 0, "imported 0 memories"),
        (cli("memory", "--file", store, "get", "absent"), 1, "no memory under 'absent'"),
        (cli("memory", "--file", store, "delete", "absent"), 1, "no memory under 'absent'"),
        (cli("memory", "--file", store + ".typo", "stats"), 1, "no such file"),
        (cli("memory", "--file", store, "stats", "--redis-url", "redis://x"), 2, "not both"),
        (cli("memory", "stats"), 2, "--redis-url URL or --file PATH"),
        (cli("memory", "--file", store, "clear", stdin=""), 2, "add --yes"),
        (cli("memory", "--file", store, "import", "-", stdin="not json\n"), 1, "line 1"),
        (cli("memory", "--redis-url", "nope://x", "stats"), 1, "scheme must be one of"),
    ]
    for result, status, message in cases:
        assert result.returncode == status, result.stderr
        assert result.stdout == "", result.stdout
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


def test_global_options_go_before_or_after_the_action(tmp_path: Path) -> None:
    """--file, --namespace and --json work on either side of the action, with the same result."""
    store = str(tmp_path / "memory.jsonl")
    assert cli("memory", "import", "-", "--namespace", "ns", "--file", store,
               stdin=jsonl(ROWS)).returncode == 0  # fmt: skip
    spellings = [
        ("memory", "--file", store, "--namespace", "ns", "--json", "search", "primitive"),
        ("memory", "search", "primitive", "--file", store, "--namespace", "ns", "--json"),
        ("memory", "--file", store, "search", "--json", "primitive", "--namespace", "ns"),
    ]
    outputs = [cli(*argv) for argv in spellings]
    assert all(r.returncode == 0 for r in outputs), [r.stderr for r in outputs]
    assert len({r.stdout for r in outputs}) == 1
    assert [row["key"] for row in json.loads(outputs[0].stdout)] == ["u1:s1:a", "u10:s1:c"]
    after = cli("memory", "stats", "--json", "--file", store).stdout
    assert after == cli("memory", "--json", "--file", store, "stats").stdout
    assert json.loads(after)["count"] == 3


def test_a_usage_error_shows_the_failing_sub_commands_usage(tmp_path: Path) -> None:
    """Unknown options, missing arguments and bad values: status 2 and that command's usage."""
    store = str(tmp_path / "m.jsonl")
    cases = [
        (("memory", "--file", store, "search", "timeout", "--bogus"), "memory search"),
        (("memory", "--file", store, "get"), "memory get"),
        (("memory", "search", "x", "--limit", "many"), "memory search"),
        (("memory", "--bogus", "stats"), "memory stats"),
        (("memory", "frobnicate"), "memory"),
        (("demo", "--bogus"), "demo"),
    ]
    for argv, command in cases:
        result = cli(*argv)
        assert result.returncode == 2, (argv, result.stderr)
        assert result.stdout == ""
        assert result.stderr.startswith(f"usage: tta-primitives {command} "), result.stderr
        assert f"tta-primitives {command}: error:" in result.stderr


def test_every_help_states_each_default_and_the_exit_statuses() -> None:
    """--help of every command and action: each option says its default; the epilog the statuses."""
    import argparse

    from tta_dev_primitives.cli import build_parser

    def walk(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
        found = [parser]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    found += walk(child)
        return found

    parsers = walk(build_parser())
    assert {p.prog for p in parsers} >= {
        f"tta-primitives memory {a}"
        for a in ("stats", "get", "search", "delete", "clear", "export", "import")
    }
    for parser in parsers:
        text = parser.format_help()
        for status in ("0 ", "1 ", "2 "):
            assert f"\n  {status}" in text.split("exit status:")[1], parser.prog
        for action in parser._actions:
            takes_default = action.option_strings or action.nargs == "?"
            if takes_default and not isinstance(action, argparse._HelpAction):
                assert "default" in (action.help or ""), (parser.prog, action.dest)
    for argv in (["--help"], ["memory", "--help"], ["memory", "export", "--help"]):
        result = cli(*argv)
        assert result.returncode == 0
        assert "exit status:" in result.stdout


def test_export_and_import_report_a_total_and_a_rate_on_stderr(tmp_path: Path) -> None:
    """Totals and rates go to stderr; stdout holds only the data (JSONL, or --json's object)."""
    store = str(tmp_path / "m.jsonl")
    rate = r"in \d+\.\d+ s \((\d[\d,]*|-)/s\)"
    loaded = cli("memory", "--file", store, "import", "-", stdin=jsonl(ROWS))
    assert re.fullmatch(rf"imported 3 memories {rate}\n", loaded.stderr), loaded.stderr
    assert loaded.stdout == ""
    exported = cli("memory", "--file", store, "export", "--json")
    assert re.fullmatch(rf"exported 3 memories {rate}\n", exported.stderr), exported.stderr
    assert [json.loads(line)["key"] for line in exported.stdout.splitlines()] == [
        "u1:s1:a", "u1:s1:b", "u10:s1:c"
    ]  # fmt: skip
    to_file = cli("memory", "--file", store, "--json", "export", str(tmp_path / "out.jsonl"))
    assert re.fullmatch(rf"exported 3 memories to \S+out.jsonl {rate}\n", to_file.stderr)
    assert json.loads(to_file.stdout)["exported"] == 3
    quiet = cli("memory", "--file", store, "export", str(tmp_path / "quiet.jsonl"))
    assert re.fullmatch(rf"exported 3 memories to \S+quiet.jsonl {rate}\n", quiet.stderr)
    assert quiet.stdout == ""  # no --json: nothing to say on stdout (it printed "None")
    again = cli("memory", "--file", store, "import", str(tmp_path / "out.jsonl"), "--json")
    assert json.loads(again.stdout)["imported"] == 3


@pytest.mark.redis
def test_an_unreachable_redis_prints_only_the_error() -> None:
    """search/get/stats on a dead port: status 1, one line on stderr, nothing on stdout."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    for action in (["search", "timeout"], ["search", "timeout", "--json"], ["stats"],
                   ["delete", "k"], ["export"]):  # fmt: skip
        result = cli("memory", "--redis-url", url, *action)
        assert result.returncode == 1, (action, result.stderr)
        assert result.stdout == "", (action, result.stdout)
        assert "(no match)" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.redis
def test_list_pages_a_scope_and_clear_and_export_take_a_scope(redis_server: RedisServer) -> None:
    """list pages newest first with a cursor; clear --scope forgets one user; export --scope
    writes only that scope."""
    where = ["--redis-url", redis_server.url, "--namespace", f"cli:{uuid4().hex[:8]}"]
    assert cli("memory", *where, "import", "-", stdin=jsonl(ROWS)).returncode == 0
    first = json.loads(
        cli("memory", *where, "--json", "list", "--scope", "u1", "--limit", "1").stdout
    )
    assert [row["key"] for row in first["items"]] == ["u1:s1:b"]  # the last imported
    text = cli("memory", *where, "list", "--scope", "u1", "--limit", "1")
    assert text.stdout.split()[0] == "u1:s1:b"
    assert "more: --cursor" in text.stderr
    rest = json.loads(cli("memory", *where, "--json", "list", "--scope", "u1",
                          "--cursor", first["cursor"]).stdout)  # fmt: skip
    assert [row["key"] for row in rest["items"]] == ["u1:s1:a"]
    assert rest["cursor"] is None
    exported = cli("memory", *where, "export", "--scope", "u10").stdout.splitlines()
    assert [json.loads(line)["key"] for line in exported] == ["u10:s1:c"]
    unconfirmed = cli("memory", *where, "clear", "--scope", "u1")
    assert unconfirmed.returncode == 2
    forgot = json.loads(cli("memory", *where, "--json", "clear", "--scope", "u1", "--yes").stdout)
    assert forgot == {"forgotten": 2, "scope": "u1"}
    left = json.loads(cli("memory", *where, "--json", "list").stdout)
    assert [row["key"] for row in left["items"]] == ["u10:s1:c"]
    assert cli("memory", *where, "clear", "--yes").returncode == 0


def _engine_indexes(server: RedisServer, name: str) -> list[str]:
    """The Query Engine indexes of namespace ``name`` on ``server``."""
    client = redis.Redis(port=server.port, decode_responses=True)
    try:
        return [i for i in client.execute_command("FT._LIST") if i.startswith(name + ":")]
    finally:
        client.close()


def test_a_command_never_makes_a_query_engine_index(redis_query_engine: RedisServer) -> None:
    """An application on ``search_engine="replica"``, on a server with the Query Engine: the
    first ``memory search`` made an index and marked the namespace (review R35 F4), so every
    write of the application then wrote an engine document too, and each run backfilled part
    of it. A command uses the index only where one exists, or the one ``--search-engine``
    names."""
    url, name = redis_query_engine.url, f"cli-{uuid4().hex[:8]}"

    async def app(engine: str, search: bool) -> None:
        memory = MemoryPrimitive(url, namespace=name, search_engine=engine)  # type: ignore[arg-type]
        await memory.add("u1:s1:a", {"content": "the zebra crossing"})
        if search:
            assert await memory.search("zebra")
        await memory.aclose()

    async def clear() -> None:
        memory = MemoryPrimitive(url, namespace=name)
        await memory.clear()
        await memory.aclose()

    asyncio.run(app("replica", search=True))
    for action in (["search", "zebra"], ["import", "-"], ["stats"], ["list", "--scope", "u1"]):
        stdin = jsonl([{"key": "u2:s1:b", "value": {"content": "zebra"}}])
        result = cli("memory", "--redis-url", url, "--namespace", name, *action, stdin=stdin)
        assert result.returncode == 0, result.stderr
        if action[0] == "search":
            assert result.stdout.split()[0] == "u1:s1:a"
    assert _engine_indexes(redis_query_engine, name) == []

    # Asked for, or once the application's own "auto" made one, the command uses it.
    searched = redis_query_engine.calls("FT.SEARCH")
    result = cli("memory", "--redis-url", url, "--namespace", name, "--search-engine", "auto",
                 "search", "zebra")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _engine_indexes(redis_query_engine, name)
    assert redis_query_engine.calls("FT.SEARCH") > searched
    searched = redis_query_engine.calls("FT.SEARCH")
    result = cli("memory", "--redis-url", url, "--namespace", name, "search", "crossing")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "u1:s1:a"
    assert redis_query_engine.calls("FT.SEARCH") > searched
    asyncio.run(clear())
