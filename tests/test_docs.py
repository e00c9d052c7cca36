"""The documentation builds in strict mode from the docstrings, README, CLI and notebooks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import mysetlist_slo
from mysetlist_slo.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(name="site", scope="module")
def fixture_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the documentation once, strictly (a broken reference or link fails the build)."""
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    return site


@pytest.mark.slow
def test_api_reference_documents_every_public_name(site: Path) -> None:
    """Every name of the public API has its entry in the reference, rendered from its docstring."""
    page = (site / "reference" / "api" / "index.html").read_text("utf-8")
    missing = [name for name in mysetlist_slo.__all__
               if not name.startswith("__") and f'id="mysetlist_slo.{name}"' not in page]
    assert not missing, f"not in the API reference: {missing}"


@pytest.mark.slow
def test_cli_reference_has_every_command(site: Path) -> None:
    """The command-line page carries the help of every subcommand, from the parser itself."""
    page = (site / "reference" / "cli" / "index.html").read_text("utf-8")
    subparsers = next(a for a in build_parser()._actions if a.choices and a.dest == "command")
    for name in subparsers.choices:
        assert f"mysetlist-slo {name}" in page, name


@pytest.mark.slow
def test_every_notebook_is_an_example_page(site: Path) -> None:
    """Each notebook in notebooks/ is rendered as an example page."""
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        assert (site / "examples" / notebook.stem / "index.html").is_file(), notebook.name
