"""The ``mysetlist-slo`` command line: a thin layer that turns library results into output."""

from __future__ import annotations

import _thread
import argparse
import dataclasses
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from mysetlist_slo import __version__
from mysetlist_slo._numbers import percent, signed
from mysetlist_slo._terminal import EXIT_INTERRUPTED, terminal_safe
from mysetlist_slo.config import default_config_text, load_config
from mysetlist_slo.demo import DEMO_DIR, default_end, generate_demo, replace_earlier_demo
from mysetlist_slo.errors import IngestError, SloError
from mysetlist_slo.lake import add_to_lake, lake_manifest
from mysetlist_slo.lake.rollups import KIND as ROLLUPS_KIND
from mysetlist_slo.lake.rollups import ROLLUP_META, load_rollups
from mysetlist_slo.report.formatting import MISSING, STATUS_WORDS, fmt, is_missing
from mysetlist_slo.slo.composite import error_budgets
from mysetlist_slo.sources import KINDS, ExportOptions
from mysetlist_slo.sources.nextjs import is_next_build, read_build
from mysetlist_slo.store.bundles import store_build
from mysetlist_slo.store.database import DEFAULT_DB, open_store
from mysetlist_slo.store.ingest import IngestResult, ingest_file, parse_bad_rows_limit
from mysetlist_slo.store.maintenance import backup_store, check_store, restore_store

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BREACH = 0, 1, 2, 3
# The request kinds a lake holds (the other kinds are not request rows).
LAKE_KINDS = ("nginx", "jsonl", "csv", "parquet")
# What a shell reports for a program killed by SIGPIPE (`yes | head`): a reader that went away.
EXIT_BROKEN_PIPE = 141
# What an interrupted command leaves, unless it says more (KeyboardInterrupt's text).
LEFT_AFTER_INTERRUPT = "nothing half-written was kept"
# How long `report` (a scheduled, minute-long job) waits for a busy store by default; commands
# typed at a terminal give up at once unless --wait says otherwise.
REPORT_WAIT = "5m"
# A collector's pull waits a little for an ingest or a report's snapshot, then is kept for the
# next pull (--every) rather than holding up the schedule.
COLLECT_WAIT = "10s"

err = Console(stderr=True)
# _LAZY: the report, overview and bundle modules (scipy, statsmodels, plotly, papermill: over
# a second and 60 MiB) are imported by the commands that use them, so that `ingest`, `--help`
# and a mistyped flag do not wait for them.


def _say(text: object, style: str | None = None) -> None:
    """Print one message to stderr: never read as markup, control characters made visible."""
    err.print(Text(terminal_safe(text), style=style or ""), highlight=False, soft_wrap=True)


def _out() -> Console:
    # Tables are read in logs and CI too: give them room when stdout is not a terminal.
    return Console() if sys.stdout.isatty() else Console(width=140)


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _parse_time(text: str) -> datetime:
    """An ISO 8601 time with its zone, as UTC (argparse type)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2026-11-23T00:00Z)") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone, e.g. {text}Z or {text}+00:00")
    return value.astimezone(UTC)


def _parse_bad_rows(text: str) -> int | float:
    """A --max-bad-rows limit (argparse type)."""
    try:
        return parse_bad_rows_limit(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (e.g. 100, 0.5% or 0.005)") from None


def _parse_week(text: str) -> str:
    """An ISO week label that names a real week, like 2026-W47 (argparse type)."""
    from mysetlist_slo.report.weekly import iso_week  # see _LAZY

    try:
        label, _, _ = iso_week(text)
    except ValueError:
        label = ""
    # strptime rolls 2025-W53 over into 2026-W01: a label must name itself.
    if label != text:
        raise argparse.ArgumentTypeError(
            f"not an ISO week: {text!r} (YYYY-Www with a week that exists, e.g. 2026-W47)")
    return text


def _positive_number(text: str) -> float:
    """A finite number above zero (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"not a number above zero: {text!r}")
    return value


def _at_least_one(text: str) -> int:
    """A whole number of at least 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of at least 1: {text!r}")
    return value


def _parse_timezone(text: str) -> str:
    """An IANA time zone name (argparse type)."""
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"unknown time zone: {text!r} (an IANA name like UTC or Europe/Berlin)") from None
    return text


# One reading of durations for every option (--wait, --every, --timeout, --since, --step).
_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw]?)", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _parse_duration(text: str) -> float:
    """A duration like 0, 30s, 5m or 1h, in seconds; a bare number is seconds (argparse type)."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 0, 30s, 5m, 1h)")
    return float(found["number"]) * _UNIT_SECONDS[found["unit"].lower()]


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake said in one line (the full usage is in --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, terminal_safe(f"{self.prog}: error: {message} "
                                            f"(see {self.prog} --help)") + "\n")


def _store_options(defaults: bool) -> _Parser:
    """The options every command that uses the store takes, before or after the command name.

    The top-level parser holds the defaults; the copies on the subcommands default to
    SUPPRESS, so that `--db X status` is not overwritten by the subcommand's default.
    """
    parent = _Parser(add_help=False)

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parent.add_argument("--db", type=Path, default=default(DEFAULT_DB),
                        help=f"DuckDB store (default: {DEFAULT_DB})")
    parent.add_argument("--config", type=Path, default=default(None),
                        help="configuration YAML (default: the shipped one; see `init`)")
    parent.add_argument("--wait", type=_parse_duration, default=default(None),
                        metavar="DURATION",
                        help="wait up to DURATION (30s, 5m) for a store busy with another "
                             f"command (default: {REPORT_WAIT} for report, 0 otherwise)")
    return parent


def _wait(args: argparse.Namespace, default: str = "0") -> float:
    return args.wait if args.wait is not None else _parse_duration(default)


def _ingest_with_progress(con: duckdb.DuckDBPyConnection, path: Path, show: bool,
                          **options: object) -> IngestResult:
    size = path.stat().st_size if path.is_file() else 0
    if not show or size < (8 << 20):
        return ingest_file(con, path, **options)  # type: ignore[arg-type]  # checked by caller
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as progress:
        # The description is read as console markup: escape it, after making it terminal-safe.
        task = progress.add_task(escape(terminal_safe(path.name)), total=size)
        return ingest_file(con, path, progress=lambda done: progress.update(task, completed=done),
                           **options)  # type: ignore[arg-type]


def _ingest_one(con: duckdb.DuckDBPyConnection, path: Path, args: argparse.Namespace,
                **options: object) -> tuple[dict[str, object], str]:
    """Load one file; return its result row (with "error" when it failed) and a note."""
    started = time.perf_counter()
    try:
        if path.is_dir() and (path / ROLLUP_META).is_file():
            raise IngestError(str(path), "is rollup output; load it with --kind rollups")
        if path.is_dir() and not is_next_build(path):
            raise IngestError(str(path), "is a directory; give the files in it (e.g. DIR/*)")
        result = _ingest_with_progress(con, path, not args.json and sys.stderr.isatty(),
                                       **options)
    except IngestError as exc:
        kind, rejected, error = exc.kind or args.kind, exc.rejected, str(exc)
    except (SloError, OSError) as exc:
        # Unreadable here (permissions, a vanished file): this file fails, the others are tried.
        kind, rejected = args.kind, 0
        error = f"{path}: {getattr(exc, 'strerror', None) or exc}"
    except Exception as exc:  # one file's bug must not stop the other files
        kind, rejected = args.kind, 0
        error = f"{path}: unexpected {type(exc).__name__}: {exc} (a bug; please report it)"
    else:
        return ({"file": str(path), "kind": result.kind, "loaded": result.loaded,
                 "rejected": result.rejected, "skipped": result.skipped,
                 "seconds": round(result.seconds, 3)}, result.message)
    return ({"file": str(path), "kind": kind, "loaded": 0, "rejected": rejected,
             "skipped": False, "seconds": round(time.perf_counter() - started, 3),
             "error": error}, error)


def _export_options(args: argparse.Namespace) -> ExportOptions:
    """The export reading options of --map, --duration-unit and --time-format."""
    mapping = {}
    for item in args.map:
        canonical, _, column = item.partition("=")
        if not column:
            raise SloError(f"--map expects CANONICAL=COLUMN, got {item!r}")
        mapping[canonical] = column
    return ExportOptions(mapping=mapping, duration_unit=args.duration_unit,
                         time_format=args.time_format)


def _ingest_all(args: argparse.Namespace, echo_skips: bool) -> list[dict[str, object]]:
    """Load every file of ``args.paths`` that can be loaded (one bad file stops none); print
    each failure (or, with --json, each result) as it happens; return one row per file."""
    config = load_config(args.config)
    options = _export_options(args)
    rows: list[dict[str, object]] = []
    con = open_store(args.db, wait=_wait(args))
    try:
        for path in args.paths:
            try:
                row, note = _ingest_one(con, path, args, kind=args.kind, config=config,
                                        max_bad_rows=args.max_bad_rows,
                                        log_format=args.log_format, options=options)
            except KeyboardInterrupt:
                # Each file is one transaction: the one being read is not stored, those
                # before it stay as they were reported.
                kept = sum("error" not in r and not r["skipped"] for r in rows)
                raise KeyboardInterrupt(f"{path} was not stored (files loaded before it "
                                        f"stay loaded: {kept})") from None
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
            elif "error" in row:
                _say(f"error: {note}", "red")
            elif note and (echo_skips or not row["skipped"]):
                _say(f"{path}: {note}")
    finally:
        con.close()
    return rows


def _print_results(rows: list[dict[str, object]]) -> None:
    """Print the per-file results table to stdout."""
    table = Table("kind", "loaded", "rejected", "skipped", "seconds")
    table.add_column("file", overflow="fold")  # paths are never cut short
    for row in rows:
        table.add_row(terminal_safe(row["kind"] or "-"), f"{row['loaded']:,}",
                      f"{row['rejected']:,}", "yes" if row["skipped"] else "no",
                      f"{row['seconds']:.2f}" if "error" not in row else "failed",
                      Text(terminal_safe(row["file"])))  # a file name is text, not markup
    _out().print(table)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Load files; print a table (or JSON lines); exit 1 at the end when any file failed."""
    if args.kind == ROLLUPS_KIND:
        return cmd_ingest_rollups(args)
    rows = _ingest_all(args, echo_skips=True)
    failed = sum("error" in row for row in rows)
    # One file that failed has said everything in its error line: a table of one "failed"
    # row above it would only repeat it. Several files keep the table of who did what.
    if not args.json and not (len(rows) == 1 and failed):
        _print_results(rows)
    if failed and len(rows) > 1:
        _say(f"{failed} of {len(rows)} files failed; the others were loaded", "red")
    return EXIT_FAILED if failed else EXIT_OK


def _rate(value: object) -> str:
    # As the reports write a missing value (a hyphen read like a minus sign).
    return MISSING if is_missing(value) else f"{float(value):.2f}"  # type: ignore[arg-type]


def cmd_status(args: argparse.Namespace) -> int:
    """Print the SLO table and the weekly report's count; with --fail-on breach, exit 3 when
    an SLO (not a composite: a view over its members) is out of budget."""
    from mysetlist_slo.report.overview import overview_headline, slo_status  # see _LAZY

    config = load_config(args.config)
    con = open_store(args.db, read_only=True, wait=_wait(args))
    try:
        budgets = error_budgets(con, config, at=args.at)
    finally:
        con.close()
    # The report's verdict words per row, so terminal and report agree: less than a quarter
    # of the budget left, or the last 24 h burning faster than 1x, is "at risk".
    verdicts = [slo_status(row.status, row.budget_remaining, row.burn_rate_24h)
                for row in budgets.itertuples()]
    if args.json:
        print(budgets.to_json(orient="records", date_format="iso"))
    else:
        end = budgets["window_end"].iloc[0] if len(budgets) else args.at
        # The title says the windows' end, which the budget left is of: the weekly report's
        # figures are of windows ending at the week's end and differ from these by that much.
        # (In the column header too it made the table too wide for a terminal.)
        table = Table(title=f"SLOs over their windows ending {end:%Y-%m-%d %H:%M} UTC")
        for column in ("SLO", "objective", "window", "SLI", "events", "budget left",
                       "burn 1h", "burn 24h", "data coverage", "status"):
            table.add_column(column, justify="left" if column in ("SLO", "status") else "right")
        for row, verdict in zip(budgets.itertuples(), verdicts, strict=True):
            left = row.budget_remaining
            coverage = row.minutes_with_data / row.window_minutes if row.window_minutes else 0
            # An SLO that cannot be judged keeps its reason ("no data", "not enough events").
            word = row.status if verdict == "no_data" else STATUS_WORDS[verdict]
            colour = {"ok": "green", "breach": "red"}.get(verdict, "yellow")
            # A composite's row follows its members' rows, named as what it is.
            name = terminal_safe(row.slo) + (" (composite)" if row.sli_kind == "composite"
                                             else "")
            table.add_row(Text(name), f"{row.objective:g} %", row.window,
                          fmt(row.sli, "pct3"),
                          f"{row.total:,}", fmt(None if left is None else 100 * left, "pct"),
                          _rate(row.burn_rate_1h), _rate(row.burn_rate_24h),
                          percent(coverage), Text(word, style=colour))
        _out().print(table)
        if len(budgets):  # the weekly report's count: SLOs counted, composites named
            count = overview_headline(budgets.assign(status=verdicts))[1]
            _out().print(Text(terminal_safe(count)))
    if args.fail_on == "breach" and any(row.status == "breach" and row.sli_kind != "composite"
                                        for row in budgets.itertuples()):
        return EXIT_BREACH
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Write the demo data set and, unless --no-ingest, load it into the store."""
    end = args.end or default_end()
    _say(f"writing {args.weeks} weeks of demo logs to {args.out} ...")
    manifest = generate_demo(args.out, end=end, weeks=args.weeks, mean_rps=args.rate,
                             seed=args.seed)
    _say(f"{manifest.requests:,} requests in {len(manifest.files)} files, "
         f"{manifest.start:%Y-%m-%d} to {manifest.end:%Y-%m-%d}")
    if args.no_ingest:
        return EXIT_OK
    con = open_store(args.db, wait=_wait(args))
    try:
        replaced = replace_earlier_demo(con, args.out, manifest.files)
    finally:
        con.close()
    if replaced:
        _say(f"{args.db}: {replaced} loads of an earlier demo in {args.out} withdrawn (its "
             "requests for the same days would count twice)")
    ingest_args = argparse.Namespace(
        db=args.db, config=args.config, wait=args.wait,
        paths=[Path(f) for f in reversed(manifest.files)], kind=None, log_format=None, map=[],
        duration_unit="ms", time_format="iso8601", max_bad_rows=0, json=False)
    rows = _ingest_all(ingest_args, echo_skips=False)
    # The files that changed something, then one line for the whole set: a rerun is "35
    # already loaded", not 35 messages and a table of skips.
    if not all(r["skipped"] for r in rows):
        _print_results([r for r in rows if not r["skipped"]])
    loaded = [r for r in rows if "error" not in r and not r["skipped"]]
    skipped = sum(bool(r["skipped"]) for r in rows)
    failed = len(rows) - len(loaded) - skipped
    _say(f"{args.db}: {len(loaded)} files loaded "
         f"({sum(int(str(r['loaded'])) for r in loaded):,} records), {skipped} already loaded"
         + (f", {failed} failed" if failed else ""))
    return EXIT_FAILED if failed else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """Run a report notebook; print where its outputs are and the Markdown digest."""
    from mysetlist_slo.report.runner import (
        run_report,  # papermill and nbconvert load only when needed
    )

    try:
        outputs = run_report(args.kind, week=args.week, db=args.db, config=args.config,
                             out=args.out, timezone=args.timezone, title=args.title,
                             progress=sys.stderr.isatty(), wait=_wait(args, REPORT_WAIT),
                             cell_timeout=args.cell_timeout)
    except KeyboardInterrupt:
        # run_report leaves the report's folder as it was (it writes a staging folder first).
        raise KeyboardInterrupt("no report was written") from None
    _say(f"report written to {outputs.folder}/ (report.html, summary.json, summary.md)")
    # The digest quotes routes and URLs from the logs: shown, never obeyed by the terminal;
    # plain text (summary.md's Markdown escapes and ** are for chat, not for a terminal).
    from mysetlist_slo.report.summaries import summary_text

    print(terminal_safe(summary_text(outputs.document)))
    if args.notify:
        from mysetlist_slo.report.delivery import deliver

        failures = [r for r in deliver(outputs.document, args.notify, args.report_url)
                    if not r.delivered]
        for failure in failures:
            _say(f"error: not delivered to {failure.target}: {failure.error}")
        if failures:
            return EXIT_FAILED
    if args.fail_on == "breach" and outputs.summary.breached:
        return EXIT_BREACH
    return EXIT_OK


def cmd_store_check(args: argparse.Namespace) -> int:
    """Read every block of the store; print what is damaged; exit 1 when anything is."""
    result = check_store(args.db, wait=_wait(args))
    if args.json:
        print(json.dumps({"file": result.path, "bytes": result.file_bytes, "ok": result.ok,
                          "damaged_tables": result.damaged_tables,
                          "problems": result.problems,
                          "tables": {t.table: t.rows for t in result.tables}}))
    elif result.ok:
        rows = sum(t.rows or 0 for t in result.tables)
        _say(f"{result.path}: ok, {len(result.tables)} tables, {rows:,} rows, "
             f"{result.file_bytes:,} bytes read and verified")
    else:
        tables = ", ".join(result.damaged_tables) or "the file itself"
        _say(f"error: {result.path}: damaged ({tables}); restore a backup with "
             f"`mysetlist-slo store restore BACKUP --db {args.db}`", "red")
        for problem in result.problems:
            _say(f"  {problem}")
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_store_backup(args: argparse.Namespace) -> int:
    """Write a verified, consistent copy of the store to DEST."""
    result = backup_store(args.db, args.dest, wait=_wait(args, REPORT_WAIT))
    _say(f"backed up {args.db} to {result.path} ({result.file_bytes:,} bytes, verified)")
    return EXIT_OK


def cmd_store_restore(args: argparse.Namespace) -> int:
    """Replace the store with a verified backup, keeping the replaced file beside it."""
    kept = restore_store(args.backup, args.db, wait=_wait(args))
    _say(f"restored {args.db} from {args.backup}"
         + (f"; the replaced file is kept as {kept}" if kept else ""))
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    """Write the default configuration file for editing."""
    if args.path.exists() and not args.force:
        raise SloError(f"{args.path} exists; use --force to overwrite it")
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(default_config_text(), "utf-8")
    _say(f"wrote {args.path}; edit it, then pass --config {args.path}")
    return EXIT_OK


def cmd_notebooks_copy(args: argparse.Namespace) -> int:
    """Write editable copies of the shipped notebooks into a folder."""
    from mysetlist_slo.report.runner import copy_notebooks

    written = copy_notebooks(args.dest, overwrite=args.force)
    _say(f"wrote {len(written)} notebooks to {args.dest}/: "
         + ", ".join(p.name for p in written) + f"; open them with `jupyter lab {args.dest}`")
    return EXIT_OK


# --- rules: SLOs as code, out (Prometheus, Sloth, OpenSLO, Grafana) and their backtest ---

def _write_output(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, "utf-8")
    _say(f"wrote {out}")


def cmd_rules_prometheus(args: argparse.Namespace) -> int:
    """Write the Prometheus recording and alerting rules of the configured SLOs."""
    from mysetlist_slo.rules.prometheus import prometheus_rules

    rule_set = prometheus_rules(load_config(args.config))
    for name, why in rule_set.skipped.items():
        _say(f"not generated: {name}: {why}")
    _write_output(rule_set.to_yaml(), args.out)
    return EXIT_OK


def cmd_rules_sloth(args: argparse.Namespace) -> int:
    """Write Sloth specs and alert windows of the configured SLOs into a folder."""
    from mysetlist_slo.rules.sloth import sloth_files

    for name, text in sloth_files(load_config(args.config), args.service).items():
        _write_output(text, args.out / name)
    return EXIT_OK


def cmd_rules_openslo(args: argparse.Namespace) -> int:
    """Write OpenSLO v1 Service and SLO documents of the configured SLOs."""
    from mysetlist_slo.rules.openslo import openslo_yaml

    _write_output(openslo_yaml(load_config(args.config), args.service), args.out)
    return EXIT_OK


def cmd_rules_grafana(args: argparse.Namespace) -> int:
    """Write a Grafana dashboard over the generated recording rules."""
    from mysetlist_slo.rules.grafana import grafana_json

    _write_output(grafana_json(load_config(args.config), args.uid), args.out)
    return EXIT_OK


def cmd_rules_backtest(args: argparse.Namespace) -> int:
    """Replay the alerts of a generated rules file over the store; print what they would do."""
    from datetime import timedelta

    from mysetlist_slo.rules.backtest import backtest_rules, deployed_verdict, read_rules
    from mysetlist_slo.slo.alerts import backtest_verdict

    config = load_config(args.config)
    rules = read_rules(args.rules)
    end = (args.end or datetime.now(UTC)).replace(second=0, microsecond=0)
    start = end - timedelta(weeks=args.weeks)
    con = open_store(args.db, read_only=True, wait=_wait(args))
    try:
        results = backtest_rules(con, config, rules, start, end)
    finally:
        con.close()
    if args.json:
        print(json.dumps({slo: json.loads(result.summary.to_json(orient="records",
                                                                  date_format="iso"))
                          for slo, result in results.items()}))
        return EXIT_OK
    for slo, result in results.items():
        print(terminal_safe(deployed_verdict(rules, slo, result, start, end)))
        print(terminal_safe(backtest_verdict(result)))
    return EXIT_OK


def _add_rules_commands(commands: argparse._SubParsersAction,  # type: ignore[type-arg]
                        formatter: type[argparse.HelpFormatter],
                        shared: argparse.ArgumentParser) -> None:
    rules = commands.add_parser(
        "rules", help="SLOs as code: generate rules and dashboards, backtest rules files",
        formatter_class=formatter,
        description="Generate, from the configuration, what a team deploys: Prometheus rules "
                    "(the thresholds the backtest uses), Sloth and OpenSLO specs, a Grafana "
                    "dashboard; and replay a rules file over history.",
        epilog=_examples("mysetlist-slo rules prometheus --out rules.yaml",
                         "mysetlist-slo rules backtest --rules rules.yaml --weeks 4",
                         "mysetlist-slo rules sloth --out sloth/",
                         "mysetlist-slo rules openslo --out slos.yaml",
                         "mysetlist-slo rules grafana --out slo-dashboard.json"))
    kinds = rules.add_subparsers(dest="rules_command", metavar="KIND", required=True)
    # The generators read only the configuration (also accepted before the command).
    configured = argparse.ArgumentParser(add_help=False)
    configured.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                            help="configuration YAML (default: the shipped one)")
    prometheus = kinds.add_parser(
        "prometheus", help="Prometheus recording and alerting rules", formatter_class=formatter,
        parents=[configured],
        description="Recording rules for each SLO's error ratio, multi-window burn-rate alerts "
                    "scaled for the SLO's window, and the deployment plan's static alerts.",
        epilog=_examples("mysetlist-slo rules prometheus --out rules.yaml",
                         "promtool check rules rules.yaml"))
    prometheus.add_argument("--out", type=Path, default=None,
                            help="file to write (default: standard output)")
    prometheus.set_defaults(handler=cmd_rules_prometheus)

    sloth = kinds.add_parser(
        "sloth", help="Sloth prometheus/v1 specs and alert windows", formatter_class=formatter,
        parents=[configured],
        description="One Sloth spec per SLO window length, and Sloth AlertWindows with the "
                    "burn-rate rules' windows and budget shares; each spec names its command.",
        epilog=_examples("mysetlist-slo rules sloth --out sloth/"))
    sloth.add_argument("--out", type=Path, required=True, help="folder to write into")
    sloth.add_argument("--service", default="mysetlist", help="service name (default: mysetlist)")
    sloth.set_defaults(handler=cmd_rules_sloth)

    openslo = kinds.add_parser(
        "openslo", help="OpenSLO v1 Service and SLO documents", formatter_class=formatter,
        parents=[configured],
        description="OpenSLO v1 documents of the configured SLOs, which load back as the same "
                    "SLOs with --config.",
        epilog=_examples("mysetlist-slo rules openslo --out slos.yaml",
                         "mysetlist-slo status --config slos.yaml"))
    openslo.add_argument("--out", type=Path, default=None,
                         help="file to write (default: standard output)")
    openslo.add_argument("--service", default="mysetlist",
                         help="service name, a DNS label (default: mysetlist)")
    openslo.set_defaults(handler=cmd_rules_openslo)

    grafana = kinds.add_parser(
        "grafana", help="Grafana dashboard over the recording rules", formatter_class=formatter,
        parents=[configured],
        description="A dashboard JSON with, per SLO, the SLI, the error budget remaining and "
                    "the burn rate per window against the alert thresholds.",
        epilog=_examples("mysetlist-slo rules grafana --out slo-dashboard.json"))
    grafana.add_argument("--out", type=Path, default=None,
                         help="file to write (default: standard output)")
    grafana.add_argument("--uid", default="mysetlist-slo", help="dashboard uid")
    grafana.set_defaults(handler=cmd_rules_grafana)

    backtest = kinds.add_parser(
        "backtest", help="replay a generated rules file over the store",
        formatter_class=formatter, parents=[shared],
        description="Read the alerting rules' windows and thresholds back from a rules file "
                    "written by `rules prometheus` and replay exactly those over history.",
        epilog=_examples("mysetlist-slo rules backtest --rules rules.yaml",
                         "mysetlist-slo rules backtest --rules rules.yaml --weeks 2 "
                         "--end 2026-11-23T00:00Z --json"))
    backtest.add_argument("--rules", type=Path, required=True, help="the rules file to replay")
    backtest.add_argument("--weeks", type=int, default=4, help="weeks to replay (default: 4)")
    backtest.add_argument("--end", type=_parse_time, default=None,
                          help="end of the replay, ISO 8601 with zone (default: now)")
    backtest.add_argument("--json", action="store_true", help="print the per-rule summary")
    backtest.set_defaults(handler=cmd_rules_backtest)

# --- end of rules ---
# --- collect: live collectors (issue 12) --------------------------------------------------

def _seconds(text: str) -> float:
    """Return the seconds of ``30s``, ``1m``, ``6h``, ``7d`` or ``1w``: a whole number above
    zero with its unit (argparse type)."""
    found = _DURATION.fullmatch(text)
    if found is None or not found["unit"] or "." in text or float(found["number"]) == 0:
        raise argparse.ArgumentTypeError(f"not a duration like 30s, 1m, 6h or 7d: {text!r}")
    return _parse_duration(text)


def _prometheus_query(text: str) -> object:
    from mysetlist_slo.collect.prometheus import PrometheusQuery

    try:
        return PrometheusQuery.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _api_collector(args: argparse.Namespace) -> tuple[
        Callable[..., Any], tuple[Any, ...], dict[str, Any], Callable[[Any], str]]:
    """Return, for ``collect prometheus|posthog|sentry``, the collector, its arguments after
    the store and URL, its own options (the secret read once, before any pull) and the
    summary line of what one pull stored."""
    from mysetlist_slo.collect import collect_posthog, collect_prometheus
    from mysetlist_slo.collect._secrets import safe_url
    from mysetlist_slo.collect.posthog import api_key
    from mysetlist_slo.collect.prometheus import PrometheusQuery, auth_from
    from mysetlist_slo.collect.sentry import collect_sentry, token_from

    where = safe_url(args.url)
    if args.system == "prometheus":
        queries = args.query or [PrometheusQuery(name, expr) for name, expr in
                                 load_config(args.config).collect.prometheus_queries.items()]
        auth = auth_from(token_file=args.token_file, basic_auth_file=args.basic_auth_file)
        return collect_prometheus, (queries,), {"step_s": args.step, "auth": auth}, (
            lambda results: f"{where}: {len(queries)} queries, {len(results)} chunks, "
                            f"{sum(r.loaded for r in results)} samples stored")
    if args.system == "posthog":
        return collect_posthog, (args.project, api_key(key_file=args.key_file)), {
            "page_size": args.page_size}, (
            lambda results: f"{where} project {args.project}: {len(results)} pages, "
                            f"{sum(r.loaded for r in results)} events stored")
    return collect_sentry, (args.org, token_from(token_file=args.token_file)), {
        "projects": tuple(args.project or ()), "environment": args.environment,
        "interval": args.interval}, (
        lambda result: f"{result.file}: {result.loaded} rows stored as ingest "
                       f"#{result.ingest_id}" + (f" ({result.message})" if result.message
                                                 else ""))


def _collect_pull(args: argparse.Namespace) -> Callable[[], str]:
    """Return the pull of one run of ``collect SYSTEM``, saying what it stored."""
    from datetime import timedelta

    from mysetlist_slo.collect import collect_pgbouncer, collect_postgres, collect_redis
    from mysetlist_slo.collect.landing import Backlog, land
    from mysetlist_slo.errors import StoreBusyError

    if args.system in ("prometheus", "posthog", "sentry"):
        collector, positional, options, summary = _api_collector(args)
        common = {"start": args.start, "end": args.end, "since": timedelta(seconds=args.since),
                  "timeout_s": args.timeout}

        def pull_api() -> str:
            return summary(collector(args.db, args.url, *positional, **common, **options))

        return pull_api
    collect = {"postgres": collect_postgres, "pgbouncer": collect_pgbouncer,
               "redis": collect_redis}[args.system]
    target = args.url if args.system == "redis" else args.dsn
    # With --every, a pull the store was too busy to take waits for the next one.
    wait = _wait(args, COLLECT_WAIT)
    backlog = Backlog(args.db, busy_wait_s=wait)

    def pull() -> str:
        snapshot = collect(target, timeout_s=args.timeout)
        if args.every is None:
            results = [land(args.db, snapshot, busy_wait_s=wait)]
        else:
            try:
                results = backlog.land(snapshot)
            except StoreBusyError as exc:
                raise StoreBusyError(exc.path, f"{exc.holder}; {len(backlog.waiting)} "
                                     "snapshots kept for the next pull") from None
        result = results[-1]
        note = f" ({result.message})" if result.message else ""
        late = f", and {len(results) - 1} kept while the store was busy" \
            if len(results) > 1 else ""
        return (f"{snapshot.source}: {result.loaded} rows stored as ingest "
                f"#{result.ingest_id} in {result.seconds:.2f} s{late}{note}")

    return pull


def cmd_collect(args: argparse.Namespace) -> int:
    """Take one snapshot (or one every --every) of a live system into the store."""
    from mysetlist_slo.collect.schedule import run_every

    def log(line: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        _say(f"{stamp} {line}")  # server replies and URLs: shown, never obeyed

    pull = _collect_pull(args)
    if args.every is None:
        _say(pull())
        return EXIT_OK
    # Failed pulls were logged as they happened; a clean stop on SIGTERM is a success.
    failures = run_every(pull, args.every, log)
    log(f"stopped; {failures} pulls failed")
    return EXIT_OK


def _add_collect(commands: argparse._SubParsersAction,  # type: ignore[type-arg]
                 formatter: type[argparse.HelpFormatter], shared: argparse.ArgumentParser) -> None:
    collect = commands.add_parser(
        "collect", help="pull a snapshot from a live system into the store",
        formatter_class=formatter,
        description="Pull from a running PostgreSQL, PgBouncer, Redis, Prometheus, PostHog or "
                    "Sentry "
                    "and store it like a file: one transaction, registered in the ingest registry. "
                    "Passwords and tokens are never printed or stored: give them in the DSN/URL "
                    "(PostgreSQL: PGPASSWORD or ~/.pgpass work too; Redis: REDISCLI_AUTH) or, "
                    "for Prometheus, in MYSETLIST_SLO_PROMETHEUS_TOKEN, "
                    "MYSETLIST_SLO_PROMETHEUS_USER/_PASSWORD or a file; for PostHog, in "
                    "MYSETLIST_SLO_POSTHOG_API_KEY (or POSTHOG_PERSONAL_API_KEY) or a file; "
                    "for Sentry, in SENTRY_AUTH_TOKEN or a file.",
        epilog=_examples(
            "mysetlist-slo collect postgres --dsn 'host=db dbname=shop user=monitor'",
            "mysetlist-slo collect pgbouncer --dsn 'host=db port=6432 dbname=pgbouncer "
            "user=stats'",
            "mysetlist-slo collect redis --url redis://cache:6379/0 --every 60s",
            "mysetlist-slo collect prometheus --url http://prometheus:9090 --since 7d",
            "mysetlist-slo collect prometheus --url http://prometheus:9090 "
            "--query 'rps=sum(rate(http_requests_total[5m]))' --step 1m",
            "mysetlist-slo collect posthog --url https://us.posthog.com --project 12345 "
            "--since 7d",
            "SENTRY_AUTH_TOKEN=... mysetlist-slo collect sentry --org mysetlist --since 7d"))
    systems = collect.add_subparsers(dest="system", metavar="SYSTEM", required=True)
    for name, what in (("postgres", "pg_stat_statements, max_connections, sessions"),
                       ("pgbouncer", "SHOW STATS, SHOW POOLS, pool settings"),
                       ("redis", "INFO stats/memory/clients/keyspace, LATENCY LATEST"),
                       ("prometheus", "query_range of named PromQL queries, resumable"),
                       ("posthog", "product events through the Query API, resumable"),
                       ("sentry", "error events, stats_v2 outcomes, release-health sessions")):
        system = systems.add_parser(name, help=what, parents=[shared])
        if name in ("postgres", "pgbouncer"):
            system.add_argument("--dsn", required=True,
                                help="libpq connection string or URI"
                                     + (" of the admin console (dbname=pgbouncer)"
                                        if name == "pgbouncer" else ""))
        elif name == "sentry":
            _add_sentry_options(system)
        else:
            system.add_argument("--url", required=True, help="server URL")
        system.add_argument("--every", type=_seconds, default=None, metavar="DURATION",
                            help="keep pulling every DURATION (30s, 1m) until SIGTERM")
        slow = name in ("prometheus", "posthog", "sentry")  # HTTP APIs answer long queries slowly
        system.add_argument("--timeout", type=_seconds, default=30.0 if slow else 5.0,
                            metavar="DURATION", help="per connection/request")
        if name == "posthog":
            system.add_argument("--project", required=True, help="PostHog project id")
            system.add_argument("--since", type=_seconds, default=86400.0, metavar="DURATION",
                                help="how far back a first run starts (default: 1d)")
            system.add_argument("--start", type=_parse_time, help="start, ISO 8601 with zone")
            system.add_argument("--end", type=_parse_time,
                                help="end, ISO 8601 with zone (default: now less 10 minutes)")
            system.add_argument("--page-size", type=int, default=10_000, metavar="N",
                                help="events per request (default: 10000)")
            system.add_argument("--key-file", type=Path,
                                help="file holding the personal API key (default: "
                                     "$MYSETLIST_SLO_POSTHOG_API_KEY or "
                                     "$POSTHOG_PERSONAL_API_KEY)")
        if name == "prometheus":
            system.add_argument("--query", action="append", type=_prometheus_query,
                                metavar="NAME=PROMQL",
                                help="a query to collect (repeatable; default: the config's "
                                     "collect.prometheus_queries)")
            system.add_argument("--since", type=_seconds, default=7 * 86400.0,
                                metavar="DURATION", help="how far back a first run starts "
                                                         "(default: 7d)")
            system.add_argument("--start", type=_parse_time, help="start, ISO 8601 with zone")
            system.add_argument("--end", type=_parse_time,
                                help="end, ISO 8601 with zone (default: now less 1 minute)")
            system.add_argument("--step", type=_seconds, default=60.0, metavar="DURATION",
                                help="resolution (default: 1m)")
            system.add_argument("--token-file", type=Path, help="file holding a bearer token")
            system.add_argument("--basic-auth-file", type=Path,
                                help="file holding user:password")
        system.set_defaults(handler=cmd_collect)


def _add_sentry_options(system: argparse.ArgumentParser) -> None:
    """The options of ``collect sentry`` (its token: $SENTRY_AUTH_TOKEN or --token-file)."""
    system.add_argument("--url", default="https://sentry.io",
                        help="Sentry's address (default: https://sentry.io; self-hosted: yours)")
    system.add_argument("--org", required=True, help="organisation slug")
    system.add_argument("--project", action="append", metavar="ID",
                        help="project id to read (repeatable; default: all)")
    system.add_argument("--environment", help="environment to read (default: all)")
    system.add_argument("--since", type=_seconds, default=86400.0, metavar="DURATION",
                        help="how far back from the end (default: 1d)")
    system.add_argument("--start", type=_parse_time, help="start, ISO 8601 with zone")
    system.add_argument("--end", type=_parse_time, help="end, ISO 8601 with zone (default: now)")
    system.add_argument("--interval", default="1h", choices=("1h", "1d"),
                        help="resolution of stats_v2 and sessions (default: 1h)")
    system.add_argument("--token-file", type=Path,
                        help="file holding the auth token (default: $SENTRY_AUTH_TOKEN)")


def _add_source_options(parser: argparse.ArgumentParser, rejects_go_to: str) -> None:
    """The options that say how to read request files (ingest, lake add)."""
    parser.add_argument("--log-format", help="nginx log_format string of the access logs "
                                             "(default: combined + $request_time "
                                             "$upstream_response_time, or plain combined)")
    parser.add_argument("--map", action="append", default=[], metavar="CANONICAL=COLUMN",
                        help="read an export column under another name (repeatable)")
    parser.add_argument("--duration-unit", choices=("s", "ms", "us"), default="ms",
                        help="unit of duration columns in exports (default: ms)")
    parser.add_argument("--time-format", choices=("iso8601", "epoch_s", "epoch_ms"),
                        default="iso8601", help="timestamp format in exports (default: iso8601)")
    parser.add_argument("--max-bad-rows", type=_parse_bad_rows, default=0, metavar="N",
                        help="accept a file with up to N bad records (a count, or a ratio like "
                             f"0.5%% or 0.005); they are kept in {rejects_go_to} (default: 0)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per file instead of the table")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the whole command line."""
    formatter = argparse.RawDescriptionHelpFormatter
    shared = _store_options(defaults=False)
    parser = _Parser(
        prog="mysetlist-slo", formatter_class=formatter, parents=[_store_options(defaults=True)],
        description="SLO analytics and capacity planning for MySetlist, over a DuckDB store. "
                    "--db, --config and --wait go before or after the command.",
        epilog=_examples("mysetlist-slo demo", "mysetlist-slo ingest /var/log/nginx/access.log*",
                         "mysetlist-slo status --fail-on breach",
                         "mysetlist-slo --db /srv/metrics.duckdb report weekly",
                         "mysetlist-slo store backup --wait 10m backups/"))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ingest = commands.add_parser(
        "ingest", help="load exported metrics into the store", formatter_class=formatter,
        parents=[shared],
        description="Load files into the store, one transaction per file. The kind is told from "
                    "the content unless --kind is given; already loaded content is skipped.",
        epilog=_examples(
            "mysetlist-slo ingest /var/log/nginx/access.log /var/log/nginx/access.log.*.gz",
            "mysetlist-slo ingest --max-bad-rows 0.1% --json export.jsonl",
            "mysetlist-slo ingest --kind nginx --log-format "
            "'$remote_addr [$time_local] \"$request\" $status $request_time' app.log",
            "mysetlist-slo ingest --kind csv --map timestamp=time --map duration_ms=latency "
            "requests.csv"))
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files to load")
    ingest.add_argument("--kind", choices=(*KINDS, ROLLUPS_KIND),
                        help="the file kind (default: from content); `rollups` loads the "
                             "folder `mysetlist-slo rollup --out` wrote")
    _add_source_options(ingest, "the rejects table")
    ingest.set_defaults(handler=cmd_ingest)

    status = commands.add_parser(
        "status", help="print the SLO table", formatter_class=formatter, parents=[shared],
        description="SLI, error budget left and status of every configured SLO over its window; "
                    "each composite SLO follows its members, marked (composite).",
        epilog=_examples("mysetlist-slo status", "mysetlist-slo status --at 2026-11-23T00:00Z",
                         "mysetlist-slo status --fail-on breach   # exit 3 when out of budget"))
    status.add_argument("--at", type=_parse_time, default=None,
                        help="end of the windows, ISO 8601 with zone (default: now)")
    status.add_argument("--fail-on", choices=("breach", "never"), default="never",
                        help="exit with status 3 when any SLO is out of budget")
    status.add_argument("--json", action="store_true", help="print JSON records")
    status.set_defaults(handler=cmd_status)

    demo = commands.add_parser(
        "demo", help="write and load the demo data set", formatter_class=formatter,
        parents=[shared],
        description="Write five weeks of MySetlist nginx logs (seeded, with a 7-minute outage, an "
                    "error spike after a deploy and a latency regression) and load them.",
        epilog=_examples("mysetlist-slo demo", "mysetlist-slo demo --rate 2 --weeks 6",
                         "mysetlist-slo demo --end 2026-11-23T00:00Z --no-ingest"))
    demo.add_argument("--out", type=Path, default=DEMO_DIR, help=f"folder (default: {DEMO_DIR})")
    demo.add_argument("--end", type=_parse_time, default=None,
                      help="end of the data (default: Monday 00:00 UTC of this week)")
    demo.add_argument("--weeks", type=_at_least_one, default=5,
                      help="weeks of data (default: 5)")
    demo.add_argument("--rate", type=_positive_number, default=0.3,
                      help="mean requests per second (default: 0.3)")
    demo.add_argument("--seed", type=int, default=20261124, help="random seed")
    demo.add_argument("--no-ingest", action="store_true", help="only write the files")
    demo.set_defaults(handler=cmd_demo)

    report = commands.add_parser(
        "report", help="run a report notebook (weekly SLO report)", formatter_class=formatter,
        parents=[shared],
        description="Execute a parameterised report notebook with papermill and write, under "
                    "OUT/KIND/PERIOD/, the executed notebook, an offline HTML report, "
                    "summary.json and summary.md.",
        epilog=_examples("mysetlist-slo report weekly",
                         "mysetlist-slo report weekly --week 2026-W47 --out reports/",
                         "mysetlist-slo report weekly --fail-on breach   # exit 3 when out of "
                         "budget",
                         "mysetlist-slo report weekly --notify slack://T0/B0/XXXX "
                         "--report-url https://reports.example.org/weekly/"))
    report.add_argument("kind", choices=("weekly", "vitals", "capacity"), help="which report")
    report.add_argument("--week", type=_parse_week,
                        help="ISO week like 2026-W47 (default: the last full week)")
    report.add_argument("--out", type=Path, default=Path("reports"),
                        help="output folder (default: reports)")
    report.add_argument("--timezone", type=_parse_timezone,
                        help="time zone that cuts the week (default: config's)")
    report.add_argument("--title", help="report title")
    report.add_argument("--cell-timeout", type=_parse_duration, default=1800.0, metavar="DURATION",
                        help="stop with an error when one notebook cell (or the kernel's start) "
                             "runs longer than this (default: 30m)")
    report.add_argument("--fail-on", choices=("breach", "never"), default="never",
                        help="exit with status 3 when any SLO is out of budget")
    report.add_argument("--notify", action="append", default=[], metavar="URL",
                        help="send the summary to this apprise URL (slack://…, mailtos://…, "
                             "msteams://…, json://…); repeatable. A failed delivery exits 1 "
                             "after the report is written")
    report.add_argument("--report-url", metavar="URL",
                        help="link to the published report, added to notifications")
    report.set_defaults(handler=cmd_report)

    init = commands.add_parser(
        "init", help="write the default configuration for editing", formatter_class=formatter,
        description="Write the shipped configuration (built from the deployment plan's "
                    "targets) to a file you can edit.",
        epilog=_examples("mysetlist-slo init", "mysetlist-slo init --force slo.yaml"))
    init.add_argument("path", nargs="?", type=Path, default=Path("mysetlist-slo.yaml"))
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(handler=cmd_init)

    notebooks = commands.add_parser(
        "notebooks", help="copy the report notebooks somewhere to open and edit",
        formatter_class=formatter,
        description="The report notebooks ship inside the package. Write editable copies of "
                    "them (and of the explore notebook) into a folder, to open in JupyterLab; "
                    "they find the store by the db parameter, then $MYSETLIST_SLO_DB, then "
                    "data/metrics.duckdb in the project folder above them.",
        epilog=_examples("mysetlist-slo notebooks copy my-notebooks/",
                         "mysetlist-slo notebooks copy --force my-notebooks/"))
    notebook_actions = notebooks.add_subparsers(dest="action", metavar="ACTION", required=True)
    copy = notebook_actions.add_parser(
        "copy", help="write editable copies into DEST", formatter_class=formatter,
        description="Write the shipped notebooks into DEST (created if missing).",
        epilog=_examples("mysetlist-slo notebooks copy my-notebooks/"))
    copy.add_argument("dest", type=Path, metavar="DEST", help="folder to write into")
    copy.add_argument("--force", action="store_true", help="overwrite notebooks already there")
    copy.set_defaults(handler=cmd_notebooks_copy)

    store = commands.add_parser(
        "store", help="check, back up and restore the store file", formatter_class=formatter,
        description="The store is the only history once raw logs have rotated away: check that "
                    "every block of it reads back, copy it while ingests go on, put a copy back.",
        epilog=_examples("mysetlist-slo store check", "mysetlist-slo store backup backups/",
                         "mysetlist-slo store restore backups/metrics-20261123T060000Z.duckdb"))
    actions = store.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="read every block; exit 1 when anything is damaged",
        formatter_class=formatter, parents=[shared],
        description="Read every block of every table (DuckDB verifies each block's checksum) "
                    "and name the damaged tables; exit 1 when any is damaged or the file is cut "
                    "short.",
        epilog=_examples("mysetlist-slo store check", "mysetlist-slo store check --json"))
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(handler=cmd_store_check)
    backup = actions.add_parser(
        "backup", help="write a consistent, verified copy", formatter_class=formatter,
        parents=[shared],
        description="Copy the store to DEST (a file, or a folder for a time-stamped copy) while "
                    "ingests may run: they are held up only for the copy itself (about a second "
                    f"for 40 MB). The copy is read back whole before it is kept. Waits up to "
                    f"--wait (default {REPORT_WAIT}) for a running ingest.",
        epilog=_examples("mysetlist-slo store backup backups/",
                         "mysetlist-slo store backup --db /srv/metrics.duckdb /mnt/b/slo.duckdb"))
    # A str, not a Path: Path drops the trailing slash that says "a folder, to be created".
    backup.add_argument("dest", metavar="DEST", help="file, or folder/ for a time-stamped copy")
    backup.set_defaults(handler=cmd_store_backup)
    restore = actions.add_parser(
        "restore", help="replace the store with a backup", formatter_class=formatter,
        parents=[shared],
        description="Check BACKUP, then put it in place of the store (--db); the replaced file "
                    "is kept beside it as <db>.replaced-<time>.",
        epilog=_examples("mysetlist-slo store restore backups/metrics-20261123T060000Z.duckdb"))
    restore.add_argument("backup", type=Path, metavar="BACKUP", help="backup file to restore")
    restore.set_defaults(handler=cmd_store_restore)
    _add_rules_commands(commands, formatter, shared)
    _add_collect(commands, formatter, shared)
    _add_bundles(commands, formatter, shared)
    _add_lake(commands, formatter, shared)
    _add_rollup(commands, formatter, shared)
    return parser


def cmd_bundles_check(args: argparse.Namespace) -> int:
    """Store a Next.js build and check its First Load JS against the budgets and the build
    before; with --fail-on, exit 3 on a regression (or any route over budget)."""
    from mysetlist_slo.vitals.bundles import bundle_check  # see _LAZY

    config = load_config(args.config)
    build = read_build(args.build_dir, commit=args.commit, built_at=args.built_at)
    con = open_store(args.db, wait=_wait(args))
    try:
        stored = store_build(con, build)
        check = bundle_check(con, config, stored.ingest_id)
    finally:
        con.close()
    if args.json:
        print(check.to_json(orient="records"))
    else:
        table = Table(title=f"First Load JS of build {terminal_safe(build.build_id)} "
                            f"(commit {terminal_safe(build.commit)}), gzip kB")
        for column in ("route", "router", "first load", "budget", "previous", "growth",
                       "finding"):
            table.add_column(column, justify="left" if column in ("route", "router", "finding")
                             else "right")
        for row in check.itertuples(index=False):
            colour = "red" if row.regression else ("yellow" if row.over_budget else "green")
            table.add_row(Text(terminal_safe(str(row.route))), row.router,
                          f"{row.first_load_kb:.1f}",
                          MISSING if row.budget_kb is None else f"{row.budget_kb:.1f}",
                          MISSING if row.previous_kb is None else f"{row.previous_kb:.1f}",
                          MISSING if row.growth is None
                          else f"{signed(100 * row.growth, '+.1f')} %",
                          Text(terminal_safe(str(row.finding)), style=colour))
        _out().print(table)
    regressed = bool(check["regression"].any())
    over = bool(check["over_budget"].any())
    if (args.fail_on == "regression" and regressed) or (
            args.fail_on == "over-budget" and (regressed or over)):
        return EXIT_BREACH
    return EXIT_OK


def _add_rollup(commands: argparse._SubParsersAction,  # type: ignore[type-arg]
                formatter: type[argparse.HelpFormatter], shared: argparse.ArgumentParser
                ) -> None:
    rollup = commands.add_parser(
        "rollup", help="roll a request lake up into rollup Parquet (DuckDB or Spark)",
        formatter_class=formatter, parents=[shared],
        description="Read the committed request files of a lake (`lake add`) and write the "
                    "per-minute counters, good counts and 5-minute latency sketches as Parquet "
                    "under OUT, one folder per table, Hive-partitioned by UTC day; load them "
                    "with `ingest --kind rollups OUT`. Spark takes its settings from "
                    "spark-defaults.conf and --conf.",
        epilog=_examples("mysetlist-slo rollup --lake lake/ --out rollups/2026-W47",
                         "mysetlist-slo rollup --engine spark --master local[2] --lake lake/ "
                         "--out rollups/", "mysetlist-slo rollup --engine spark --master "
                         "spark://head:7077 --conf spark.executor.memory=8g --lake /nfs/lake "
                         "--out /nfs/rollups"))
    rollup.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb",
                        help="duckdb (embedded, default) or spark (the [spark] extra, Java 17)")
    # Text, not Path: Path("s3://b") is "s3:/b", which would hide an object-store URL.
    rollup.add_argument("--lake", required=True, metavar="DIR", help="the lake")
    rollup.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (new, or an unfinished rollup's)")
    rollup.add_argument("--master", default=None,
                        help="Spark master: local[2], spark://HOST:7077, yarn, k8s://... "
                             "(default: Spark's own settings)")
    rollup.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="a Spark setting, as spark-submit --conf (repeatable)")
    rollup.set_defaults(handler=cmd_rollup)


def cmd_rollup(args: argparse.Namespace) -> int:
    """Roll the lake up with the chosen engine; print the rows written per table."""
    from mysetlist_slo.engine import rollup_lake

    conf = {}
    for item in args.conf:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SloError(f"--conf {item!r}: expected KEY=VALUE")
        conf[key.strip()] = value
    if (conf or args.master) and args.engine != "spark":
        raise SloError("--conf and --master are Spark settings; add --engine spark")
    result = rollup_lake(args.lake, args.out, engine=args.engine,
                         config=load_config(args.config), master=args.master, conf=conf)
    table = Table("table", "rows", title=Text(terminal_safe(f"{args.out} ({result.engine})")))
    for name, rows in result.rows.items():
        table.add_row(name, f"{rows:,}")
    _out().print(table)
    _say(f"{result.requests:,} requests from {result.lake_files} lake files, "
         f"{result.routes} routes admitted, in {result.seconds:.1f} s")
    return EXIT_OK


def _add_bundles(commands: argparse._SubParsersAction,  # type: ignore[type-arg]
                 formatter: type[argparse.HelpFormatter], shared: argparse.ArgumentParser
                 ) -> None:
    bundles = commands.add_parser(
        "bundles", help="JavaScript bundle sizes of Next.js builds", formatter_class=formatter,
        description="Read Next.js build outputs: First Load JS per route (gzip, as next build "
                    "reports it) against the budgets in the config and the build before.")
    actions = bundles.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="store a build and check it against budgets and the build before",
        formatter_class=formatter, parents=[shared],
        description="Read BUILD_DIR (a .next folder, or the project holding one), store the "
                    "build and compare every route's First Load JS with its budget "
                    "(bundles.budgets_kb) and with the build before it (bundles.max_growth). "
                    "Storing the same build again changes nothing.",
        epilog=_examples("mysetlist-slo bundles check .next --commit $GITHUB_SHA",
                         "mysetlist-slo bundles check . --fail-on regression   # exit 3 in CI"))
    check.add_argument("build_dir", type=Path, metavar="BUILD_DIR", help=".next or the project")
    check.add_argument("--commit", default=None,
                       help="commit of the build (default: $GITHUB_SHA, $CI_COMMIT_SHA, "
                            "$VERCEL_GIT_COMMIT_SHA, else the build id if it is a hash)")
    check.add_argument("--built-at", type=_parse_time, default=None,
                       help="when it was built, ISO 8601 with zone (default: BUILD_ID's time)")
    check.add_argument("--fail-on", choices=("regression", "over-budget", "never"),
                       default="never",
                       help="exit with status 3 on a regression, or on any route over budget")
    check.add_argument("--json", action="store_true", help="print JSON records")
    check.set_defaults(handler=cmd_bundles_check)


def _failure(args: argparse.Namespace, row: dict[str, str], exc: SloError) -> None:
    """Report one input that failed: a JSON line with its error (--json), else a red line."""
    if args.json:
        print(json.dumps({**row, "error": str(exc)}), flush=True)
    else:
        _say(f"error: {exc}", "red")


def cmd_ingest_rollups(args: argparse.Namespace) -> int:
    """Load rollup output folders, a transaction per day; print one row per day. One output
    that fails stops no other; exit 1 at the end when any failed."""
    config = load_config(args.config)
    rows: list[dict[str, object]] = []
    failed = 0
    con = open_store(args.db, wait=_wait(args))
    try:
        for out in args.paths:
            try:
                days = load_rollups(con, out, config)
            except IngestError as exc:
                failed += 1
                _failure(args, {"output": str(out)}, exc)
                continue
            for day in days:
                rows.append({"output": str(out), "date": day.date, "files": day.files,
                             "requests": day.requests, "skipped": day.skipped,
                             "seconds": round(day.seconds, 3)})
                if day.message and not args.json:
                    _say(f"{out} {day.date}: {day.message}")
    finally:
        con.close()
    status = EXIT_FAILED if failed else EXIT_OK
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return status
    table = Table("date", "files", "requests", "skipped", "seconds")
    table.add_column("output", overflow="fold")
    for row in rows:
        table.add_row(str(row["date"]), f"{row['files']:,}", f"{row['requests']:,}",
                      "yes" if row["skipped"] else "no", f"{row['seconds']:.2f}",
                      Text(terminal_safe(row["output"])))
    if rows:
        _out().print(table)
    elif not failed:
        _say("no days of rollups in the output; nothing to do")
    return status


def cmd_lake_add(args: argparse.Namespace) -> int:
    """Add request files to a lake, each whole or not at all; exit 1 when any failed."""
    config = load_config(args.config)
    options = _export_options(args)
    failed = 0
    table = Table("kind", "rows", "rejected", "skipped", "parquet files")
    table.add_column("file", overflow="fold")
    for path in args.paths:
        try:
            if path.is_dir():  # the library would call it missing: it reads files only
                raise IngestError(str(path), "is a directory; give the files in it (e.g. DIR/*)")
            result = add_to_lake(args.lake, path, kind=args.kind, config=config,
                                 max_bad_rows=args.max_bad_rows, log_format=args.log_format,
                                 options=options)
        except IngestError as exc:
            failed += 1
            _failure(args, {"file": str(path)}, exc)
            continue
        if args.json:
            print(json.dumps({"file": result.file, "kind": result.kind, "rows": result.rows,
                              "rejected": result.rejected, "skipped": result.skipped,
                              "parquet": result.parquet, "seconds": round(result.seconds, 3)}),
                  flush=True)
        elif result.message:
            _say(f"{path}: {result.message}")
        table.add_row(Text(terminal_safe(result.kind)), f"{result.rows:,}", f"{result.rejected:,}",
                      "yes" if result.skipped else "no", f"{len(result.parquet)}",
                      Text(terminal_safe(result.file)))
    if not args.json and table.row_count:  # no empty table above a file's one-line error
        _out().print(table)
    if failed and len(args.paths) > 1:
        _say(f"{failed} of {len(args.paths)} files failed; the others were added", "red")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_lake_list(args: argparse.Namespace) -> int:
    """Print the lake's manifest: one row per source file, then the totals."""
    manifest = lake_manifest(args.lake)
    if args.json:
        for entry in manifest.entries:
            print(json.dumps(dataclasses.asdict(entry)))
        return EXIT_OK
    table = Table("added", "kind", "rows", "rejects", "days", "first", "last")
    table.add_column("file", overflow="fold")
    for entry in manifest.entries:
        # The manifest is text on disk (perhaps a lake copied from elsewhere): cells are Text,
        # never read as console markup.
        table.add_row(*(Text(terminal_safe(cell)) for cell in (
            entry.added[:19], entry.kind, f"{entry.rows:,}", f"{entry.rejects:,}",
            f"{len(entry.parquet)}", (entry.first_ts or "-")[:16], (entry.last_ts or "-")[:16],
            entry.file)))
    _out().print(table)
    days = {name.split("/")[1] for name in manifest.files()}
    _say(f"{args.lake}: {len(manifest.entries)} files added, "
         f"{sum(e.rows for e in manifest.entries):,} rows in {len(manifest.files())} Parquet "
         f"files over {len(days)} days")
    return EXIT_OK


def _add_lake(commands: argparse._SubParsersAction,  # type: ignore[type-arg]
              formatter: type[argparse.HelpFormatter], shared: argparse.ArgumentParser) -> None:
    lake = commands.add_parser(
        "lake", help="the raw Parquet lake that `rollup` reads", formatter_class=formatter,
        description="A folder of canonical request rows as Parquet, Hive-partitioned by UTC day "
                    "(requests/date=YYYY-MM-DD/), with a manifest of the files added.",
        epilog=_examples("mysetlist-slo lake add --lake lake/ /var/log/nginx/access.log.*.gz",
                         "mysetlist-slo lake list --lake lake/"))
    actions = lake.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add", help="add request files to the lake", formatter_class=formatter,
        parents=[shared],
        description="Validate request files as `ingest` does and write their rows as Parquet, "
                    "each file whole or not at all; content already in the lake is skipped. "
                    "A missing or empty --lake folder becomes a new lake.",
        epilog=_examples("mysetlist-slo lake add --lake lake/ access.log access.log.2.gz",
                         "mysetlist-slo lake add --lake lake/ --max-bad-rows 0.1% export.jsonl"))
    add.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files to add")
    add.add_argument("--lake", required=True, help="the lake folder (local)")
    add.add_argument("--kind", choices=LAKE_KINDS, help="the file kind (default: from content)")
    _add_source_options(add, "the lake's _rejects/ folder")
    add.set_defaults(handler=cmd_lake_add)
    listing = actions.add_parser(
        "list", help="print what the lake holds", formatter_class=formatter, parents=[shared],
        description="One row per file added: when, its kind, rows, rejects and days.",
        epilog=_examples("mysetlist-slo lake list --lake lake/"))
    listing.add_argument("--lake", required=True, help="the lake folder")
    listing.add_argument("--json", action="store_true", help="one JSON object per file")
    listing.set_defaults(handler=cmd_lake_list)


def _stop_on_ctrl_c(signum: int, frame: object) -> None:
    """SIGINT handler: the first Ctrl-C stops the command (KeyboardInterrupt); the command is
    then ending, so further Ctrl-Cs and the logs of what it stops (a report kernel "died",
    asyncio's unfinished task) would only print noise, or a traceback, after its one line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.disable(logging.CRITICAL)
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    if threading.current_thread() is not threading.main_thread():
        return _main(argv)  # signal handlers can only be set in the main thread
    previous = signal.signal(signal.SIGINT, _stop_on_ctrl_c)
    previous_hook, sys.unraisablehook = sys.unraisablehook, _unraisable
    logging_level = logging.root.manager.disable
    try:
        return _main(argv)
    finally:  # argparse's --help and usage errors end in SystemExit
        # Run as the program (argv from the command line), the process ends now: a Ctrl-C
        # while it exits would only kill it silently with another status. Called with
        # arguments (a test, a script), the caller's handler and logging come back.
        signal.signal(signal.SIGINT, signal.SIG_IGN if argv is None else previous)
        sys.unraisablehook = previous_hook
        if argv is not None:
            logging.disable(logging_level)


def _unraisable(unraisable: Any) -> None:
    """sys.unraisablehook: a Ctrl-C that landed in a finaliser (a weakref callback, a
    ``__del__``), where Python can only print it and go on, is delivered again, outside it."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        signal.signal(signal.SIGINT, _stop_on_ctrl_c)
        _thread.interrupt_main(signal.SIGINT)
        return
    sys.__unraisablehook__(unraisable)


def _main(argv: Sequence[str] | None) -> int:
    args: argparse.Namespace | None = None
    try:
        args = build_parser().parse_args(argv)
        config = getattr(args, "config", None)
        if config is not None and Path(config).is_dir():
            raise SloError(f"{config}: is a directory; --config takes a YAML file")
        code = int(args.handler(args))
        sys.stdout.flush()  # a closed pipe shows here, where it can still be handled
        return code
    except BrokenPipeError:
        # The reader went away (`status --json | head`): stop quietly, as `cat` does, and keep
        # the interpreter from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except SloError as exc:
        _say(f"error: {exc}")
        return EXIT_FAILED
    except OSError as exc:
        # Files named on the command line or in the config: missing, a folder, not readable.
        where = f"{exc.filename}: " if exc.filename else ""
        _say(f"error: {where}{exc.strerror or exc}")
        return EXIT_FAILED
    except duckdb.Error as exc:
        # The store opened but a block did not read back (damaged or truncated file).
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        db = getattr(args, "db", DEFAULT_DB)
        _say(f"error: {db}: the store could not be read ({detail}); see what is damaged with "
             f"`mysetlist-slo store check --db {db}`")
        return EXIT_FAILED
    except KeyboardInterrupt as exc:
        # Ctrl-C: one line saying what is left, never a traceback.
        _say(f"interrupted; {str(exc) or LEFT_AFTER_INTERRUPT}")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
