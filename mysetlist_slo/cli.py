"""The ``mysetlist-slo`` command line: a thin layer that turns library results into output."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from mysetlist_slo import __version__
from mysetlist_slo.config import default_config_text, load_config
from mysetlist_slo.demo import DEMO_DIR, default_end, generate_demo
from mysetlist_slo.errors import IngestError, SloError
from mysetlist_slo.slo.budgets import error_budgets
from mysetlist_slo.sources import KINDS, ExportOptions
from mysetlist_slo.store.database import DEFAULT_DB, open_store
from mysetlist_slo.store.ingest import IngestResult, ingest_file, parse_bad_rows_limit

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BREACH = 0, 1, 2, 3

err = Console(stderr=True)


def _out() -> Console:
    # Tables are read in logs and CI too: give them room when stdout is not a terminal.
    return Console() if sys.stdout.isatty() else Console(width=140)


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone, e.g. {text}Z or {text}+00:00")
    return value.astimezone(UTC)


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=DEFAULT_DB,
                        help=f"DuckDB store (default: {DEFAULT_DB})")
    parser.add_argument("--config", type=Path, default=None,
                        help="configuration YAML (default: the shipped one; see `init`)")


def _ingest_with_progress(con: duckdb.DuckDBPyConnection, path: Path, show: bool,
                          **options: object) -> IngestResult:
    size = path.stat().st_size if path.is_file() else 0
    if not show or size < (8 << 20):
        return ingest_file(con, path, **options)  # type: ignore[arg-type]  # checked by caller
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as progress:
        task = progress.add_task(path.name, total=size)
        return ingest_file(con, path, progress=lambda done: progress.update(task, completed=done),
                           **options)  # type: ignore[arg-type]


def cmd_ingest(args: argparse.Namespace) -> int:
    """Load files; print a table (or JSON lines); exit 0 when every file landed or was skipped."""
    config = load_config(args.config)
    mapping = {}
    for item in args.map:
        canonical, _, column = item.partition("=")
        if not column:
            raise SloError(f"--map expects CANONICAL=COLUMN, got {item!r}")
        mapping[canonical] = column
    options = ExportOptions(mapping=mapping, duration_unit=args.duration_unit,
                            time_format=args.time_format)
    rows: list[dict[str, object]] = []
    failed = False
    con = open_store(args.db)
    try:
        for path in args.paths:
            started = time.perf_counter()
            try:
                result = _ingest_with_progress(
                    con, path, not args.json and sys.stderr.isatty(), kind=args.kind,
                    config=config, max_bad_rows=args.max_bad_rows, log_format=args.log_format,
                    options=options)
                row = {"file": str(path), "kind": result.kind, "loaded": result.loaded,
                       "rejected": result.rejected, "skipped": result.skipped,
                       "seconds": round(result.seconds, 3)}
                note = result.message
            except IngestError as exc:
                failed = True
                row = {"file": str(path), "kind": exc.kind or args.kind, "loaded": 0,
                       "rejected": exc.rejected, "skipped": False,
                       "seconds": round(time.perf_counter() - started, 3), "error": str(exc)}
                note = str(exc)
                if not args.json:
                    # Messages quote input text: never read them as markup.
                    err.print(Text("error: ", style="red") + Text(note), highlight=False,
                              soft_wrap=True)
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
            elif note and "error" not in row:
                err.print(f"{path}: {note}", markup=False, highlight=False, soft_wrap=True)
    finally:
        con.close()
    if not args.json:
        table = Table("kind", "loaded", "rejected", "skipped", "seconds")
        table.add_column("file", overflow="fold")  # paths are never cut short
        for row in rows:
            table.add_row(str(row["kind"] or "-"), f"{row['loaded']:,}",
                          f"{row['rejected']:,}", "yes" if row["skipped"] else "no",
                          f"{row['seconds']:.2f}" if "error" not in row else "failed",
                          Text(str(row["file"])))  # a file name is text, not markup
        _out().print(table)
    return EXIT_FAILED if failed else EXIT_OK


def _percent(value: object, digits: int = 3) -> str:
    return "-" if value is None or pd.isna(value) else f"{float(value):.{digits}f} %"  # type: ignore[arg-type]


def _rate(value: object) -> str:
    return "-" if value is None or pd.isna(value) else f"{float(value):.2f}"  # type: ignore[arg-type]


def cmd_status(args: argparse.Namespace) -> int:
    """Print the SLO table; with --fail-on breach, exit 3 when an SLO is out of budget."""
    config = load_config(args.config)
    con = open_store(args.db, read_only=True)
    try:
        budgets = error_budgets(con, config, at=args.at)
    finally:
        con.close()
    if args.json:
        print(budgets.to_json(orient="records", date_format="iso"))
    else:
        end = budgets["window_end"].iloc[0] if len(budgets) else args.at
        table = Table(title=f"SLOs at {end:%Y-%m-%d %H:%M} UTC")
        for column in ("SLO", "objective", "window", "SLI", "events", "budget left",
                       "burn 1h", "burn 24h", "data coverage", "status"):
            table.add_column(column, justify="left" if column in ("SLO", "status") else "right")
        for row in budgets.itertuples():
            left = row.budget_remaining
            coverage = row.minutes_with_data / row.window_minutes if row.window_minutes else 0
            colour = {"ok": "green", "breach": "red"}.get(row.status, "yellow")
            table.add_row(row.slo, f"{row.objective:g} %", row.window, _percent(row.sli),
                          f"{row.total:,}", _percent(None if left is None else 100 * left, 1),
                          _rate(row.burn_rate_1h), _rate(row.burn_rate_24h),
                          f"{coverage:.1%}", f"[{colour}]{row.status}[/{colour}]")
        _out().print(table)
    if args.fail_on == "breach" and (budgets["status"] == "breach").any():
        return EXIT_BREACH
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Write the demo data set and, unless --no-ingest, load it into the store."""
    end = args.end or default_end()
    err.print(f"writing {args.weeks} weeks of demo logs to {args.out} ...")
    manifest = generate_demo(args.out, end=end, weeks=args.weeks, mean_rps=args.rate,
                             seed=args.seed)
    err.print(f"{manifest.requests:,} requests in {len(manifest.files)} files, "
              f"{manifest.start:%Y-%m-%d} to {manifest.end:%Y-%m-%d}")
    if args.no_ingest:
        return EXIT_OK
    ingest_args = argparse.Namespace(
        db=args.db, config=args.config, paths=[Path(f) for f in reversed(manifest.files)],
        kind=None, log_format=None, map=[], duration_unit="ms", time_format="iso8601",
        max_bad_rows=0, json=False)
    return cmd_ingest(ingest_args)


def cmd_report(args: argparse.Namespace) -> int:
    """Run a report notebook; print where its outputs are and the Markdown digest."""
    from mysetlist_slo.report.runner import (
        run_report,  # papermill and nbconvert load only when needed
    )

    outputs = run_report(args.kind, week=args.week, db=args.db, config=args.config,
                         out=args.out, timezone=args.timezone, title=args.title,
                         progress=sys.stderr.isatty())
    err.print(f"report written to {outputs.folder}/ (report.html, summary.json, summary.md)")
    print(outputs.summary_md.read_text("utf-8"))
    if args.notify:
        from mysetlist_slo.report.delivery import deliver

        failures = [r for r in deliver(outputs.document, args.notify, args.report_url)
                    if not r.delivered]
        for failure in failures:
            err.print(f"error: not delivered to {failure.target}: {failure.error}",
                      markup=False, highlight=False, soft_wrap=True)
        if failures:
            return EXIT_FAILED
    if args.fail_on == "breach" and outputs.summary.breached:
        return EXIT_BREACH
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    """Write the default configuration file for editing."""
    if args.path.exists() and not args.force:
        raise SloError(f"{args.path} exists; use --force to overwrite it")
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(default_config_text(), "utf-8")
    err.print(f"wrote {args.path}; edit it, then pass --config {args.path}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the whole command line."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="mysetlist-slo", formatter_class=formatter,
        description="SLO analytics and capacity planning for MySetlist, over a DuckDB store.",
        epilog=_examples("mysetlist-slo demo", "mysetlist-slo ingest /var/log/nginx/access.log*",
                         "mysetlist-slo status --fail-on breach",
                         "mysetlist-slo report weekly"))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    ingest = commands.add_parser(
        "ingest", help="load exported metrics into the store", formatter_class=formatter,
        description="Load files into the store, one transaction per file. The kind is told from "
                    "the content unless --kind is given; already loaded content is skipped.",
        epilog=_examples(
            "mysetlist-slo ingest /var/log/nginx/access.log /var/log/nginx/access.log.*.gz",
            "mysetlist-slo ingest --max-bad-rows 0.1% --json export.jsonl",
            "mysetlist-slo ingest --kind nginx --log-format "
            "'$remote_addr [$time_local] \"$request\" $status $request_time' app.log",
            "mysetlist-slo ingest --kind csv --map timestamp=time --map duration_ms=latency "
            "requests.csv"))
    _add_store_options(ingest)
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files to load")
    ingest.add_argument("--kind", choices=KINDS, help="the file kind (default: from content)")
    ingest.add_argument("--log-format", help="nginx log_format string of the access logs "
                                             "(default: combined + $request_time "
                                             "$upstream_response_time, or plain combined)")
    ingest.add_argument("--map", action="append", default=[], metavar="CANONICAL=COLUMN",
                        help="read an export column under another name (repeatable)")
    ingest.add_argument("--duration-unit", choices=("s", "ms", "us"), default="ms",
                        help="unit of duration columns in exports (default: ms)")
    ingest.add_argument("--time-format", choices=("iso8601", "epoch_s", "epoch_ms"),
                        default="iso8601", help="timestamp format in exports (default: iso8601)")
    ingest.add_argument("--max-bad-rows", type=parse_bad_rows_limit, default=0, metavar="N",
                        help="accept a file with up to N bad records (a count, or a ratio like "
                             "0.5%% or 0.005); they are kept in the rejects table (default: 0)")
    ingest.add_argument("--json", action="store_true",
                        help="print one JSON object per file instead of the table")
    ingest.set_defaults(handler=cmd_ingest)

    status = commands.add_parser(
        "status", help="print the SLO table", formatter_class=formatter,
        description="SLI, error budget left and status of every configured SLO over its window.",
        epilog=_examples("mysetlist-slo status", "mysetlist-slo status --at 2026-11-23T00:00Z",
                         "mysetlist-slo status --fail-on breach   # exit 3 when out of budget"))
    _add_store_options(status)
    status.add_argument("--at", type=_parse_time, default=None,
                        help="end of the windows, ISO 8601 with zone (default: now)")
    status.add_argument("--fail-on", choices=("breach", "never"), default="never",
                        help="exit with status 3 when any SLO is out of budget")
    status.add_argument("--json", action="store_true", help="print JSON records")
    status.set_defaults(handler=cmd_status)

    demo = commands.add_parser(
        "demo", help="write and load the demo data set", formatter_class=formatter,
        description="Write five weeks of MySetlist nginx logs (seeded, with a 7-minute outage, an "
                    "error spike after a deploy and a latency regression) and load them.",
        epilog=_examples("mysetlist-slo demo", "mysetlist-slo demo --rate 2 --weeks 6",
                         "mysetlist-slo demo --end 2026-11-23T00:00Z --no-ingest"))
    _add_store_options(demo)
    demo.add_argument("--out", type=Path, default=DEMO_DIR, help=f"folder (default: {DEMO_DIR})")
    demo.add_argument("--end", type=_parse_time, default=None,
                      help="end of the data (default: Monday 00:00 UTC of this week)")
    demo.add_argument("--weeks", type=int, default=5, help="weeks of data (default: 5)")
    demo.add_argument("--rate", type=float, default=0.3,
                      help="mean requests per second (default: 0.3)")
    demo.add_argument("--seed", type=int, default=20261124, help="random seed")
    demo.add_argument("--no-ingest", action="store_true", help="only write the files")
    demo.set_defaults(handler=cmd_demo)

    report = commands.add_parser(
        "report", help="run a report notebook (weekly SLO report)", formatter_class=formatter,
        description="Execute a parameterised report notebook with papermill and write, under "
                    "OUT/KIND/PERIOD/, the executed notebook, an offline HTML report, "
                    "summary.json and summary.md.",
        epilog=_examples("mysetlist-slo report weekly",
                         "mysetlist-slo report weekly --week 2026-W47 --out reports/",
                         "mysetlist-slo report weekly --fail-on breach   # exit 3 when out of "
                         "budget",
                         "mysetlist-slo report weekly --notify slack://T0/B0/XXXX "
                         "--report-url https://reports.example.org/weekly/"))
    _add_store_options(report)
    report.add_argument("kind", choices=("weekly", "vitals", "capacity"), help="which report")
    report.add_argument("--week", help="ISO week like 2026-W47 (default: the last full week)")
    report.add_argument("--out", type=Path, default=Path("reports"),
                        help="output folder (default: reports)")
    report.add_argument("--timezone", help="time zone that cuts the week (default: config's)")
    report.add_argument("--title", help="report title")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except (SloError, FileNotFoundError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        err.print("interrupted; nothing half-written was kept")
        return 130


if __name__ == "__main__":
    sys.exit(main())
