"""Memory keys: ``user_id:session_id[:context-hash]`` and unique per-turn keys."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import threading
import time
from typing import Any

from tta_dev_primitives.exceptions import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidMemoryKeyError,
)

__all__ = ["create_memory_key", "turn_key"]


def _check_id(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(f"{name} must be str, got {type(value).__name__}")
    if not value:
        raise InvalidMemoryKeyError(f"{name} must not be empty")
    if ":" in value:
        raise InvalidMemoryKeyError(
            f"{name} {value!r} contains ':', which would let it collide with another id's keys"
        )
    return value


def create_memory_key(user_id: str, session_id: str, context: dict[str, Any] | None = None) -> str:
    """``"user_id:session_id"``, plus ``":" + md5(context JSON)[:8]`` when a context is given.

    The context is hashed as JSON with sorted keys (a value JSON cannot hold as its ``str``).
    Ids may not be empty or contain ``":"``: ``("a:b", "c")`` and ``("a", "b:c")`` would make
    the same key, and a scope ``"a"`` must never reach another user's memories.
    """
    base = f"{_check_id('user_id', user_id)}:{_check_id('session_id', session_id)}"
    if not context:
        return base
    try:
        text = json.dumps(context, sort_keys=True, default=str)
    except TypeError as exc:  # keys of two types, which cannot be sorted
        raise InvalidArgumentTypeError(f"context's keys must be of one type: {exc}") from exc
    except ValueError as exc:  # a cycle
        raise InvalidArgumentError(f"context cannot be made JSON: {exc}") from exc
    digest = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{base}:{digest}"


_turn_lock = threading.Lock()
_turn_counter = itertools.count()
_turn_last = 0
_process_tag = os.urandom(3).hex()


def _forked() -> None:
    """In a forked child (gunicorn and uvicorn workers, multiprocessing on Linux): a new process
    needs its own tag, or every worker's keys repeat the parent's and one turn overwrites
    another; and a lock that no thread of this process holds."""
    global _process_tag, _turn_lock
    _process_tag = os.urandom(3).hex()
    _turn_lock = threading.Lock()


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_forked)


def turn_key(user_id: str, session_id: str) -> str:
    """A new key ``"user_id:session_id:<unique suffix>"`` for one turn of a conversation.

    Unlike ``create_memory_key(user_id, session_id, value)``, which hashes the value (two turns
    that both said "OK, noted." would share one key, and the second write would replace the
    first), every call returns a different key. The suffix is 13 hex digits of microseconds since
    the epoch, kept strictly increasing within the process, then a per-process random tag and a
    counter, so keys sort by creation time within a process and never repeat across threads or
    processes by accident (a forked worker draws its own tag). Ids are checked as in
    ``create_memory_key``: empty ids and ids containing ``":"`` raise ``ValueError``.
    """
    global _turn_last
    base = f"{_check_id('user_id', user_id)}:{_check_id('session_id', session_id)}"
    with _turn_lock:
        micros = max(time.time_ns() // 1000, _turn_last + 1)
        _turn_last = micros
        count = next(_turn_counter) & 0xFFFF
    return f"{base}:{micros:013x}{_process_tag}{count:04x}"
