"""The weekly verdict judges only the SLOs that could be judged, and names the others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mysetlist_slo.config import load_config
from mysetlist_slo.report.weekly import WeeklySummary, verdict

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
    assert "The 2 judged are within budget; the tightest is availability with 50 % left." in text


def test_all_judged_and_within_budget() -> None:
    """When every SLO has a verdict and none is breached, the verdict says so."""
    text = verdict(summary([("availability", "ok", 0.5), ("error-rate", "ok", 0.0)], []),
                   load_config())
    assert "Every SLO is within budget; the tightest is error-rate with 0 % left." in text
    assert "could not be judged" not in text


def test_breach_and_unjudged_together() -> None:
    """A breach is named, and so are the SLOs that could not be judged."""
    text = verdict(summary([("availability", "breach", -0.5), ("api-latency", "no data", None)],
                           ["availability"]), load_config())
    assert "Out of error budget: availability." in text
    assert "1 of 2 SLOs could not be judged: api-latency (no data)." in text
