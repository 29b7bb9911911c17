"""Test-only stage targets that take the worker process down, to prove a crash fails one variant only.

Selected from the CLI, e.g. `pipeline.stages.convert._target_=tests.helpers.crashy.convert`: the variant named by the
`CRASHY_VARIANT` environment variable (default int8) dies with SIGSEGV (or hangs, with `CRASHY_MODE=hang`); the
variant named by `CRASHY_HANG` (if set) hangs, so one run can show both; every other variant converts normally.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from stages.convert.stage import convert as real_convert
from stages.result import StageResult


def convert(cfg: dict[str, Any], out_dir: str, **upstream: Any) -> StageResult:
    name = cfg["variant"]["name"]
    if name == os.environ.get("CRASHY_HANG"):
        time.sleep(3600)
    if name == os.environ.get("CRASHY_VARIANT", "int8"):
        if os.environ.get("CRASHY_MODE") == "hang":
            time.sleep(3600)
        os.kill(os.getpid(), signal.SIGSEGV)
    return real_convert(cfg, out_dir, **upstream)
