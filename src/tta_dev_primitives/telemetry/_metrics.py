"""Counters, created through the OpenTelemetry metrics API.

Instruments from the API's proxy meter are no-ops until a meter provider is installed, and then
forward to it, so nothing here needs to know whether an SDK is configured. Names:

- ``tta.memory.operations`` (unit ``{operation}``): attributes ``memory.operation``
  (add, get, search, delete, clear, size, flush, recover), ``memory.backend`` (redis, in_memory,
  none: no backend answered),
  ``memory.outcome`` (ok, hit, miss, error, cancelled).
- ``tta.memory.fallbacks``: switches from Redis to the in-process fallback.
- ``tta.memory.recoveries``: returns to Redis after an outage.
- ``tta.memory.replayed_writes``: journalled writes replayed into Redis on recovery.
- ``tta.memory.journal_dropped``: journalled writes dropped because the journal was full, or
  still unsent when ``aclose()`` ran during an outage.
- ``tta.memory.journal_unconfirmed``: journalled writes still waiting when ``aclose()`` ran
  during an outage that a replay had sent without seeing the reply (maybe stored, maybe lost).
- ``tta.memory.dead_letters``: journalled writes the backend refused for their data on replay.
- ``tta.memory.stale_writes``: writes Redis rejected as stale (a newer change of the key stood):
  a live write after its one retry (the caller got ``StaleWriteError``), or a replayed one.
- ``tta.memory.invalid_values``: values found in a backend that were not valid memories.
- ``tta.memory.evicted``: memories the in-process store evicted past ``max_size``; attribute
  ``memory.standby`` (true when Redis still holds them: the stand-by copy's evictions).
- ``tta.cache.requests``: ``CachePrimitive`` lookups, attribute ``cache.hit`` (true/false).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from tta_dev_primitives._version import __version__

from ._tracing import TRACER_NAME

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Meter

__all__ = ["Instruments", "instruments"]

METER_NAME = TRACER_NAME


class Instruments:
    """The library's counters; one instance per process, made on first use."""

    __slots__ = (
        "cache_requests",
        "dead_letters",
        "evicted",
        "fallbacks",
        "invalid_values",
        "journal_dropped",
        "journal_unconfirmed",
        "memory_operations",
        "recoveries",
        "replayed_writes",
        "stale_writes",
    )

    def __init__(self, meter: Meter) -> None:
        self.memory_operations: Counter = meter.create_counter(
            "tta.memory.operations", unit="{operation}", description="Memory operations served"
        )
        self.fallbacks: Counter = meter.create_counter(
            "tta.memory.fallbacks", unit="{event}", description="Switches to in-process fallback"
        )
        self.recoveries: Counter = meter.create_counter(
            "tta.memory.recoveries", unit="{event}", description="Returns to Redis after outage"
        )
        self.replayed_writes: Counter = meter.create_counter(
            "tta.memory.replayed_writes", unit="{write}", description="Writes replayed on recovery"
        )
        self.journal_dropped: Counter = meter.create_counter(
            "tta.memory.journal_dropped",
            unit="{write}",
            description="Journalled writes dropped: journal full, or unsent at close",
        )
        self.journal_unconfirmed: Counter = meter.create_counter(
            "tta.memory.journal_unconfirmed",
            unit="{write}",
            description="Journalled writes sent without a reply seen, still waiting at close",
        )
        self.dead_letters: Counter = meter.create_counter(
            "tta.memory.dead_letters", unit="{write}", description="Replayed writes refused"
        )
        self.stale_writes: Counter = meter.create_counter(
            "tta.memory.stale_writes", unit="{write}", description="Writes rejected as stale"
        )
        self.invalid_values: Counter = meter.create_counter(
            "tta.memory.invalid_values", unit="{value}", description="Unreadable stored values"
        )
        self.evicted: Counter = meter.create_counter(
            "tta.memory.evicted", unit="{memory}", description="In-process LRU evictions"
        )
        self.cache_requests: Counter = meter.create_counter(
            "tta.cache.requests", unit="{request}", description="CachePrimitive lookups"
        )


@cache
def instruments() -> Instruments:
    """The process-wide counters (proxies until a meter provider is set).

    The metrics API is imported here, at the first count, not when the package is imported.
    """
    from opentelemetry import metrics

    return Instruments(metrics.get_meter(METER_NAME, __version__))
