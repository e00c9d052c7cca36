"""Hand-worked cases for slo/alerts.py, written for the survivors of the mutation run of
issue 20 (bench/MUTATION.md): each number is worked on paper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from test_budget_math import write_requests

from mysetlist_slo import ingest_file
from mysetlist_slo.config import BurnRateRule, StaticAlert, parse_config
from mysetlist_slo.slo.alerts import (
    AlertBacktest,
    AlertRule,
    _minutes,
    _window_name,
    backtest_alerts,
    backtest_verdict,
    budget_incidents,
    burn_rate_alerts,
    scaled_rules,
)

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
# Objective 99 %: the allowed share is 1/100, so a minute with 30 bad of 100 burns at 30.
CONFIG = parse_config("slos: [{name: a, sli: availability, objective: 99, window: 30d}]")
SLO = CONFIG.slos[0]


def minutes_of_traffic(store, tmp_path, bad_by_minute: dict[int, int], minutes: int = 30) -> None:
    """Ingest 100 requests in each minute T0 + m (m < ``minutes``), the first
    ``bad_by_minute[m]`` of them 5xx."""
    events = [(T0 + m * MIN + i * timedelta(milliseconds=500),
               503 if i < bad_by_minute.get(m, 0) else 200)
              for m in range(minutes) for i in range(100)]
    ingest_file(store, write_requests(tmp_path / "r.parquet", events))


# 30 bad requests at minutes 10 and 11. The 10-minute burn at minute m (minutes m-9..m) is
# 30/1000/1 % = 3 at m = 10, 60/1000/1 % = 6 at m = 11..19, 3 at m = 20; the 2-minute burn is
# 30/200/1 % = 15 at m = 10, 60/200/1 % = 30 at m = 11, 15 at m = 12, 0 from m = 13.
TWO_BAD_MINUTES = {10: 30, 11: 30}
FAST = AlertRule("fast", "page", 10 * MIN, 2 * MIN, 5.0)


@pytest.fixture(name="two_bad_minutes")
def fixture_two_bad_minutes(store, tmp_path):  # type: ignore[no-untyped-def]
    """The store with 100 requests a minute for 30 minutes, 30 bad at minutes 10 and 11."""
    minutes_of_traffic(store, tmp_path, TWO_BAD_MINUTES)
    return store


def test_burn_rate_rule_fires_while_both_windows_burn(two_bad_minutes) -> None:
    """Rate 5 over 10 m and 2 m: both reach 5 at minutes 11 and 12 only (long 6, short 30 and
    15), and a minute fires at its end: [T0+12m, T0+14m). A `for: 1m` rule fires 1 minute
    later; `for: 2m` never fires (pending for the whole run). Exactly at the rate fires: 6.0
    over 10 m, and 15.0 over 2 m and 2 m (the 2-minute burn is exactly 15 at minutes 10 and 12,
    30 at 11: [T0+11m, T0+14m))."""
    rules = [FAST, AlertRule("for1", "page", 10 * MIN, 2 * MIN, 5.0, for_duration=MIN),
             AlertRule("for2", "page", 10 * MIN, 2 * MIN, 5.0, for_duration=2 * MIN),
             AlertRule("at6", "ticket", 10 * MIN, 2 * MIN, 6.0),
             AlertRule("at15", "ticket", 2 * MIN, 2 * MIN, 15.0),
             AlertRule("above", "ticket", 10 * MIN, 2 * MIN, 6.5)]
    firings = burn_rate_alerts(two_bad_minutes, SLO, CONFIG, T0 + 10 * MIN, T0 + 30 * MIN, rules)
    assert firings.values.tolist() == [
        ["fast", "burn rate", "page", T0 + 12 * MIN, T0 + 14 * MIN],
        ["for1", "burn rate", "page", T0 + 13 * MIN, T0 + 14 * MIN],
        ["at6", "burn rate", "ticket", T0 + 12 * MIN, T0 + 14 * MIN],
        ["at15", "burn rate", "ticket", T0 + 11 * MIN, T0 + 14 * MIN]]


def test_a_firing_still_on_at_the_end_stops_there(two_bad_minutes) -> None:
    """Evaluated up to T0+13m (minutes 10..12), the rule still fires in the last minute: its
    end is the period's end T0+13m, not T0+14m."""
    firings = burn_rate_alerts(two_bad_minutes, SLO, CONFIG, T0 + 10 * MIN, T0 + 13 * MIN,
                               [FAST])
    assert firings[["start", "end"]].values.tolist() == [[T0 + 12 * MIN, T0 + 13 * MIN]]


def test_budget_incidents_join_runs_under_five_minutes_apart(store, tmp_path) -> None:
    """Bad minutes 5, 9 and 15 (30 of 100 each: burn 30 >= 10). Runs [5, 6) and [9, 10) are 3
    minutes apart, one incident [T0+5m, T0+10m) of 60 bad; [15, 16) starts 5 minutes after it
    ends, a second incident of 30 bad (the joined incident used to end at T0+11m, a minute
    late, and so took in the run 4 minutes later). A 30-day budget at 100 requests a minute
    is 1 % x 100 x 43,200 = 43,200: at min share 0.0006 (25.92 bad) both count, at 0.001
    (43.2) the first only, at 0.0014 (60.48) neither."""
    minutes_of_traffic(store, tmp_path, {5: 30, 9: 30, 15: 30})
    both = budget_incidents(store, SLO, T0, T0 + 30 * MIN, min_budget_share=0.0006)
    assert both.values.tolist() == [[T0 + 5 * MIN, T0 + 10 * MIN, 60],
                                    [T0 + 15 * MIN, T0 + 16 * MIN, 30]]
    first = budget_incidents(store, SLO, T0, T0 + 30 * MIN, min_budget_share=0.001)
    assert first.values.tolist() == [[T0 + 5 * MIN, T0 + 10 * MIN, 60]]
    assert budget_incidents(store, SLO, T0, T0 + 30 * MIN, min_budget_share=0.0014).empty


def test_budget_incidents_at_exactly_the_burn_rate(store, tmp_path) -> None:
    """A minute of 10 bad in 100 burns at exactly 10 against 99 %: it is an incident at the
    default rate 10 (reaching the rate counts), and not at 10.5; its 10 bad events are 10 /
    43,200 of a 30-day budget at 100 a minute, above the min share 0.0002 (8.64 bad)."""
    minutes_of_traffic(store, tmp_path, {7: 10})
    found = budget_incidents(store, SLO, T0, T0 + 30 * MIN, min_budget_share=0.0002)
    assert found.values.tolist() == [[T0 + 7 * MIN, T0 + 8 * MIN, 10]]
    assert budget_incidents(store, SLO, T0, T0 + 30 * MIN, burn_rate=10.5,
                            min_budget_share=0.0002).empty


def test_backtest_by_hand(two_bad_minutes) -> None:
    """Rules: FAST fires [12, 14) as above; a static 'error rate > 25 % over 1 m' fires for
    minutes 10 and 11 (30 %), [11, 13); a rate-100 rule never fires. Incidents [10, 12) and
    [25, 27): both firings overlap the first (in_incident); FAST detects it in 2 min and resets
    2 min after its end, the static rule 1 min and 1 min; nothing catches the second. With only
    the second incident known, both firings are noise."""
    static = [StaticAlert(name="errors", metric="error_rate", op=">", value=0.25,
                          severity="ticket", window="1m")]
    rules = [FAST, AlertRule("never", "page", 10 * MIN, 2 * MIN, 100.0)]
    incidents = pd.DataFrame({"start": [T0 + 10 * MIN, T0 + 25 * MIN],
                              "end": [T0 + 12 * MIN, T0 + 27 * MIN]})
    result = backtest_alerts(two_bad_minutes, SLO, CONFIG, T0 + 10 * MIN, T0 + 30 * MIN,
                             incidents, rules, static)
    assert result.firings.values.tolist() == [
        ["fast", "burn rate", "page", T0 + 12 * MIN, T0 + 14 * MIN, True],
        ["errors", "static", "ticket", T0 + 11 * MIN, T0 + 13 * MIN, True]]
    first = result.detection[result.detection["incident_start"] == T0 + 10 * MIN]
    assert first["rule"].tolist() == ["fast", "never", "errors"]
    assert first["time_to_detect"].tolist()[::2] == [2 * MIN, MIN]
    assert first["time_to_reset"].tolist()[::2] == [2 * MIN, MIN]
    assert first.iloc[1][["detected_at", "time_to_detect", "time_to_reset"]].isna().all()
    assert result.detection[result.detection["incident_start"] == T0 + 25 * MIN][
        "detected_at"].isna().all()
    assert result.summary[["rule", "kind", "firings", "noisy_firings", "firing_minutes",
                           "incidents_caught", "incidents"]].values.tolist() == [
        ["fast", "burn rate", 1, 0, 2, 1, 2], ["never", "burn rate", 0, 0, 0, 0, 2],
        ["errors", "static", 1, 0, 2, 1, 2]]
    median = result.summary["median_time_to_detect"].tolist()
    assert [median[0], median[2]] == [2 * MIN, MIN] and pd.isna(median[1])
    assert backtest_verdict(result).splitlines() == [
        "2 incident(s) in the period.",
        "- fast (burn rate, page): caught 1 of 2, median 2 min to detect; 0 of 1 firings"
        " outside incidents.",
        "- never (burn rate, page): caught 0 of 2; never fired.",
        "- errors (static, ticket): caught 1 of 2, median 1 min to detect; 0 of 1 firings"
        " outside incidents."]
    later = backtest_alerts(two_bad_minutes, SLO, CONFIG, T0 + 10 * MIN, T0 + 30 * MIN,
                            incidents.iloc[1:], rules, static)
    assert later.firings["in_incident"].tolist() == [False, False]
    assert later.summary["noisy_firings"].tolist() == [1, 0, 1]


def test_scaled_rules_keep_every_field() -> None:
    """A ticket rule 6h/30m at 6 with `for: 2m`, scaled for a 15-day window: rate 6 x 15/30 = 3,
    named for it, severity, both windows and the `for` duration kept."""
    rule = BurnRateRule.model_validate({"severity": "ticket", "long_window": "6h",
                                        "short_window": "30m", "burn_rate": 6, "for": "2m"})
    (scaled,) = scaled_rules([rule], timedelta(days=15))
    assert scaled == AlertRule("ticket 6h/30m x3", "ticket", timedelta(hours=6), 30 * MIN, 3.0,
                               timedelta(days=15), 2 * MIN)


def test_backtest_with_the_configured_rules_and_found_incidents(two_bad_minutes) -> None:
    """Defaults over [T0+10m, T0+30m): the configured rules (the workbook's, for a 30-day window)
    and static alerts (the plan's). Burn over the data so far at minute m >= 11 is 60 / (100
    (m + 1)) / 1 % = 60 / (m + 1) in every window of an hour or more (the data began at T0),
    30 / 11 = 2.7 at m = 10. x14.4 (1 h) and x6 (6 h) never fire (5 at most); x3 (1 d / 2 h)
    fires while 60 / (m + 1) >= 3, minutes 11-19, from the end of minute 11 to the end of
    minute 20 (the first that does not): [T0+12m, T0+21m); x1 (3 d / 6 h) from minute 10 to
    the end: [T0+11m, T0+30m). Static: error rate > 1 % over 5 m holds minutes 10-15 (a
    window holding minute 10 or 11): [T0+11m, T0+17m); availability < 99.9 % over 1 h from
    minute 10: [T0+11m, T0+30m); no response times, so never slow. The incidents found in
    the SLO's events of the period: minutes 10 and 11 burn at 30 but their 60 bad are under
    1 % of a 30-day budget at 100 a minute (432): none, so every firing is noise."""
    config = parse_config("""
slos: [{name: a, sli: availability, objective: 99, window: 30d}]
alerts:
  burn_rate:
    - {severity: page, long_window: 1h, short_window: 5m, burn_rate: 14.4}
    - {severity: page, long_window: 6h, short_window: 30m, burn_rate: 6}
    - {severity: ticket, long_window: 1d, short_window: 2h, burn_rate: 3}
    - {severity: ticket, long_window: 3d, short_window: 6h, burn_rate: 1}
  static:
    - {name: high_error_rate, metric: error_rate, op: ">", value: 0.01, severity: critical,
       window: 5m}
    - {name: slow_response_time, metric: response_time_ms, op: ">", value: 500,
       severity: warning, window: 5m}
    - {name: low_availability, metric: uptime, op: "<", value: 0.999, severity: critical,
       window: 1h}
""")
    result = backtest_alerts(two_bad_minutes, config.slos[0], config, T0 + 10 * MIN,
                             T0 + 30 * MIN)
    assert result.firings[["rule", "start", "end", "in_incident"]].values.tolist() == [
        ["ticket 1d/2h x3", T0 + 12 * MIN, T0 + 21 * MIN, False],
        ["ticket 3d/6h x1", T0 + 11 * MIN, T0 + 30 * MIN, False],
        ["high_error_rate", T0 + 11 * MIN, T0 + 17 * MIN, False],
        ["low_availability", T0 + 11 * MIN, T0 + 30 * MIN, False]]
    assert result.firings.index.tolist() == [0, 1, 2, 3]  # one index over both kinds
    assert result.summary["rule"].tolist() == [
        "page 1h/5m x14.4", "page 6h/30m x6", "ticket 1d/2h x3", "ticket 3d/6h x1",
        "high_error_rate", "slow_response_time", "low_availability"]
    assert result.summary["incidents"].tolist() == [0] * 7
    assert result.summary["firings"].tolist() == [0, 0, 1, 1, 1, 0, 1]
    assert result.detection.empty


@pytest.mark.parametrize(("window", "name"), [
    (timedelta(days=1), "1d"), (timedelta(days=3), "3d"), (timedelta(hours=6), "6h"),
    (timedelta(hours=30), "30h"), (5 * MIN, "5m"), (90 * MIN, "90m"), (61 * MIN, "61m")])
def test_window_names(window: timedelta, name: str) -> None:
    """Burn columns are named in the largest whole unit: 1,440 min is 1d, 4,320 min 3d, 360
    min 6h, 1,800 min (not whole days) 30h, 90 and 61 min (not whole hours) in minutes."""
    assert _window_name(window) == name


@pytest.mark.parametrize(("span", "text"), [
    (timedelta(minutes=60), "60 min"), (timedelta(minutes=119), "119 min"),
    (timedelta(minutes=120), "2.0 h"), (timedelta(minutes=150), "2.5 h"),
    (timedelta(hours=10), "10.0 h")])
def test_detection_times_in_minutes_then_hours(span: timedelta, text: str) -> None:
    """Under 120 minutes a detection time reads in minutes; from exactly 120 in hours (150
    min is 2.5 h, 600 min 10.0 h)."""
    assert _minutes(pd.Timedelta(span)) == text


def test_verdict_without_rules() -> None:
    """No rules at all: the verdict says there is nothing to judge."""
    empty = AlertBacktest(pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    assert backtest_verdict(empty) == "No alert rules to judge."
