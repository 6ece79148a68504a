"""The ``tta-primitives`` command: ``demo`` (zero setup) and operator commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    from tta_dev_primitives.cli import _demo, _memory_cmd

    parser = argparse.ArgumentParser(
        prog="tta-primitives",
        description="Composable async workflow primitives and hybrid memory for LLM agents.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _demo.add_parser(sub)
    _memory_cmd.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
