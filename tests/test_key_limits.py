"""Keys have a documented maximum length, checked at ``add`` on every backend; nothing is stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_cli import cli, jsonl
from tta_dev_primitives import InMemoryStore, MemoryPrimitive
from tta_dev_primitives._checks import MAX_KEY_BYTES
from tta_dev_primitives.exceptions import InvalidMemoryKeyError


async def test_a_key_past_the_limit_is_refused_and_nothing_is_stored(
    memory: MemoryPrimitive,
) -> None:
    """A 1,025-byte key raises InvalidMemoryKeyError naming the limit; 1,024 bytes are stored."""
    longest = "k" * MAX_KEY_BYTES
    await memory.add(longest, {"content": "fits"})
    assert await memory.get(longest) == {"content": "fits"}
    with pytest.raises(InvalidMemoryKeyError, match="at most 1,024 bytes") as info:
        await memory.add(longest + "k", {"content": "too long"})
    assert isinstance(info.value, ValueError)
    assert await memory.get(longest + "k") is None
    assert await memory.size() == 1


async def test_the_limit_counts_utf8_bytes_not_characters(memory: MemoryPrimitive) -> None:
    """342 euro signs are 342 characters but 1,026 bytes of UTF-8: refused."""
    with pytest.raises(InvalidMemoryKeyError, match="1,026 bytes"):
        await memory.add("€" * 342, {"content": "x"})
    assert await memory.size() == 0


def test_the_sync_store_has_the_same_limit() -> None:
    """InMemoryStore refuses the same keys, and reads of a long key simply find nothing."""
    store = InMemoryStore()
    with pytest.raises(InvalidMemoryKeyError, match="MAX_KEY_BYTES"):
        store.add("x" * (MAX_KEY_BYTES + 1), {"content": "x"})
    assert store.size() == 0
    assert store.get("x" * (MAX_KEY_BYTES + 1)) is None


def test_an_import_line_with_a_long_key_imports_nothing(tmp_path: Path) -> None:
    """The CLI checks the same limit before storing anything, and names the line."""
    store = tmp_path / "memory.jsonl"
    store.write_text(json.dumps({"key": "u:s:old", "value": {"v": 0}, "expires": None}) + "\n")
    rows = [{"key": "u:s:a", "value": {"v": 1}}, {"key": "k" * 2000, "value": {"v": 2}}]
    result = cli("memory", "--file", str(store), "import", "-", stdin=jsonl(rows))
    assert result.returncode == 1
    assert "line 2" in result.stderr
    assert "1,024 bytes" in result.stderr
    stats = json.loads(cli("memory", "--file", str(store), "--json", "stats").stdout)
    assert stats["count"] == 1


async def test_forget_refuses_a_scope_longer_than_any_key(memory: MemoryPrimitive) -> None:
    """A forget's scope past MAX_KEY_BYTES names no memory; on Redis it was stored in every
    partition's forget marks, even at maxmemory (2 MB scopes took a 3-master cluster 2.5 s
    each). Refused on every backend before anything is sent; the memories stay."""
    from tta_dev_primitives.exceptions import InvalidArgumentError

    await memory.add("u1:s1:a", {"content": "kept"})
    with pytest.raises(InvalidArgumentError, match="MAX_KEY_BYTES"):
        await memory.forget("u1:" + "s" * MAX_KEY_BYTES)
    with pytest.raises(InvalidArgumentError, match="1,026 bytes"):
        await memory.forget("€" * 342)
    assert await memory.forget("u1:s1:" + "a" * (MAX_KEY_BYTES - 6)) == 0  # as long as a key
    assert await memory.get("u1:s1:a") == {"content": "kept"}
    assert await memory.forget("u1") == 1
