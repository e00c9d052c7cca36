"""The package as people install it: dependencies declared, one version, a documented public API."""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import yaml

import mysetlist_slo
from mysetlist_slo.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_every_import_is_declared() -> None:
    """deptry finds no undeclared, unused or misplaced dependency of the package."""
    result = subprocess.run([sys.executable, "-m", "deptry", "."], cwd=ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _tasks():  # type: ignore[no-untyped-def]
    """Import tasks.py (a script at the project root, not a module of the package)."""
    spec = importlib.util.spec_from_file_location("tasks", ROOT / "tasks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_dependency_has_a_tested_lower_bound() -> None:
    """Every runtime and extra dependency declares a >= lower bound, and `tasks.py lowest` pins
    exactly those bounds (the versions its suite run installs)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += [d for d in extra if not d.startswith(project["name"])]
    bounds = _tasks().lower_bounds()
    assert len(bounds) == len(declared)
    for requirement in declared:
        name = requirement.split("[")[0].split(">=")[0].strip()
        assert name in bounds and f">={bounds[name]}" in requirement.replace(" ", "")


def test_lower_bounds_refuse_an_unbounded_dependency(tmp_path: Path) -> None:
    """A dependency without a lower bound stops `tasks.py lowest`, naming it."""
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["numpy>=1.26", "pandas"]\n')
    try:
        _tasks().lower_bounds(pyproject)
    except SystemExit as stop:
        assert "'pandas' declares no lower bound" in str(stop.code)
    else:
        raise AssertionError("an unbounded dependency was accepted")


def test_lower_bounds_run_weekly_in_ci() -> None:
    """A weekly, manually startable workflow runs the README's lower-bound command as root on
    Debian 12 (whose PostgreSQL 15 is what tasks.py installs and the tests start); the per-push
    CI does not run it."""
    readme = (ROOT / "README.md").read_text("utf-8")
    command = re.search(r"`(python3 tasks\.py lowest)[^`]*`", readme)
    assert command, "the README names no lower-bound command"
    workflow = yaml.safe_load((ROOT / ".github/workflows/lowest.yml").read_text("utf-8"))
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    day, month, weekday = triggers["schedule"][0]["cron"].split()[2:]  # one day a week
    assert day == month == "*" and weekday.isdigit() and "workflow_dispatch" in triggers
    job = workflow["jobs"]["lowest"]
    assert [step["run"] for step in job["steps"] if "run" in step] == [command.group(1)]
    assert job["container"].endswith("-bookworm")
    assert _tasks().SYSTEM_PACKAGES["postgresql"].startswith("/usr/lib/postgresql/15/")
    assert "lowest" not in (ROOT / ".ci/run").read_text("utf-8")


def test_locked_dependencies_are_audited_strictly(monkeypatch) -> None:
    """`tasks.py audit` runs pip-audit over the lock file exactly as pinned and --strict (an
    unreachable vulnerability service fails it), and a workflow runs the README's audit command
    on push, on pull requests and on a schedule."""
    tasks = _tasks()
    commands: list[tuple[str, ...]] = []
    monkeypatch.setattr(tasks, "ensure_venv", lambda *a, **k: tasks.BIN)
    monkeypatch.setattr(tasks, "run", lambda *command: commands.append(tuple(map(str, command))))
    tasks.audit()
    [command] = commands
    assert command[0].endswith("pip-audit")
    assert {"--strict", "--no-deps", "--disable-pip"} <= set(command)
    assert command[command.index("--requirement") + 1] == str(ROOT / "constraints.txt")
    readme = (ROOT / "README.md").read_text("utf-8")
    assert "`python3 tasks.py audit`" in readme
    workflow = yaml.safe_load((ROOT / ".github/workflows/audit.yml").read_text("utf-8"))
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert {"push", "pull_request", "schedule"} <= set(triggers)
    steps = workflow["jobs"]["audit"]["steps"]
    assert [step["run"] for step in steps if "run" in step] == ["python3 tasks.py audit"]


def test_docs_are_published_by_the_strict_build() -> None:
    """Read the Docs and the GitHub Pages workflow build the same MkDocs site, strictly, with the
    docs extra."""
    rtd = yaml.safe_load((ROOT / ".readthedocs.yaml").read_text("utf-8"))
    assert (ROOT / rtd["mkdocs"]["configuration"]).exists() and rtd["mkdocs"]["fail_on_warning"]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"][
        "optional-dependencies"]
    assert all(e in extras for e in rtd["python"]["install"][0]["extra_requirements"])
    workflow = yaml.safe_load((ROOT / ".github/workflows/docs.yml").read_text("utf-8"))
    commands = [step.get("run", "") for step in workflow["jobs"]["build"]["steps"]]
    assert any("mkdocs build --strict" in c for c in commands)


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


# Libraries only the analyses, reports and lake manifests use: seconds and tens of MiB to import.
ANALYSIS_STACK = ("scipy", "statsmodels", "plotly", "papermill", "nbconvert", "jsonschema")


def test_commands_and_the_store_import_no_analysis_stack() -> None:
    """Importing the package, its command line or its ingest loads none of the analysis stack
    (`--help` and `ingest` took 3.6 s before reading a byte); every public name still resolves
    (EAGER_IMPORT imports them all, as their first use would)."""
    probe = ("import sys, mysetlist_slo, mysetlist_slo.cli, mysetlist_slo.store.ingest; "
             f"print([m for m in {ANALYSIS_STACK!r} if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
    eager = subprocess.run([sys.executable, "-c", "import mysetlist_slo"], capture_output=True,
                           text=True, check=False, env={**os.environ, "EAGER_IMPORT": "1"})
    assert eager.returncode == 0, eager.stderr


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
