"""The `tflite-pipeline` command (and `python -m pipelines`): starts the tracking process first, then the CLI.

Importing MLflow and its sqlite store takes about 3 s, the longest serial step of a run whose stages all come
from the cache; the CLI's own imports (Hydra, the engine) take about 0.5 s more. Starting the tracking process
before them lets the two overlap (pipelines/tracking/tracking_process.py)."""

from __future__ import annotations

import sys


def main() -> None:
    from pipelines.tracking.tracking_process import prewarm, tracked_single_run

    if tracked_single_run(sys.argv[1:]):
        prewarm(sys.argv[1:])
    from pipelines.cli import main as run_cli

    run_cli()
