"""Composite SLOs: hand-worked budgets by events and by weights, the configuration's refusals,
and an oracle over raw request events ingested through the real path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mysetlist_slo import ConfigError, error_budgets, ingest_file, load_config, open_store
from mysetlist_slo.config import parse_config
from mysetlist_slo.slo.composite import (
    MemberCounts,
    combine,
    composite_report,
    evaluate_composite,
    member_events,
    period_share,
)

SLOS = """
slos:
  - {name: avail-api, sli: availability, routes: ["/api/*"], objective: 99.9, window: 7d}
  - {name: avail-web, sli: availability, routes: ["/web"], objective: 99.5, window: 7d}
  - {name: lat-api, sli: latency, routes: ["/api/*"], threshold_ms: 200, objective: 99,
     window: 7d}
  - {name: monthly, sli: availability, objective: 99.9, window: month}
"""


def test_by_events_hand_worked() -> None:
    """By events: 10 + 40 bad of 12,000 against 99.5 % (60 allowed): A spent 1/6, B 2/3,
    1/6 left, SLI 11,950 / 12,000."""
    result = combine("events", 99.5, [MemberCounts("a", 1, 9_990, 10_000),
                                      MemberCounts("b", 1, 1_960, 2_000)])
    assert result.sli == Fraction(11_950, 12_000)
    assert result.spent == (Fraction(1, 6), Fraction(2, 3))
    assert result.remaining == Fraction(1, 6)
    assert result.weights == (Fraction(10_000, 12_000), Fraction(2_000, 12_000))


def test_by_weights_hand_worked() -> None:
    """By weights 3:1, SLIs 99.9 % and 99 % against 99.5 %: SLI 0.75 x 99.9 + 0.25 x 99 =
    99.675 %; A spent 0.75 x 0.1 % / 0.5 % = 15 %, B 0.25 x 1 % / 0.5 % = 50 %; 35 % left."""
    result = combine("weights", 99.5, [MemberCounts("a", 3, 999, 1_000),
                                       MemberCounts("b", 1, 990, 1_000)])
    assert result.sli == Fraction(99_675, 100_000)
    assert result.spent == (Fraction(15, 100), Fraction(50, 100))
    assert result.remaining == Fraction(35, 100)
    assert result.weights == (Fraction(3, 4), Fraction(1, 4))


def test_by_weights_leaves_out_a_member_without_enough_events() -> None:
    """A member under min_events is left out and the weights renormalised over the rest: the
    composite is then the other member alone."""
    result = combine("weights", 99.0, [MemberCounts("a", 1, 995, 1_000),
                                       MemberCounts("b", 5, 0, 3)], min_events=100)
    assert result.weights == (Fraction(1), None)
    assert result.sli == Fraction(995, 1_000)
    assert result.remaining == Fraction(1, 2)  # 0.5 % bad of 1 % allowed
    assert result.spent == (Fraction(1, 2), None)


def test_calendar_budget_is_the_whole_periods() -> None:
    """A calendar period a third elapsed budgets on three times the events so far: 2 bad of
    1,000 against 99.9 % (3 allowed over the period) leaves 1/3."""
    result = combine("events", 99.9, [MemberCounts("a", 1, 499, 500),
                                      MemberCounts("b", 1, 499, 500)], scale=Fraction(3))
    assert result.remaining == Fraction(1, 3)


def test_nothing_to_judge() -> None:
    """No events: no SLI and no budget, never a full budget."""
    assert combine("events", 99, [MemberCounts("a", 1, 0, 0)]).remaining is None
    assert combine("weights", 99, [MemberCounts("a", 1, 0, 0)]).sli is None


@pytest.mark.parametrize(("composite", "key"), [
    ("{name: c, method: events, objective: 99, members: [{slo: avail-api}, {slo: nope}]}",
     "composites[0].members[1].slo"),
    ("{name: c, method: events, objective: 99, members: [{slo: avail-api}, {slo: monthly}]}",
     "composites[0].members[1].slo"),
    ("{name: c, method: events, objective: 99, members: [{slo: avail-api, weight: 2}, "
     "{slo: avail-web}]}", "composites[0]: members[0].weight"),
    ("{name: c, method: weights, objective: 99, members: [{slo: avail-api}, "
     "{slo: avail-api}]}", "composites[0]: members[1].slo"),
    ("{name: c, method: weights, objective: 99, members: [{slo: avail-api}]}",
     "composites[0].members"),
    ("{name: avail-web, method: events, objective: 99, members: [{slo: avail-api}, "
     "{slo: avail-web}]}", "composites[0].name"),
    ("{name: c, method: weights, objective: 99, members: [{slo: avail-api, weight: 0}, "
     "{slo: avail-web}]}", "composites[0].members[0].weight"),
    ("{name: c, method: mean, objective: 99, members: [{slo: avail-api}, {slo: avail-web}]}",
     "composites[0].method"),
])
def test_composite_config_errors_name_the_key(composite: str, key: str) -> None:
    """Each invalid composite is a ConfigError naming the file and the key."""
    with pytest.raises(ConfigError) as caught:
        parse_config(SLOS + f"composites:\n  - {composite}\n", "slo.yaml")
    assert "slo.yaml" in str(caught.value) and f"{key}:" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# The oracle: random requests on two routes, through the JSONL ingest, against plain pandas.

AT = datetime(2026, 11, 19, 13, 0, tzinfo=UTC)  # a Thursday: the calendar week is 3.5 days old
COMPOSITES = """
composites:
  - name: by-events
    method: events
    objective: 99.7
    members: [{slo: avail-api}, {slo: avail-web}]
  - name: by-weights
    method: weights
    objective: 99.5
    members: [{slo: avail-api, weight: 2}, {slo: lat-api, weight: 1}]
"""


def _events(seed: int) -> pd.DataFrame:
    """Requests over the 9 days before AT: routes, 5xx in bursts, latencies in whole ms."""
    rng = np.random.default_rng(seed)
    n = 30_000
    ts = AT - pd.to_timedelta(rng.uniform(0, 9 * 86_400, n), unit="s")
    route = rng.choice(["/api/a", "/web"], n, p=[0.6, 0.4])
    burst = (ts > AT - timedelta(hours=30)) & (ts < AT - timedelta(hours=29))
    bad = rng.random(n) < np.where(burst, 0.3, 0.002)
    status = np.where(bad, rng.choice([500, 502, 503], n), rng.choice([200, 404], n,
                                                                     p=[0.95, 0.05]))
    latency_ms = np.round(rng.lognormal(np.log(80), 0.7, n)).astype(int) + 1
    return pd.DataFrame({"ts": ts, "route": route, "status": status,
                         "latency_ms": latency_ms}).sort_values("ts", ignore_index=True)


def _oracle_members(events: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each member SLO's events as (ts, good), from the raw requests alone."""
    api, web = events[events["route"] == "/api/a"], events[events["route"] == "/web"]
    answered = api[api["status"] < 500]  # latency counts the answered, timed requests
    return {"avail-api": pd.DataFrame({"ts": api["ts"], "good": api["status"] < 500}),
            "avail-web": pd.DataFrame({"ts": web["ts"], "good": web["status"] < 500}),
            "lat-api": pd.DataFrame({"ts": answered["ts"],
                                     "good": answered["latency_ms"] < 200})}


def _oracle(frames: list[pd.DataFrame], method: str, weights: list[int], objective: str,
            start: datetime, end: datetime, scale: Fraction, min_events: int
            ) -> tuple[Fraction, Fraction, list[Fraction]]:
    """Return (SLI, budget remaining, spend per member) over [start, end) by the definition."""
    share = 1 - Fraction(objective) / 100
    counts = []
    for frame in frames:
        inside = frame[(frame["ts"] >= start) & (frame["ts"] < end)]
        counts.append((int(inside["good"].sum()), len(inside)))
    if method == "events":
        total = sum(t for _, t in counts)
        spent = [Fraction(t - g) / (share * scale * total) for g, t in counts]
        return Fraction(sum(g for g, _ in counts), total), 1 - sum(spent), spent
    judged = [(w, g, t) for w, (g, t) in zip(weights, counts, strict=True) if t >= min_events]
    weight_sum = sum(w for w, _, _ in judged)
    spent = [Fraction(w, weight_sum) * Fraction(t - g, t) / (share * scale)
             for w, g, t in judged]
    sli = sum(Fraction(w, weight_sum) * Fraction(g, t) for w, g, t in judged)
    return Fraction(sli), 1 - sum(spent), spent


@pytest.mark.parametrize(("seed", "window"), [(1, "7d"), (2, "7d"), (3, "week")])
def test_composite_matches_the_oracle(tmp_path: Path, seed: int, window: str) -> None:
    """SLI, budget left, each member's spend, burn rates over 1 h and 24 h and the week's
    share of the spend equal brute-force pandas over the raw requests, for both methods,
    rolling and calendar windows."""
    text = (SLOS.replace("window: 7d", f"window: {window}") + COMPOSITES
            + "min_events: 100\nroutes: {patterns: [/api/a, /web], min_requests: 1}\n")
    config = parse_config(text)
    events = _events(seed)
    export = tmp_path / "requests.jsonl"
    export.write_text("".join(json.dumps({
        "timestamp": ts.isoformat().replace("+00:00", "Z"), "path": route,
        "status": int(status), "duration_ms": int(ms)}) + "\n"
        for ts, route, status, ms in events.itertuples(index=False)))
    con = open_store(tmp_path / "store.duckdb")
    ingest_file(con, export, config=config)
    members = _oracle_members(events)
    table = error_budgets(con, config, AT).set_index("slo")
    if window == "week":
        start = datetime(2026, 11, 16, tzinfo=UTC)
        scale = Fraction(7 * 24 * 60, int((AT - start) / timedelta(minutes=1)))
    else:
        start, scale = AT - timedelta(days=7), Fraction(1)
    for composite in config.composites:
        names = [m.slo for m in composite.members]
        weights = [int(m.weight or 1) for m in composite.members]
        frames = [members[n] for n in names]
        report = composite_report(con, config, composite, AT)
        sli, remaining, spent = _oracle(frames, composite.method, weights,
                                        str(composite.objective), start, AT, scale, 100)
        assert report.status == ("ok" if remaining >= 0 else "breach")
        assert report.sli == pytest.approx(float(100 * sli), rel=1e-12)
        assert report.budget_remaining == pytest.approx(float(remaining), rel=1e-9)
        # The SLO table (status, error_budgets) shows the composite with the same numbers.
        row = table.loc[composite.name]
        assert (row["sli_kind"], row["composite_of"]) == ("composite", names)
        assert row["sli"] == pytest.approx(float(100 * sli), rel=1e-12)
        assert row["budget_remaining"] == pytest.approx(float(remaining), rel=1e-9)
        assert [m.budget_spent for m in report.members] == pytest.approx(
            [float(s) for s in spent], rel=1e-9)
        for name, span in (("1h", timedelta(hours=1)), ("24h", timedelta(hours=24))):
            recent, _, _ = _oracle(frames, composite.method, weights, str(composite.objective),
                                   AT - span, AT, Fraction(1), 1)
            burn = (1 - recent) / (1 - Fraction(str(composite.objective)) / 100)
            assert getattr(report, f"burn_rate_{name}") == pytest.approx(float(burn),
                                                                        rel=1e-9)
        # The last two days' share of the window's spend: their bad events (weighted) over
        # the window's allowance, as the weekly status row shows it.
        part_start = AT - timedelta(days=2)
        frames_events = member_events(con, config, composite, start - timedelta(days=7), AT)
        _, part_spent, _ = period_share(config, composite, frames_events, report, part_start,
                                        AT)
        whole = [f[(f["ts"] >= start) & (f["ts"] < AT)] for f in frames]
        part = [f[(f["ts"] >= part_start) & (f["ts"] < AT)] for f in frames]
        share = 1 - Fraction(str(composite.objective)) / 100
        if composite.method == "events":
            expected = Fraction(sum(int((~p["good"]).sum()) for p in part)) / (
                share * scale * sum(len(w) for w in whole))
        else:
            expected = sum(Fraction(w, sum(weights)) * Fraction(int((~p["good"]).sum()), len(f))
                           for w, p, f in zip(weights, part, whole, strict=True)) / (
                share * scale)
        assert part_spent == pytest.approx(float(expected), rel=1e-9)
    # Each composite right after the last of its members, in the configured order.
    assert list(table.index) == ["avail-api", "avail-web", "by-events", "lat-api",
                                 "by-weights", "monthly"]
    con.close()


# ---------------------------------------------------------------------------------------------
# OpenSLO v1: objectives with their own indicators and compositeWeight.

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "openslo-composite.yaml"


def test_openslo_composite_maps_onto_members_and_a_weighted_composite() -> None:
    """The example becomes two member SLOs and a weights composite 3:1 whose objective is the
    targets averaged alike, (3 x 99.9 + 99) / 4 = 99.675 %; the shipped composites (which name
    the shipped SLOs) are replaced."""
    config = load_config(EXAMPLE)
    assert [(s.name, s.sli, s.objective, s.window) for s in config.slos] == [
        ("api-journey-0", "availability", pytest.approx(99.9), "28d"),
        ("api-journey-1", "latency", pytest.approx(99.0), "28d")]
    [composite] = config.composites
    assert (composite.name, composite.method) == ("api-journey", "weights")
    assert composite.objective == pytest.approx(99.675)
    assert composite.weights == {"api-journey-0": 3.0, "api-journey-1": 1.0}


def _composite_document(edit: str) -> str:
    text = EXAMPLE.read_text()
    if edit == "spec-indicator":
        return text.replace("  service: mysetlist-api\n", "  service: mysetlist-api\n"
                            "  indicatorRef: shared\n")
    if edit == "weight-zero":
        return text.replace("compositeWeight: 3", "compositeWeight: 0")
    if edit == "one-objective":
        return text.split("    - displayName: Fast")[0]
    if edit == "indicator-ref":
        head = text.split("    - displayName: Fast")[0]
        return head + "    - displayName: Fast\n      target: 0.99\n      indicatorRef: fast\n"
    raise AssertionError(edit)


@pytest.mark.parametrize(("edit", "key"), [
    ("spec-indicator", "documents[0].spec.indicator"),
    ("weight-zero", "documents[0].spec.objectives[0].compositeWeight"),
    ("one-objective", "documents[0].spec.objectives"),
    ("indicator-ref", "documents[0].spec.objectives[1].indicatorRef"),
])
def test_openslo_composites_that_do_not_map_are_refused(edit: str, key: str) -> None:
    """What cannot be mapped faithfully is a ConfigError naming the document's key."""
    with pytest.raises(ConfigError) as caught:
        parse_config(_composite_document(edit), "composite.yaml")
    assert f"{key}:" in str(caught.value), str(caught.value)


def test_readme_example_is_the_shipped_default() -> None:
    """The README's composite and policy example is what the shipped configuration holds."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Composite SLOs and the error-budget policy", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    shipped = load_config()
    example = parse_config(block + "slos: " + json.dumps(
        [s.model_dump(exclude_none=True) for s in shipped.slos]), "README.md")
    assert ([c.model_dump(exclude={"description"}) for c in example.composites]
            == [c.model_dump(exclude={"description"}) for c in shipped.composites])
    assert example.error_budget_policy == shipped.error_budget_policy


def _frame(start: datetime, minutes: int, total: int, bad: list[int]) -> pd.DataFrame:
    """Per-minute events from ``start``: ``total`` a minute, ``bad[i]`` of them bad."""
    index = pd.date_range(start, periods=minutes, freq="1min", tz="UTC")
    return pd.DataFrame({"minute": index, "good": [total - b for b in bad],
                         "total": [total] * minutes})


def test_exhaustion_calendar_hand_worked() -> None:
    """A week 3 days old whose events all came on day 3: 20 bad of 10,000 against 99.9 %
    spend 6/7 of the whole week's budget (23.3 allowed); at the 24 h burn of 2 the last 1/7
    lasts 1/7 x 7 days / 2 = 12 h."""
    config = parse_config("""
slos: [{name: a, sli: availability, objective: 99.9, window: week},
       {name: b, sli: availability, objective: 99.9, window: week}]
composites: [{name: c, method: events, objective: 99.9, members: [{slo: a}, {slo: b}]}]
""")
    at = datetime(2026, 11, 19, tzinfo=UTC)  # Thursday 00:00: 3 of 7 days elapsed
    noon = datetime(2026, 11, 18, 12, tzinfo=UTC)
    frames = [_frame(noon, 1, 5_000, [10]), _frame(noon, 1, 5_000, [10])]
    report = evaluate_composite(config, config.composites[0], frames, at)
    assert report.budget_remaining == pytest.approx(1 / 7)
    assert report.burn_rate_24h == pytest.approx(2.0)
    assert report.burn_rate_1h is None  # no events in the last hour
    assert report.exhausted_at == at + timedelta(hours=12)


def test_exhaustion_rolling_hand_worked() -> None:
    """A 1-day window, 250 events a minute (two members): clean for 12 h, then 1 bad a
    minute: 720 bad of 360,000 against 99.75 % (900 allowed). At the last 24 h's pace (0.5
    bad a minute) the clean minutes leave first: 720 + 0.5 t reaches 900 at t = 6 h."""
    config = parse_config("""
slos: [{name: a, sli: availability, objective: 99.75, window: 1d},
       {name: b, sli: availability, objective: 99.75, window: 1d}]
composites: [{name: c, method: events, objective: 99.75, members: [{slo: a}, {slo: b}]}]
""")
    at = datetime(2026, 11, 19, tzinfo=UTC)
    start = at - timedelta(days=1)
    frames = [_frame(start, 1_440, 125, [0] * 720 + [1] * 720),
              _frame(start, 1_440, 125, [0] * 1_440)]
    report = evaluate_composite(config, config.composites[0], frames, at)
    assert report.budget_remaining == pytest.approx(0.2)
    assert report.exhausted_at == at + timedelta(hours=6)
