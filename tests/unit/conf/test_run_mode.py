"""The run mode read from the command line gives what Hydra's own composition gives, and gives way to it
whenever a config file might set `hydra.mode`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.cli import CONF_DIR
from pipelines.run_mode import conf_sets_mode, mode_from_command, sets_mode


@pytest.fixture(scope="module")
def hydra() -> Iterator[Any]:
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from pipelines.engine.schema import register_configs

    register_configs()
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        yield GlobalHydra.instance().hydra


def test_this_projects_config_sets_no_mode() -> None:
    """Otherwise every command composes twice again (pipelines/run_mode.py)."""
    assert not conf_sets_mode(CONF_DIR)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["variants=[fp32]", "model=keras", "model.path=x.keras"],
        ["+experiment=retinanet"],
        ["hydra.mode=MULTIRUN"],
        ["hydra.mode=RUN", "calibrate.seed=0,1"],
        ["hydra/launcher=ray"],
    ],
)
def test_the_command_lines_mode_is_hydras(hydra: Any, overrides: list[str]) -> None:
    known, mode = mode_from_command(overrides, CONF_DIR)
    assert known
    hydras = hydra.get_mode(config_name="config", overrides=list(overrides))
    assert (None if hydras is None else hydras.name) == mode


def test_files_that_may_set_the_mode_are_seen() -> None:
    assert sets_mode("hydra:\n  job:\n    chdir: false\n  mode: MULTIRUN\n")
    assert sets_mode("# @package hydra\nmode: MULTIRUN\n")
    assert sets_mode("defaults:\n  - override hydra.mode: MULTIRUN\n")
    assert not sets_mode("hydra:\n  job:\n    chdir: false\nsplit:\n  mode: auto\n")  # another block's `mode`


def test_config_files_of_the_users_own_get_hydras_look_up(tmp_path: Path) -> None:
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "sweep.yaml").write_text("# @package _global_\nhydra:\n  mode: MULTIRUN\n")
    assert mode_from_command([], str(tmp_path)) == (False, None)
    assert mode_from_command(["--config-dir", "/elsewhere"], CONF_DIR)[0] is False
    assert mode_from_command(["hydra.searchpath=[file:///elsewhere]"], CONF_DIR)[0] is False
