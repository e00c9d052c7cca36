"""Helpers of the rules tests: the promtool fixture, rule checks, configs with overrides."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mysetlist_slo.config import Config, default_config_text, parse_config


@pytest.fixture(name="promtool")
def fixture_promtool() -> str:
    """The promtool binary (Debian package `prometheus`); its absence fails, never skips."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: install the Debian package `prometheus` "
                    "(apt-get install prometheus); .ci/run does so when it is missing")
    return path


def check_rules(promtool: str, path: Path) -> str:
    """Run `promtool check rules` on ``path``; fail the test with its output unless it passes."""
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def config_with(extra: str) -> Config:
    """Return the shipped configuration with ``extra`` YAML merged in at the top level."""
    data = yaml.safe_load(default_config_text())
    extra_data = yaml.safe_load(extra)
    if "slos" in extra_data and "composites" not in extra_data:
        data.pop("composites", None)  # the shipped composites name the shipped SLOs
    data.update(extra_data)
    return parse_config(yaml.safe_dump(data), "<test>")


def alerts_of(document: dict) -> list[dict]:
    """Return every alerting rule of a rules document."""
    return [r for g in document["groups"] for r in g["rules"] if "alert" in r]
