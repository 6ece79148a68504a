"""Choose one of several primitives per input."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from tta_dev_primitives.exceptions import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RouteNotFoundError,
)
from tta_dev_primitives.telemetry._tracing import get_tracer

from ._base import StepFunction, WorkflowPrimitive, as_primitive
from ._context import WorkflowContext

__all__ = ["RouterPrimitive"]

T = TypeVar("T")

RouterFunction = Callable[[T, WorkflowContext], "str | Awaitable[str]"]


class RouterPrimitive(WorkflowPrimitive[T, Any]):
    """Runs the route that ``router_fn(input, context)`` names (sync or async).

    An unknown name falls to ``default``; with no default it raises ``RouteNotFoundError`` (a
    ``ValueError``) naming the route and the known ones. The span carries ``router.route``.
    """

    __slots__ = ("_default", "_router_fn", "_routes")

    def __init__(
        self,
        routes: Mapping[str, WorkflowPrimitive[T, Any] | StepFunction],
        router_fn: RouterFunction[T],
        default: str | None = None,
    ) -> None:
        if not isinstance(routes, Mapping):
            raise InvalidArgumentTypeError(
                f"routes must be a mapping of route names to steps, got {type(routes).__name__}"
            )
        if not routes:
            raise InvalidArgumentError("RouterPrimitive needs at least one route")
        for name in routes:
            if not isinstance(name, str):
                raise InvalidArgumentTypeError(
                    f"route names must be str (router_fn returns one), got {name!r} "
                    f"({type(name).__name__}); for an Enum, key by its .value"
                )
        if not callable(router_fn):
            raise InvalidArgumentTypeError(
                "router_fn must be a function (input, context) -> route name"
            )
        if default is not None and default not in routes:
            raise RouteNotFoundError(default, routes)
        self._routes: dict[str, WorkflowPrimitive[T, Any]] = {
            name: as_primitive(p) for name, p in routes.items()
        }
        self._router_fn = router_fn
        self._default = default

    @property
    def routes(self) -> dict[str, WorkflowPrimitive[T, Any]]:
        """The routes by name (a copy)."""
        return dict(self._routes)

    async def execute(self, input_data: T, context: WorkflowContext) -> Any:
        """Pick a route and run it."""
        chosen = self._router_fn(input_data, context)
        if inspect.isawaitable(chosen):
            chosen = await chosen
        route = chosen
        primitive = self._routes.get(route) if isinstance(route, str) else None
        if primitive is None:
            if self._default is None:
                raise RouteNotFoundError(chosen, self._routes)
            route, primitive = self._default, self._routes[self._default]
        if get_tracer() is not None:
            _annotate_route(route, chosen)
        return await primitive.execute(input_data, context)

    def __repr__(self) -> str:
        routes = ", ".join(f"{name}={p!r}" for name, p in self._routes.items())
        return f"RouterPrimitive({routes})"


def _annotate_route(route: str, chosen: Any) -> None:
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("router.route", route)
        if chosen != route:
            span.set_attribute("router.requested", _requested(chosen))


#: The longest ``router_fn`` answer put on a span as it is: a route name mistyped ("Billing."),
#: not a classifier's whole reply, which may quote what the user wrote.
REQUESTED_SHOWN = 40


def _requested(chosen: Any) -> str:
    """What the span says ``router_fn`` asked for: the text itself if it is short, else only
    its type and length."""
    if isinstance(chosen, str) and len(chosen) <= REQUESTED_SHOWN:
        return chosen
    if isinstance(chosen, str):
        return f"(str of {len(chosen):,} characters)"
    return f"({type(chosen).__name__})"
