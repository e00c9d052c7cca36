"""The README stays true: its Python example runs, and CI runs its test command."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from conftest import timed_line

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run calls exactly the test command the README gives."""
    command = re.search(r"^(python3 tasks\.py test)\s", README, re.M)
    assert command is not None
    assert command.group(1) in (ROOT / ".ci" / "run").read_text().splitlines()


def test_python_example_runs(demo_store_path: Path, tmp_path: Path, monkeypatch) -> None:
    """The README's Python example runs against a store and a log of our own."""
    example = re.search(r"```python\n(.*?)```", README, re.S)
    assert example is not None
    store = tmp_path / "data" / "metrics.duckdb"
    store.parent.mkdir()
    shutil.copy(demo_store_path, store)
    log = tmp_path / "access.log"
    log.write_text(timed_line() + "\n")
    code = example.group(1).replace("/var/log/nginx/access.log", str(log))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    # One row per SLO (5 shipped) and one per composite (1), after its members.
    budgets = namespace["budgets"]
    assert len(budgets) == 6  # type: ignore[arg-type]
    assert list(budgets["sli_kind"]).count("composite") == 1  # type: ignore[index]
