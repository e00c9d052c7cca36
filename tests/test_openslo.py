"""OpenSLO v1: the shipped example is accepted; malformed documents fail naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mysetlist_slo import ConfigError, load_config
from mysetlist_slo.config import parse_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "openslo-availability.yaml"


def first_document() -> dict:
    return next(yaml.safe_load_all(EXAMPLE.read_text()))


def test_example_documents_map_onto_the_model() -> None:
    """Both example SLOs load with their objective, window, budgeting and events."""
    slos = {s.name: s for s in load_config(EXAMPLE).slos}
    web = slos["web-availability"]
    assert (web.sli, web.objective, web.window, web.budgeting) == ("availability", 99.9, "28d",
                                                                  "occurrences")
    api = slos["api-latency-monthly"]
    assert (api.sli, api.threshold_ms, api.routes) == ("latency", 200, ["/api/*"])
    assert (api.window, api.timezone, api.budgeting, api.timeslice_target) == (
        "month", "America/New_York", "timeslices", 95)


def test_other_settings_keep_their_defaults() -> None:
    """An OpenSLO file replaces the SLOs only; alert rules and budgets stay as shipped."""
    config = load_config(EXAMPLE)
    assert [r.burn_rate for r in config.alerts.burn_rate] == [14.4, 6, 3, 1]
    assert config.autoscaling == load_config().autoscaling


def _set(document: dict, path: str, value: object) -> None:
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value


_DELETE = object()


@pytest.mark.parametrize(("path", "value", "key", "message"), [
    ("spec.service", _DELETE, "spec.service", "required"),
    ("spec.timeWindow", [{"duration": "28d", "isRolling": True}] * 2, "spec.timeWindow",
     "exactly one time window"),
    ("spec.timeWindow.0.calendar", {"startTime": "2026-01-01 00:00:00", "timeZone": "UTC"},
     "spec.timeWindow[0].calendar", "must be absent"),
    ("spec.timeWindow.0.isRolling", False, "spec.timeWindow[0].calendar", "required"),
    ("spec.timeWindow.0.duration", "4 weeks", "spec.timeWindow[0].duration", "not a duration"),
    ("spec.objectives.0.targetPercent", 99.9, "spec.objectives[0]", "exactly one of target"),
    ("spec.objectives.0.target", 1.0, "spec.objectives[0].target", "[0, 1)"),
    ("spec.budgetingMethod", "Timeslices", "spec.objectives[0].timeSliceTarget", "required"),
    ("spec.budgetingMethod", "Weekly", "spec.budgetingMethod", "one of"),
    ("spec.indicator.spec.ratioMetric.good.metricSource.type", "prometheus",
     "spec.indicator.spec.ratioMetric.good.metricSource.type", "cannot be read from this store"),
    ("spec.indicator.spec.ratioMetric.bad", {"metricSource": {"type": "mysetlist-slo"}},
     "spec.indicator.spec.ratioMetric", "exactly one of good and bad"),
    ("metadata.name", "Not A Label", "metadata.name", "DNS label"),
])
def test_malformed_document_names_the_key(path: str, value: object, key: str,
                                          message: str) -> None:
    """Each rule of the reference SDK's validation is enforced, naming the key."""
    document = first_document()
    _set(document, path, value)
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump(document), "bad.yaml")
    text = str(caught.value)
    assert "bad.yaml" in text and f"documents[0].{key}" in text and message in text, text


def test_ratio_timeslices_is_refused_with_a_reason() -> None:
    """RatioTimeslices cannot be mapped faithfully: a clear error, not a silent change."""
    document = first_document()
    document["spec"]["budgetingMethod"] = "RatioTimeslices"
    document["spec"]["objectives"][0]["timeSliceWindow"] = "1m"
    with pytest.raises(ConfigError, match="RatioTimeslices averages per-slice ratios"):
        parse_config(yaml.safe_dump(document))


def test_unaligned_calendar_is_refused() -> None:
    """A calendar month starting on the 15th has no counterpart: refused, naming the window."""
    document = first_document()
    document["spec"]["timeWindow"] = [{"duration": "1M", "isRolling": False, "calendar": {
        "startTime": "2026-01-15 00:00:00", "timeZone": "UTC"}}]
    with pytest.raises(ConfigError, match=r"timeWindow\[0\]: calendar windows are mapped"):
        parse_config(yaml.safe_dump(document))
