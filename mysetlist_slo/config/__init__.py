"""The configuration model and its file formats (our YAML, OpenSLO v1); the bottom layer, imports
only errors.
"""

from mysetlist_slo.config.loading import (
    DEFAULT_CONFIG_NAME,
    default_config_text,
    load_config,
    parse_config,
)
from mysetlist_slo.config.model import (
    AlertsConfig,
    AutoscalingConfig,
    BackupsConfig,
    BurnRateRule,
    CapacityConfig,
    Config,
    DeploysConfig,
    DrillsConfig,
    LoadTestConfig,
    PgBouncerConfig,
    ProbesConfig,
    RegionsConfig,
    RoutesConfig,
    SloConfig,
    StaticAlert,
    WebVitalsConfig,
    parse_duration,
)

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "AlertsConfig",
    "AutoscalingConfig",
    "BackupsConfig",
    "BurnRateRule",
    "CapacityConfig",
    "Config",
    "DeploysConfig",
    "DrillsConfig",
    "LoadTestConfig",
    "PgBouncerConfig",
    "ProbesConfig",
    "RegionsConfig",
    "RoutesConfig",
    "SloConfig",
    "StaticAlert",
    "WebVitalsConfig",
    "default_config_text",
    "load_config",
    "parse_config",
    "parse_duration",
]
