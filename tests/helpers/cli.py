"""The command line as a user runs it: `python -m pipelines ARGS` in a subprocess, in the foreground or not."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.mlflow_store import new_sqlite_store
from tests.helpers.paths import REPO


def cli(
    args: list[str], cwd: Path, timeout: float = 600, env: dict[str, str] | None = None, ready: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `python -m pipelines ARGS` in `cwd`, the way a user runs `tflite-pipeline`. `ready=False`: no store is
    prepared (for a test that checks that a failed run leaves no `mlflow.db` behind)."""
    if ready:
        ready_store(args, cwd)
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *with_test_defaults(args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(env),
    )


def with_test_defaults(args: list[str]) -> list[str]:
    """The test-time defaults, each unless the test sets it, after flags such as `-m` and before the test's own
    overrides (a sweep's table lists those last, as written):
    - `runtime.workers=1`: pytest-xdist already runs one test per core, so a second stage worker per run would
      only import TensorFlow once more on a busy core (about 4 s of CPU per run). Tests of the parallel runner
      set `runtime.workers` themselves; `tests/unit/engine/` drives the pool directly.
    - `benchmark.min_seconds=0`: each timed variant stops after `min_runs` invokes instead of spending half a
      second of a busy core on a tiny model's figure no test reads. Tests that check timing set their own
      `benchmark.*` settings and keep the defaults."""
    informational = {"-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "--resolve"}
    if any(a in informational for a in args):
        return args
    defaults = []
    if not any(a.startswith(("runtime.workers", "+runtime.workers")) for a in args):
        defaults.append("runtime.workers=1")
    if not any(a.startswith("benchmark.") and not a.startswith("benchmark.enabled") for a in args):
        defaults.append("benchmark.min_seconds=0")
    flags = next((i for i, a in enumerate(args) if not a.startswith("-")), len(args))
    return [*args[:flags], *defaults, *args[flags:]]


def ready_store(args: list[str], cwd: Path) -> None:
    """A run on the default store (`sqlite:///mlflow.db` in `cwd`) that does not exist yet finds a migrated empty
    one there, as after a user's first run (tests/helpers/mlflow_store.py): saves MLflow's migrations per run."""
    if any(a.startswith(("tracking.uri=", "tracking.enabled=false", "-")) for a in args):
        return  # a named store (maybe a test of its creation), no tracking, or not one plain run
    if not (cwd / "mlflow.db").exists():
        new_sqlite_store(cwd / "mlflow.db")


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI run: this checkout on PYTHONPATH, no MLFLOW_TRACKING_URI that in-process MLflow
    calls of other tests exported."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    return {**inherited, "PYTHONPATH": str(REPO), **(extra or {})}


def start_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A CLI run in the background, in its own process group (so a test can kill it and its worker at once)."""
    ready_store(args, cwd)
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines", *with_test_defaults(args)],
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
