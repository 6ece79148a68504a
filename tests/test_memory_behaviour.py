"""The behaviour suite: what MemoryPrimitive promises, run on every backend (see `memory`)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from conftest import eventually
from tta_dev_primitives import MemoryPrimitive, WorkflowContext, create_memory_key
from tta_dev_primitives.exceptions import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidMemoryKeyError,
    InvalidMemoryValueError,
)
from tta_dev_primitives.performance import AddMemory, GetMemory, SearchMemory


async def test_add_then_get_returns_an_equal_value(memory: MemoryPrimitive) -> None:
    """A stored value comes back equal, nested structures and unicode included."""
    value = {"role": "user", "content": "héllo ✓", "n": 3, "f": 1.5, "ok": True, "none": None,
             "nested": {"list": [1, "two", {"three": 3}]}}  # fmt: skip
    await memory.add("k", value)
    assert await memory.get("k") == value


async def test_get_of_a_missing_key_is_none(memory: MemoryPrimitive) -> None:
    """An absent key reads as None."""
    assert await memory.get("absent") is None


async def test_add_replaces_the_previous_value(memory: MemoryPrimitive) -> None:
    """Adding to an existing key replaces its value and its search terms."""
    await memory.add("k", {"content": "apples"})
    await memory.add("k", {"content": "oranges"})
    assert await memory.get("k") == {"content": "oranges"}
    assert await memory.search("apples") == []
    assert await memory.search("oranges") == [{"content": "oranges"}]
    assert await memory.size() == 1


async def test_stored_and_returned_values_are_independent_copies(memory: MemoryPrimitive) -> None:
    """Mutating the caller's dict or a returned dict changes nothing stored."""
    value: dict[str, Any] = {"content": "original", "tags": ["a"]}
    await memory.add("k", value)
    value["content"] = "changed"
    value["tags"].append("b")
    got = await memory.get("k")
    assert got == {"content": "original", "tags": ["a"]}
    assert got is not None
    got["tags"].append("c")
    assert await memory.get("k") == {"content": "original", "tags": ["a"]}
    found = await memory.search("original")
    found[0]["content"] = "mutated"
    assert await memory.get("k") == {"content": "original", "tags": ["a"]}


async def test_tuples_come_back_as_lists(memory: MemoryPrimitive) -> None:
    """Tuples are accepted as JSON arrays and read back as lists, on every backend."""
    await memory.add("k", {"pair": (1, 2)})
    assert await memory.get("k") == {"pair": [1, 2]}


async def test_delete_reports_whether_the_key_existed(memory: MemoryPrimitive) -> None:
    """delete() removes the memory and its search terms, returning True only if it existed."""
    await memory.add("k", {"content": "bananas"})
    assert await memory.delete("k") is True
    assert await memory.delete("k") is False
    assert await memory.get("k") is None
    assert await memory.search("bananas") == []


async def test_size_and_clear(memory: MemoryPrimitive) -> None:
    """size() counts memories; clear() removes them all."""
    for i in range(5):
        await memory.add(f"k{i}", {"i": i})
    assert await memory.size() == 5
    await memory.clear()
    assert await memory.size() == 0
    assert await memory.get("k0") is None
    assert await memory.search("") == []


async def test_ttl_expires_a_memory(memory: MemoryPrimitive) -> None:
    """A memory added with a ttl disappears from get, search and size after it."""
    await memory.add("short", {"content": "ephemeral"}, ttl=600)
    await memory.add("long", {"content": "ephemeral durable"})
    assert await memory.get("short") is not None
    await memory.touch("short", 0.2)  # the clock starts after the read: load can't beat it

    async def expired() -> bool:
        return await memory.get("short") is None

    await eventually(expired)
    assert await memory.search("ephemeral") == [{"content": "ephemeral durable"}]
    assert await memory.size() == 1


async def test_readding_without_ttl_removes_the_ttl(memory: MemoryPrimitive) -> None:
    """Replacing a memory that had a ttl with one that has none makes it permanent."""
    await memory.add("k", {"v": 1}, ttl=0.2)
    await memory.add("k", {"v": 2})
    await memory.add("probe", {"v": 0}, ttl=0.2)

    async def probe_gone() -> bool:
        return await memory.get("probe") is None

    await eventually(probe_gone)
    assert await memory.get("k") == {"v": 2}


# -- search ------------------------------------------------------------------------------------


async def seed(memory: MemoryPrimitive, items: dict[str, dict[str, Any]]) -> None:
    for key, value in items.items():
        await memory.add(key, value)


async def test_search_is_case_insensitive_on_whole_words_and_prefixes(
    memory: MemoryPrimitive,
) -> None:
    """Queries match words and word prefixes regardless of case, not substrings inside words."""
    await seed(memory, {"a": {"content": "Primitives compose"}, "b": {"content": "unprimed"}})
    assert await memory.search("PRIMITIVES") == [{"content": "Primitives compose"}]
    assert await memory.search("prim") == [{"content": "Primitives compose"}]
    assert await memory.search("rimitive") == []


async def test_an_unfinished_last_word_ranks_the_word_itself_above_its_completions(
    memory: MemoryPrimitive,
) -> None:
    """A message passed whole ends inside its last word, which then matches its completions
    too; the word itself still ranks first, however new the completion ("cat" before
    "category", order "108" before "1085"), and a word still being typed finds them all."""
    await seed(memory, {
        "u1:s1:1": {"content": "my cat is called Miso"},
        "u1:s1:2": {"content": "category theory is fun"},
        "u1:s1:3": {"content": "order 108 shipped"},
        "u1:s1:4": {"content": "order 1085 shipped"},
    })  # fmt: skip
    for scope in (None, "u1"):
        cat = await memory.search_items("tell me about my cat", 2, scope=scope)
        assert [key for key, _ in cat] == ["u1:s1:1", "u1:s1:2"]
        order = await memory.search_items("order 108", 2, scope=scope)
        assert [key for key, _ in order] == ["u1:s1:3", "u1:s1:4"]
        typing = await memory.search_items("where is order 10", 2, scope=scope)
        assert [key for key, _ in typing] == ["u1:s1:4", "u1:s1:3"]  # both completions: newest


async def test_search_reads_string_contents_not_field_names(memory: MemoryPrimitive) -> None:
    """Field names are not searchable; nested string values are."""
    await seed(memory, {"a": {"content": "x", "deep": {"list": ["needle here"]}}})
    assert await memory.search("content") == []
    assert await memory.search("deep") == []
    assert await memory.search("needle") == [{"content": "x", "deep": {"list": ["needle here"]}}]


async def test_multi_word_queries_rank_by_relevance(memory: MemoryPrimitive) -> None:
    """A memory matching both words outranks ones matching one; rarer words weigh more.

    One user's session, as memories are kept: on a cluster searching in the Query Engine the
    words' statistics are each master's, and one session's memories share a master.
    """
    await seed(
        memory,
        {
            "u1:s1:both": {"content": "redis timeout while saving"},
            "u1:s1:common": {"content": "saving saving files"},
            "u1:s1:rare": {"content": "redis timeout while loading"},
            "u1:s1:filler1": {"content": "saving data"},
            "u1:s1:filler2": {"content": "saving more"},
        },
    )
    results = await memory.search("timeout saving", limit=10)
    assert results[0] == {"content": "redis timeout while saving"}
    assert results[1] == {"content": "redis timeout while loading"}
    assert len(results) == 5


async def test_ties_are_broken_most_recent_first(memory: MemoryPrimitive) -> None:
    """Memories with equal scores come back newest write first; rewriting makes one newest."""
    await seed(memory, {f"k{i}": {"content": f"equal words {i}"} for i in range(3)})
    assert [r["content"] for r in await memory.search("equal")] == [
        "equal words 2", "equal words 1", "equal words 0",
    ]  # fmt: skip
    await memory.add("k0", {"content": "equal words 0"})
    assert (await memory.search("equal"))[0] == {"content": "equal words 0"}


async def test_empty_query_returns_the_most_recent(memory: MemoryPrimitive) -> None:
    """A blank query returns the most recent `limit` memories, newest first."""
    await seed(memory, {f"k{i}": {"i": i} for i in range(7)})
    assert [r["i"] for r in await memory.search("", limit=3)] == [6, 5, 4]
    assert [r["i"] for r in await memory.search("   ", limit=2)] == [6, 5]


async def test_query_with_no_words_matches_nothing(memory: MemoryPrimitive) -> None:
    """A query that is only punctuation matches no memory."""
    await seed(memory, {"k": {"content": "hello?"}})
    assert await memory.search("?!") == []


async def test_limit_caps_results(memory: MemoryPrimitive) -> None:
    """search returns at most `limit` results (default 5)."""
    await seed(memory, {f"k{i}": {"content": "match"} for i in range(8)})
    assert len(await memory.search("match")) == 5
    assert len(await memory.search("match", limit=2)) == 2
    assert len(await memory.search("match", limit=50)) == 8


async def test_scope_keeps_to_whole_key_segments(memory: MemoryPrimitive) -> None:
    """scope='u1' sees u1's memories, never u10's; 'u1:s1' sees only that session."""
    await seed(
        memory,
        {
            create_memory_key("u1", "s1", {"t": 1}): {"content": "secret alpha"},
            create_memory_key("u1", "s2", {"t": 2}): {"content": "secret beta"},
            create_memory_key("u10", "s1", {"t": 3}): {"content": "secret gamma"},
            "u1:s1": {"content": "secret session root"},
        },
    )

    def contents(rs: list[dict[str, Any]]) -> set[str]:
        return {r["content"] for r in rs}

    assert contents(await memory.search("secret", 10, scope="u1")) == {
        "secret alpha", "secret beta", "secret session root",
    }  # fmt: skip
    assert contents(await memory.search("secret", 10, scope="u1:s1")) == {
        "secret alpha", "secret session root",
    }  # fmt: skip
    assert contents(await memory.search("secret", 10, scope="u1:s1:")) == {
        "secret alpha", "secret session root",
    }  # fmt: skip
    assert contents(await memory.search("secret", 10, scope="u10")) == {"secret gamma"}
    assert await memory.search("secret", 10, scope="u") == []
    assert contents(await memory.search("", 10, scope="u10")) == {"secret gamma"}


async def test_search_items_pairs_each_result_with_its_key(memory: MemoryPrimitive) -> None:
    """search_items ranks as search does, and each value comes with the key it is stored under."""
    await seed(
        memory,
        {
            "u1:s1:a": {"content": "olives on pizza"},
            "u1:s1:b": {"content": "pizza pizza pizza"},
            "u2:s1:c": {"content": "no match here"},
        },
    )
    for query in ("pizza", "", "oli"):
        items = await memory.search_items(query, 10, scope="u1")
        assert [v for _, v in items] == await memory.search(query, 10, scope="u1")
        for key, value in items:
            assert await memory.get(key) == value
    assert [k for k, _ in await memory.search_items("pizza")] == ["u1:s1:b", "u1:s1:a"]
    assert await memory.search_items("nothing") == []


# -- bad input ---------------------------------------------------------------------------------


class Unserializable:
    """An object JSON cannot encode."""


BAD_VALUES = [
    ("not a dict", InvalidMemoryValueError, "dict"),
    (["list"], InvalidMemoryValueError, "dict"),
    ({"s": {1, 2}}, InvalidMemoryValueError, r"value\['s'\] is of type set"),
    ({"b": b"bytes"}, InvalidMemoryValueError, "bytes"),
    ({"nan": math.nan}, InvalidMemoryValueError, "nan"),
    ({"inf": [math.inf]}, InvalidMemoryValueError, r"value\['inf'\]\[0\]"),
    ({1: "int key"}, InvalidMemoryValueError, "key of type int"),
    ({"obj": Unserializable()}, InvalidMemoryValueError, "Unserializable"),
]


@pytest.mark.parametrize(("value", "error", "match"), BAD_VALUES)
async def test_bad_values_are_refused_and_nothing_is_stored(
    memory: MemoryPrimitive, value: Any, error: type[Exception], match: str
) -> None:
    """A value that is not a JSON-compatible dict raises TypeError naming it; nothing is stored."""
    with pytest.raises(error, match=match):
        await memory.add("k", value)
    assert issubclass(error, TypeError)
    assert await memory.get("k") is None
    assert await memory.size() == 0


async def test_circular_values_are_refused(memory: MemoryPrimitive) -> None:
    """A value that contains itself is refused, not a RecursionError."""
    value: dict[str, Any] = {}
    value["self"] = value
    with pytest.raises(InvalidMemoryValueError, match="circular"):
        await memory.add("k", value)


BAD_KEYS = [("", InvalidMemoryKeyError), (None, TypeError), (3, TypeError), (b"k", TypeError)]


@pytest.mark.parametrize(("key", "error"), BAD_KEYS)
async def test_bad_keys_are_refused(memory: MemoryPrimitive, key: Any, error: type) -> None:
    """Empty keys raise ValueError, non-str keys TypeError, on every method; nothing stored."""
    with pytest.raises(error):
        await memory.add(key, {"v": 1})
    with pytest.raises(error):
        await memory.get(key)
    with pytest.raises(error):
        await memory.delete(key)
    assert await memory.size() == 0


@pytest.mark.parametrize("ttl", [0, -1, math.nan, math.inf, True, "10", [1], 101 * 365 * 86400])
async def test_bad_ttls_are_refused(memory: MemoryPrimitive, ttl: Any) -> None:
    """ttl must be a positive number of at most 100 years, or None (production.md: what Redis
    cannot take is refused at add): anything else is a ValueError."""
    with pytest.raises(ValueError, match="ttl"):
        await memory.add("k", {"v": 1}, ttl=ttl)
    assert await memory.get("k") is None


@pytest.mark.parametrize(("limit", "error"), [(0, ValueError), (-3, ValueError),
                                              (1.5, TypeError), (True, TypeError)])  # fmt: skip
async def test_bad_limits_are_refused(memory: MemoryPrimitive, limit: Any, error: type) -> None:
    """limit must be an int of at least 1."""
    with pytest.raises(error, match="limit"):
        await memory.search("x", limit=limit)


@pytest.mark.parametrize(("scope", "error"), [("", ValueError), (":", ValueError),
                                              (5, TypeError)])  # fmt: skip
async def test_bad_scopes_are_refused(memory: MemoryPrimitive, scope: Any, error: type) -> None:
    """scope must be None or a non-empty key prefix."""
    with pytest.raises(error, match="scope"):
        await memory.search("x", scope=scope)


async def test_non_str_query_is_refused(memory: MemoryPrimitive) -> None:
    """The query must be a str."""
    with pytest.raises(TypeError, match="query"):
        await memory.search(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_size": 0}, {"max_size": -1}, {"max_size": 2.5}, {"max_size": True},
     {"redis_timeout": 0}, {"recovery_interval": -1}, {"namespace": ""},
     {"recovery_interval": 5, "max_recovery_interval": 1}],
)  # fmt: skip
def test_bad_constructor_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    """Invalid sizes, timeouts, intervals and namespaces raise ValueError at construction."""
    with pytest.raises(ValueError):  # noqa: PT011 (each case has its own message)
        MemoryPrimitive(**kwargs)


@pytest.mark.parametrize("flag", ["false", "no", 0, None])
def test_enable_redis_must_be_a_bool(flag: Any) -> None:
    """A string from an environment variable ("false") is truthy: refused, not read as True."""
    with pytest.raises(TypeError, match="enable_redis must be a bool"):
        MemoryPrimitive("redis://localhost:6379", enable_redis=flag)


@pytest.mark.parametrize("url", ["", " ", "localhost:6379", "http://localhost:6379"])
def test_bad_redis_urls_are_refused_not_ignored(url: str) -> None:
    """A URL that is not a Redis URL, an empty one included, is an error naming redis_url:
    never a silent in-process memory the caller believes is on Redis (None is the way to ask
    for in-process)."""
    with pytest.raises(ValueError, match="redis_url"):
        MemoryPrimitive(url)


# -- composition -------------------------------------------------------------------------------


async def test_recall_llm_remember_wraps_an_llm_call(memory: MemoryPrimitive) -> None:
    """recall >> llm >> remember: the LLM sees recalled memories and its answer is stored."""
    seen: list[list[dict[str, Any]]] = []

    async def llm(prompt: str, ctx: WorkflowContext) -> str:
        seen.append(list(ctx.state["memories"]))
        return f"answer to {prompt}"

    def key(output: str, ctx: WorkflowContext) -> str:
        assert ctx.user_id is not None
        assert ctx.session_id is not None
        return create_memory_key(ctx.user_id, ctx.session_id, {"n": len(seen)})

    workflow = (
        memory.recall(lambda x, ctx: x, scope=lambda x, ctx: f"{ctx.user_id}:{ctx.session_id}")
        >> llm
        >> memory.remember(key, lambda out, ctx: {"role": "assistant", "content": out})
    )
    ctx = WorkflowContext(user_id="u1", session_id="s1")
    assert await workflow.execute("primitives", ctx) == "answer to primitives"
    assert await workflow.execute("primitives again", ctx) == "answer to primitives again"
    assert seen[0] == []
    assert seen[1] == [{"role": "assistant", "content": "answer to primitives"}]
    other = WorkflowContext(user_id="u2", session_id="s1")
    await workflow.execute("primitives", other)
    assert seen[2] == []


async def test_recall_passes_input_through_and_fills_state(memory: MemoryPrimitive) -> None:
    """recall returns its input unchanged and writes results under `into`."""
    await memory.add("k", {"content": "stored fact"})
    ctx = WorkflowContext()
    step = memory.recall("fact", into="facts", limit=1)
    assert await step.execute({"x": 1}, ctx) == {"x": 1}
    assert ctx.state["facts"] == [{"content": "stored fact"}]


async def test_recall_filters_and_cuts_as_search_does(memory: MemoryPrimitive) -> None:
    """recall's filter= and min_score= reach its search (the bot's own replies left out, weak
    matches cut), and a bad one is named when the step is made, before any run."""
    await memory.add("u1:s1:1", {"role": "user", "content": "my sister lives in Paris"})
    await memory.add(
        "u1:s1:2", {"role": "assistant", "content": "Paris is lovely, your sister is lucky"}
    )
    await memory.add("u1:s1:3", {"role": "user", "content": "I like tea"})
    ctx = WorkflowContext()
    await memory.recall("sister paris", into="users", filter={"role": "user"}).execute("q", ctx)
    assert ctx.state["users"] == [{"role": "user", "content": "my sister lives in Paris"}]
    best, second = await memory.search_scored("sister paris", limit=2)
    assert best.score > second.score
    cut = (best.score + second.score) / 2
    await memory.recall("sister paris", into="best", min_score=cut).execute("q", ctx)
    assert ctx.state["best"] == [best.value]
    with pytest.raises(InvalidArgumentTypeError, match="filter"):
        memory.recall("q", filter=["role"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="min_score"):
        memory.recall("q", min_score=math.nan)


async def test_execute_runs_typed_operations(memory: MemoryPrimitive) -> None:
    """MemoryPrimitive.execute takes operation models or dicts with an op field."""
    ctx = WorkflowContext()
    await memory.execute(AddMemory(key="k", value={"content": "typed op"}), ctx)
    assert await memory.execute(GetMemory(key="k"), ctx) == {"content": "typed op"}
    assert await memory.execute({"op": "search", "query": "typed"}, ctx) == [
        {"content": "typed op"}
    ]
    assert await memory.execute(SearchMemory(query="", limit=1), ctx) == [{"content": "typed op"}]
    assert await memory.execute({"op": "delete", "key": "k"}, ctx) is True
    await memory.execute({"op": "clear"}, ctx)
    assert await memory.size() == 0


@pytest.mark.parametrize(
    "op",
    [{"op": "add", "key": "", "value": {}}, {"op": "get"}, {"op": "explode", "key": "k"},
     {"op": "search", "limit": 0}, {"op": "add", "key": "k", "value": {}, "ttl": -1}, "get k"],
)  # fmt: skip
async def test_invalid_operations_raise_validation_errors(memory: MemoryPrimitive, op: Any) -> None:
    """A malformed operation is a pydantic.ValidationError naming the problem."""
    import pydantic

    with pytest.raises(pydantic.ValidationError):
        await memory.execute(op, WorkflowContext())


@pytest.mark.parametrize(
    ("op", "direct"),
    [({"op": "add", "key": "k", "value": {"v": "x"}, "ttl": True},
      lambda m: m.add("k", {"v": "x"}, True)),
     ({"op": "add", "key": "k", "value": {"v": "x"}, "ttl": "5"},
      lambda m: m.add("k", {"v": "x"}, "5")),
     ({"op": "add", "key": "k", "value": {"v": "x"}, "ttl": 10**400},
      lambda m: m.add("k", {"v": "x"}, 10**400)),
     ({"op": "add", "key": b"k", "value": {"v": "x"}}, lambda m: m.add(b"k", {"v": "x"})),
     ({"op": "search", "query": "x", "limit": True}, lambda m: m.search("x", True)),
     ({"op": "search", "query": "x", "limit": "2"}, lambda m: m.search("x", "2")),
     ({"op": "search", "query": "x", "limit": 2.0}, lambda m: m.search("x", 2.0)),
     ({"op": "search", "query": b"x"}, lambda m: m.search(b"x")),
     ({"op": "search", "query": "x", "min_score": math.nan},
      lambda m: m.search("x", min_score=math.nan)),
     ({"op": "search", "query": "x", "filter": ["role"]},
      lambda m: m.search("x", filter=["role"])),
     ({"op": "search", "query": "x", "hybrid_weight": 2},
      lambda m: m.search("x", hybrid_weight=2))],
    ids=["ttl True", "ttl '5'", "ttl 10**400", "key bytes", "limit True", "limit '2'",
         "limit 2.0", "query bytes", "min_score nan", "filter list", "hybrid_weight 2"],
)  # fmt: skip
async def test_a_typed_operation_refuses_what_its_method_refuses(
    memory: MemoryPrimitive, op: dict[str, Any], direct: Any
) -> None:
    """A dict operation is never coerced into what the method would refuse (True is not a TTL of
    1 s, "2" not a limit of 2): it is a ValidationError naming the field, and nothing is
    stored, where the method itself raises its typed error."""
    import pydantic

    await memory.add("x1", {"v": "x"})
    await memory.add("x2", {"v": "x"})
    with pytest.raises((InvalidArgumentError, InvalidArgumentTypeError)):
        await direct(memory)
    fields = ("ttl", "limit", "key", "min_score", "filter", "hybrid_weight", "query")
    field = next(name for name in fields if name in op)
    with pytest.raises(pydantic.ValidationError, match=field):
        await memory.execute(op, WorkflowContext())
    assert await memory.get("k") is None
    assert await memory.size() == 2


async def test_a_typed_operation_takes_what_its_method_takes(memory: MemoryPrimitive) -> None:
    """What add and search accept, a dict operation accepts alike: a numpy or Fraction TTL, a
    numpy int limit."""
    from fractions import Fraction

    import numpy as np

    ctx = WorkflowContext()
    await memory.execute({"op": "add", "key": "a", "value": {"v": "x"}, "ttl": Fraction(7, 2)}, ctx)
    await memory.execute({"op": "add", "key": "b", "value": {"v": "x"}, "ttl": np.float32(60)}, ctx)
    await memory.execute({"op": "add", "key": "c", "value": {"v": "x"}, "ttl": 60}, ctx)
    left = {key: ttl or 0.0 async for key, _, ttl in memory.items()}  # (None: no TTL)
    assert left.keys() == {"a", "b", "c"}
    assert 0 < left["a"] <= 3.5
    assert 3.5 < left["b"] <= 60
    assert 3.5 < left["c"] <= 60
    found = await memory.execute({"op": "search", "query": "x", "limit": np.int64(2)}, ctx)
    assert len(found) == 2


async def test_a_typed_search_takes_what_search_takes(memory: MemoryPrimitive) -> None:
    """A search operation filters and keeps a score floor as ``search`` does (review R18:
    filter and min_score were refused as unknown fields)."""
    ctx = WorkflowContext()
    await memory.add("u1:s1:a", {"content": "blue hiking boots", "role": "user"})
    await memory.add("u1:s1:b", {"content": "blue hiking map", "role": "assistant"})
    for options in ({"filter": {"role": "user"}}, {"min_score": 0.0},
                    {"filter": {"role": "user"}, "mode": "keyword", "scope": "u1"}):  # fmt: skip
        op = {"op": "search", "query": "blue hiking", "limit": 5, **options}
        direct = await memory.search("blue hiking", 5, **options)  # type: ignore[arg-type]
        assert await memory.execute(op, ctx) == direct
        assert await memory.execute(SearchMemory(query="blue hiking", **options), ctx) == direct
    users = await memory.execute({"op": "search", "query": "blue", "filter": {"role": "user"}}, ctx)
    assert users == [{"content": "blue hiking boots", "role": "user"}]
    from types import MappingProxyType  # any mapping, as search takes (review R20)

    proxy = MappingProxyType({"role": "user"})
    assert await memory.execute({"op": "search", "query": "blue", "filter": proxy}, ctx) == users


async def test_recall_and_remember_take_async_functions_as_every_step_does() -> None:
    """An async query, scope, key or value function is awaited (an LLM-made summary as the
    value), not refused at run time with 'got coroutine' and a never-awaited warning."""
    from tta_dev_primitives import MemoryPrimitive, WorkflowContext

    memory = MemoryPrimitive()
    await memory.add("u1:s1:a", {"text": "likes olives"})

    async def query(q: str, ctx: WorkflowContext) -> str:
        return q

    async def scope(q: str, ctx: WorkflowContext) -> str:
        return "u1"

    async def key(o: str, ctx: WorkflowContext) -> str:
        return "u1:s1:b"

    async def value(o: str, ctx: WorkflowContext) -> dict[str, str]:
        return {"text": f"summary of {o}"}

    ctx = WorkflowContext()
    workflow = memory.recall(query, scope=scope) >> memory.remember(key, value)
    assert await workflow.execute("olives", ctx) == "olives"
    assert [m["text"] for m in ctx.state["memories"]] == ["likes olives"]
    assert await memory.get("u1:s1:b") == {"text": "summary of olives"}


@pytest.mark.parametrize(
    ("ttl", "kept"),
    [(1e-9, 0.001), (0.0004, 0.001), (0.0015, 0.002), (2.0004, 2.0), (60, 60.0)],
)
def test_a_ttl_is_kept_in_whole_milliseconds_as_redis_keeps_it(ttl: float, kept: float) -> None:
    """Redis keeps a TTL in milliseconds (at least one): every backend takes it so, and a
    ttl of 1e-9 s lives 1 ms in-process too (review R18: gone at once there, not on Redis)."""
    from tta_dev_primitives._checks import check_ttl

    assert check_ttl(ttl) == kept


async def test_a_sub_millisecond_ttl_lives_a_millisecond_in_process() -> None:
    """In-process, as on Redis, a memory added with ttl=1e-9 is there right after the add."""
    memory = MemoryPrimitive()
    found = 0
    for i in range(20):  # (a pause of a millisecond between the two calls may expire one)
        await memory.add(f"k{i}", {"v": i}, ttl=1e-9)
        found += await memory.get(f"k{i}") is not None
    assert found > 0


async def test_a_refused_value_names_its_type_as_the_reader_knows_it() -> None:
    """A numpy bool is named ``numpy.bool``, not ``bool`` (which read as if a plain bool were
    refused: review R18); a plain type keeps its bare name."""
    import numpy as np

    memory = MemoryPrimitive()
    with pytest.raises(InvalidMemoryValueError, match=r"of type numpy\.bool_?, which"):
        await memory.add("k", {"flag": np.bool_(True)})
    with pytest.raises(InvalidMemoryValueError, match=r"key of type int, 1;"):
        await memory.add("k", {"nested": {1: "x"}})
    assert await memory.size() == 0
