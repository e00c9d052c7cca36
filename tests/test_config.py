"""Configuration: the shipped defaults match the targets; errors name the file and the key."""

from __future__ import annotations

import pytest

from mysetlist_slo import ConfigError, load_config
from mysetlist_slo.config import parse_config, parse_duration


def test_defaults_are_the_deployment_targets() -> None:
    """The shipped config carries TARGETS.md's numbers."""
    config = load_config()
    slos = {s.name: s for s in config.slos}
    assert slos["availability"].objective == 99.9
    assert slos["api-latency"].threshold_ms == 200
    assert slos["db-query-time"].threshold_ms == 100
    assert config.web_vitals is not None
    assert config.web_vitals.budgets == {"LCP": 2500, "FCP": 1800, "CLS": 0.1, "INP": 200,
                                         "TTFB": 800}
    assert config.autoscaling is not None
    assert (config.autoscaling.min_replicas, config.autoscaling.max_replicas,
            config.autoscaling.target_cpu_utilization) == (2, 10, 70)
    assert config.pgbouncer is not None
    assert (config.pgbouncer.max_client_conn, config.pgbouncer.default_pool_size) == (100, 25)
    assert [r.burn_rate for r in config.alerts.burn_rate] == [14.4, 6, 3, 1]


@pytest.mark.parametrize(("text", "key"), [
    ("slos: [{name: a, sli: availability, objective: 100}]", "slos[0].objective"),
    ("slos: [{name: a, sli: uptime, objective: 99}]", "slos[0].sli"),
    ("slos: [{name: a, sli: latency, objective: 99, threshold_ms: 123.4}]",
     "slos[0].threshold_ms"),
    ("slos: [{name: a, sli: availability, objective: 99, window: 4 weeks}]", "slos[0].window"),
    ("timezone: Mars/Olympus", "timezone"),
    ("routes: {patterns: [artist/x]}", "routes.patterns"),
    ("colour: blue", "colour"),
    ("backups: {schedules: {database: hourly}}", "backups.schedules.database"),
    ("backups: {schedules: {tape: daily}}", "backups.schedules.tape.[key]"),
    ("backups: {shrink_share: 1.5}", "backups.shrink_share"),
    ("drills: {cadences: {full_recovery: yearly}}", "drills.cadences.full_recovery"),
    ("load_tests: {max_error_rate: -1}", "load_tests.max_error_rate"),
    ("load_tests: {sustain: 30s}", "load_tests.sustain"),
    ("regions: {failover_threshold: 100}", "regions.failover_threshold"),
])
def test_errors_name_file_and_key(tmp_path, text: str, key: str) -> None:
    """Each invalid setting is reported with the file path and its key."""
    path = tmp_path / "slo.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message and f"{key}:" in message


def test_not_yaml() -> None:
    """Text that is not YAML is a ConfigError, not a yaml exception."""
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("slos: [unclosed", "x.yaml")


def test_durations() -> None:
    """Durations are minutes, hours, days or weeks."""
    assert parse_duration("28d").days == 28
    assert parse_duration("1w").days == 7
    assert parse_duration("5m").total_seconds() == 300
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("0d")


def test_recovery_defaults_are_the_plan() -> None:
    """Backups daily / weekly / monthly, drills monthly / weekly / quarterly, load-test p95 under
    200 ms and errors under 0.1 %, failover at 99.9 %: TARGETS.md's disaster-recovery rows."""
    config = load_config()
    assert config.backups.schedules == {"database": "daily", "system": "weekly",
                                        "archive": "monthly"}
    assert config.drills.cadences == {"database_restore": "monthly",
                                      "application_failover": "weekly",
                                      "full_recovery": "quarterly"}
    assert (config.load_tests.p95_ms, config.load_tests.max_error_rate) == (200, 0.1)
    assert config.regions.failover_threshold == 99.9
    assert config.probes.recovery_target_delta.total_seconds() == 300
