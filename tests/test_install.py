"""The package as a user installs it: the wheel alone, in a fresh venv, from another folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from mysetlist_slo import load_config

ROOT = Path(__file__).resolve().parents[1]


def _run(command: list[str | Path], cwd: Path, env: dict[str, str] | None = None,
         timeout: int = 900) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True,
                            check=False, timeout=timeout, env=env)
    assert result.returncode == 0, (f"{' '.join(map(str, command))} exited {result.returncode}\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(name="wheel", scope="module")
def fixture_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this tree (without the source tree's build leftovers)."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
          "--wheel-dir", out, ROOT], cwd=out)
    wheels = list(out.glob("mysetlist_slo-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.mark.slow
def test_wheel_contents_are_clean(wheel: Path) -> None:
    """check-wheel-contents finds no stray, duplicate or missing file in the wheel."""
    _run([sys.executable, "-m", "check_wheel_contents", wheel], cwd=wheel.parent)


@pytest.mark.slow
def test_installed_wheel_runs_the_main_job(wheel: Path, tmp_path: Path) -> None:
    """From a venv holding only the wheel and its declared dependencies, in an unrelated folder:
    demo, status, the weekly report, notebooks copy and the README's Python example work."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    _run([python, "-m", "pip", "install", "--quiet", wheel], cwd=tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    # Nothing of the source tree may leak in: no PYTHONPATH, and the working folder is empty.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    cli = env_dir / "bin" / "mysetlist-slo"
    _run([cli, "demo"], cwd=work, env=env)
    status = _run([cli, "status", "--json"], cwd=work, env=env)
    shipped = load_config()  # the source tree's default config: the wheel must carry the same
    assert sorted(row["slo"] for row in json.loads(status.stdout)) == sorted(
        [*(slo.name for slo in shipped.slos), *(c.name for c in shipped.composites)])
    _run([cli, "report", "weekly"], cwd=work, env=env)
    reports = list((work / "reports" / "weekly").glob("*/report.html"))
    assert len(reports) == 1
    assert (reports[0].parent / "summary.json").is_file()
    _run([cli, "notebooks", "copy", "nb"], cwd=work, env=env)
    for source in (ROOT / "notebooks").glob("*.ipynb"):
        assert (work / "nb" / source.name).read_bytes() == source.read_bytes(), source.name

    example = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text("utf-8"), re.S)
    assert example is not None
    log = work / "access.log"
    log.write_text('203.0.113.9 - - [10/Nov/2026:13:55:36 +0000] "GET /show/42 HTTP/1.1" 200 512 '
                   '"-" "Mozilla/5.0 (X11; Linux x86_64)" 0.123 0.120\n', "utf-8")
    code = example.group(1).replace("/var/log/nginx/access.log", str(log))
    code += f"\nassert len(budgets) == {len(shipped.slos) + len(shipped.composites)}\n"
    _run([python, "-c", code], cwd=work, env=env)
