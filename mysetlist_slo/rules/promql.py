"""The PromQL of each SLO's events: from the configured exporter preset or explicit queries."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta

from mysetlist_slo.config import Config, SloConfig, parse_duration

WINDOW = "{{.window}}"  # where each rule's range goes, as in Sloth's specs
CALENDAR_LENGTHS = {"week": timedelta(days=7), "month": timedelta(days=30)}


@dataclass(frozen=True)
class Preset:
    """Series names and labels of a common HTTP exporter."""

    requests: str  # counter of every request, labelled with the status
    status_label: str
    duration: str  # histogram of request durations in seconds (_bucket, _sum, _count)
    route_label: str | None  # label holding the route template, if the exporter has one


PRESETS = {
    # ingress-nginx controller metrics; its `path` label is the Ingress rule's path, not a route.
    "nginx-ingress": Preset("nginx_ingress_controller_requests", "status",
                            "nginx_ingress_controller_request_duration_seconds", None),
    # prom-client / express-prom-bundle style: one histogram, its _count counting requests.
    "node-http": Preset("http_request_duration_seconds_count", "status_code",
                        "http_request_duration_seconds", "route"),
}


@dataclass(frozen=True)
class SliQueries:
    """An SLO's good and total events as PromQL rates, ``{{.window}}`` marking the range."""

    good: str
    total: str

    def total_rate(self, window: str) -> str:
        """Return the PromQL of all events per second over ``window``."""
        return f"({self.total.replace(WINDOW, window)})"

    def bad_rate(self, window: str) -> str:
        """Return the PromQL of bad events per second over ``window``: total - good, with no
        good series at all (every request failing) counted as zero good."""
        good = self.good.replace(WINDOW, window)
        return f"({self.total_rate(window)} - (({good}) or vector(0)))"

    def error_ratio(self, window: str) -> str:
        """Return the PromQL of the bad share over ``window``."""
        return f"{self.bad_rate(window)} / {self.total_rate(window)}"


def promql_string(value: str) -> str:
    """Return ``value`` as a double-quoted PromQL string literal (Go escaping, which JSON's is
    a subset of), so any text is a literal and never PromQL."""
    return json.dumps(value, ensure_ascii=False)


def selector(*matchers: str) -> str:
    """Return ``{m1, m2}`` of the non-empty matchers, nothing when all are empty."""
    kept = [m for m in matchers if m]
    return "{" + ", ".join(kept) + "}" if kept else ""


def route_regex(patterns: list[str]) -> str:
    """Return an RE2 regex matching route templates against the config's globs (``*`` only)."""
    return "|".join(".*".join(re.escape(part) for part in p.split("*")) for p in patterns)


def prom_duration(span: timedelta) -> str:
    """Return ``span`` as a Prometheus duration in its largest whole unit (``90m``, ``6h``,
    ``28d``)."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def slo_length(slo: SloConfig) -> timedelta:
    """Return the length of the SLO's window as Prometheus sees it: a rolling window's own,
    7 days for ``week`` and 30 for ``month`` (rules cannot follow the calendar)."""
    return CALENDAR_LENGTHS.get(slo.window) or parse_duration(slo.window)


def le_label(threshold_ms: float) -> str:
    """Return the ``le`` label value of a histogram bucket at ``threshold_ms`` (seconds, in
    the shortest form the Go and JS clients print: 0.2, 1, 2.5)."""
    return f"{threshold_ms / 1000:g}"


def sli_queries(slo: SloConfig, config: Config) -> SliQueries | str:
    """Return the SLO's good/total PromQL, or the reason it maps to no Prometheus series.

    Explicit queries in ``prometheus.slis`` win; otherwise availability, error-rate and latency
    SLIs map onto the preset's series (5xx are bad; latency counts answered requests, good
    under the threshold, as the store does).
    """
    prom = config.prometheus
    if slo.name in prom.slis:
        queries = prom.slis[slo.name]
        return SliQueries(queries.good, queries.total)
    if slo.sli not in ("availability", "error_rate", "latency"):
        return (f"SLI {slo.sli!r} has no Prometheus series by default; give its good/total "
                f"queries in prometheus.slis.{slo.name}")
    preset = PRESETS[prom.preset]
    route = ""
    if slo.routes and "*" not in slo.routes:
        label = prom.route_label or preset.route_label
        if label is None:
            return (f"routes {slo.routes} need a route label: set prometheus.route_label or "
                    f"give queries in prometheus.slis.{slo.name}")
        route = f"{label}=~{promql_string(route_regex(slo.routes))}"
    answered = f'{preset.status_label}!~"5.."'
    if slo.sli == "latency":
        if slo.threshold_ms is None:
            return "latency SLO without threshold_ms"
        le = f"le={promql_string(le_label(slo.threshold_ms))}"
        good = f"{preset.duration}_bucket{selector(prom.selector, route, answered, le)}"
        total = f"{preset.duration}_count{selector(prom.selector, route, answered)}"
    else:
        good = f"{preset.requests}{selector(prom.selector, route, answered)}"
        total = f"{preset.requests}{selector(prom.selector, route)}"
    return SliQueries(f"sum(rate({good}[{WINDOW}]))", f"sum(rate({total}[{WINDOW}]))")


def service_queries(config: Config) -> dict[str, str]:
    """Return the service-wide PromQL rates the plan's static alerts read, ``{{.window}}``
    marking the range: requests, errors (5xx), duration_sum (s), duration_count."""
    prom = config.prometheus
    preset = PRESETS[prom.preset]
    errors = f'{preset.status_label}=~"5.."'
    return {
        "requests": f"sum(rate({preset.requests}{selector(prom.selector)}[{WINDOW}]))",
        "errors": f"sum(rate({preset.requests}{selector(prom.selector, errors)}[{WINDOW}]))",
        "duration_sum": f"sum(rate({preset.duration}_sum{selector(prom.selector)}[{WINDOW}]))",
        "duration_count":
            f"sum(rate({preset.duration}_count{selector(prom.selector)}[{WINDOW}]))",
    }
