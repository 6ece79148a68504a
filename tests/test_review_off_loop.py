"""Review of the off-loop analysis of large memories: what still ran a large value through
Python on the event loop."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import pytest

from tta_dev_primitives import MemoryPrimitive


class Probe(dict[str, Any]):
    """A field of a value that notes each thread that walks its items (a check or encoding)."""

    walked: ClassVar[list[int]] = []

    def items(self) -> Any:
        Probe.walked.append(threading.get_ident())
        return super().items()


LARGE_TEXT = "the garden grows tomatoes and basil " * 500  # 18,000 characters


async def test_the_langgraph_store_checks_a_large_value_off_the_loop() -> None:
    """``aput`` checked the whole value (a walk and a JSON encoding: 0.36 s for 150,000 small
    objects) on the event loop before ``add`` did it again on a worker thread."""
    pytest.importorskip("langgraph.store.base")
    from tta_dev_primitives.integrations.langgraph import MemoryPrimitiveStore

    store = MemoryPrimitiveStore(MemoryPrimitive())
    Probe.walked.clear()
    value = {"content": LARGE_TEXT, "meta": Probe(lang="en")}
    await store.aput(("docs",), "large", value)
    assert Probe.walked, "the value was never checked"
    assert threading.get_ident() not in Probe.walked
    item = await store.aget(("docs",), "large")
    assert item is not None
    assert item.value == {"content": LARGE_TEXT, "meta": {"lang": "en"}}
    # A small value is still checked at once, on the loop, as before.
    Probe.walked.clear()
    await store.aput(("docs",), "small", {"content": "a note", "meta": Probe(lang="en")})
    assert threading.get_ident() in Probe.walked
