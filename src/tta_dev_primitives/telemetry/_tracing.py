"""Span plumbing shared by every primitive.

The no-SDK path must cost next to nothing, so the decision "is anyone collecting spans?" is made
once: OpenTelemetry lets a global tracer provider be set only once per process, so after a real
provider appears we keep its tracer for good, and until then each call reads one module global.

Nor does importing this package import the tracing API: no provider can have been set until some
code has imported ``opentelemetry.trace``, so until then a dictionary lookup in ``sys.modules``
answers "no" (the environment variable that auto-loads a provider makes us import it at once).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from contextvars import ContextVar
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, TypeVar

from tta_dev_primitives._version import __version__

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from tta_dev_primitives.core._context import WorkflowContext

__all__ = [
    "TRACER_NAME",
    "context_attributes",
    "get_tracer",
    "mark_own",
    "record_failure",
    "traced_execute",
]

TRACER_NAME = "tta_dev_primitives"

_T = TypeVar("_T")
_U = TypeVar("_U")

_TRACE_MODULE = "opentelemetry.trace"
_ENV_PROVIDER = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
if _ENV_PROVIDER:
    import opentelemetry.trace  # noqa: F401 (the provider named by the environment loads via it)

_api: ModuleType | None = None
#: ``_api`` once the provider turned out to make no-op tracers: nothing will ever be traced.
_OFF = ModuleType("tracing switched off")
_tracer: Tracer | None = None
_INTERNAL: Any = None  # SpanKind.INTERNAL, taken from the API module once a tracer exists


def get_tracer() -> Tracer | None:
    """The library's tracer once a real tracer provider is installed; ``None`` until then."""
    global _tracer, _api
    if _tracer is not None:
        return _tracer
    api = _api
    if api is _OFF:
        return None
    if api is None:
        api = sys.modules.get(_TRACE_MODULE)
        if api is None:
            return None  # nobody has imported the tracing API: no provider can be set
        _api = api
    # The API keeps the provider in a global: reading it costs ~20 ns where the public
    # get_tracer_provider() costs ~650 ns (it consults os.environ). Should a release rename
    # it, getattr's default sends us to the public function rather than never tracing.
    if not _ENV_PROVIDER and getattr(api, "_TRACER_PROVIDER", api) is None:
        return None
    provider = api.get_tracer_provider()
    if isinstance(provider, api.ProxyTracerProvider):
        return None
    tracer: Tracer = provider.get_tracer(TRACER_NAME, __version__)
    if isinstance(tracer, api.NoOpTracer):
        # Tracing switched off for good (``NoOpTracerProvider``, or the SDK under
        # ``OTEL_SDK_DISABLED=true``): its spans record nothing, so make none, as with no
        # provider, instead of paying ~4 us a step for them. The provider is set only once.
        _api = _OFF
        return None
    global _INTERNAL
    _INTERNAL = api.SpanKind.INTERNAL
    _tracer = tracer
    return tracer


def context_attributes(context: WorkflowContext | None) -> dict[str, str]:
    """Span attributes naming the workflow run: ids only, never state or metadata contents."""
    if context is None:
        return {}
    attrs = {"tta.correlation_id": context.correlation_id}
    if context.workflow_id is not None:
        attrs["tta.workflow_id"] = context.workflow_id
    if context.session_id is not None:
        attrs["session.id"] = context.session_id
    return attrs


def record_failure(span: Any, exc: BaseException, *, message: bool) -> None:
    """Mark ``span`` failed by ``exc``: an ``exception`` event and an ERROR status.

    With ``message`` the event is OpenTelemetry's own (type, message, traceback). Without it,
    only the exception's type: this library's errors name the keys and scopes they were about
    (``forget('u1')``, ``touch('u1:s1:...')``), an embedder's may quote the text, and user ids
    and memory contents never go on spans. The caller still gets the exception whole.
    """
    if not span.is_recording():
        return
    from opentelemetry.trace import Status, StatusCode

    kind = type(exc)
    name = f"{kind.__module__}.{kind.__qualname__}"
    recorded = False
    if message:
        try:
            chain = _chain(exc)
            if any(_own_error(link) for link in chain):
                # The caller's error wraps one of ours (``raise ... from e``, or raised while
                # handling it): its traceback would quote ours in full, keys and all (R29).
                attributes = {
                    "exception.type": name,
                    "exception.message": str(exc),
                    "exception.stacktrace": _redacted_traceback(chain),
                    "exception.escaped": "False",
                }
                span.add_event("exception", attributes)
            else:
                span.record_exception(exc)
            recorded = True
        except Exception:  # its str() raised: tracing must not replace the caller's error
            pass
    if not recorded:
        span.add_event("exception", {"exception.type": name, "exception.escaped": "False"})
    span.set_status(Status(StatusCode.ERROR, kind.__name__))


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling, outermost first."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and all(link is not seen for seen in chain):
        chain.append(link)
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    return chain


def _redacted_traceback(chain: list[BaseException]) -> str:
    """The chain's tracebacks as Python prints them, but this library's errors by their type
    only (their messages name keys and scopes)."""
    import traceback

    parts: list[str] = []
    for link in reversed(chain):
        if parts:
            parts.append("\nThe above exception led to the following exception:\n\n")
        frames = "".join(traceback.format_tb(link.__traceback__))
        if frames:
            parts.append("Traceback (most recent call last):\n" + frames)
        kind = type(link)
        if _own_error(link):
            parts.append(f"{kind.__module__}.{kind.__qualname__}\n")
        else:
            parts.extend(traceback.format_exception_only(link))
    return "".join(parts)


#: Set on an error of another type that the library raised about its caller's data (a
#: ``pydantic.ValidationError`` of a typed memory operation quotes the key and value).
_OWN_MARK: Final = "_tta_dev_primitives_own"


def mark_own(exc: BaseException) -> None:
    """Make spans record ``exc`` by its type only, as this library's own errors are."""
    with suppress(AttributeError, TypeError):  # (a type without attributes: none known)
        setattr(exc, _OWN_MARK, True)


def _own_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of this library's errors (whose messages name keys and scopes)."""
    from tta_dev_primitives.exceptions import TTAError

    return isinstance(exc, TTAError) or getattr(exc, _OWN_MARK, False) is True


#: The primitive whose run's span is current, and the ``execute`` it ran: a subclass's
#: ``execute`` calling ``super().execute(...)`` (another class's) runs inside its own span, not
#: a second one of the same name; a primitive running itself again (recursion) gets one.
_running: ContextVar[tuple[object, object] | None] = ContextVar("tta_traced_run", default=None)


async def _run_in_span(
    tracer: Tracer,
    owner: object,
    impl: Callable[..., Awaitable[_U]],
    attributes: Mapping[str, Any],
    input_data: _T,
    context: WorkflowContext,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> _U:
    # ``impl``'s coroutine is made here, not by the caller: a run cancelled before it starts
    # (its task cancelled at once) closes this coroutine unstarted, and one made beforehand
    # would be left never awaited (a RuntimeWarning, an error under -W error).
    token = _running.set((owner, impl))
    try:
        with tracer.start_as_current_span(
            getattr(owner, "name", type(owner).__name__),
            kind=_INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await impl(owner, input_data, context, *args, **kwargs)
            except Exception as exc:
                # The caller's own errors in full; the library's without their message.
                record_failure(span, exc, message=not _own_error(exc))
                raise
            except asyncio.CancelledError:
                # Not an error (no status), but not a success either: a branch cancelled when a
                # sibling failed read as a short successful run (review R17).
                span.add_event("tta.cancelled")
                raise
    finally:
        _running.reset(token)


def _takes_more_than_three(impl: Callable[..., Any]) -> bool:
    """Whether ``impl`` takes arguments past ``(self, input_data, context)``."""
    try:
        parameters = inspect.signature(impl).parameters.values()
    except (TypeError, ValueError):  # no signature to read: pass everything through
        return True
    return len(parameters) != 3 or any(
        p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters
    )


def traced_execute(
    impl: Callable[..., Awaitable[_U]],
) -> Callable[..., Awaitable[_U]]:
    """Wrap a primitive's ``execute`` so each run is a span, made current so that spans nest.

    With no provider the wrapper returns ``impl``'s coroutine itself: no extra frame, one check.
    Arguments past ``(input_data, context)`` (a subclass's own options) pass through.
    """

    def execute(self: Any, input_data: _T, context: WorkflowContext) -> Awaitable[_U]:
        tracer = _tracer if _tracer is not None else get_tracer()
        if tracer is None:
            return impl(self, input_data, context)
        running = _running.get()
        if running is not None and running[0] is self and running[1] is not impl:
            return impl(self, input_data, context)  # super().execute inside this run's span
        attributes = {"tta.primitive.type": type(self).__name__, **context_attributes(context)}
        return _run_in_span(tracer, self, impl, attributes, input_data, context, (), {})

    def execute_with_options(
        self: Any, input_data: _T, context: WorkflowContext, *args: Any, **kwargs: Any
    ) -> Awaitable[_U]:
        tracer = _tracer if _tracer is not None else get_tracer()
        if tracer is None:
            return impl(self, input_data, context, *args, **kwargs)
        running = _running.get()
        if running is not None and running[0] is self and running[1] is not impl:
            return impl(self, input_data, context, *args, **kwargs)
        attributes = {"tta.primitive.type": type(self).__name__, **context_attributes(context)}
        return _run_in_span(tracer, self, impl, attributes, input_data, context, args, kwargs)

    # The common ``execute(self, input_data, context)`` gets the wrapper without ``*args``: it
    # is every step's hot path, and packing arguments would cost it ~0.1 us with no SDK.
    if _takes_more_than_three(impl):
        execute = execute_with_options

    execute.__wrapped__ = impl  # type: ignore[attr-defined]
    execute.__name__ = impl.__name__
    execute.__qualname__ = impl.__qualname__
    execute.__doc__ = impl.__doc__
    execute._tta_traced = True  # type: ignore[attr-defined]
    return execute
