"""One error rule: every error raised on purpose is a TTAError and the matching built-in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest

from redis_server import RedisServer
from tta_dev_primitives import (
    CachePrimitive,
    InMemoryStore,
    LambdaPrimitive,
    MemoryPrimitive,
    ParallelPrimitive,
    RouterPrimitive,
    SequentialPrimitive,
    WorkflowContext,
    create_memory_key,
)
from tta_dev_primitives.embeddings import as_embedder, decode_vector
from tta_dev_primitives.exceptions import TTAError


async def echo(value: Any, ctx: WorkflowContext) -> Any:
    return value


STEP = LambdaPrimitive(echo)
_CYCLE: dict[str, Any] = {}
_CYCLE["self"] = _CYCLE


async def _async_key(x: object, ctx: object) -> str:
    return "k"


# (bad input, the built-in its error must also be)
CONSTRUCTION: list[tuple[str, Callable[[], Any], type[Exception]]] = [
    ("max_size 0", lambda: MemoryPrimitive(max_size=0), ValueError),
    ("empty namespace", lambda: MemoryPrimitive(namespace=""), ValueError),
    ("redis_url not str", lambda: MemoryPrimitive(5), TypeError),  # type: ignore[arg-type]
    ("redis_timeout 0", lambda: MemoryPrimitive(redis_timeout=0), ValueError),
    ("recovery_interval < 0", lambda: MemoryPrimitive(recovery_interval=-1), ValueError),
    ("URL scheme", lambda: MemoryPrimitive("http://h"), ValueError),
    ("URL port", lambda: MemoryPrimitive("redis://:pw@h:99999"), ValueError),
    ("raw '/' in a password", lambda: MemoryPrimitive("redis://:a/b@h"), ValueError),
    ("braces in namespace", lambda: MemoryPrimitive("redis://h", namespace="a{b}"), ValueError),
    ("lone surrogate in namespace", lambda: MemoryPrimitive("redis://h", namespace="a\ud800"),
     ValueError),
    ("a URL option no connection takes (a TypeError at the first call: review R19)",
     lambda: MemoryPrimitive("redis://h/0?timeout=2"), ValueError),
    ("a URL option taking an object, not a str (retry=3: review R21)",
     lambda: MemoryPrimitive("redis://h/0?retry=3"), ValueError),
    ("a URL option naming an unknown codec (review R21)",
     lambda: MemoryPrimitive("redis://h/0?encoding=bogus"), ValueError),
    ("a URL option of another client (ssl=true)",
     lambda: MemoryPrimitive("rediss://h/0?ssl=true"), ValueError),
    ("NUL in namespace (RediSearch cuts index names there)",
     lambda: MemoryPrimitive("redis://h", namespace="a:idx2\x00"), ValueError),
    ("lone surrogate in a cache's namespace",
     lambda: CachePrimitive(STEP, lambda x, c: "k", backend="redis://h", namespace="c\udc00"),
     ValueError),
    ("memory key with ':' in id", lambda: create_memory_key("u:1", "s"), ValueError),
    ("memory key id not str", lambda: create_memory_key(1, "s"), TypeError),  # type: ignore[arg-type]
    ("memory key context of mixed keys", lambda: create_memory_key("u", "s", {1: 0, "a": 0}),
     TypeError),
    ("memory key context with a cycle", lambda: create_memory_key("u", "s", _CYCLE), ValueError),
    ("empty SequentialPrimitive", lambda: SequentialPrimitive([]), ValueError),
    ("empty ParallelPrimitive", lambda: ParallelPrimitive([]), ValueError),
    ("LambdaPrimitive of a non-callable", lambda: LambdaPrimitive(5), TypeError),  # type: ignore[arg-type]
    ("a step of one argument", lambda: LambdaPrimitive(lambda x: x), TypeError),  # type: ignore[arg-type,misc]
    ("composing a one-argument function", lambda: STEP >> (lambda x: x), TypeError),  # type: ignore[operator,misc]
    ("composing a non-callable", lambda: STEP >> 5, TypeError),  # type: ignore[operator]
    ("router with no routes", lambda: RouterPrimitive({}, lambda i, c: "a"), ValueError),
    ("router_fn not callable", lambda: RouterPrimitive({"a": STEP}, 5), TypeError),  # type: ignore[arg-type]
    ("router route not a str", lambda: RouterPrimitive({1: STEP}, lambda i, c: 1), TypeError),  # type: ignore[dict-item]
    ("router default unknown", lambda: RouterPrimitive({"a": STEP}, lambda i, c: "a", "b"),
     ValueError),
    ("cache_key_fn not callable", lambda: CachePrimitive(STEP, 5), TypeError),  # type: ignore[arg-type]
    ("cache_key_fn async", lambda: CachePrimitive(STEP, _async_key), TypeError),  # type: ignore[arg-type]
    ("InMemoryStore max_size 0", lambda: InMemoryStore(max_size=0), ValueError),
    ("recall into ''", lambda: MemoryPrimitive().recall("q", into=""), ValueError),
    ("remember value not callable", lambda: MemoryPrimitive().remember("k", 5), TypeError),  # type: ignore[arg-type]
    # A fixed query, scope or key is checked when the step is made, as search and add would.
    ("recall query None", lambda: MemoryPrimitive().recall(None), TypeError),  # type: ignore[arg-type]
    ("recall query not str", lambda: MemoryPrimitive().recall(5), TypeError),  # type: ignore[arg-type]
    ("recall scope ':'", lambda: MemoryPrimitive().recall("q", scope=":"), ValueError),
    ("recall scope not str", lambda: MemoryPrimitive().recall("q", scope=5), TypeError),  # type: ignore[arg-type]
    ("remember key ''", lambda: MemoryPrimitive().remember("", lambda o, c: {}), ValueError),
    ("remember key None", lambda: MemoryPrimitive().remember(None, lambda o, c: {}), TypeError),  # type: ignore[arg-type]
    # A number past the largest float is out of range, not an OverflowError from float().
    ("400-digit hybrid_weight", lambda: MemoryPrimitive(hybrid_weight=10**400), ValueError),
    ("Fraction hybrid_weight past a float",
     lambda: MemoryPrimitive(hybrid_weight=Fraction(10**400, 3)), ValueError),
    ("400-digit redis_timeout", lambda: MemoryPrimitive(redis_timeout=10**400), ValueError),
    ("400-digit recovery_interval", lambda: MemoryPrimitive(recovery_interval=10**400),
     ValueError),
    ("400-digit max_recovery_interval", lambda: MemoryPrimitive(max_recovery_interval=10**400),
     ValueError),
    ("400-digit load_timeout", lambda: MemoryPrimitive("redis://h", load_timeout=10**400),
     ValueError),
    ("400-digit cache redis_timeout",
     lambda: CachePrimitive(STEP, lambda x, c: "k", backend="redis://h", namespace="c",
                            redis_timeout=10**400), ValueError),
    ("400-digit recall min_score", lambda: MemoryPrimitive().recall("q", min_score=10**400),
     ValueError),
    ("5000-digit max_size", lambda: MemoryPrimitive(max_size=-(10**5000)), ValueError),
    ("5000-digit mode", lambda: MemoryPrimitive().recall("q", mode=10**5000), ValueError),  # type: ignore[arg-type]
    ("embedder dims 0", lambda: as_embedder(lambda texts: texts, dims=0), ValueError),
    ("embed not a model", lambda: as_embedder(5), TypeError),
    ("embed model string", lambda: as_embedder("no-provider"), ValueError),
    ("vector bytes length", lambda: decode_vector(b"123", 1), ValueError),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "make", "builtin"), CONSTRUCTION, ids=[c[0] for c in CONSTRUCTION]
)
def test_bad_construction_is_a_tta_error_and_the_builtin(
    what: str, make: Callable[[], Any], builtin: type[Exception]
) -> None:
    """Each documented bad argument raises a TTAError that is also the documented built-in."""
    with pytest.raises(builtin) as caught:
        make()
    assert isinstance(caught.value, TTAError), type(caught.value).__mro__


MEMORY_CALLS: list[tuple[str, Callable[[MemoryPrimitive], Any], type[Exception]]] = [
    ("empty key", lambda m: m.add("", {"v": 1}), ValueError),
    ("key not str", lambda m: m.add(5, {"v": 1}), TypeError),
    ("value not a dict", lambda m: m.add("k", [1]), TypeError),
    ("value with a set", lambda m: m.add("k", {"v": {1}}), TypeError),
    ("ttl 0", lambda m: m.add("k", {"v": 1}, ttl=0), ValueError),
    ("ttl not a number", lambda m: m.add("k", {"v": 1}, ttl="1"), ValueError),
    ("400-digit ttl", lambda m: m.add("k", {"v": 1}, ttl=10**400), ValueError),
    ("get of a non-str key", lambda m: m.get(5), TypeError),
    ("query not str", lambda m: m.search(5), TypeError),
    ("limit 0", lambda m: m.search("q", limit=0), ValueError),
    ("limit not int", lambda m: m.search("q", limit="5"), TypeError),
    ("scope not str", lambda m: m.search("q", scope=5), TypeError),
    ("empty scope", lambda m: m.search("q", scope=":"), ValueError),
    ("400-digit min_score", lambda m: m.search("q", min_score=10**400), ValueError),
    (
        "Fraction min_score past a float",
        lambda m: m.search("q", min_score=Fraction(10**400)),  # type: ignore[arg-type]
        ValueError,
    ),
    ("5000-digit ttl", lambda m: m.add("k", {"v": 1}, ttl=10**5000), ValueError),
    ("5000-digit limit", lambda m: m.search("q", limit=-(10**5000)), ValueError),
    ("400-digit touch ttl", lambda m: m.touch("k", 10**400), ValueError),
    # A cursor's sequence is ASCII digits: "²" passes str.isdigit and int() refuses it; "١٢"
    # int() reads as 12; 5,000 digits int() refuses.
    ("cursor of '²'", lambda m: m.list_memories("u1", cursor="in_memory|²|u1:s1:a"), ValueError),
    (
        "cursor of Arabic-Indic digits",
        lambda m: m.list_memories("u1", cursor="in_memory|١٢|u1:s1:a"),
        ValueError,
    ),
    (
        "cursor of 5000 digits",
        lambda m: m.list_memories("u1", cursor="in_memory|" + "9" * 5000 + "|u1:s1:a"),
        ValueError,
    ),
]
MEMORY_CALL_IDS = [case[0] for case in MEMORY_CALLS]


@pytest.mark.parametrize("backend", ["in_memory", pytest.param("redis", marks=pytest.mark.redis)])
@pytest.mark.parametrize(
    ("what", "call", "builtin"), MEMORY_CALLS, ids=[c[0] for c in MEMORY_CALLS]
)
async def test_bad_memory_calls_are_tta_errors_and_the_builtin(
    request: pytest.FixtureRequest,
    backend: str,
    what: str,
    call: Callable[[MemoryPrimitive], Any],
    builtin: type[Exception],
) -> None:
    """A bad argument to add, get or search raises a TTAError and the built-in, on any backend."""
    url = None
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.url
    memory = MemoryPrimitive(url, namespace="errors")
    async with asyncio.timeout(30):
        with pytest.raises(builtin) as caught:
            await call(memory)
        assert isinstance(caught.value, TTAError), type(caught.value).__mro__
        assert await memory.size() == 0  # nothing was stored
    await memory.aclose()


async def test_an_unknown_route_is_a_tta_error_and_a_value_error() -> None:
    """A router choosing a route that does not exist raises a TTAError that is a ValueError."""
    router = RouterPrimitive({"a": STEP}, lambda i, c: "zzz")
    with pytest.raises(ValueError, match="zzz") as caught:
        await router.execute(1, WorkflowContext())
    assert isinstance(caught.value, TTAError)


async def test_url_options_redis_py_takes_are_kept(redis_server_factory: Any) -> None:
    """Options redis-py's connections take pass the URL check and work against a server."""
    server = redis_server_factory()
    url = f"{server.url}?socket_keepalive=true&health_check_interval=5&max_connections=8"
    memory = MemoryPrimitive(url)
    await memory.add("u1:s1:a", {"content": "kept"})
    assert await memory.get("u1:s1:a") == {"content": "kept"}
    assert memory.using_redis
    await memory.clear()
    await memory.aclose()
