"""The command line as users meet it: every mistake is one line and an exit status, never a
traceback; one bad file stops none; hostile text never reaches the terminal raw."""

from __future__ import annotations

import json
import logging
import re
import shlex
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from conftest import DEMO_END, press_ctrl_c, timed_line

from mysetlist_slo._terminal import terminal_safe
from mysetlist_slo.cli import build_parser

AT = DEMO_END.isoformat()


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mysetlist_slo", *args], capture_output=True,
                          text=True, check=False, cwd=cwd)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Return the only line of stderr, after checking that there is exactly one."""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(name="small_store")
def fixture_small_store(tmp_path: Path) -> Path:
    """A store with one hour of requests in the demo's last week."""
    log = tmp_path / "access.log"
    log.write_text("".join(timed_line(time=f"18/Nov/2026:10:{m:02d}:00 +0000") + "\n"
                           for m in range(60)))
    db = tmp_path / "m.duckdb"
    assert run("ingest", "--db", str(db), str(log)).returncode == 0
    return db


@pytest.mark.parametrize(("args", "expected"), [
    (["report", "weekly", "--week", "2026-47"],
     "argument --week: not an ISO week: '2026-47' (YYYY-Www"),
    (["report", "weekly", "--week", "2026-W60"],
     "argument --week: not an ISO week: '2026-W60' (YYYY-Www"),
    # strptime would quietly read this as 2026-W01: 2025 has 52 ISO weeks.
    (["report", "weekly", "--week", "2025-W53"],
     "argument --week: not an ISO week: '2025-W53' (YYYY-Www"),
    (["report", "weekly", "--timezone", "Mars/Olympus"],
     "argument --timezone: unknown time zone: 'Mars/Olympus'"),
    (["ingest", "--max-bad-rows", "lots", "x.log"],
     "argument --max-bad-rows: not a row count or ratio: 'lots'"),
    (["ingest", "--max-bad-rows", "150%", "x.log"],
     "argument --max-bad-rows: ratio must be in [0, 1): '150%'"),
    (["status", "--at", "yesterday"],
     "argument --at: not an ISO 8601 time: 'yesterday' (e.g. 2026-11-23T00:00Z)"),
    (["status", "--at", "2026-11-23T00:00"],
     "argument --at: give a time zone, e.g. 2026-11-23T00:00Z"),
    (["--wait", "soon", "status"], "argument --wait: not a duration: 'soon'"),
])
def test_bad_option_values_are_one_line(args: list[str], expected: str) -> None:
    """A bad option value is one line naming the option and the value, exit 2, and no
    internal function name (argparse's 'invalid _parse_time value')."""
    result = run(*args)
    assert result.returncode == 2
    line = one_error_line(result)
    assert expected in line and line.startswith("mysetlist-slo")
    assert "invalid" not in line and "_parse" not in line and "limit value" not in line


def test_global_options_before_or_after_the_command(small_store: Path, tmp_path: Path) -> None:
    """`--db X status` and `status --db X` read the same store and print the same table."""
    before = run("--db", str(small_store), "status", "--at", AT, "--json")
    after = run("status", "--at", AT, "--json", "--db", str(small_store))
    assert before.returncode == after.returncode == 0, before.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout)
    assert json.loads(before.stdout)[0]["total"] == 60  # the 60 requests of small_store
    # The subcommand's --db wins over the global one (the later, more specific one).
    mixed = run("--db", str(tmp_path / "nowhere.duckdb"), "status", "--at", AT, "--json",
                "--db", str(small_store))
    assert mixed.returncode == 0 and json.loads(mixed.stdout) == json.loads(before.stdout)


def test_status_json_into_a_closed_pipe(small_store: Path) -> None:
    """`status --json | head` with the reader gone: no traceback, no message, exit 141 as for
    any program stopped by SIGPIPE."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mysetlist_slo", "status", "--db", str(small_store), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader has gone before the first byte
    assert process.wait(timeout=120) == 141
    assert process.stderr.read() == ""


def test_a_directory_given_as_a_file(tmp_path: Path) -> None:
    """A folder as --db, as an ingest PATH or as --config is named as a folder, in one line."""
    folder = tmp_path / "logs"
    folder.mkdir()
    as_db = run("status", "--db", str(folder))
    assert as_db.returncode == 1
    assert one_error_line(as_db) == f"error: {folder}: is a directory, not a DuckDB store file"

    as_input = run("ingest", "--db", str(tmp_path / "m.duckdb"), "--json", str(folder))
    assert as_input.returncode == 1 and "Traceback" not in as_input.stderr
    (record,) = [json.loads(line) for line in as_input.stdout.splitlines()]
    assert record["error"] == f"{folder}: is a directory; give the files in it (e.g. DIR/*)"

    as_config = run("status", "--config", str(folder), "--db", str(tmp_path / "m.duckdb"))
    assert as_config.returncode == 1
    assert one_error_line(as_config) == f"error: {folder}: is a directory; --config takes a " \
                                        "YAML file"


def test_report_on_a_missing_store(tmp_path: Path) -> None:
    """A report on a store that does not exist says the absolute path and how to make it,
    before any kernel starts (nothing is written)."""
    result = run("report", "weekly", "--db", "none.duckdb", "--out", "out", cwd=tmp_path)
    assert result.returncode == 1
    line = one_error_line(result)
    assert line.startswith(f"error: {tmp_path / 'none.duckdb'}: no such store; create it with ")
    assert "mysetlist-slo ingest" in line
    assert not (tmp_path / "out").exists()


def test_report_refuses_a_future_week(small_store: Path, tmp_path: Path) -> None:
    """A week that has not started is refused with exit 1; no empty report is written."""
    result = run("report", "weekly", "--db", str(small_store), "--week", "2099-W10",
                 "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert one_error_line(result) == "error: 2099-W10 has not started yet; nothing to report"
    assert not (tmp_path / "out").exists()


def test_one_bad_file_stops_none(tmp_path: Path) -> None:
    """`ingest a b c` with b broken loads a and c, reports one result per file (b with its
    error), and exits 1 at the end."""
    a, b, c = tmp_path / "a.log", tmp_path / "b.log", tmp_path / "c.log"
    a.write_text(timed_line(path="/a") + "\n")
    b.write_text(timed_line(status="oops") + "\n")
    c.write_text(timed_line(path="/c", time="10/Nov/2026:14:00:00 +0000") + "\n"
                 + timed_line(path="/c", time="10/Nov/2026:14:01:00 +0000") + "\n")
    db = str(tmp_path / "m.duckdb")
    missing = tmp_path / "gone.log"
    result = run("ingest", "--db", db, "--json", str(a), str(b), str(missing), str(c))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in records] == [str(a), str(b), str(missing), str(c)]
    assert [r["loaded"] for r in records] == [1, 0, 0, 2]
    assert "error" not in records[0] and "error" not in records[3]
    assert records[1]["error"].startswith(f"{b}:") and "$status" in records[1]["error"]
    assert records[2]["error"] == f"{missing}: no such file"

    table = run("ingest", "--db", db, str(a), str(b))  # the table form: same verdicts
    assert table.returncode == 1
    assert "1 of 2 files failed" in table.stderr and "failed" in table.stdout


def test_demo_rerun_prints_one_line(tmp_path: Path) -> None:
    """A second `demo` into the same store says in one line that every file was already
    loaded, instead of a line per file."""
    args = ["demo", "--out", str(tmp_path / "demo"), "--db", str(tmp_path / "m.duckdb"),
            "--weeks", "1", "--rate", "0.02", "--end", AT]
    first = run(*args)
    assert first.returncode == 0, first.stderr
    files = int(first.stderr.split(" requests in ")[1].split()[0])
    again = run(*args)
    assert again.returncode == 0
    assert "already loaded" not in again.stdout
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 3  # writing ..., N requests in F files, the load summary
    assert lines[2] == f"{tmp_path / 'm.duckdb'}: 0 files loaded (0 records), {files} already " \
                       "loaded"


HOSTILE = "evil\x1b]8;;http://evil.example/\x07link\x1b]8;;\x07\x1b[2J\u202egnp.exe\x9b31m\r"


def test_terminal_safe_escapes_every_control_character() -> None:
    """ESC, BEL, CR, C1 and bidi overrides become visible escapes; tab and newline stay; plain
    and non-Latin text is unchanged."""
    assert terminal_safe(HOSTILE) == ("evil\\x1b]8;;http://evil.example/\\x07link\\x1b]8;;"
                                      "\\x07\\x1b[2J\\u202egnp.exe\\x9b31m\\x0d")
    assert terminal_safe("a\tb\nc — ünïcode 日本 ✓") == "a\tb\nc — ünïcode 日本 ✓"
    for code in [*range(0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F),
                 *range(0x2066, 0x206A)]:
        if chr(code) not in "\t\n":
            assert chr(code) not in terminal_safe(chr(code)), hex(code)


def test_hostile_file_names_and_content_are_inert(tmp_path: Path) -> None:
    """An error quoting a file's name and a line's content prints no raw ESC, CSI, bidi or
    CR, in the message and in the results table."""
    bad = tmp_path / "x\x1b[2J\u202e.log"
    bad.write_text(timed_line(status="\x1b]8;;http://evil/\x07500") + "\n")
    result = run("ingest", "--db", str(tmp_path / "m.duckdb"), str(bad))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\u202e" not in stream and "\x07" not in stream
    assert "x\\x1b[2J\\u202e.log" in result.stderr  # shown, so the user sees what is there


def deploy_commands() -> list[list[str]]:
    """Every `mysetlist-slo` command in the shipped crontab and systemd unit, as argv lists."""
    root = Path(__file__).resolve().parents[1] / "deploy"
    lines = [line for line in (root / "crontab").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    unit = (root / "mysetlist-slo-report.service").read_text()
    lines += [line.split("-c ", 1)[1].strip("'") for line in unit.splitlines()
              if line.startswith("ExecStart=")]
    commands = []
    for line in lines:
        for part in line.replace("&&", ";").split(";"):
            words = shlex.split(part)
            if words and words[0].endswith("/mysetlist-slo"):
                commands.append(words[1:])
    return commands


def test_deploy_commands_parse_and_a_bad_file_keeps_the_report() -> None:
    """Every command in deploy/ is valid for this CLI, and the weekly job runs the report
    after ingest whatever ingest's exit status (`;`, not `&&`)."""
    commands = deploy_commands()
    assert {c[0] for c in commands} >= {"ingest", "report", "store"}
    for command in commands:
        build_parser().parse_args(command)  # exits 2 on an option this CLI does not have
    root = Path(__file__).resolve().parents[1] / "deploy"
    for text in ((root / "crontab").read_text(),
                 (root / "mysetlist-slo-report.service").read_text()):
        for line in text.splitlines():
            if " ingest " in line and not line.startswith("#"):
                assert re.search(r" ingest [^;&]*; \S*mysetlist-slo report ", line), line


def _interrupt_report(db: Path, out: Path) -> subprocess.CompletedProcess[str] | None:
    """Run `report weekly` and press Ctrl-C once papermill has started the notebook (its
    output notebook appears); return the finished process, or None when the report ended
    before it could be interrupted."""
    notebook = out / "weekly" / "2026-W47"

    def executing(_: subprocess.Popen[str]) -> bool:
        if notebook.is_dir() and any(notebook.rglob("*.ipynb")):
            time.sleep(1.0)  # papermill is executing cells now
            return True
        return False

    return press_ctrl_c(["report", "weekly", "--db", str(db), "--week", "2026-W47", "--out",
                         str(out)], executing)


@pytest.mark.slow
def test_ctrl_c_in_a_report_is_one_line(small_store: Path, tmp_path: Path) -> None:
    """Ctrl-C while `report weekly` runs its notebook ends it with exit status 130 and one
    line on stderr saying it was interrupted and that no report was written; no traceback
    (not even the kernel's), and the folders the run made are gone again (the report's,
    ``weekly``, the new ``--out``): no report, no half-run notebook, no empty folder."""
    for attempt in range(3):
        out = tmp_path / f"out{attempt}"
        result = _interrupt_report(small_store, out)
        if result is not None:
            break
    else:
        pytest.fail("the report ended three times before Ctrl-C could reach it")
    assert result.returncode == 130, result.stderr
    line = one_error_line(result)
    assert line.startswith("interrupted") and "no report was written" in line
    assert not out.exists(), list(out.rglob("*"))


def _big_log(path: Path, lines: int) -> Path:
    """Write ``lines`` distinct access-log lines (a request a second from 2026-11-16)."""
    start = datetime(2026, 11, 16, tzinfo=UTC)
    with path.open("w") as handle:
        for i in range(lines):
            at = (start + timedelta(seconds=i)).strftime("%d/%b/%Y:%H:%M:%S +0000")
            handle.write(timed_line(time=at, path=f"/show/{i % 97}") + "\n")
    return path


@pytest.mark.slow
def test_ctrl_c_in_an_ingest_is_one_line(tmp_path: Path) -> None:
    """Ctrl-C while `ingest a b` reads b ends it with exit status 130 and one line naming b as
    not stored and a as still loaded; the store holds a's rows only (b's transaction gone)."""
    db = tmp_path / "m.duckdb"
    first = tmp_path / "a.log"
    first.write_text(timed_line() + "\n")
    results: list[str] = []

    def reading_b(process: subprocess.Popen[str]) -> bool:
        # --json prints a's result as soon as it is loaded: b is being read from then on.
        assert process.stdout is not None
        results.append(process.stdout.readline())
        time.sleep(0.5)
        return True

    for lines in (400_000, 1_600_000):
        second = _big_log(tmp_path / f"b{lines}.log", lines)
        db.unlink(missing_ok=True)
        results.clear()
        interrupted = press_ctrl_c(["ingest", "--db", str(db), "--json", str(first),
                                    str(second)], reading_b)
        if interrupted is not None:
            break
    else:
        pytest.fail("the ingest ended before Ctrl-C could reach it")
    first_result, stdout, stderr = results[0], interrupted.stdout, interrupted.stderr
    assert json.loads(first_result)["loaded"] == 1 and not stdout.strip()
    assert interrupted.returncode == 130, stderr
    assert one_error_line(interrupted) == (f"interrupted; {second} was not stored (files loaded "
                                      "before it stay loaded: 1)")
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM ingests").fetchone() == (1,)
        assert con.execute("SELECT sum(requests) FROM request_counts").fetchone() == (1,)
    finally:
        con.close()


def test_main_called_in_process_gives_ctrl_c_back(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    """main() with arguments (a script, a test) answers a KeyboardInterrupt with 130 and then
    hands the caller's SIGINT handler, unraisable hook and logging back as they were."""
    from mysetlist_slo import cli

    def stopped(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_init", stopped)
    handler, hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
    assert cli.main(["init", str(tmp_path / "slo.yaml")]) == 130
    assert signal.getsignal(signal.SIGINT) is handler and sys.unraisablehook is hook
    assert logging.root.manager.disable == logging.NOTSET


def test_main_gives_ctrl_c_back_when_argparse_exits(capsys: pytest.CaptureFixture[str]) -> None:
    """main() with arguments that end in argparse's SystemExit (--help, a usage error) hands
    the caller's SIGINT handler and unraisable hook back too: a test suite's later Ctrl-C
    tests found SIGINT ignored."""
    from mysetlist_slo import cli

    handler, hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
    for argv in (["--help"], ["ingest", "--bogus"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        assert signal.getsignal(signal.SIGINT) is handler and sys.unraisablehook is hook
    capsys.readouterr()


def test_ctrl_c_while_importing_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The command's entry (``mysetlist-slo``, ``python -m``) answers a Ctrl-C that comes while
    the command line's modules are still being imported with 130 and one line."""
    import builtins

    from mysetlist_slo.__main__ import run

    real_import = builtins.__import__

    def interrupted(name: str, *args: object, **kwargs: object) -> object:
        if name == "mysetlist_slo.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", interrupted)
    assert run() == 130
    assert capsys.readouterr().err == "interrupted; nothing was done\n"
