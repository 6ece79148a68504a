"""Helpers for users' own tests: capture the spans a workflow produces.

    with capture_spans() as spans:
        await workflow.execute(data, WorkflowContext())
    print(spans.tree())
    assert spans.names() == [...]

Needs ``opentelemetry-sdk`` (in the ``dev`` extra). If no tracer provider is installed, an SDK
provider is installed as the global one; an existing SDK provider is reused.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from tta_dev_primitives.exceptions import UsageError

__all__ = ["CapturedSpans", "capture_spans"]


class CapturedSpans(list[Any]):
    """The finished spans of one capture, in end order (``opentelemetry.sdk`` ``ReadableSpan``)."""

    def names(self) -> list[str]:
        """Span names, in the order the spans ended."""
        return [span.name for span in self]

    def named(self, name: str) -> list[Any]:
        """Spans with this name, in end order."""
        return [span for span in self if span.name == name]

    def one(self, name: str) -> Any:
        """The only span with this name; ``AssertionError`` if there are none or several."""
        found = self.named(name)
        assert len(found) == 1, f"expected one span {name!r}, found {len(found)}: {self.names()}"
        return found[0]

    def children(self, parent: Any) -> list[Any]:
        """Direct children of ``parent``, in start order."""
        pid = parent.context.span_id
        kids = [s for s in self if s.parent is not None and s.parent.span_id == pid]
        return sorted(kids, key=lambda s: s.start_time or 0)

    def roots(self) -> list[Any]:
        """Spans whose parent is not among the captured ones, in start order."""
        ids = {s.context.span_id for s in self}
        roots = [s for s in self if s.parent is None or s.parent.span_id not in ids]
        return sorted(roots, key=lambda s: s.start_time or 0)

    def tree(self, attributes: Sequence[str] = ()) -> str:
        """The spans as an indented tree, with the named attributes where present."""
        lines: list[str] = []

        def walk(span: Any, depth: int) -> None:
            attrs = span.attributes or {}
            shown = ", ".join(f"{k}={attrs[k]!r}" for k in attributes if k in attrs)
            events = ", ".join(e.name for e in span.events)
            suffix = (f"  [{shown}]" if shown else "") + (f"  events: {events}" if events else "")
            lines.append(f"{'  ' * depth}{span.name}{suffix}")
            for child in self.children(span):
                walk(child, depth + 1)

        for root in self.roots():
            walk(root, 0)
        return "\n".join(lines)


_lock = threading.Lock()
_install_lock = threading.Lock()
_active: list[CapturedSpans] = []
_installed = False


def _install_processor() -> None:
    """Install (once) a span processor that hands finished spans to the active captures."""
    global _installed
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

    class _Forward(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            with _lock:
                for sink in _active:
                    sink.append(span)

    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        raise UsageError(
            f"capture_spans needs an opentelemetry-sdk TracerProvider, found {type(provider)!r}"
        )
    add(_Forward())
    _installed = True


@contextmanager
def capture_spans() -> Iterator[CapturedSpans]:
    """Collect every span that ends inside the ``with`` block."""
    with _install_lock:  # one processor even when threads start their first captures at once
        if not _installed:
            _install_processor()
    spans = CapturedSpans()
    with _lock:
        _active.append(spans)
    try:
        yield spans
    finally:
        with _lock:
            # By identity: captures are lists, and list.remove compares contents, so two
            # holding the same spans (both empty) would be confused.
            for i, active in enumerate(_active):
                if active is spans:
                    del _active[i]
                    break
