"""The report runner: executes a parameterised notebook with papermill and writes its outputs.

Per run, under ``<out>/<kind>/<period>/``: the executed notebook, a self-contained HTML report
(code hidden, plotly.js embedded once: it opens offline), ``summary.json`` and ``summary.md``.
"""

from __future__ import annotations

import base64
import gzip
import math
import os
import re
import shutil
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import nbformat
import papermill
import tinycss2
from jupyter_client.manager import AsyncKernelManager
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor
from plotly.offline import get_plotlyjs
from traitlets import default

from mysetlist_slo.config import Config, load_config
from mysetlist_slo.errors import SloError
from mysetlist_slo.report import summaries
from mysetlist_slo.report.weekly import WeeklySummary, iso_week, weekly_summary
from mysetlist_slo.store.database import DEFAULT_DB, open_store
from mysetlist_slo.store.maintenance import store_snapshot

# The notebooks ship inside the package (in a clone, report/notebooks/ links to notebooks/, the
# one copy people edit in JupyterLab), so an installed wheel runs reports from any folder.
NOTEBOOKS = Path(str(resources.files("mysetlist_slo.report").joinpath("notebooks")))
REPORTS = {"weekly": "weekly_slo_report", "vitals": "web_vitals", "capacity": "capacity_plan"}
TEMPLATES = Path(__file__).resolve().parent / "templates"


class ReportError(SloError):
    """Raised when a report notebook fails; the partial executed notebook is kept."""

    def __init__(self, message: str, notebook: Path) -> None:
        self.notebook = notebook
        super().__init__(f"{message}\n  partial notebook kept for debugging: {notebook}")


@dataclass(frozen=True)
class ReportOutputs:
    """Where one run's outputs are, and the headline numbers."""

    folder: Path
    notebook: Path
    html: Path
    summary_json: Path
    summary_md: Path
    summary: WeeklySummary  # the week's numbers (also for the capacity and vitals reports)
    document: dict[str, Any]  # what summary.json holds (schema version 2)


# A cron or CI run must end: a cell (or a kernel start) that takes longer than this is a hang,
# reported as such. The weekly analysis takes seconds to a minute even at 100 M requests a week.
CELL_TIMEOUT = 1800.0


class _IpcKernelManager(AsyncKernelManager):
    """Starts the report's kernel on Unix sockets in Jupyter's private runtime folder, not on
    localhost TCP ports that any local user can reach (ipykernel warns about those)."""

    @default("transport")
    def _default_transport(self) -> str:
        return "ipc"


def check_report_inputs(week: str | None, timezone: str, db: str | Path,
                        now: datetime | None = None) -> str:
    """Return the label of the week to report after checking what a run needs, before any
    kernel starts: a real ISO week, not in the future, a known time zone, an existing store.

    Raises SloError naming the bad value, or the store's absolute path and how to create it.
    """
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SloError(f"unknown time zone: {timezone!r} (an IANA name like Europe/Berlin)"
                       ) from None
    try:
        label, start, _ = iso_week(week, timezone, now)
    except ValueError:
        label = ""
    if week is not None and label != week:  # strptime turns 2025-W53 into 2026-W01
        raise SloError(f"not an ISO week: {week!r} (YYYY-Www with a week that exists, "
                       "e.g. 2026-W47)")
    if start >= (now or datetime.now(UTC)):
        raise SloError(f"{label} has not started yet; nothing to report")
    path = Path(db).resolve()
    if not path.is_file():
        raise SloError(f"{path}: no such store; create it with `mysetlist-slo ingest FILES "
                       f"--db {db}` (or `mysetlist-slo demo` for the demo data)")
    return label


def notebook_path(name: str) -> Path:
    """Return the path of a notebook shipped with the package; raise SloError when missing."""
    path = NOTEBOOKS / f"{name}.ipynb"
    if not path.is_file():
        raise SloError(f"{path}: notebook not found (the installation is incomplete)")
    return path


def copy_notebooks(dest: str | Path, overwrite: bool = False) -> list[Path]:
    """Write editable copies of the shipped notebooks into ``dest`` and return their paths.

    Raises SloError, before writing anything, when a copy would replace an existing file and
    ``overwrite`` is false.
    """
    folder = Path(dest)
    sources = sorted(NOTEBOOKS.glob("*.ipynb"))
    taken = [folder / s.name for s in sources if (folder / s.name).exists()]
    if taken and not overwrite:
        raise SloError(f"{taken[0]} exists; use --force to overwrite the notebooks in {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copyfile(source, folder / source.name)) for source in sources]


# Cells tagged so show full tables in the executed notebook only; the HTML shows the top N.
NOTEBOOK_ONLY_TAG = "notebook-only"
PLOTLY_MIME = "application/vnd.plotly.v1+json"


def export_html(notebook: Path, html: Path) -> None:
    """Write ``notebook`` as a self-contained HTML page: code cells and ``notebook-only`` cells
    hidden, plotly.js embedded once (gzip-compressed, unpacked by the browser)."""
    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    exporter.register_preprocessor(
        TagRemovePreprocessor(remove_cell_tags={NOTEBOOK_ONLY_TAG}, enabled=True), enabled=True)
    packed = base64.b64encode(gzip.compress(get_plotlyjs().encode(), 9, mtime=0)).decode()
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4),
                                          resources={"plotly_gzip_base64": packed})
    html.write_text(prune_styles(body), "utf-8")


# Class families of JupyterLab's own CSS (the export embeds all of it, 240 KB): a rule that
# needs one of these classes and the page has none of them can match nothing.
_APP_CLASS = re.compile(r"\.((?:jp|lm|cm|bp3|p)-[\w-]+|CodeMirror[\w-]*)")
_FUNCTIONAL = re.compile(r":[\w-]+\((?:[^()]|\([^()]*\))*\)")  # :not(.a), :is(.a, .b)
_STYLE_BLOCK = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.S)


def _can_match(prelude: str, classes: set[str]) -> bool:
    """Return True unless every selector of ``prelude`` needs an application class the page
    lacks (classes inside :not()/:is()/:has() are not counted: they need not be present)."""
    plain = _FUNCTIONAL.sub("", prelude)
    return any(all(name in classes for name in _APP_CLASS.findall(selector))
               for selector in plain.split(","))


def _pruned(rules: list[Any], classes: set[str]) -> list[Any]:
    kept = []
    for rule in rules:
        if rule.type == "qualified-rule":
            if not _can_match(tinycss2.serialize(rule.prelude), classes):
                continue
        elif rule.type == "at-rule" and rule.lower_at_keyword in ("media", "supports") \
                and rule.content is not None:
            inner = _pruned(tinycss2.parse_rule_list(rule.content, skip_comments=True,
                                                     skip_whitespace=True), classes)
            if not inner:
                continue
            rule.content = [token for item in inner
                            for token in (item, tinycss2.ast.WhitespaceToken(0, 0, "\n"))]
        kept.append(rule)
    return kept


def prune_styles(page: str) -> str:
    """Return the HTML ``page`` with the rules of its ``<style>`` blocks that can match no
    element left out (JupyterLab's styles of widgets, editors and menus that a static report
    never holds) and CSS comments dropped; what can match is kept as written."""
    classes = {name for value in re.findall(r'class="([^"]*)"', page) for name in value.split()}

    def prune(match: re.Match[str]) -> str:
        rules = _pruned(tinycss2.parse_stylesheet(match[2], skip_comments=True,
                                                  skip_whitespace=True), classes)
        return match[1] + "\n".join(tinycss2.serialize([rule]) for rule in rules) + match[3]

    return _STYLE_BLOCK.sub(prune, page)


def trim_notebook(notebook: Path) -> None:
    """Drop each figure's HTML copy from the executed notebook (JupyterLab draws figures from
    their plotly JSON; the HTML copy was only for the export), halving its size."""
    executed = nbformat.read(notebook, as_version=4)
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                data.pop("text/html", None)
    nbformat.write(executed, notebook)


def _execute(kind: str, label: str, db: str | Path, config: str | Path | None,
             settings: Config, title: str | None, progress: bool, now: datetime | None,
             wait: float, cell_timeout: float, folder: Path,
             executed: Path) -> tuple[WeeklySummary, dict[str, Any]]:
    """Execute the report notebook into ``executed`` (run in ``folder``) on a snapshot of the
    store; return the period's summary and its summary document. A failing cell's notebook is
    moved to ``folder`` and named by the ReportError raised."""
    with store_snapshot(db, wait) as snapshot:
        parameters = {"db": str(snapshot), "config": str(Path(config).resolve())
                      if config else "", "week": label, "timezone": settings.timezone}
        if title:
            parameters["title"] = title
        try:
            papermill.execute_notebook(str(notebook_path(REPORTS[kind])), str(executed),
                                       parameters=parameters, progress_bar=progress,
                                       kernel_name="python3", cwd=str(folder),
                                       kernel_manager_class=_IpcKernelManager,
                                       execution_timeout=math.ceil(cell_timeout),
                                       start_timeout=math.ceil(cell_timeout),
                                       # Stopped at once, the kernel cannot complain (with
                                       # a traceback) of a reply it could not send.
                                       shutdown_kernel="immediate")
        except papermill.PapermillExecutionError as exc:
            raise ReportError(f"{kind} report for {label} failed in cell {exc.exec_count}: "
                              f"{exc.ename}: {exc.evalue}", _keep(executed, folder)) from None
        except TimeoutError:  # nbclient's CellTimeoutError, or the kernel never answered
            raise ReportError(f"{kind} report for {label} stopped: a cell or the kernel's start "
                              f"took longer than {cell_timeout:g} s",
                              _keep(executed, folder)) from None
        con = open_store(snapshot, read_only=True)
        try:
            summary = weekly_summary(con, settings, label, now)
            return summary, summaries.summary_document(kind, con, settings, summary, title)
        finally:
            con.close()


def _keep(notebook: Path, folder: Path) -> Path:
    """Move a failed run's notebook from staging into ``folder``; return where it is."""
    kept = folder / notebook.name
    if notebook.exists():
        os.replace(notebook, kept)
    return kept


def run_report(kind: str = "weekly", week: str | None = None, db: str | Path = DEFAULT_DB,
               config: str | Path | None = None, out: str | Path = "reports",
               timezone: str | None = None, title: str | None = None,
               progress: bool = True, now: datetime | None = None,
               wait: float = 0.0, cell_timeout: float = CELL_TIMEOUT) -> ReportOutputs:
    """Execute the ``kind`` report for ``week`` (default: the last full week) and write its
    outputs; return where they are.

    The report reads a snapshot of the store taken under a short lock, so ingests can run
    meanwhile; a store busy with an ingest is waited for up to ``wait`` seconds. Raises
    SloError for bad inputs (checked before the kernel starts), StoreBusyError, and
    ReportError with the failing cell's error, or when a cell (or the kernel's start) takes
    longer than ``cell_timeout`` seconds: an unattended run never hangs.
    """
    if kind not in REPORTS:
        raise SloError(f"no {kind!r} report yet; available: {', '.join(REPORTS)}")
    settings = load_config(config)
    if timezone:
        settings = settings.with_timezone(timezone)
    label = check_report_inputs(week, settings.timezone, db, now)
    folder = Path(out) / kind / label
    made = [path for path in (folder, *folder.parents) if not path.exists()]  # deepest first
    folder.mkdir(parents=True, exist_ok=True)
    # Everything is written to a staging folder first and moved into place at the end, so an
    # interrupted run (Ctrl-C) leaves the folder as it was: no half-run notebook beside an
    # earlier report, and no empty folder where there was none.
    staging = Path(tempfile.mkdtemp(prefix=".run-", dir=folder))
    names = (f"{REPORTS[kind]}.ipynb", "report.html", "summary.json", "summary.md")
    done = False
    try:
        summary, document = _execute(kind, label, db, config, settings, title, progress, now,
                                     wait, cell_timeout, folder, staging / names[0])
        export_html(staging / names[0], staging / names[1])
        trim_notebook(staging / names[0])
        summaries.write_json(document, staging / names[2])
        (staging / names[3]).write_text(summaries.summary_markdown(document), "utf-8")
        for name in names:
            os.replace(staging / name, folder / name)
        done = True
    finally:
        # Done, failed (the failing notebook was moved out) or interrupted: no staging left.
        shutil.rmtree(staging, ignore_errors=True)
        if not done:
            for path in made:  # the folders this run made, if nothing else is in them
                with suppress(OSError):
                    path.rmdir()
    executed, html, summary_json, summary_md = (folder / name for name in names)
    return ReportOutputs(folder, executed, html, summary_json, summary_md, summary, document)
