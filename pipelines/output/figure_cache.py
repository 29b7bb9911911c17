"""Figures drawn once per content. matplotlib takes about 2.5 s per run (most of a fully cached rerun's time);
a rerun whose results come from the stage cache gets the same figures from the same cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from pipelines.output.files import copy_atomic


@cache
def _drawing_code() -> str:
    """What else decides the pixels: the plotting code and matplotlib's version (read once per process, not
    once per figure)."""
    from importlib.metadata import version

    from pipelines.output import plots

    return hashlib.sha256(Path(plots.__file__).read_bytes()).hexdigest() + version("matplotlib")


def cached_figure(
    cache_root: Path | None, inputs: dict[str, Any], path: Path, draw: Callable[[dict[str, Any], Path], Path | None]
) -> Path | None:
    """`draw(inputs, path)`, or a copy of the figure drawn before from the same inputs by the same code.
    `inputs` must hold everything `draw` reads; without a cache root the figure is always drawn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if cache_root is None:
        return draw(inputs, path)
    text = json.dumps(inputs, sort_keys=True, default=str) + _drawing_code()
    stored = cache_root / "figures" / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.png"
    if stored.is_file():
        copy_atomic(stored, path)
        return path
    drawn = draw(inputs, path)
    if drawn is not None:
        # A temp name of this process's own: parallel sweep jobs may store the same figure at once.
        tmp = stored.with_name(f".{stored.name}.{os.getpid()}.tmp")
        try:
            stored.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(drawn, tmp)
            os.replace(tmp, stored)
        except OSError:  # the run's own figure is written; a cache that cannot keep a copy only costs time
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return drawn
