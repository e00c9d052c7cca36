#!/usr/bin/env python3
"""The project's two set-up commands; they need nothing but Python 3.11+ and pip.

    python3 tasks.py report   # make the venv, write and load the demo data, write the report
    python3 tasks.py test     # make the venv and the Debian packages, run the whole suite
    python3 tasks.py lowest   # the suite again with every dependency at its declared lower bound
    python3 tasks.py lock     # refresh constraints.txt, deliberately (not part of set-up)

Both create (or reuse) ./.venv and install the package with its dev extra into it, pinned by
constraints.txt: the dependency set the suite last passed with, so reports are reproducible.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"
LOCK = ROOT / "constraints.txt"
LOWEST_VENV = ROOT / ".venv-lowest"
# Debian packages the suite uses, each with a file that shows it is installed: real servers the
# live-collector and rules tests start on loopback ports (PostgreSQL 15, PgBouncer, Redis,
# Prometheus with promtool), Chromium for the report screenshots and Java 17 for Spark (the
# rollup engines' parity tests run Spark local[2]; pyspark comes with the dev extra).
SYSTEM_PACKAGES = {
    "postgresql": "/usr/lib/postgresql/15/bin/initdb",
    "pgbouncer": "/usr/sbin/pgbouncer",
    "redis-server": "/usr/bin/redis-server",
    "prometheus": "/usr/bin/promtool",
    "chromium": "/usr/bin/chromium",
    "openjdk-17-jre-headless": "/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
}


def run(*command: str | Path) -> None:
    """Run a command from the project root; stop with its status if it fails."""
    print("+", " ".join(str(c) for c in command), flush=True)
    result = subprocess.run([str(c) for c in command], cwd=ROOT, check=False)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_venv(where: Path = VENV, constraints: Path | None = LOCK) -> Path:
    """Create the virtualenv ``where`` and install the package with its dev extra, pinned by
    ``constraints``, unless neither pyproject.toml nor the constraints changed; return its bin."""
    if sys.version_info < (3, 11):  # noqa: UP036 - tasks.py runs under any python3
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}")
    bin_dir = where / BIN.relative_to(VENV)
    stamp = where / STAMP.name
    if not (bin_dir / "python").exists():
        venv.EnvBuilder(with_pip=True).create(where)
    inputs = [ROOT / "pyproject.toml", *([constraints] if constraints else [])]
    if stamp.exists() and all(stamp.stat().st_mtime >= f.stat().st_mtime
                              for f in inputs if f.exists()):
        return bin_dir
    run(bin_dir / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    pinned = ["--constraint", constraints] if constraints and constraints.exists() else []
    # --prefer-binary: an old pin may exist only as an sdist for newer Pythons' transitive deps.
    run(bin_dir / "python", "-m", "pip", "install", "--quiet", "--prefer-binary", *pinned,
        "-e", ".[dev]")
    stamp.touch()
    return bin_dir


# A requirement as pyproject.toml writes ours: name, optional [extras], then ">=" lower bound.
_REQUIREMENT = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?:>=\s*([^,;\s]+))?")


def lower_bounds(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """Return {distribution: declared lower bound} for every runtime and extra dependency.

    Exits naming the dependency if one declares no ``>=`` lower bound: an unbounded dependency
    cannot be tested at its oldest version.
    """
    project = tomllib.loads(pyproject.read_text("utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    bounds: dict[str, str] = {}
    for requirement in requirements:
        match = _REQUIREMENT.match(requirement)
        name = match.group(1) if match else requirement
        if name.lower() == project["name"]:
            continue  # the dev extra names the docs extra through the project itself
        if not match or not match.group(2):
            sys.exit(f"pyproject.toml: dependency {requirement!r} declares no lower bound (>=)")
        bounds[name] = match.group(2)
    return bounds


def lock() -> None:
    """Resolve .[dev] afresh (pip's resolver, nothing installed) and pin it in constraints.txt."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "resolution.json"
        run(sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
            "--report", report, ".[dev]")
        resolved = json.loads(report.read_text("utf-8"))["install"]
    pins = sorted(f"{item['metadata']['name']}=={item['metadata']['version']}"
                  for item in resolved if item["metadata"]["name"] != "mysetlist-slo")
    LOCK.write_text("# The dependency set of .[dev] the suite passed with; refresh it with "
                    "`python3 tasks.py lock`, deliberately.\n" + "\n".join(pins) + "\n", "utf-8")
    print(f"wrote {LOCK.name}: {len(pins)} packages")


def report() -> None:
    """Write the demo data, load it into data/metrics.duckdb and write the weekly report."""
    ensure_venv()
    run(BIN / "mysetlist-slo", "demo")
    run(BIN / "mysetlist-slo", "status")
    run(BIN / "mysetlist-slo", "report", "weekly")


def lowest(extra: list[str]) -> None:
    """Run the suite in .venv-lowest, where every direct dependency is pinned at the lower bound
    pyproject.toml declares (their own dependencies resolve as pip chooses): the bounds we
    declare are the versions we tested. The installed-wheel test is left to ``test``."""
    pins = LOWEST_VENV.with_suffix(".txt")
    wanted = "".join(f"{name}=={version}\n" for name, version in sorted(lower_bounds().items()))
    if not pins.exists() or pins.read_text("utf-8") != wanted:
        pins.write_text(wanted, "utf-8")
    bin_dir = ensure_venv(LOWEST_VENV, pins)
    ensure_system_packages()
    run(bin_dir / "python", "-m", "pytest", "-p", "no:cacheprovider",
        "--deselect", "tests/test_install.py", *extra)


def ensure_system_packages() -> None:
    """Install the missing Debian packages of SYSTEM_PACKAGES with apt-get (as root); elsewhere
    say which are missing (the tests that need them then fail naming the package)."""
    missing = [name for name, probe in SYSTEM_PACKAGES.items() if not Path(probe).exists()]
    if not missing:
        return
    if shutil.which("apt-get") is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        print(f"missing Debian packages (install them as root): {' '.join(missing)}", flush=True)
        return
    os.environ["DEBIAN_FRONTEND"] = "noninteractive"
    run("apt-get", "update", "-qq")
    run("apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing)


def test(extra: list[str]) -> None:
    """Run the whole test suite (pytest); extra arguments go to pytest."""
    ensure_venv()
    ensure_system_packages()
    run(BIN / "python", "-m", "pytest", *extra)


def main() -> None:
    """Dispatch ``report``, ``test``, ``lowest`` or ``lock``."""
    if len(sys.argv) < 2 or sys.argv[1] not in ("report", "test", "lowest", "lock"):
        sys.exit(__doc__)
    if sys.argv[1] == "report":
        report()
    elif sys.argv[1] == "lock":
        lock()
    elif sys.argv[1] == "lowest":
        lowest(sys.argv[2:])
    else:
        test(sys.argv[2:])


if __name__ == "__main__":
    main()
