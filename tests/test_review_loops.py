"""Connection's table of per-loop clients used from several threads at once."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from redis_server import RedisServer
from tta_dev_primitives.stores._redis.connection import Connection

pytestmark = pytest.mark.redis


def test_two_threads_first_use_while_a_closed_loop_is_pruned(redis_server: RedisServer) -> None:
    """A loop that used the connection has closed; two threads, each with its own loop, then
    use it for the first time at once. Both prune the closed loop's state from the table: each
    must still get its client (neither may fail on the other's change to the table)."""
    connection = Connection(redis_server.url, 5, scripts={}, own_keys=dict, on_cluster=lambda: None)
    old = asyncio.new_event_loop()
    old.run_until_complete(connection.ready())
    old.close()  # its client's sockets are left for the next first use to drop

    first_looking, second_done = threading.Event(), threading.Event()
    looked = 0

    def is_closed() -> bool:
        # The first thread to look is held mid-prune until the second has finished its own.
        nonlocal looked
        looked += 1
        if looked == 1:
            first_looking.set()
            second_done.wait(30)  # hang guard only
        return True

    old.is_closed = is_closed  # type: ignore[method-assign]
    outcome: dict[str, Any] = {}

    def use(name: str) -> None:
        try:
            asyncio.run(connection.ready())
            outcome[name] = "ok"
        except Exception as exc:  # the outcome is what the test reports
            outcome[name] = f"{type(exc).__name__}: {exc}"

    first = threading.Thread(target=use, args=("first",))
    first.start()
    assert first_looking.wait(30)
    use("second")
    second_done.set()
    first.join(30)
    assert outcome == {"first": "ok", "second": "ok"}
    asyncio.run(connection.aclose())
