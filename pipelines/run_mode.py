"""Hydra's run mode (single run or multirun) without composing the whole configuration for it.

Hydra 1.3 composes the configuration twice per command: once only to read `hydra.mode` (which a config file may
set, to make a sweep the default), then again for the run. Each composition of this project's config loads
about 45 YAML files and takes 0.4 s of a 2-core Xeon, on every run and before any stage starts. When no file
Hydra can read sets `hydra.mode` (this project's `conf/` sets none; a test keeps it so), the mode is Hydra's
default or the command line's `hydra.mode=...`, and the first composition is skipped. A command that brings
config files of its own (`--config-dir`, `--config-path`, `--config-name`, `hydra.searchpath`) gets Hydra's
own look-up.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

_OWN_FILES_FLAGS = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn", "--experimental-rerun")
_MODE_OVERRIDE = re.compile(r"^[+~]{0,2}hydra\.mode=(\w*)$")
_HYDRA_BLOCK = re.compile(r"^hydra:[ \t]*(?:#.*)?\n((?:[ \t]+.*\n|[ \t]*\n)*)", re.M)


def sets_mode(text: str) -> bool:
    """Whether a YAML config file may set `hydra.mode`: a `mode:` key anywhere in its top-level `hydra:` block,
    a top-level `mode:` in a file whose package is `hydra`, or `hydra.mode` written anywhere (an override in a
    defaults list). Errs towards yes: a yes only costs the skipped composition."""
    if "hydra.mode" in text:
        return True
    if re.search(r"^#\s*@package\s+hydra\s*$", text, re.M) and re.search(r"^mode\s*:", text, re.M):
        return True
    return any(re.search(r"^[ \t]+mode\s*:", block, re.M) for block in _HYDRA_BLOCK.findall(text + "\n"))


@cache
def conf_sets_mode(conf_dir: str) -> bool:
    """Whether any YAML file under the project's config folder may set `hydra.mode`."""
    return any(sets_mode(path.read_text(errors="replace")) for path in sorted(Path(conf_dir).rglob("*.yaml")))


def mode_from_command(argv: Iterable[str], conf_dir: str) -> tuple[bool, str | None]:
    """(known, mode): whether the mode is known without composing, and the `hydra.mode=` the command gives
    (None: Hydra's default for `-m` or not)."""
    args = list(argv)
    if any(a.split("=", 1)[0] in _OWN_FILES_FLAGS for a in args) or any("hydra.searchpath" in a for a in args):
        return False, None
    if conf_sets_mode(conf_dir):
        return False, None
    mode = None
    for arg in args:
        match = _MODE_OVERRIDE.match(arg)
        if match:
            mode = match.group(1) or None
    return True, mode


def skip_mode_composition(conf_dir: str) -> None:
    """Make Hydra's `get_mode` answer from the command line when that is exact (module doc); otherwise, or on a
    Hydra whose internals differ, Hydra composes as usual."""
    try:
        from hydra._internal.hydra import Hydra
        from hydra.types import RunMode
    except ImportError:
        return
    original: Callable[..., Any] = Hydra.get_mode
    if getattr(original, "_from_command", False):
        return

    def get_mode(self: Any, config_name: str | None, overrides: list[str]) -> Any:
        known, mode = mode_from_command([*sys.argv[1:], *overrides], conf_dir)
        if not known or (mode is not None and mode.upper() not in RunMode.__members__):
            return original(self, config_name, overrides)  # Hydra's own look-up, and its own error
        return None if mode is None else RunMode[mode.upper()]

    get_mode._from_command = True  # type: ignore[attr-defined]
    Hydra.get_mode = get_mode  # type: ignore[method-assign]
