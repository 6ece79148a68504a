"""``python -m tta_dev_primitives``: the same as the ``tta-primitives`` command."""

from tta_dev_primitives.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
