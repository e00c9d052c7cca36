"""Budget burn-down worked by hand: a window starting on the half hour, a calendar week
across a DST change, and a window without events (mutation-testing survivors)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from test_budget_math import write_requests

from mysetlist_slo import budget_burndown, ingest_file
from mysetlist_slo.config import parse_config

NOV = datetime(2026, 11, 1, tzinfo=UTC)
COLUMNS = ["time", "total", "bad", "budget_remaining"]


def hour_of(start: datetime, requests: int, bad: int) -> list[tuple[datetime, int]]:
    """Return ``requests`` requests spread over the hour from ``start``, the first ``bad`` 5xx."""
    step = timedelta(hours=1) / requests
    return [(start + i * step, 503 if i < bad else 200) for i in range(requests)]


def config(window: str, objective: float, timezone: str = "UTC"):
    return parse_config(f"""
timezone: {timezone}
slos: [{{name: s, sli: availability, objective: {objective}, window: {window}}}]
""")


def test_rolling_burndown_from_a_half_hour_start(store, tmp_path) -> None:
    """A day's window read at 00:30 starts at 00:30: hourly rows from there. 100 requests in
    its first hour, 100 with 1 failure from 05:30, and 100 at 00:10 outside it: 200 events at
    99 % allow 2 bad, so the budget reads 100 % until 05:30 and 50 % after."""
    events = (hour_of(NOV + timedelta(minutes=30), 100, 0)
              + hour_of(NOV + timedelta(hours=5, minutes=30), 100, 1)
              + [(NOV + timedelta(minutes=10, seconds=i), 503) for i in range(100)])
    ingest_file(store, write_requests(tmp_path / "r.parquet", events))
    cfg = config("1d", 99)
    frame = budget_burndown(store, cfg.slos[0], cfg, NOV + timedelta(days=1, minutes=30))
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 24
    assert frame["time"].iloc[0] == NOV + timedelta(minutes=30)
    assert str(frame["time"].dt.tz) == "UTC"
    assert frame["total"].tolist() == [100] * 5 + [200] * 19
    assert frame["bad"].tolist() == [0] * 5 + [1] * 19
    assert frame["budget_remaining"].tolist() == pytest.approx([1.0] * 5 + [0.5] * 19)


def test_calendar_week_across_the_dst_change(store, tmp_path) -> None:
    """London's week from Monday 19 October 2026 00:00 BST (18 October 23:00 UTC) to Monday
    26 October 00:00 GMT holds the change back to GMT on the 25th: it is 169 hours. A day in,
    with 1,000 requests and 10 failures in its first hour at 99.9 %, the week's budget is
    1,000 x 169/24 x 0.1 % = 7.04 bad, so 10 bad leave 1 - 240/169 = -71/169."""
    start = datetime(2026, 10, 18, 23, tzinfo=UTC)
    ingest_file(store, write_requests(tmp_path / "r.parquet", hour_of(start, 1000, 10)))
    cfg = config("week", 99.9, "Europe/London")
    frame = budget_burndown(store, cfg.slos[0], cfg, start + timedelta(hours=24))
    assert len(frame) == 24
    assert frame["time"].iloc[0] == start
    assert frame["bad"].tolist() == [10] * 24
    assert frame["budget_remaining"].iloc[-1] == pytest.approx(-71 / 169, rel=1e-12)


def test_burndown_without_events(store) -> None:
    """No events in the window: one row per hour, nothing counted, no budget figure."""
    cfg = config("1d", 99)
    frame = budget_burndown(store, cfg.slos[0], cfg, NOV + timedelta(days=1))
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 24 and frame["time"].iloc[0] == NOV
    assert (frame["total"] == 0).all() and (frame["bad"] == 0).all()
    assert np.isnan(frame["budget_remaining"]).all()


def test_budget_of_less_than_one_bad_event(store, tmp_path) -> None:
    """50 requests at 99 % allow half a bad request: one failure spends twice the budget,
    -100 % left (a budget under one event is still a budget)."""
    ingest_file(store, write_requests(tmp_path / "r.parquet", hour_of(NOV, 50, 1)))
    cfg = config("1d", 99)
    frame = budget_burndown(store, cfg.slos[0], cfg, NOV + timedelta(days=1))
    assert frame["budget_remaining"].iloc[-1] == pytest.approx(-1.0)
