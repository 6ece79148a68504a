"""Every Python code block in the README and the docs runs as written, in a fresh interpreter."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(path: Path) -> list[tuple[str, str]]:
    text = path.read_text()
    return [
        (f"{path.name}:{text[: m.start()].count(chr(10)) + 1}", m.group(1))
        for m in BLOCK.finditer(text)
    ]


BLOCKS = [
    block
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for block in python_blocks(path)
]


def test_readme_has_examples() -> None:
    """The README shows at least one runnable example."""
    assert BLOCKS


@pytest.mark.parametrize(("where", "code"), BLOCKS, ids=[w for w, _ in BLOCKS])
def test_readme_block_runs(where: str, code: str) -> None:
    """The block exits 0 (its own asserts and prints included)."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, f"{where} failed:\n{result.stderr}"
