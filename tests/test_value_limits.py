"""Every memory's cost is bounded: its size as JSON, and the distinct terms its index holds."""

from __future__ import annotations

import pytest

from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import InvalidMemoryValueError
from tta_dev_primitives.memory._values import MAX_VALUE_BYTES
from tta_dev_primitives.search._analyzer import MAX_DOC_TERMS, Analyzer


async def test_a_value_with_100k_distinct_words_is_stored_without_falling_back(
    memory: MemoryPrimitive,
) -> None:
    """Its index keeps the 10,000 most frequent terms; on Redis the add never falls back.

    (Before, each such add cost Redis 2-3 s of scripting, timed out and was retried forever.)
    """
    words = " ".join(f"w{i}x" for i in range(100_000))
    value = {"content": f"{words} common common common"}
    await memory.add("u1:s1:big", value)
    if memory.get_backend_info()["redis_configured"]:
        assert memory.using_redis, memory.get_backend_info()["last_error"]
    assert await memory.get("u1:s1:big") == value
    assert await memory.search("common?") == [value]  # the most frequent term is kept
    assert await memory.search("w5x?") == [value]  # and the first terms, ties in order
    assert await memory.search("w99999x?") == []  # past the cap: not indexed


def test_the_term_cap_keeps_the_most_frequent_terms() -> None:
    """MAX_DOC_TERMS terms at most, the most frequent first, ties in order of appearance."""
    text = " ".join(f"t{i}" for i in range(MAX_DOC_TERMS + 50)) + " t42 t42 t10049"
    counts = Analyzer(stemming=False).term_counts([text])
    assert len(counts) == MAX_DOC_TERMS
    assert counts["t42"] == 3
    assert counts["t10049"] == 2
    assert "t10048" not in counts


async def test_a_value_over_the_size_limit_is_refused_and_nothing_is_stored(
    memory: MemoryPrimitive,
) -> None:
    """More than 8 MiB of JSON: InvalidMemoryValueError saying so; the key stays as it was."""
    await memory.add("k", {"content": "small"})
    huge = {"content": "x" * MAX_VALUE_BYTES}
    with pytest.raises(InvalidMemoryValueError, match="MAX_VALUE_BYTES") as info:
        await memory.add("k", huge)
    assert isinstance(info.value, TypeError)  # the library's errors keep their built-in type
    assert await memory.get("k") == {"content": "small"}
    assert await memory.size() == 1
    non_ascii = {"content": "é" * (MAX_VALUE_BYTES // 2 + 1)}  # fewer chars, more bytes
    with pytest.raises(InvalidMemoryValueError, match="bytes as JSON"):
        await memory.add("k2", non_ascii)
    assert await memory.get("k2") is None


async def test_an_int_too_long_to_read_back_is_refused_by_name(memory: MemoryPrimitive) -> None:
    """An int of more than 4,300 digits: Python's JSON reader refuses it by default, so the
    value and a filter naming it get the library's typed errors, naming the place, rather than
    a bare ValueError from ``str()``; nothing is stored. A process that raised its own limit
    (``sys.set_int_max_str_digits``) is refused too: its write would be unreadable in others."""
    import sys

    from tta_dev_primitives.exceptions import InvalidArgumentError

    huge = 10**4300  # 4,301 digits
    await memory.add("k", {"n": 10**4300 - 1})  # 4,300 digits: readable everywhere
    with pytest.raises(InvalidMemoryValueError, match=r"value\['tags'\]\[1\] is an int of more"):
        await memory.add("k", {"tags": [1, -huge]})
    with pytest.raises(InvalidArgumentError, match=r"filter\['n'\] is an int of more"):
        await memory.search("", filter={"n": huge})
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        with pytest.raises(InvalidMemoryValueError, match=r"value\['n'\] is an int of more"):
            await memory.add("k2", {"n": huge})
    finally:
        sys.set_int_max_str_digits(previous)
    assert await memory.get("k") == {"n": 10**4300 - 1}
    assert await memory.get("k2") is None
    assert await memory.size() == 1
