"""Web Vitals analysis: field p75 and ratings, Core Web Vitals, regressions, attribution (which
element and phase), CrUX and Lighthouse; imports store, sources and config.
"""

from mysetlist_slo.vitals.attribution import (
    VitalsAttribution,
    vitals_attribution,
    vitals_attribution_findings,
)
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

__all__ = [
    "CORE_WEB_VITALS",
    "THRESHOLDS",
    "VitalsAttribution",
    "crux_comparison",
    "cwv_assessment",
    "lab_vs_field",
    "lighthouse_trends",
    "p75_interval",
    "rating",
    "vitals_attribution",
    "vitals_attribution_findings",
    "vitals_regressions",
    "vitals_samples",
    "web_vitals_summary",
]
