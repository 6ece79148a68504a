"""The event loop a sync call blocks while its work runs on the sync portal's loop.

Set (in the work's context) by ``integrations._portal.run_sync`` when called inside a running
loop: closing a connection there must not wait for that loop to close its own client, which it
can only do once the sync call returns.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

__all__ = ["blocked_loop"]

blocked_loop: ContextVar[asyncio.AbstractEventLoop | None] = ContextVar(
    "tta_blocked_loop", default=None
)
