"""Redis when it is there, in-process when it is not: the same code either way.

Set REDIS_URL (default redis://localhost:6379/0). With no Redis listening, every call still
succeeds, served in-process; writes are journalled and replayed when Redis comes back. If it
has not come back when the memory closes, those writes are lost with the process, and closing
says so (UnsentWritesError); pass journal_path= to keep them for the next run instead.
"""

import asyncio
import os

from tta_dev_primitives import MemoryPrimitive
from tta_dev_primitives.exceptions import UnsentWritesError


async def main() -> None:
    url = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
    try:
        async with MemoryPrimitive(url, namespace="tta:example", redis_timeout=0.5) as memory:
            await memory.add("greeting", {"content": "hello from whichever backend is up"})
            print("get:", await memory.get("greeting"))
            print("search:", await memory.search("hello"))
            info = memory.get_backend_info()
            print(f"backend: {info['backend']}  journalled: {info['journal_size']}")
            await memory.clear()
    except UnsentWritesError as lost:
        print(f"Redis did not come back: {lost.unsent} journalled writes lost on close")


if __name__ == "__main__":
    asyncio.run(main())
