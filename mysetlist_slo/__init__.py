"""mysetlist-slo: SLO analytics and capacity planning for MySetlist over an embedded DuckDB."""

from importlib.metadata import PackageNotFoundError, version

import lazy_loader

# Every public name is imported on first use, from where ``__init__.pyi`` says it lives: a
# command or script that needs only the store no longer loads scipy, statsmodels, plotly and
# jsonschema on ``import mysetlist_slo`` (3 s and 150 MiB before a byte is read).
# EAGER_IMPORT=1 in the environment imports them all at once (lazy_loader's switch).
__getattr__, __dir__, _names = lazy_loader.attach_stub(__name__, __file__)

try:
    __version__ = version("mysetlist-slo")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = sorted([*_names, "__version__"])
