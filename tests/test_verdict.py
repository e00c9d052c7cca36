"""The weekly verdict judges only the SLOs that could be judged, and names the others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mysetlist_slo import ingest_file
from mysetlist_slo.config import load_config, parse_config
from mysetlist_slo.report.weekly import WeeklySummary, estimated_latency_slos, verdict

START = datetime(2026, 11, 16, tzinfo=UTC)


def summary(slos: list[tuple[str, str, float | None]], breached: list[str]) -> WeeklySummary:
    """A week of 1,000 requests with the given (SLO, status, budget remaining) rows."""
    return WeeklySummary(
        week="2026-W47", start=START, end=START + timedelta(days=7), timezone="UTC",
        generated_at=START, requests=1000, errors_5xx=0, errors_4xx=0, availability=100.0,
        error_rate=0.0, p95_api_latency_ms=None, minutes_with_data=10080, week_minutes=10080,
        slos=[{"slo": n, "status": s, "budget_remaining": r} for n, s, r in slos],
        breached=breached)


def test_no_data_slos_are_not_counted_as_good() -> None:
    """3 of 5 SLOs without a verdict: never 'every SLO is within budget'; they are named."""
    text = verdict(summary([("availability", "ok", 0.5), ("error-rate", "ok", 0.9),
                            ("api-latency", "no data", None),
                            ("uptime-probes", "not enough events", None),
                            ("db-query-time", "source not loaded", None)], []), load_config())
    assert "Every SLO" not in text
    assert ("3 of 5 SLOs could not be judged: api-latency (no data), uptime-probes "
            "(not enough events), db-query-time (source not loaded).") in text
    # The budget left is of the windows ending at the week's end, and says so.
    assert ("The 2 judged are within budget; the tightest is availability with 50 % of its "
            "budget left at 2026-11-23 00:00 UTC.") in text


def test_all_judged_and_within_budget() -> None:
    """When every SLO has a verdict and none is breached, the verdict says so."""
    text = verdict(summary([("availability", "ok", 0.5), ("error-rate", "ok", 0.0)], []),
                   load_config())
    assert ("Every SLO is within budget; the tightest is error-rate with 0 % of its budget left "
            "at 2026-11-23 00:00 UTC.") in text
    assert "could not be judged" not in text


def test_breach_and_unjudged_together() -> None:
    """A breach is named, and so are the SLOs that could not be judged."""
    text = verdict(summary([("availability", "breach", -0.5), ("api-latency", "no data", None)],
                           ["availability"]), load_config())
    assert "Out of error budget: availability." in text
    assert "1 of 2 SLOs could not be judged: api-latency (no data)." in text


def test_latency_slo_on_unconfigured_threshold_is_flagged(store, tmp_path: Path) -> None:
    """Requests loaded while only 200 ms was counted: a 250 ms SLO is named as estimated for
    all of its window, the 200 ms one is not, and the verdict says so in one sentence."""
    n = 600
    ts = np.datetime64(START.replace(tzinfo=None), "us") + (
        np.arange(n) * 60).astype("timedelta64[s]")
    export = tmp_path / "r.parquet"
    pq.write_table(pa.table({"timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
                             "path": ["/api/shows/1"] * n, "status": [200] * n,
                             "duration_ms": np.linspace(50, 400, n)}), export)
    ingest_file(store, export, config=parse_config("latency_thresholds_ms: [200]"))
    config = parse_config("""
slos:
  - {name: api-200, sli: latency, threshold_ms: 200, objective: 99, window: 7d}
  - {name: api-250, sli: latency, threshold_ms: 250, objective: 99, window: 7d}
""")
    end = START + timedelta(days=7)
    found = estimated_latency_slos(store, config, end)
    assert found == [("api-250", 250.0, 1.0)]
    text = verdict(summary([], []), config, found)
    assert ("api-250: good counts under 250 ms are estimated from the latency sketches (exact "
            "at a threshold within 1 %) for 100 % of its window's requests, loaded before the "
            "threshold was configured.") in text


def test_composite_named_apart_in_the_verdict() -> None:
    """Two SLOs within budget and a breached composite over them: the SLOs are judged alone
    ("Every SLO is within budget"), and the composite gets its own sentence with its members,
    its status and the budget left (minus 20 %) at the week's end."""
    week = summary([("a", "ok", 0.5), ("b", "ok", 0.25)], [])
    week.composites = [{"slo": "journey", "status": "breach", "budget_remaining": -0.2,
                        "members": ["a", "b"]}]
    text = verdict(week, load_config())
    assert "Every SLO is within budget; the tightest is b with 25 % of its budget left" in text
    minus = "\u2212"  # the report writes a minus sign, not a hyphen
    assert (f"Composite journey (over a, b): breached, {minus}20.0 % of its budget left at "
            "2026-11-23 00:00 UTC.") in text
    assert "Out of error budget" not in text
