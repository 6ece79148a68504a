"""Static types: `mypy --strict` accepts tests/typing/check_*.py, whose `assert_type`s pin them."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKS = sorted((ROOT / "tests" / "typing").glob("check_*.py"))


@pytest.mark.parametrize("path", CHECKS, ids=[p.name for p in CHECKS])
def test_types_hold_under_mypy_strict(path: Path) -> None:
    """Every ``assert_type`` holds and every expected error is reported (unused ignores fail)."""
    from mypy import api

    out, err, status = api.run(
        [
            "--strict",
            "--warn-unused-ignores",
            "--no-incremental",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            str(path),
        ]
    )
    assert status == 0, out + err
