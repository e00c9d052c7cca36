"""The error-budget policy: hand-worked transitions with hysteresis, a replay over weeks of
requests ingested into a real store, and the freeze planted in the demo."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from mysetlist_slo import ConfigError, DemoManifest, ingest_file, load_config, open_store
from mysetlist_slo.config import ErrorBudgetPolicy, parse_config
from mysetlist_slo.report.budget_policy import budget_policy_section, policy_document
from mysetlist_slo.slo.policy import next_state, policy_states

POLICY = ErrorBudgetPolicy()  # freeze below 25 %, thaw above 50 %


@pytest.mark.parametrize(("previous", "remaining", "expected"), [
    ("normal", 80.0, "normal"),
    ("normal", 25.0, "normal"),  # at the line is not below it
    ("normal", 24.9, "freeze"),
    ("normal", 0.0, "exhausted"),  # nothing left is exhausted
    ("normal", -3.0, "exhausted"),
    ("freeze", 40.0, "freeze"),  # hysteresis: recovered past 25 % but not above 50 %
    ("freeze", 50.0, "freeze"),
    ("freeze", 50.1, "normal"),
    ("freeze", -1.0, "exhausted"),
    ("exhausted", 10.0, "freeze"),  # budget back, still frozen
    ("exhausted", 60.0, "normal"),
    ("exhausted", None, "exhausted"),  # no verdict keeps the state
    ("freeze", None, "freeze"),
    ("normal", None, "normal"),
])
def test_transitions(previous: str, remaining: float | None, expected: str) -> None:
    """Each state steps as the workbook policy and the thaw line say."""
    assert next_state(previous, remaining, POLICY) == expected


def test_policy_thresholds_are_checked() -> None:
    """A thaw line at or below the freeze line would flap: a ConfigError naming the key."""
    with pytest.raises(ConfigError) as caught:
        parse_config("error_budget_policy: {freeze_below: 30, thaw_above: 30}", "p.yaml")
    assert "p.yaml" in str(caught.value) and "thaw_above:" in str(caught.value)


AT = datetime(2026, 11, 23, tzinfo=UTC)  # a Monday: the end of 2026-W47
# Bad requests in each of the five weeks before AT, of 1,000 a week, against 99 % over 7 days
# (10 allowed): budget left at the week's end 80, 20, 40, 70, -20 %.
BAD = [2, 8, 6, 3, 12]


def test_replay_over_a_real_store(tmp_path: Path) -> None:
    """Five weeks ingested as a request export: normal, freeze (20 % left), still frozen at
    40 % (under the thaw line), thawed at 70 %, exhausted at -20 % with a postmortem asked."""
    lines = []
    for week, bad in enumerate(BAD):
        start = AT - timedelta(weeks=len(BAD) - week)
        for i in range(1_000):
            ts = start + timedelta(seconds=600 * i + 30)  # 1,000 x 10 min = 6.9 days
            lines.append(json.dumps({"timestamp": ts.isoformat().replace("+00:00", "Z"),
                                     "path": "/", "status": 500 if i < bad else 200}))
    export = tmp_path / "requests.jsonl"
    export.write_text("\n".join(lines) + "\n")
    config = parse_config("""
min_events: 10
slos: [{name: web, sli: availability, objective: 99, window: 7d}]
error_budget_policy: {freeze_below: 25, thaw_above: 50, history_weeks: 5}
""")
    con = open_store(tmp_path / "store.duckdb")
    ingest_file(con, export, config=config)
    [state] = policy_states(con, config, AT)
    con.close()
    steps = [(h.week, h.budget_remaining, h.state) for h in state.history]
    assert steps == [
        ("2026-W42", None, "normal"),
        ("2026-W43", pytest.approx(80.0), "normal"),
        ("2026-W44", pytest.approx(20.0), "freeze"),
        ("2026-W45", pytest.approx(40.0), "freeze"),
        ("2026-W46", pytest.approx(70.0), "normal"),
        ("2026-W47", pytest.approx(-20.0), "exhausted")]
    assert (state.state, state.previous_state, state.since) == ("exhausted", "normal",
                                                                 "2026-W47")
    assert state.postmortem and "postmortem" in state.action
    assert state.evidence.startswith("-20.0 % of the 7d budget left at the end of 2026-W47")


def test_demo_budget_state_triggers_a_freeze(demo: DemoManifest,
                                             demo_con: duckdb.DuckDBPyConnection) -> None:
    """The demo's API slowdown leaves api-latency about 15 % of its budget at the end of the
    last week: under 25 %, so the policy freezes releases that week, and the api-experience
    composite names api-latency as the member that spent most of its budget."""
    config = load_config()
    slowdown = demo.event("api_slowdown")
    assert demo.end - timedelta(days=7) <= slowdown.start < demo.end
    section = budget_policy_section(demo_con, config, demo.end)
    states = {s.slo: s for s in section.states}
    latency = states["api-latency"]
    assert latency.state == "freeze" and latency.since == "2026-W47"
    assert latency.budget_remaining is not None and 10 < latency.budget_remaining < 25
    assert latency.history[-2].state == "normal"  # the week before, before the slowdown
    assert "freeze" in latency.action.lower()
    [composite] = section.composites
    top = max(composite.members, key=lambda m: m.budget_spent or 0)
    assert top.slo == "api-latency"
    document = policy_document(section)
    assert {s["name"]: s["state"] for s in document["slos"]}["api-latency"] == "freeze"
