"""A deliberately slow real stage, so two parallel jobs contend for the same cache entry."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from stages.result import StageResult


def slow_produce(cfg: dict[str, Any], out_dir: str) -> StageResult:
    with open(cfg["log_file"], "a") as fh:
        fh.write(f"computed by {os.getppid()}\n")
    time.sleep(float(cfg["sleep_s"]))
    (Path(out_dir) / "value.txt").write_text(str(cfg["value"]))
    return StageResult(files={"value": "value.txt"}, metrics={"value": cfg["value"]})
