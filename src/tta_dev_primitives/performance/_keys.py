"""Memory keys: ``user_id:session_id[:context-hash]``."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tta_dev_primitives.exceptions import InvalidArgumentTypeError, InvalidMemoryKeyError

__all__ = ["create_memory_key"]


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

    Ids may not be empty or contain ``":"``: ``("a:b", "c")`` and ``("a", "b:c")`` would make
    the same key, and a scope ``"a"`` must never reach another user's memories.
    """
    base = f"{_check_id('user_id', user_id)}:{_check_id('session_id', session_id)}"
    if not context:
        return base
    text = json.dumps(context, sort_keys=True, default=str)
    digest = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{base}:{digest}"
