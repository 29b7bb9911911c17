"""The project's config composed as the CLI composes it, without running anything."""

from __future__ import annotations

from typing import Any

from hydra import compose, initialize_config_dir

from pipelines.cli import resolve
from pipelines.engine.schema import register_configs
from tests.helpers.paths import CONF_DIR


def compose_config(overrides: list[str]) -> dict[str, Any]:
    """conf/config.yaml with `overrides`, validated against the schemas and resolved to plain dicts."""
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return resolve(cfg)
