"""The command line: help with examples, python -m, ingest --json, exit statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEMO_END, timed_line

from mysetlist_slo.cli import build_parser, main

COMMANDS = ["ingest", "status", "demo", "init", "report"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mysetlist_slo", *args], capture_output=True,
                          text=True, check=False)


def test_help_lists_every_command() -> None:
    """`mysetlist-slo --help` (here via python -m) names each command."""
    result = run("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help_with_examples(command: str, capsys) -> None:
    """Every command's --help shows examples that start with the program name."""
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"mysetlist-slo {command}" in out


def test_console_script_is_declared() -> None:
    """The installed console script runs the same parser."""
    script = Path(sys.executable).parent / "mysetlist-slo"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout == run("--help").stdout
    assert build_parser().prog == "mysetlist-slo"


def test_ingest_json_lines_and_exit_status(tmp_path: Path) -> None:
    """--json prints one object per file with the documented keys; a bad file exits non-zero."""
    good = tmp_path / "access.log"
    good.write_text(timed_line() + "\n")
    bad = tmp_path / "bad.log"
    bad.write_text(timed_line(status="x") + "\n")
    db = str(tmp_path / "m.duckdb")
    first = run("ingest", "--db", db, "--json", str(good))
    assert first.returncode == 0, first.stderr
    (record,) = [json.loads(line) for line in first.stdout.splitlines()]
    assert set(record) == {"file", "kind", "loaded", "rejected", "skipped", "seconds"}
    assert (record["kind"], record["loaded"], record["skipped"]) == ("nginx", 1, False)

    again = run("ingest", "--db", db, "--json", str(good), str(bad))
    assert again.returncode == 1
    records = [json.loads(line) for line in again.stdout.splitlines()]
    assert records[0]["skipped"] is True
    assert records[1]["loaded"] == 0 and f"{bad}:1: $status" in records[1]["error"]

    accepted = run("ingest", "--db", db, "--max-bad-rows", "1", str(bad))
    assert accepted.returncode == 0
    assert "bad.log" in accepted.stdout and "rejected" in accepted.stdout


def test_status_fail_on_breach(tmp_path: Path) -> None:
    """status exits 3 with --fail-on breach when an SLO is out of budget, 0 without it."""
    log = tmp_path / "access.log"
    log.write_text("".join(timed_line(time=f"22/Nov/2026:10:{m:02d}:00 +0000",
                                      status=500 if m < 5 else 200) + "\n" for m in range(60))
                   * 3)
    db = str(tmp_path / "m.duckdb")
    assert run("ingest", "--db", db, str(log)).returncode == 0
    at = DEMO_END.isoformat()
    plain = run("status", "--db", db, "--at", at)
    assert plain.returncode == 0 and "breach" in plain.stdout
    assert run("status", "--db", db, "--at", at, "--fail-on", "breach").returncode == 3
    records = json.loads(run("status", "--db", db, "--at", at, "--json").stdout)
    assert records[0]["slo"] == "availability" and records[0]["bad"] == 15


def test_status_says_at_risk_as_the_report_does(tmp_path: Path) -> None:
    """4 errors in 5,000 requests at 99.9 % leave 20 % of the budget (5 allowed): the terminal
    table says "at risk" (under a quarter left), as the weekly report does, not "ok"."""
    lines = []
    for i in range(5_000):
        minute = i // 5
        when = f"22/Nov/2026:{minute // 60:02d}:{minute % 60:02d}:{i % 5 * 10:02d} +0000"
        lines.append(timed_line(time=when, status=500 if i in (7, 1_007, 2_007, 3_007) else 200))
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    db = str(tmp_path / "m.duckdb")
    assert run("ingest", "--db", db, str(log)).returncode == 0
    at = DEMO_END.isoformat()
    [availability] = [r for r in json.loads(run("status", "--db", db, "--at", at, "--json").stdout)
                      if r["slo"] == "availability"]
    assert (availability["bad"], availability["budget_remaining"]) == (4, pytest.approx(0.2))
    table = subprocess.run([sys.executable, "-m", "mysetlist_slo", "status", "--db", db,
                            "--at", at], capture_output=True, text=True, check=False,
                           env={**os.environ, "COLUMNS": "200"})
    [row] = [line for line in table.stdout.splitlines() if "availability" in line]
    assert "at risk" in row and " ok " not in row


def test_init_writes_the_default_config(tmp_path: Path) -> None:
    """init writes the shipped config, refuses to overwrite without --force."""
    target = tmp_path / "slo.yaml"
    assert run("init", str(target)).returncode == 0
    assert "slos:" in target.read_text()
    assert run("init", str(target)).returncode == 1
    assert run("init", "--force", str(target)).returncode == 0


def test_bad_config_is_named(tmp_path: Path) -> None:
    """A broken config file is reported with its path and key, without a traceback."""
    bad = tmp_path / "slo.yaml"
    bad.write_text("slos:\n  - {name: a, sli: availability, objective: 120}\n")
    result = run("status", "--config", str(bad), "--db", str(tmp_path / "none.duckdb"))
    assert result.returncode == 1
    assert f"{bad}" in result.stderr and "slos[0].objective" in result.stderr
    assert "Traceback" not in result.stderr


def test_input_text_is_never_markup(tmp_path: Path) -> None:
    """A log field or file name that looks like console markup is printed as it is, in the
    error line and in the table of results (two files: one alone prints no table)."""
    bad = tmp_path / "[red]odd.log"
    bad.write_text(timed_line(status="[/x]") + "\n")
    good = tmp_path / "good.log"
    good.write_text(timed_line() + "\n")
    result = run("ingest", "--db", str(tmp_path / "m.duckdb"), str(bad), str(good))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "'[/x]'" in result.stderr and "[red]odd.log" in result.stderr
    assert "[red]odd.log" in result.stdout


def test_a_file_that_is_no_store(tmp_path: Path) -> None:
    """--db pointing at something that is not DuckDB is a clear error."""
    fake = tmp_path / "notes.duckdb"
    fake.write_text("not a database")
    result = run("status", "--db", str(fake))
    assert result.returncode == 1 and "cannot open as a DuckDB store" in result.stderr
    assert "Traceback" not in result.stderr


def test_ingest_one_failed_file_prints_one_line(tmp_path: Path) -> None:
    """One file that fails prints only its error line (no table of one "failed" row) and exits
    1; with a second, good file the table of both comes back."""
    good = tmp_path / "access.log"
    good.write_text(timed_line() + "\n")
    bad = tmp_path / "bad.log"
    bad.write_text(timed_line(status="x") + "\n")
    db = str(tmp_path / "m.duckdb")
    alone = run("ingest", "--db", db, str(bad))
    assert alone.returncode == 1
    assert alone.stdout == ""
    # The one error, with the bad record it names under it: "bad.log:1: $status: ...".
    assert alone.stderr.startswith("error: ") and alone.stderr.count("error:") == 1
    assert "bad.log:1: $status" in alone.stderr
    both = run("ingest", "--db", db, str(good), str(bad))
    assert both.returncode == 1
    assert "failed" in both.stdout and "access.log" in both.stdout and "bad.log" in both.stdout
