"""The "Scalability and recovery" section of a report: the last load test against the targets,
backup RPO per kind, drills due with their last RTO, availability per region — each a status
and one line, or one line saying its data is missing — and its Markdown rendering."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from mysetlist_slo._numbers import counted
from mysetlist_slo.capacity.loadtests import (
    load_test_capacity,
    load_test_runs,
    production_pod_model,
)
from mysetlist_slo.config import Config
from mysetlist_slo.resilience.backups import backup_rpo
from mysetlist_slo.resilience.drills import drills_due
from mysetlist_slo.resilience.regions import (
    region_availability,
    region_traffic,
    traffic_failovers,
)

NO_LOAD_TEST = "no load test on record: 1,000 req/s and 10,000 users are not shown to hold"
NO_BACKUPS = "no backup records: the recovery point cannot be judged"
NO_DRILLS = "no drill records: no recovery test is shown to have run"
NO_PROBES = ("no probe checks and no requests naming a region in the period: availability per "
             "region unknown")

# Statuses that meet the target; anything else is a finding (or missing data).
_OK = {"passed", "ok"}


@dataclass(frozen=True)
class StatusLine:
    """One judged item: what it is, its status, whether that meets the target, and one line.

    ``topic`` names the item within its part, without the part's own word ("database" under
    "Backups (RPO)", not "backup database"); a part's "no data" line has none ("")."""

    topic: str
    status: str
    ok: bool | None  # None: no data
    text: str


@dataclass(frozen=True)
class ScalabilityRecovery:
    """The section's data for the period [start, end); each part holds at least one line."""

    start: datetime
    end: datetime
    load_test: tuple[StatusLine, ...]
    backups: tuple[StatusLine, ...]
    drills: tuple[StatusLine, ...]
    regions: tuple[StatusLine, ...]

    @property
    def parts(self) -> dict[str, tuple[StatusLine, ...]]:
        """Return the parts by title, in report order."""
        return {"Load test": self.load_test, "Backups (RPO)": self.backups,
                "Recovery drills (RTO)": self.drills, "Regions": self.regions}

    @property
    def status(self) -> str:
        """Return ``ok`` when every line meets its target, ``no data`` when nothing is known,
        otherwise ``attention``."""
        lines = [line for part in self.parts.values() for line in part]
        if all(line.ok is None for line in lines):
            return "no data"
        return "ok" if all(line.ok is True for line in lines) else "attention"

    def to_dict(self) -> dict[str, Any]:
        """Return the section as plain JSON-ready data (times as ISO 8601 text)."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat(),
                "status": self.status,
                **{name: [asdict(line) for line in getattr(self, name)]
                   for name in ("load_test", "backups", "drills", "regions")}}


def _line(topic: str, status: str, text: str) -> StatusLine:
    ok = None if status == "no data" else status in _OK
    return StatusLine(topic, status, ok, text)


def scalability_recovery(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                         end: datetime) -> ScalabilityRecovery:
    """Return the section's data for [start, end): the last load test (of any time: load
    tests are rare), backup RPO and drills due as of ``end``, and region availability over
    the period. Parts without data hold one ``no data`` line saying what is missing."""
    runs = load_test_runs(con, config)
    if len(runs):
        last = runs.iloc[-1]
        load: tuple[StatusLine, ...] = (
            _line(str(last["run"]), str(last["status"]), str(last["detail"])),)
        # Per-pod capacity under load, beside production's over the four weeks before ``end``.
        measured = load_test_capacity(con, config, str(last["run"]), production_pod_model(
            con, end - timedelta(days=28), end))
        if measured.measured_rps_per_pod is not None:
            load += (_line(f"capacity under load {last['run']}",
                           "disagrees" if measured.disagree else "ok", measured.detail),)
    else:
        load = (_line("", "no data", NO_LOAD_TEST),)
    rpo = backup_rpo(con, config, end)
    known = rpo[rpo["status"] != "no data"]
    backups = (tuple(_line(str(row.kind), str(row.status), str(row.detail))
                     for row in rpo.itertuples())
               if len(known) else (_line("", "no data", NO_BACKUPS),))
    due = drills_due(con, config, end)
    drills = (tuple(_line(str(row.drill), str(row.status), str(row.detail))
                    for row in due.itertuples())
              if int(due["drills"].sum()) else (_line("", "no data", NO_DRILLS),))
    regions = _probe_lines(con, config, start, end) + _traffic_lines(con, config, start, end)
    if not regions:
        regions = (_line("", "no data", NO_PROBES),)
    return ScalabilityRecovery(start, end, load, backups, drills, regions)


def _probe_lines(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                 end: datetime) -> tuple[StatusLine, ...]:
    frame = region_availability(con, config, start, end)
    return tuple(_line(f"{row.region} (probes)", str(row.status), str(row.detail))
                 for row in frame.itertuples())


def _traffic_lines(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                   end: datetime) -> tuple[StatusLine, ...]:
    traffic = region_traffic(con, start, end)
    failovers = traffic_failovers(con, config, start, end)
    threshold = config.regions.failover_threshold
    lines = []
    for row in traffic.itertuples():
        mine = failovers[failovers["region"] == row.region]
        slow = mine[~mine["within_target"].astype(bool)]
        status = ("below threshold" if row.availability < threshold
                  else "slow failover" if len(slow) else "ok")
        p95 = (f"; p95 {row.p95_latency_ms:,.0f} ms" if row.p95_latency_ms is not None
               and not pd.isna(row.p95_latency_ms) else "")
        text = (f"{row.availability:.3f} % of {row.requests:,} requests answered "
                f"without a 5xx (failover threshold {threshold:g} %){p95}; "
                f"{counted(len(mine), 'failover')}")
        if len(mine):
            worst = mine["time_to_recover"].max().total_seconds() / 60
            text += f", slowest recovery {worst:.1f} min"
        lines.append(_line(f"{row.region} (requests)", status, text))
    return tuple(lines)


# Text from input files (run names, regions, errors) must stay text: HTML's own characters
# become entities (Markdown passes entities through as literal text), Markdown's markup
# characters are backslash-escaped, and line breaks become spaces.
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]#+!|~])")


def escape_markdown(text: str) -> str:
    """Return ``text`` with HTML and Markdown markup made inert, on one line."""
    flat = " ".join(text.split())
    flat = "".join(_HTML.get(char, char) for char in flat)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)


_MARK = {True: "✅", False: "⚠️", None: "—"}


def render_markdown(section: ScalabilityRecovery) -> str:
    """Return the section as Markdown: a heading, then one bullet per line under each part."""
    out = [f"## Scalability and recovery ({escape_markdown(section.status)})", ""]
    for title, lines in section.parts.items():
        out.append(f"**{title}**")
        out += [f"- {_MARK[line.ok]} "
                + (f"{escape_markdown(line.topic)}: " if line.topic else "")
                + f"{escape_markdown(line.status)} — {escape_markdown(line.text)}"
                for line in lines]
        out.append("")
    return "\n".join(out)
