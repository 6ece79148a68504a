"""One memory operation's span and counter, so the primitives don't repeat telemetry code.

Span names are ``memory.<op>`` (add, get, search, delete, clear, size, touch, list, forget,
flush, close for ``aclose()``, and recover for the background replay after an outage);
attributes ``memory.backend`` (``redis`` or ``in_memory``; ``none`` when no backend answered),
``memory.namespace``, ``memory.fallback`` (only when Redis failed and the operation was served
in-process), ``memory.hit`` (get), ``memory.result_count`` and ``memory.search_mode``
(search). With an embedder, ``memory.embed`` spans (``embed.model``, ``embed.texts``) time each
call to it, under the add or search that made it. Events: ``memory.fallback``
on a switch to the in-process store, ``memory.journal_dropped`` (``memory.dropped_writes``) when a
full journal drops writes (or a close during an outage leaves them unsent),
``memory.journal_unconfirmed`` (``memory.unconfirmed_writes``) when that close leaves writes a
replay sent without seeing the reply, ``memory.dead_letters`` when Redis refuses replayed writes
for their data, and ``memory.recovered`` (``memory.replayed_writes``) on the return to Redis.
``memory.stale=True`` marks an add, delete or clear that Redis rejected as stale (it raised
``StaleWriteError``), or the recovery whose replay found writes older than what Redis holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from functools import cache
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from tta_dev_primitives.telemetry._metrics import instruments
from tta_dev_primitives.telemetry._tracing import get_tracer, record_failure

if TYPE_CHECKING:
    from opentelemetry.trace import Span


class _Served(Protocol):
    """What ``stores._events.Served`` tells: the backend that served a call, and if it fell back."""

    @property
    def backend(self) -> str: ...
    @property
    def fallback(self) -> bool: ...


__all__ = [
    "NOT_SERVED",
    "MemoryOp",
    "StoreTelemetry",
    "current_span_attribute",
    "current_span_event",
    "embed_span",
]


#: The innermost ``MemoryOp`` entered in this context: its ``__exit__`` resets it, which tells
#: whether it runs in the context it was entered in (see ``MemoryOp.__exit__``).
_ENTERED: ContextVar[object] = ContextVar("tta_memory_op", default=None)

#: ``memory.backend`` of a call no backend answered: cancelled, or refused before it reached
#: one (bad input, the embedder failed), on a memory with a remote backend.
NOT_SERVED = "none"


class MemoryOp:
    """Context manager around one memory operation: a current span (if tracing) and a count."""

    __slots__ = (
        "_entered",
        "_reported",
        "_token",
        "attributes",
        "backend",
        "fallback",
        "name",
        "outcome",
        "remote",
        "span",
    )

    def __init__(
        self,
        name: str,
        namespace: str,
        *,
        traced: bool = True,
        root: bool = False,
        remote: str | None = None,
    ) -> None:
        self.name = name
        self.backend = "in_memory"
        # The remote backend's kind, if any: an operation it answered with an error (a refusal,
        # a stale write) was its, though no ``Served`` came back to say so.
        self.remote = remote
        self._reported = False
        self.fallback = False
        self.outcome = "ok"
        self.attributes: dict[str, Any] = {}
        self._token: Token[Any] | None = None
        self._entered: Token[object] | None = None
        tracer = get_tracer() if traced else None
        if tracer is None:
            self.span: Span | None = None
        else:
            # Only reached with a tracer, so the tracing API is already imported.
            from opentelemetry.context import Context
            from opentelemetry.trace import SpanKind

            # ``root``: a trace of its own, not a child of whichever request's span was current
            # (the background recovery outlives the call that started it).
            parent = Context() if root else None
            self.span = tracer.start_span(f"memory.{name}", context=parent, kind=SpanKind.INTERNAL)
            if self.span.is_recording():
                self.span.set_attribute("memory.namespace", namespace)

    def served(self, backend: str, *, fallback: bool = False) -> None:
        """Record which backend served the operation, and whether it was a fallback."""
        self.backend = backend
        self.fallback = fallback
        self._reported = True

    def report(self, served: _Served) -> None:
        """Record a hybrid store's ``Served`` result."""
        self.backend = served.backend
        self.fallback = served.fallback
        self._reported = True

    def event(self, name: str, attributes: dict[str, Any] | None = None) -> None:
        """Add a span event (fallback, recovery) if tracing."""
        if self.span is not None and self.span.is_recording():
            self.span.add_event(name, attributes or {})

    def __enter__(self) -> MemoryOp:
        if self.span is not None:  # the current span until __exit__
            from opentelemetry import context, trace

            self._token = context.attach(trace.set_span_in_context(self.span))
            self._entered = _ENTERED.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A cancelled operation (its request timed out, its client went away) did not fail:
        # counted as "cancelled" and its span left unmarked, as composition spans are. So is
        # one whose coroutine was closed (its loop closed with it pending, then collected).
        cancelled = isinstance(exc, (asyncio.CancelledError, GeneratorExit))
        if cancelled:
            self.outcome = "cancelled"
        elif exc is not None:
            self.outcome = "error"
        if exc is not None and not self._reported and self.remote is not None:
            # No backend said it served the call. Its refusal is the remote's; anything else
            # (a cancellation, bad input, the embedder) ended it before either answered, and
            # must not count as served in-process (a dashboard's fallback share).
            self.backend = self.remote if not cancelled and _from_remote(exc) else NOT_SERVED
        instruments().memory_operations.add(1, _attributes(self.name, self.backend, self.outcome))
        span = self.span
        if span is None:
            return
        if span.is_recording():
            if cancelled:
                span.add_event("tta.cancelled")  # not a failure, but not a success either
            span.set_attribute("memory.backend", self.backend)
            if self.fallback:
                span.set_attribute("memory.fallback", True)
            if self.attributes:
                span.set_attributes(self.attributes)
            if exc is not None and not cancelled:
                # Without its message: it names keys.
                record_failure(span, exc, message=False)
        self._leave()
        span.end()

    def _leave(self) -> None:
        """Make the span no longer current, if this runs in the context ``__enter__`` did.
        A coroutine closed by the garbage collector (its loop closed without cancelling it)
        runs its exit in whatever context is current then: that context never had the span,
        and detaching there would fail (OpenTelemetry logs it as an error)."""
        from opentelemetry import context

        if self._entered is None or self._token is None:
            return  # never entered
        try:
            _ENTERED.reset(self._entered)  # ValueError in another context
        except ValueError:
            return
        context.detach(self._token)


def _from_remote(exc: BaseException) -> bool:
    """Whether ``exc`` is the remote backend's answer (it refused, a newer write stood, it
    could not be read in time, it failed part-way or was away for a call that needs it), not
    the journal's file or a cancellation."""
    from tta_dev_primitives.exceptions import BackendError, JournalError, UnsentWritesError

    return isinstance(exc, BackendError) and not isinstance(exc, JournalError | UnsentWritesError)


@cache
def _attributes(operation: str, backend: str, outcome: str) -> dict[str, str]:
    """Counter attributes, built once per combination (there are a few dozen at most)."""
    return {"memory.operation": operation, "memory.backend": backend, "memory.outcome": outcome}


def current_span_event(name: str, attributes: dict[str, Any]) -> None:
    """Add an event to the current span, if anyone collects spans (else costs nothing)."""
    if get_tracer() is None:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, attributes)


def current_span_attribute(name: str, value: Any) -> None:
    """Set an attribute on the current span, if anyone collects spans (else costs nothing)."""
    if get_tracer() is None:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(name, value)


class StoreTelemetry:
    """Turns a hybrid store's events into counters, span events and a ``memory.recover`` span.

    It implements ``stores._events.StoreEvents``. An event raised inside an operation lands on
    that operation's span (it is the current span); recovery runs in a background task and
    gets a span of its own.
    """

    __slots__ = ("namespace",)

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def fallback(self, error: BaseException) -> None:
        instruments().fallbacks.add(1)
        current_span_event("memory.fallback", {"memory.error": type(error).__name__})

    def journal_dropped(self, dropped: int) -> None:
        instruments().journal_dropped.add(dropped)
        current_span_event("memory.journal_dropped", {"memory.dropped_writes": dropped})

    def journal_unconfirmed(self, count: int) -> None:
        instruments().journal_unconfirmed.add(count)
        current_span_event("memory.journal_unconfirmed", {"memory.unconfirmed_writes": count})

    def dead_letters(self, count: int) -> None:
        instruments().dead_letters.add(count)
        current_span_event("memory.dead_letters", {"memory.dead_letters": count})

    def stale(self, count: int) -> None:
        instruments().stale_writes.add(count)
        current_span_attribute("memory.stale", True)

    def recovery_started(self) -> object:
        return MemoryOp("recover", self.namespace, root=True).__enter__()

    def recovery_ended(
        self, token: object, served: Any, error: BaseException | None = None
    ) -> None:
        assert isinstance(token, MemoryOp)
        if served.value:
            instruments().replayed_writes.add(served.value)
        if error is None:
            token.report(served)
            instruments().recoveries.add(1)
            token.event("memory.recovered", {"memory.replayed_writes": served.value})
            token.__exit__(None, None, None)
            return
        # A probe the remote did not answer, or a replay cut short: an error (or a
        # cancellation) of the remote's recovery, not a success served in-process.
        token.remote = served.backend
        token.__exit__(type(error), error, error.__traceback__)


@contextmanager
def embed_span(model: str, texts: int) -> Iterator[None]:
    """A ``memory.embed`` span around a call to the embedder, if anyone collects spans."""
    tracer = get_tracer()
    if tracer is None:
        yield
        return
    from opentelemetry.trace import SpanKind

    attributes: dict[str, str | int] = {"embed.model": model, "embed.texts": texts}
    with tracer.start_as_current_span(
        "memory.embed",
        kind=SpanKind.INTERNAL,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        except Exception as exc:
            record_failure(span, exc, message=False)  # an embedder's error may quote the text
            raise
