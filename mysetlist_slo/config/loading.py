"""Reading a configuration file: our YAML, or OpenSLO v1 documents mapped onto the same model."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from mysetlist_slo.config.model import Config, validation_problems
from mysetlist_slo.config.openslo import config_from_openslo, is_openslo
from mysetlist_slo.errors import ConfigError

DEFAULT_CONFIG_NAME = "default_config.yaml"


def default_config_text() -> str:
    """Return the text of the shipped default configuration file."""
    return resources.files("mysetlist_slo.config").joinpath(DEFAULT_CONFIG_NAME).read_text("utf-8")


def parse_config(text: str, source: str = "<string>") -> Config:
    """Return the Config in YAML ``text``; raise ConfigError naming ``source`` and the keys.

    A file of OpenSLO v1 ``SLO`` documents is accepted too: its SLOs (and composite SLOs)
    replace the shipped ones, every other setting keeps its default.
    """
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {exc}"]) from exc
    if any(is_openslo(d) for d in documents):
        slos, composites, problems = config_from_openslo(documents, source)
        if problems:
            raise ConfigError(source, problems)
        defaults = parse_config(default_config_text(), f"<package>/{DEFAULT_CONFIG_NAME}")
        # The shipped composites name the shipped SLOs: the documents' own replace them too.
        try:
            return Config.model_validate({**defaults.model_dump(by_alias=True), "slos": [
                s.model_dump() for s in slos], "composites": [c.model_dump() for c in composites]})
        except ValidationError as exc:
            raise ConfigError(source, validation_problems(exc)) from None
    if len(documents) > 1:
        raise ConfigError(source, ["(top level): one document expected, or OpenSLO documents"])
    data = documents[0] if documents else {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): expected a mapping of settings"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, validation_problems(exc)) from None


def load_config(path: str | Path | None = None) -> Config:
    """Return the Config from ``path``, or the shipped default when ``path`` is None."""
    if path is None:
        return parse_config(default_config_text(), f"<package>/{DEFAULT_CONFIG_NAME}")
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"cannot read: {exc}"]) from exc
    return parse_config(text, str(path))
