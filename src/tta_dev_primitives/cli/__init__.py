"""The ``tta-primitives`` command: ``demo`` (zero setup) and operator commands.

Options of a command may come before or after its sub-command (``memory --json stats`` and
``memory stats --json`` are the same). A usage error prints the usage of the sub-command that
failed. Errors are one line on stderr; results go to stdout.

Exit status:
    0   success
    1   operational error: Redis unreachable or refusing, no such key, no such file, bad input data
    2   usage error: unknown option, missing argument, no store given, an unconfirmed ``clear``
    130 interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["EXIT_STATUSES", "HelpFormatter", "main"]

EXIT_STATUSES = """\
exit status:
  0    success
  1    operational error: Redis unreachable or refusing, no such key, no such file, bad data
  2    usage error: unknown option, missing argument, no store given, unconfirmed clear
  130  interrupted"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's line breaks; option help texts state their defaults themselves."""


def build_parser() -> argparse.ArgumentParser:
    from tta_dev_primitives.cli import _demo, _memory_cmd

    parser = argparse.ArgumentParser(
        prog="tta-primitives",
        description="Composable async workflow primitives and hybrid memory for LLM agents.",
        epilog=EXIT_STATUSES,
        formatter_class=HelpFormatter,
    )
    parser.set_defaults(_parser=parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _demo.add_parser(sub)
    _memory_cmd.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse reports leftovers with the top-level usage; the sub-command's is the useful one.
        failed: argparse.ArgumentParser = args._parser
        failed.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
