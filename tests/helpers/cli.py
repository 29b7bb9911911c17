"""The command line as a user runs it: `python -m pipelines ARGS` in a subprocess, in the foreground or not."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.paths import REPO


def cli(
    args: list[str], cwd: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m pipelines ARGS` in `cwd`, the way a user runs `tflite-pipeline`."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(env),
    )


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI run: this checkout on PYTHONPATH, no MLFLOW_TRACKING_URI that in-process MLflow
    calls of other tests exported."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    return {**inherited, "PYTHONPATH": str(REPO), **(extra or {})}


def start_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A CLI run in the background, in its own process group (so a test can kill it and its worker at once)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines", *args],
        cwd=cwd,
        env=cli_env(env),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 300) -> str:
    """The run's progress lines up to the first one holding `marker` (or until `timeout`)."""
    seen, deadline = [], time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if marker in line or time.monotonic() > deadline:
            break
    return "".join(seen)
