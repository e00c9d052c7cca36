"""Resilience (analysis): backups against their schedule (RPO), recovery drills (RTO, overdue),
availability and failover per region, and the report section that sums them up with the last
load test; imports the store's tables through a connection, config and capacity.
"""

from mysetlist_slo.resilience.backups import backup_growth, backup_jobs, backup_rpo
from mysetlist_slo.resilience.drills import drill_results, drills_due
from mysetlist_slo.resilience.regions import (
    region_availability,
    region_episodes,
    region_traffic,
    traffic_failovers,
)
from mysetlist_slo.resilience.section import (
    ScalabilityRecovery,
    StatusLine,
    escape_markdown,
    render_markdown,
    scalability_recovery,
)

__all__ = [
    "ScalabilityRecovery",
    "StatusLine",
    "backup_growth",
    "backup_jobs",
    "backup_rpo",
    "drill_results",
    "drills_due",
    "escape_markdown",
    "region_availability",
    "region_episodes",
    "region_traffic",
    "render_markdown",
    "scalability_recovery",
    "traffic_failovers",
]
