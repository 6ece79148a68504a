"""The docs site fits its code and documents every constructor parameter."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```\w*\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_code_blocks_fit_the_content_column() -> None:
    """No docs code line is over 100 columns (docs/stylesheets/extra.css fits 100 at 1366 px)."""
    long = [
        f"{page.name}: {line}"
        for page in sorted((ROOT / "docs").glob("*.md"))
        for block in FENCE.findall(page.read_text())
        for line in block.splitlines()
        if len(line) > 100
    ]
    assert not long, long


def test_mkdocstrings_renders_init_parameters() -> None:
    """Constructors are merged into their class, with typed signatures and google Args tables."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    plugin = next(p for p in config["plugins"] if isinstance(p, dict) and "mkdocstrings" in p)
    options = plugin["mkdocstrings"]["handlers"]["python"]["options"]
    assert options["merge_init_into_class"] is True
    assert options["show_signature_annotations"] is True
    assert options["docstring_style"] == "google"
    assert "stylesheets/extra.css" in config["extra_css"]


def test_memory_primitive_docstring_lists_every_parameter() -> None:
    """Each MemoryPrimitive.__init__ parameter has an Args entry, so the reference shows it."""
    import inspect

    from tta_dev_primitives import MemoryPrimitive

    doc = inspect.getdoc(MemoryPrimitive) or ""
    args = doc.split("Args:", 1)[1]
    for name in list(inspect.signature(MemoryPrimitive.__init__).parameters)[1:]:
        assert re.search(rf"^\s+{name}:", args, re.MULTILINE), name
