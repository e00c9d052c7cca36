"""OpenSLO v1 ``SLO`` documents, validated as the reference Go SDK does and mapped onto SloConfig.

Events must come from this package's store: an indicator's ``ratioMetric`` names them with a
``metricSource`` of type ``mysetlist-slo`` whose ``spec`` gives the SLI (``availability``,
``error_rate`` or ``latency`` with ``threshold_ms``) and optionally ``routes``. Anything that
cannot be mapped faithfully is an error naming its key, never silently dropped.

A composite SLO in OpenSLO v1 is an ``SLO`` whose objectives each carry their own
``indicator`` and an optional ``compositeWeight`` (default 1): each objective becomes a member
SLO ``<name>-<i>`` and the document a ``weights`` composite ``<name>``. OpenSLO gives the
composite no target of its own, so its objective is the members' targets averaged with the
same weights (met exactly when every member is met).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from mysetlist_slo.config.model import CompositeSloConfig, SloConfig

API_VERSION = "openslo/v1"
METRIC_SOURCE = "mysetlist-slo"
_DURATION = re.compile(r"^(\d+)([mhdwMQY])$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # an RFC 1123 DNS label
_ROLLING_UNITS = "mhdw"
_CALENDAR_UNITS = "dwMQY"
_BUDGETING = {"Occurrences", "Timeslices", "RatioTimeslices"}


def is_openslo(document: object) -> bool:
    """Return True when a YAML document declares ``apiVersion: openslo/v1``."""
    return isinstance(document, dict) and document.get("apiVersion") == API_VERSION


class _Problems:
    """Collects problems, each prefixed with the key path it is about."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, problem: str) -> None:
        self.items.append(f"{key}: {problem}")


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _check_window(windows: object, key: str, problems: _Problems) -> dict[str, Any] | None:
    if not isinstance(windows, list) or len(windows) != 1:
        problems.add(key, "exactly one time window is required")
        return None
    window = _mapping(windows[0])
    duration = str(window.get("duration", ""))
    match = _DURATION.match(duration)
    rolling = window.get("isRolling")
    if not match:
        problems.add(f"{key}[0].duration", f"not a duration like 28d, 1w or 1M: {duration!r}")
    if not isinstance(rolling, bool):
        problems.add(f"{key}[0].isRolling", "required, true or false")
        return None
    calendar = window.get("calendar")
    if rolling:
        if calendar is not None:
            problems.add(f"{key}[0].calendar", "must be absent when isRolling is true")
        if match and match.group(2) not in _ROLLING_UNITS:
            problems.add(f"{key}[0].duration", f"a rolling window is in m, h, d or w: {duration}")
    else:
        calendar = _mapping(calendar)
        if not calendar:
            problems.add(f"{key}[0].calendar", "required when isRolling is false")
        for field in ("startTime", "timeZone"):
            if calendar and not calendar.get(field):
                problems.add(f"{key}[0].calendar.{field}", "required")
        if calendar.get("timeZone"):
            try:
                ZoneInfo(str(calendar["timeZone"]))
            except (ZoneInfoNotFoundError, ValueError):
                problems.add(f"{key}[0].calendar.timeZone", f"unknown: {calendar['timeZone']}")
        if match and match.group(2) not in _CALENDAR_UNITS:
            problems.add(f"{key}[0].duration", f"a calendar window is in d, w, M, Q or Y: "
                                               f"{duration}")
    return window


def _check_objective(objective: dict[str, Any], key: str, budgeting: str,
                     problems: _Problems) -> None:
    has_target, has_percent = "target" in objective, "targetPercent" in objective
    if has_target == has_percent:
        problems.add(key, "exactly one of target and targetPercent is required")
    elif has_target and not (isinstance(objective["target"], int | float)
                             and 0 <= objective["target"] < 1):
        problems.add(f"{key}.target", f"must be in [0, 1): {objective['target']!r}")
    elif has_percent and not (isinstance(objective["targetPercent"], int | float)
                              and 0 <= objective["targetPercent"] < 100):
        problems.add(f"{key}.targetPercent",
                     f"must be in [0, 100): {objective['targetPercent']!r}")
    for field in ("op", "value"):
        # The reference SDK allows op and value only on threshold-metric objectives.
        if field in objective:
            problems.add(f"{key}.{field}", "only for threshold metrics; a ratioMetric "
                                           "objective has target or targetPercent")
    if budgeting == "Timeslices":
        target = objective.get("timeSliceTarget")
        if not (isinstance(target, int | float) and 0 < target <= 1):
            problems.add(f"{key}.timeSliceTarget", "required for Timeslices, in (0, 1]")
    if budgeting in ("Timeslices", "RatioTimeslices"):
        window = objective.get("timeSliceWindow")
        if not window:
            problems.add(f"{key}.timeSliceWindow", f"required for {budgeting}")
        elif not _DURATION.match(str(window)):
            problems.add(f"{key}.timeSliceWindow", f"not a duration: {window!r}")


def _check_indicator(spec: dict[str, Any], key: str, problems: _Problems) -> dict[str, Any]:
    if ("indicator" in spec) == ("indicatorRef" in spec):
        problems.add(key, "exactly one of indicator and indicatorRef is required")
        return {}
    if "indicatorRef" in spec:
        problems.add(f"{key}.indicatorRef", "references to separate SLI documents are not "
                                            "supported; put the indicator inline")
        return {}
    indicator = _mapping(_mapping(spec["indicator"]).get("spec"))
    if "thresholdMetric" in indicator:
        problems.add(f"{key}.indicator.spec.thresholdMetric",
                     "threshold metrics cannot be read from request rollups; use ratioMetric")
    ratio = _mapping(indicator.get("ratioMetric"))
    if not ratio:
        problems.add(f"{key}.indicator.spec.ratioMetric", "required")
        return {}
    where = f"{key}.indicator.spec.ratioMetric"
    if "total" not in ratio:
        problems.add(f"{where}.total", "required")
    if ("good" in ratio) == ("bad" in ratio):
        problems.add(where, "exactly one of good and bad is required")
    return ratio


def _events(ratio: dict[str, Any], key: str, problems: _Problems) -> dict[str, Any]:
    """Return the spec of the good (or bad) metric source, checking it is one of ours."""
    part = "good" if "good" in ratio else "bad"
    for name in (part, "total"):
        source = _mapping(_mapping(ratio.get(name)).get("metricSource"))
        if source.get("type") != METRIC_SOURCE:
            problems.add(f"{key}.{name}.metricSource.type",
                         f"{source.get('type')!r} cannot be read from this store; "
                         f"use type {METRIC_SOURCE!r}")
    spec = dict(_mapping(_mapping(_mapping(ratio.get(part)).get("metricSource")).get("spec")))
    total = _mapping(_mapping(_mapping(ratio.get("total")).get("metricSource")).get("spec"))
    if total.get("routes", spec.get("routes")) != spec.get("routes"):
        problems.add(f"{key}.total.metricSource.spec.routes",
                     "must select the same routes as the good/bad events")
    # Given as good or as bad events, the SLI is the same: the model counts the good ones.
    return spec


def _window(window: dict[str, Any], key: str, problems: _Problems) -> tuple[str, str | None]:
    """Return (our window, time zone or None) for a checked OpenSLO time window."""
    duration = str(window["duration"])
    count, unit = int(duration[:-1]), duration[-1]
    if window["isRolling"]:
        return duration, None
    calendar = window["calendar"]
    start = str(calendar["startTime"])
    try:
        began = datetime.fromisoformat(start)
    except ValueError:
        problems.add(f"{key}[0].calendar.startTime", f"not a date and time: {start!r}")
        return duration, None
    aligned = {"w": began.weekday() == 0, "M": began.day == 1}.get(unit, False)
    if count != 1 or unit not in "wM" or not aligned or began.time() != datetime.min.time():
        problems.add(f"{key}[0]", "calendar windows are mapped for 1w starting on a Monday or "
                                  f"1M starting on the 1st, at 00:00: got {duration} from {start}")
    return ("week" if unit == "w" else "month"), str(calendar["timeZone"])


def _is_composite(objectives: list[Any]) -> bool:
    """Return True when objectives carry their own indicators or weights (a composite SLO)."""
    return any(isinstance(o, dict) and ({"indicator", "indicatorRef", "compositeWeight"} & set(o))
               for o in objectives)


def _check_composite(spec: dict[str, Any], objectives: list[Any], key: str,
                     problems: _Problems) -> list[dict[str, Any]]:
    """Return each objective's ratioMetric of a composite SLO document, checking its shape."""
    if "indicator" in spec or "indicatorRef" in spec:
        problems.add(f"{key}.spec.indicator", "a composite SLO (objectives with their own "
                     "indicator or compositeWeight) has no indicator of its own")
    if len(objectives) < 2:
        problems.add(f"{key}.spec.objectives", "compositeWeight is only for several "
                     "objectives, each with its own indicator")
        return []
    ratios = []
    for i, objective in enumerate(objectives):
        where = f"{key}.spec.objectives[{i}]"
        item = _mapping(objective)
        weight = item.get("compositeWeight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            problems.add(f"{where}.compositeWeight", f"must be a number above 0: {weight!r}")
        ratios.append(_check_indicator(item, where, problems))
    return ratios


def slos_from_openslo(documents: list[dict[str, Any]], source: str) -> tuple[list[SloConfig],
                                                                            list[str]]:
    """Return the SLOs of OpenSLO ``documents`` and the problems found (each naming its key);
    see ``config_from_openslo``, whose composite SLOs this leaves out."""
    slos, _, problems = config_from_openslo(documents, source)
    return slos, problems


def config_from_openslo(documents: list[dict[str, Any]], source: str
                        ) -> tuple[list[SloConfig], list[CompositeSloConfig], list[str]]:
    """Return the SLOs and composite SLOs of OpenSLO ``documents`` and the problems found
    (each naming its key).

    Every objective of a document becomes one SLO (named ``<name>`` or ``<name>-<i>``); a
    document whose objectives carry their own indicators (and ``compositeWeight``) becomes
    member SLOs ``<name>-<i>`` and a ``weights`` composite ``<name>``. ``Service`` documents
    are checked and, when present, every SLO must name one of them.
    """
    problems = _Problems()
    slos: list[SloConfig] = []
    composites: list[CompositeSloConfig] = []
    services = {str(_mapping(d.get("metadata")).get("name", "")): i
                for i, d in enumerate(documents) if d.get("kind") == "Service"}
    for name, index in services.items():
        if not _NAME.match(name):
            problems.add(f"documents[{index}].metadata.name", f"required, a DNS label: {name!r}")
    for index, document in enumerate(documents):
        key = f"documents[{index}]"
        if document.get("kind") == "Service":
            continue
        if document.get("kind") != "SLO":
            problems.add(f"{key}.kind",
                         f"only kinds SLO and Service are mapped, not {document.get('kind')!r}")
            continue
        name = str(_mapping(document.get("metadata")).get("name", ""))
        if not _NAME.match(name):
            problems.add(f"{key}.metadata.name", f"required, a DNS label: {name!r}")
        spec = _mapping(document.get("spec"))
        if not spec.get("service"):
            problems.add(f"{key}.spec.service", "required")
        elif services and spec["service"] not in services:
            problems.add(f"{key}.spec.service", f"no Service document named {spec['service']!r}")
        budgeting = spec.get("budgetingMethod")
        if budgeting not in _BUDGETING:
            problems.add(f"{key}.spec.budgetingMethod",
                         f"one of {', '.join(sorted(_BUDGETING))}: {budgeting!r}")
        window = _check_window(spec.get("timeWindow"), f"{key}.spec.timeWindow", problems)
        objectives = spec.get("objectives")
        if not isinstance(objectives, list) or not objectives:
            problems.add(f"{key}.spec.objectives", "at least one objective is required")
            objectives = []
        for i, objective in enumerate(objectives):
            _check_objective(_mapping(objective), f"{key}.spec.objectives[{i}]",
                             str(budgeting), problems)
        composite = _is_composite(objectives)
        if composite:
            ratios = _check_composite(spec, objectives, key, problems)
            indicator_keys = [f"{key}.spec.objectives[{i}].indicator.spec.ratioMetric"
                              for i in range(len(objectives))]
        else:
            ratios = [_check_indicator(spec, f"{key}.spec", problems)] * len(objectives)
            indicator_keys = [f"{key}.spec.indicator.spec.ratioMetric"] * len(objectives)
        if problems.items:
            continue
        if budgeting == "RatioTimeslices":
            problems.add(f"{key}.spec.budgetingMethod", "RatioTimeslices averages per-slice "
                         "ratios, which misleads under uneven traffic; use Occurrences or "
                         "Timeslices")
            continue
        assert window is not None
        ours, zone = _window(window, f"{key}.spec.timeWindow", problems)
        members: list[tuple[str, float, float]] = []
        for i, objective in enumerate(objectives):
            events = _events(ratios[i], indicator_keys[i], problems)
            target = (100 * objective["target"] if "target" in objective
                      else objective["targetPercent"])
            slice_window = objective.get("timeSliceWindow")
            if budgeting == "Timeslices" and str(slice_window) != "1m":
                problems.add(f"{key}.spec.objectives[{i}].timeSliceWindow",
                             f"slices are one minute long here, not {slice_window}")
                continue
            fields = {
                "name": name if len(objectives) == 1 and not composite else f"{name}-{i}",
                "description": str(spec.get("description", ""))
                               or f"{spec.get('service')} (OpenSLO {source})",
                "sli": events.get("sli"),
                "routes": events.get("routes", ["*"]),
                "threshold_ms": events.get("threshold_ms"),
                "objective": target,
                "window": ours,
                "budgeting": "timeslices" if budgeting == "Timeslices" else "occurrences",
                # A slice target equal to the objective is the model's default (None).
                "timeslice_target": (100 * objective["timeSliceTarget"]
                                     if budgeting == "Timeslices"
                                     and 100 * objective["timeSliceTarget"] != target
                                     else None),
                "timezone": zone,
            }
            try:
                slos.append(SloConfig.model_validate(fields))
                members.append((str(fields["name"]), float(objective.get("compositeWeight", 1)),
                                float(target)))
            except ValidationError as exc:
                for err in exc.errors():
                    field = ".".join(str(p) for p in err["loc"])
                    where = (indicator_keys[i].removeprefix(f"{key}.spec.")
                             + ".metricSource.spec"
                             if field in ("sli", "routes", "threshold_ms")
                             else f"objectives[{i}]")
                    problems.add(f"{key}.spec.{where}.{field}", err["msg"])
        if composite and len(members) == len(objectives):
            total = sum(weight for _, weight, _ in members)
            objective_pct = sum(weight * target for _, weight, target in members) / total
            try:
                composites.append(CompositeSloConfig.model_validate({
                    "name": name, "description": str(spec.get("description", "")),
                    "method": "weights", "objective": round(objective_pct, 9),
                    "members": [{"slo": member, "weight": weight}
                                for member, weight, _ in members]}))
            except ValidationError as exc:
                problems.add(f"{key}.spec.objectives", "; ".join(
                    err["msg"] for err in exc.errors()))
    return slos, composites, problems.items
