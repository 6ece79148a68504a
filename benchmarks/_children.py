"""A benchmark's worker processes: the script run again with ``--worker``, its job on stdin.

The worker reads one JSON line (its spec), says ``"ready"`` on stdout once set up (unless it
is timed from its start: ``ready=False``), reads a second line (``go``), and prints its result
as its last line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["Child", "start_all"]


class Child:
    """A worker process: started with its job, ready once it has said so."""

    def __init__(
        self, script: str | Path, spec: dict[str, Any], *, ready: bool = True,
        timeout: float = 3600.0, wait: bool = True,
    ) -> None:  # fmt: skip
        """``wait=False``: return once started; ``wait_ready()`` then waits for its "ready"."""
        self.timeout = timeout
        self.spec, self.ready = spec, ready
        self.proc = subprocess.Popen(
            [sys.executable, "-W", "ignore", str(script), "--worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Until the worker says it is ready (nothing, for one timed from its start)."""
        assert self.proc.stdout is not None
        if self.ready and json.loads(self.proc.stdout.readline() or '"died"') != "ready":
            named = " ".join(str(self.spec[k]) for k in ("role", "side") if k in self.spec)
            raise RuntimeError(f"worker {named} did not start")

    def go(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def result(self) -> dict[str, Any]:
        out, _ = self.proc.communicate(timeout=self.timeout)
        return dict(json.loads(out.strip().splitlines()[-1]))


def start_all(script: str | Path, specs: list[dict[str, Any]], **options: Any) -> list[Child]:
    """Workers started all at once (they set up side by side), returned once all are ready:
    what a list of ``Child`` gives, without waiting for each before starting the next."""
    children = [Child(script, spec, wait=False, **options) for spec in specs]
    for child in children:
        child.wait_ready()
    return children
