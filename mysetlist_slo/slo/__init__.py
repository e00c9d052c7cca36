"""SLO analysis over the store: SLIs, error budgets, burn-rate alerts and their backtest,
incidents, attribution; imports store and config.
"""

# Its public names are the package's own API: ``import mysetlist_slo as slo; slo.error_budgets``.
