"""The distribution: sdist and wheel build offline, and the wheel works in a fresh environment.

Builds with ``python -m build --no-isolation`` (``build`` and ``hatchling`` are in the ``dev``
extra), so the build needs no network. Installing the wheel into a fresh virtual environment
fetches its three runtime dependencies from the package index (about 20 s).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def run(*argv: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and wheel of this checkout, built once for the module."""
    out = tmp_path_factory.mktemp("dist")
    built = run(sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel",
                "--outdir", out, ROOT)  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    return out


def test_the_wheel_holds_the_package_its_types_and_license_and_no_tests(dist: Path) -> None:
    """py.typed and LICENSE ship; tests, benchmarks and examples stay out of the wheel."""
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "tta_dev_primitives/py.typed" in names
    assert "tta_dev_primitives/cli/__init__.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    top = {n.split("/")[0] for n in names}
    assert top == {"tta_dev_primitives", wheel.name.split("-py3")[0] + ".dist-info"}, top
    assert not any("/tests/" in n or n.startswith("tests/") for n in names)


def test_the_readme_names_the_wheel_that_is_built(dist: Path) -> None:
    """The README's install-from-a-wheel line uses this version's file name."""
    (wheel,) = dist.glob("*.whl")
    assert f"pip install dist/{wheel.name}" in (ROOT / "README.md").read_text()


def test_the_metadata_names_license_urls_and_python_versions(dist: Path) -> None:
    """What an index page shows: the MIT license, the project URLs, Python 3.11 to 3.13."""
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(archive.read(name).decode())
    assert meta["License-Expression"] == "MIT"
    classifiers = meta.get_all("Classifier")
    wanted = [
        "License :: OSI Approved :: MIT License",
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Developers",
        "Topic :: Software Development :: Libraries",
        *(f"Programming Language :: Python :: 3.{minor}" for minor in (11, 12, 13)),
        "Typing :: Typed",
    ]
    assert set(wanted) <= set(classifiers), set(wanted) - set(classifiers)
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert set(urls) >= {"Homepage", "Documentation", "Source", "Changelog"}
    assert all(u.startswith("https://github.com/tta-dev/tta-dev-primitives") for u in urls.values())


def test_the_sdist_can_rebuild_and_retest(dist: Path) -> None:
    """The sdist carries the license, changelog, tests and docs, and no local clutter."""
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    wanted = {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "tests/conftest.py",
              "src/tta_dev_primitives/py.typed", "docs/index.md"}  # fmt: skip
    assert wanted <= names, wanted - names
    assert not any(part in n for n in names for part in (".venv/", "__pycache__", "site/"))


def test_the_wheel_installs_into_a_fresh_environment_and_runs_the_demo(
    dist: Path, tmp_path: Path
) -> None:
    """A new virtualenv (no system packages) with only the wheel: the demo runs end to end."""
    (wheel,) = dist.glob("*.whl")
    env_dir = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    installed = run(bin_dir / "python", "-m", "pip", "install", "--quiet", wheel)
    if installed.returncode != 0 and not IN_CI and "No matching distribution" in installed.stderr:
        pytest.skip(f"the package index is unreachable: {installed.stderr.strip()[-200:]}")
    assert installed.returncode == 0, installed.stderr
    demo = run(bin_dir / "tta-primitives", "demo", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "turn 5  user      > Which backend do I like?" in demo.stdout
    assert "You told me: 'Remember that my favourite backend is Redis.'" in demo.stdout
    # No SDK in a bare install: the demo says how to see spans instead of failing.
    assert "install opentelemetry-sdk" in demo.stdout
    # The installed package is the wheel's, not this checkout's source tree.
    code = "import tta_dev_primitives; print(tta_dev_primitives.__file__)"
    where = run(bin_dir / "python", "-c", code, cwd=tmp_path)
    assert str(env_dir) in where.stdout, where.stdout + where.stderr
    assert run(bin_dir / "tta-primitives", "memory", "--help").returncode == 0


def test_search_modules_stay_small() -> None:
    """The search package is split by job (analyzer, tokens, term index, vector index, scope
    index, the facade that fuses them): no module of it grows past 400 lines."""
    package = ROOT / "src" / "tta_dev_primitives" / "search"
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in package.glob("*.py")}
    assert len(sizes) > 5
    assert {name: n for name, n in sizes.items() if n > 400} == {}
