"""Span capture for the CLI: the SDK if installed, otherwise a note saying how to get it."""

from __future__ import annotations

from typing import Any

ATTRIBUTES = ("memory.backend", "memory.fallback", "memory.result_count", "memory.hit",
              "router.route", "cache.hit")  # fmt: skip


class Tracing:
    """Collects spans of one turn at a time through ``testing.capture_spans``."""

    def __init__(self, capture: Any, spans: Any) -> None:
        self._capture = capture
        self._spans = spans

    @classmethod
    def start(cls) -> Tracing:
        try:
            from tta_dev_primitives.testing import capture_spans

            capture = capture_spans()
            spans = capture.__enter__()
        except ImportError:
            return cls(None, None)
        return cls(capture, spans)

    def reset(self) -> None:
        if self._spans is not None:
            self._spans.clear()

    def backends(self) -> str:
        """Which backend served this turn's memory operations, and any fallback."""
        if self._spans is None:
            return "(install opentelemetry-sdk to see)"
        seen: dict[str, bool] = {}
        for span in self._spans:
            attrs = span.attributes or {}
            if "memory.backend" in attrs:
                backend = str(attrs["memory.backend"])
                seen[backend] = seen.get(backend, False) or bool(attrs.get("memory.fallback"))
        return ", ".join(f"{b}{' (fallback)' if fb else ''}" for b, fb in seen.items()) or "-"

    def tree(self) -> str:
        if self._spans is None:
            return "  (install opentelemetry-sdk to see it: the package's demo extra has it)"
        return "\n".join("  " + line for line in self._spans.tree(ATTRIBUTES).splitlines())
