"""SLO settings that cannot mean anything are ConfigErrors naming the key, never later crashes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mysetlist_slo import ConfigError, load_config
from mysetlist_slo.config import parse_config
from mysetlist_slo.report.runner import run_report

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "openslo-availability.yaml"


@pytest.mark.parametrize(("slo", "key", "message"), [
    ("{name: a, sli: latency, objective: 99}", "threshold_ms", "required for a latency SLI"),
    ("{name: a, sli: db_query_time, objective: 99}", "threshold_ms",
     "required for a db_query_time SLI"),
    ("{name: a, sli: availability, objective: 99, threshold_ms: 200}", "threshold_ms",
     "only for latency and db_query_time"),
    ("{name: a, sli: availability, objective: 99, timeslice_target: 95}", "timeslice_target",
     "only with budgeting: timeslices"),
])
def test_meaningless_slo_settings_are_refused(slo: str, key: str, message: str) -> None:
    """Each combination is a ConfigError naming the file, the SLO and the key."""
    with pytest.raises(ConfigError) as caught:
        parse_config(f"slos: [{slo}]", "slo.yaml")
    text = str(caught.value)
    assert "slo.yaml" in text and f"slos[0]: {key}: {message}" in text, text


def test_timeslices_with_a_target_are_accepted() -> None:
    """The valid counterparts still load."""
    config = parse_config("slos: [{name: a, sli: probe_uptime, objective: 99.9, "
                          "budgeting: timeslices, timeslice_target: 95}]")
    assert config.slos[0].timeslice_target == 95


@pytest.mark.parametrize("field", ["op", "value"])
def test_openslo_op_and_value_on_a_ratio_objective(field: str) -> None:
    """op/value belong to threshold metrics; on a ratio objective they are refused (as the
    reference SDK does), naming the objective's key."""
    document = next(yaml.safe_load_all(EXAMPLE.read_text()))
    document["spec"]["objectives"][0][field] = "lte" if field == "op" else 0.2
    with pytest.raises(ConfigError) as caught:
        parse_config(yaml.safe_dump(document), "bad.yaml")
    assert f"documents[0].spec.objectives[0].{field}: " in str(caught.value)


def test_timezone_override_is_validated() -> None:
    """A time zone given on top of a loaded config is validated like one in the file."""
    config = load_config()
    assert config.with_timezone("Asia/Kolkata").timezone == "Asia/Kolkata"
    with pytest.raises(ConfigError,
                       match=r"(?s)--timezone: .*timezone: unknown time zone .Mars/Olympus"):
        config.with_timezone("Mars/Olympus")


def test_report_with_an_unknown_timezone_is_a_config_error(tmp_path) -> None:
    """``report --timezone Mars/Olympus`` fails before any work, with a ConfigError."""
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        run_report("weekly", db=tmp_path / "none.duckdb", out=tmp_path, timezone="Mars/Olympus")
    assert not (tmp_path / "weekly").exists()
