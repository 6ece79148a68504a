"""The in-process LRU counts what it evicts: backend info, a counter, and one warning."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from uuid import uuid4

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from redis_server import RedisServer
from tta_dev_primitives import InMemoryStore, MemoryPrimitive
from tta_dev_primitives.telemetry._metrics import Instruments


@pytest.fixture
def evicted_counter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemoryMetricReader]:
    """The library's counters on a real SDK meter with an in-memory reader, for this test."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    counters = Instruments(provider.get_meter("tta_dev_primitives"))
    monkeypatch.setattr("tta_dev_primitives.stores._inprocess.instruments", lambda: counters)
    yield reader
    provider.shutdown()


def evictions(reader: InMemoryMetricReader) -> dict[bool, int]:
    """``tta.memory.evicted`` totals by their ``memory.standby`` attribute."""
    totals: dict[bool, int] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "tta.memory.evicted":
                    for point in metric.data.data_points:
                        standby = bool(point.attributes["memory.standby"])
                        totals[standby] = totals.get(standby, 0) + int(point.value)
    return totals


async def test_evictions_are_counted_and_warned_about_once(
    evicted_counter: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    """Past max_size, each eviction counts in info and the counter; one warning names max_size."""
    memory = MemoryPrimitive(max_size=10)
    caplog.set_level(logging.WARNING, logger="tta_dev_primitives")
    for i in range(10):
        await memory.add(f"u:s:{i}", {"content": str(i)})
    assert memory.get_backend_info()["evicted"] == 0
    assert evictions(evicted_counter) == {}
    for i in range(10, 35):
        await memory.add(f"u:s:{i}", {"content": str(i)})
    assert memory.get_backend_info()["evicted"] == 25
    assert await memory.size() == 10
    assert evictions(evicted_counter) == {False: 25}
    warnings = [r for r in caplog.records if "evicts" in r.getMessage()]
    assert len(warnings) == 1
    assert "max_size=10" in warnings[0].getMessage()
    assert "MemoryPrimitive(max_size=...)" in warnings[0].getMessage()
    await memory.aclose()


@pytest.mark.redis
async def test_the_standby_copy_counts_evictions_without_warning(
    redis_server: RedisServer,
    evicted_counter: InMemoryMetricReader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With Redis, the in-process copy's evictions lose nothing: counted as standby, no warning."""
    memory = MemoryPrimitive(redis_server.url, max_size=5, namespace=f"ev:{uuid4().hex[:8]}")
    caplog.set_level(logging.WARNING, logger="tta_dev_primitives")
    for i in range(12):
        await memory.add(f"u:s:{i}", {"content": str(i)})
    assert memory.using_redis
    assert memory.get_backend_info()["evicted"] == 7
    assert evictions(evicted_counter) == {True: 7}
    assert await memory.size() == 12  # Redis holds every one
    assert not [r for r in caplog.records if "evicts" in r.getMessage()]
    await memory.clear()
    await memory.aclose()


def test_the_sync_store_counts_its_evictions() -> None:
    """InMemoryStore.evicted counts memories dropped past max_size."""
    store = InMemoryStore(max_size=3)
    for i in range(8):
        store.add(f"u:s:{i}", {"content": str(i)})
    assert store.evicted == 5
    assert store.size() == 3
