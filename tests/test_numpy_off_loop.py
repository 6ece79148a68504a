"""The first search does not block the event loop on ``import numpy``: a worker thread does it."""

from __future__ import annotations

from conftest import run_python

PROBE = """
import asyncio, sys, threading

importers = []

class Watch:
    '''Records which thread first asks for numpy; finds nothing itself.'''

    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            importers.append(threading.current_thread() is threading.main_thread())
        return None

sys.meta_path.insert(0, Watch())

from tta_dev_primitives import MemoryPrimitive

async def main():
    memory = MemoryPrimitive()
    await memory.add("u:s:a", {"content": "hiking in the alps"})
    before = "numpy" in sys.modules
    found = await memory.search("hiking")
    print(before, importers, len(found))

asyncio.run(main())
"""


def test_the_first_search_imports_numpy_in_a_worker_thread() -> None:
    """numpy is not imported before the first search, and then only on a non-main thread."""
    assert run_python(PROBE) == "False [False] 1"
