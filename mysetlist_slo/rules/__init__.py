"""SLOs as code, out: Prometheus rules, Sloth and OpenSLO specs and Grafana dashboards generated
from the configuration, and the backtest of a generated rules file; presentation layer, imports
config and the analysis layer (slo).
"""
