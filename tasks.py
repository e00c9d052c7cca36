#!/usr/bin/env python3
"""The project's two set-up commands; they need nothing but Python 3.11+ and pip.

    python3 tasks.py report   # make the venv, write and load the demo data, write the report
    python3 tasks.py test     # make the venv, run the whole test suite

Both create (or reuse) ./.venv and install the package with its dev extra into it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"


def run(*command: str | Path) -> None:
    """Run a command from the project root; stop with its status if it fails."""
    print("+", " ".join(str(c) for c in command), flush=True)
    result = subprocess.run([str(c) for c in command], cwd=ROOT, check=False)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_venv() -> None:
    """Create the virtualenv and install the package, unless pyproject.toml is unchanged."""
    if sys.version_info < (3, 11):
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    pyproject = ROOT / "pyproject.toml"
    if STAMP.exists() and STAMP.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.touch()


def report() -> None:
    """Write the demo data, load it into data/metrics.duckdb and write the weekly report."""
    ensure_venv()
    run(BIN / "mysetlist-slo", "demo")
    run(BIN / "mysetlist-slo", "status")
    run(BIN / "mysetlist-slo", "report", "weekly")


def test(extra: list[str]) -> None:
    """Run the whole test suite (pytest); extra arguments go to pytest."""
    ensure_venv()
    run(BIN / "python", "-m", "pytest", *extra)


def main() -> None:
    """Dispatch ``report`` or ``test``."""
    if len(sys.argv) < 2 or sys.argv[1] not in ("report", "test"):
        sys.exit(__doc__)
    if sys.argv[1] == "report":
        report()
    else:
        test(sys.argv[2:])


if __name__ == "__main__":
    main()
