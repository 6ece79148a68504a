"""Run this library's coroutines from synchronous framework methods (LangChain's ``invoke``).

The coroutine runs on one private event loop in a daemon thread, so a memory used only through
sync calls keeps one Redis connection pool instead of one per call. Called from inside a running
event loop, a sync method would block that loop: that raises instead, naming the async method.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _portal_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="tta-dev-primitives-sync", daemon=True
            )
            thread.start()
            _loop = loop
        return _loop


def run_sync(coro: Coroutine[Any, Any, T], *, instead: str) -> T:
    """Run ``coro`` to completion from sync code; ``instead`` names the async method to await."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run_coroutine_threadsafe(coro, _portal_loop()).result()
    coro.close()
    raise RuntimeError(
        f"called synchronously inside a running event loop, which it would block; "
        f"await {instead} instead"
    )
