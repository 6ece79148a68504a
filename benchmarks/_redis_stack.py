"""The Query Engine server the tests use (``tests/query_engine_server.py``), for benchmarks."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from query_engine_server import find_redis_json, find_redis_stack, start_redis_stack

__all__ = ["find_redis_json", "find_redis_stack", "start_redis_stack"]
