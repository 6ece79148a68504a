"""numpy, imported off the event loop before the first search needs it.

The search index imports numpy at its first scored search (the package itself never does), and
that import takes up to a second: on the loop, every other task would stall for it. So a
memory's first search awaits the import in a worker thread; later searches find it done.
"""

from __future__ import annotations

import asyncio
import importlib
import sys

__all__ = ["numpy_imported"]

_imported = False


async def numpy_imported() -> None:
    """Return once numpy is imported, importing it in a thread the first time."""
    global _imported
    if _imported:
        return
    module = sys.modules.get("numpy")  # imported already (by an embedder, say): no thread hop
    if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
        await asyncio.to_thread(importlib.import_module, "numpy")
    _imported = True
