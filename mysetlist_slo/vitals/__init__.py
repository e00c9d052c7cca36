"""Web Vitals analysis: field p75 and ratings, Core Web Vitals, regressions, attribution (which
element and phase), CrUX and Lighthouse, lab targets, bundle sizes and the web delivery report
section; imports store, sources and config.
"""

from mysetlist_slo.vitals.attribution import (
    VitalsAttribution,
    vitals_attribution,
    vitals_attribution_findings,
)
from mysetlist_slo.vitals.bundles import (
    bundle_builds,
    bundle_check,
    bundle_regressions,
    bundle_trend,
    first_load_js,
    largest_chunks,
)
from mysetlist_slo.vitals.delivery import WebDelivery, web_delivery
from mysetlist_slo.vitals.field import (
    CORE_WEB_VITALS,
    THRESHOLDS,
    crux_comparison,
    cwv_assessment,
    lab_vs_field,
    lighthouse_trends,
    p75_interval,
    rating,
    vitals_regressions,
    vitals_samples,
    web_vitals_summary,
)
from mysetlist_slo.vitals.lab import lab_runs, lab_summary, lab_trend

__all__ = [
    "CORE_WEB_VITALS",
    "THRESHOLDS",
    "VitalsAttribution",
    "WebDelivery",
    "bundle_builds",
    "bundle_check",
    "bundle_regressions",
    "bundle_trend",
    "crux_comparison",
    "cwv_assessment",
    "first_load_js",
    "lab_runs",
    "lab_summary",
    "lab_trend",
    "lab_vs_field",
    "largest_chunks",
    "lighthouse_trends",
    "p75_interval",
    "rating",
    "vitals_attribution",
    "vitals_attribution_findings",
    "vitals_regressions",
    "vitals_samples",
    "web_delivery",
    "web_vitals_summary",
]
