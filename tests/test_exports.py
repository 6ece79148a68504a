"""Each public module exports exactly its documented names, and they all import."""

from __future__ import annotations

import importlib

import pytest

CORE = {
    "WorkflowContext", "WorkflowPrimitive", "LambdaPrimitive",
    "SequentialPrimitive", "ParallelPrimitive", "RouterPrimitive",
}  # fmt: skip
PERFORMANCE = {
    "CachePrimitive", "MemoryPrimitive", "InMemoryStore", "create_memory_key", "turn_key",
}  # fmt: skip
OPERATIONS = {
    "ScoredMemory", "MemoryPage", "AddMemory", "GetMemory", "SearchMemory", "DeleteMemory",
    "ClearMemory", "MemoryOperation",
}  # fmt: skip
PUBLIC = {
    "tta_dev_primitives": CORE | PERFORMANCE | {"__version__"},
    "tta_dev_primitives.performance": PERFORMANCE | OPERATIONS,
    "tta_dev_primitives.memory": (PERFORMANCE - {"CachePrimitive"}) | OPERATIONS,
    "tta_dev_primitives.caching": {"CachePrimitive"},
    "tta_dev_primitives.stores": {
        "StorageBackend", "SearchableBackend", "Document", "InProcessBackend", "Put", "Delete",
        "Clear", "Write",
    },
    "tta_dev_primitives.core": CORE,
    "tta_dev_primitives.exceptions": {
        "TTAError", "RouteNotFoundError", "CacheKeyError", "InvalidMemoryKeyError",
        "InvalidMemoryValueError", "BackendError", "BackendUnavailableError",
        "IncompleteOperationError", "InvalidArgumentError", "InvalidArgumentTypeError",
        "UsageError", "EmbeddingError", "SearchNotReadyError", "BackendRefusedError",
        "EmbedderMismatchError", "StaleWriteError", "JournalError", "UnsentWritesError",
    },
    "tta_dev_primitives.embeddings": {
        "Embedder", "as_embedder", "encode_vector", "decode_vector",
    },
    "tta_dev_primitives.search": {"Analyzer", "MAX_QUERY_CHARS", "MAX_QUERY_TERMS"},
    "tta_dev_primitives.testing": {"capture_spans", "CapturedSpans"},
    "tta_dev_primitives.telemetry": {"TRACER_NAME", "METER_NAME"},
}  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_all_is_exactly_the_documented_names(module_name: str) -> None:
    """__all__ lists the documented names, no more, and every one of them exists."""
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC[module_name]
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        assert hasattr(module, name), name


def test_core_names_are_the_same_objects_everywhere() -> None:
    """tta_dev_primitives re-exports the very classes defined in .core."""
    top = importlib.import_module("tta_dev_primitives")
    core = importlib.import_module("tta_dev_primitives.core")
    perf = importlib.import_module("tta_dev_primitives.performance")
    for name in CORE:
        assert getattr(top, name) is getattr(core, name)
    for name in PERFORMANCE:
        assert getattr(top, name) is getattr(perf, name)
    memory = importlib.import_module("tta_dev_primitives.memory")
    caching = importlib.import_module("tta_dev_primitives.caching")
    for name in memory.__all__:
        assert getattr(perf, name) is getattr(memory, name)
    assert perf.CachePrimitive is caching.CachePrimitive
