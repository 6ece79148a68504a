"""RouterPrimitive: choosing, defaulting and refusing routes."""

from __future__ import annotations

import pytest

from tta_dev_primitives import RouterPrimitive, WorkflowContext
from tta_dev_primitives.exceptions import RouteNotFoundError, TTAError


def const(value: str):  # type: ignore[no-untyped-def]
    return lambda x, ctx: value


ROUTES = {"fast": const("fast-result"), "slow": const("slow-result")}


async def test_router_runs_the_named_route() -> None:
    """The route named by router_fn runs on the input."""
    router = RouterPrimitive(ROUTES, lambda x, ctx: "slow" if x > 10 else "fast")
    ctx = WorkflowContext()
    assert await router.execute(1, ctx) == "fast-result"
    assert await router.execute(11, ctx) == "slow-result"


async def test_async_router_function() -> None:
    """router_fn may be async."""

    async def choose(x: int, ctx: WorkflowContext) -> str:
        return "slow"

    assert await RouterPrimitive(ROUTES, choose).execute(0, WorkflowContext()) == "slow-result"


async def test_unknown_route_falls_to_default() -> None:
    """An unknown route name runs the default route."""
    router = RouterPrimitive(ROUTES, lambda x, ctx: "nope", default="fast")
    assert await router.execute(0, WorkflowContext()) == "fast-result"


async def test_unknown_route_without_default_names_route_and_known_routes() -> None:
    """With no default, an unknown route raises a ValueError naming it and the known routes."""
    router = RouterPrimitive(ROUTES, lambda x, ctx: "nope")
    with pytest.raises(RouteNotFoundError) as info:
        await router.execute(0, WorkflowContext())
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, TTAError)
    assert "'nope'" in str(info.value)
    assert "fast, slow" in str(info.value)


async def test_non_string_route_name_is_unknown() -> None:
    """A router_fn returning a non-str is an unknown route, not a crash."""
    router = RouterPrimitive(ROUTES, lambda x, ctx: 3)  # type: ignore[arg-type,return-value]
    with pytest.raises(RouteNotFoundError, match="3"):
        await router.execute(0, WorkflowContext())


def test_default_must_be_a_known_route() -> None:
    """A default that is not among the routes is refused at construction."""
    with pytest.raises(RouteNotFoundError, match="missing"):
        RouterPrimitive(ROUTES, const("fast"), default="missing")


def test_routes_must_be_a_mapping() -> None:
    """A list of steps where the routes by name belong is a TypeError naming routes."""
    with pytest.raises(TypeError, match="routes must be a mapping"):
        RouterPrimitive(list(ROUTES.values()), const("fast"))  # type: ignore[arg-type]


def test_empty_routes_are_refused() -> None:
    """A router with no routes is a ValueError."""
    with pytest.raises(ValueError, match="at least one route"):
        RouterPrimitive({}, const("x"))
