"""The package as people install it: dependencies declared, one version, a documented public API."""

from __future__ import annotations

import inspect
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import mysetlist_slo
from mysetlist_slo.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_every_import_is_declared() -> None:
    """deptry finds no undeclared, unused or misplaced dependency of the package."""
    result = subprocess.run([sys.executable, "-m", "deptry", "."], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_version_is_kept_in_one_place(capsys) -> None:
    """pyproject.toml holds the version; the package and `--version` report that same one."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
    assert version("mysetlist-slo") == declared == mysetlist_slo.__version__
    try:
        main(["--version"])
    except SystemExit as stop:
        assert stop.code == 0
    assert capsys.readouterr().out.split() == ["mysetlist-slo", declared]


def test_changelog_has_the_current_version() -> None:
    """CHANGELOG.md has a section for the version being released."""
    changelog = (ROOT / "CHANGELOG.md").read_text("utf-8")
    assert f"## [{mysetlist_slo.__version__}]" in changelog


def test_public_names_are_documented() -> None:
    """Every name in the public API has a docstring; every public function has type hints."""
    undocumented, unhinted = [], []
    for name in mysetlist_slo.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(mysetlist_slo, name)
        doc = inspect.getdoc(obj) or ""
        # A dataclass without a docstring gets one made from its signature: that is not docs.
        if not doc or (inspect.isclass(obj) and doc.startswith(f"{obj.__name__}(")):
            undocumented.append(name)
        if inspect.isfunction(obj):
            signature = inspect.signature(obj)
            if signature.return_annotation is inspect.Signature.empty or any(
                    p.annotation is inspect.Parameter.empty for p in signature.parameters.values()):
                unhinted.append(name)
    assert not undocumented, f"public names without a docstring: {undocumented}"
    assert not unhinted, f"public functions without full type hints: {unhinted}"


def test_notebooks_ship_in_the_package_as_one_copy() -> None:
    """Every notebook of notebooks/ is package data, and the package's entry is that same file."""
    from mysetlist_slo.report.runner import NOTEBOOKS

    shipped = {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    assert shipped == {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    for name in shipped:
        assert (NOTEBOOKS / name).resolve() == (ROOT / "notebooks" / name).resolve(), name


def test_notebooks_copy_writes_editable_copies(tmp_path: Path, capsys) -> None:
    """`notebooks copy DIR` writes each shipped notebook; a second run refuses to overwrite."""
    dest = tmp_path / "mine"
    assert main(["notebooks", "copy", str(dest)]) == 0
    for source in (ROOT / "notebooks").glob("*.ipynb"):
        assert (dest / source.name).read_bytes() == source.read_bytes()
        assert not (dest / source.name).is_symlink()
    (dest / "explore.ipynb").write_text("{}", "utf-8")
    assert main(["notebooks", "copy", str(dest)]) == 1
    assert "exists; use --force" in capsys.readouterr().err
    assert (dest / "explore.ipynb").read_text("utf-8") == "{}"  # nothing was replaced
    assert main(["notebooks", "copy", "--force", str(dest)]) == 0
    assert (dest / "explore.ipynb").read_bytes() == (ROOT / "notebooks/explore.ipynb").read_bytes()
