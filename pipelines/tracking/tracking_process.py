"""The tracking process itself: MLflow runs in a one-process pool outside the CLI's process group, so the CLI
never imports MLflow and a signal to the group reaches only the CLI. Used by the background tracker and by
run recovery (which closes runs from a fresh one), so neither imports the other."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def new_pool() -> Any:
    """A one-process pool: its worker keeps the session between calls, and `terminate` ends it at once."""
    from multiprocessing import get_context

    with _main_module_not_rerun():
        return get_context("spawn").Pool(1, initializer=_tracking_process_init, initargs=(os.getpid(),))


@contextmanager
def _main_module_not_rerun() -> Iterator[None]:
    """A spawned process runs the parent's main script again before its task, unless `python -m` started it.
    For the `tflite-pipeline` console script that is `from pipelines.cli import main`: Hydra and the engine,
    about 0.6 s on a busy 2-core machine, on the tracking process's critical path for nothing (its tasks live in
    pipelines.tracking). So the pool's worker is started while `__main__` names no file."""
    main = sys.modules["__main__"]
    if getattr(main, "__spec__", None) is not None or not hasattr(main, "__file__"):
        yield
        return
    path = main.__file__
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def _tracking_process_init(cli_pid: int) -> None:
    """In the tracking process: leave the CLI's process group, so that Ctrl-C or a SIGTERM to the group reaches
    only the CLI, which then closes the MLflow runs through this process (a pool worker killed while idle would
    also leave the pool's queue locked, hanging `terminate`); and exit as soon as the CLI is gone (kill -9)."""
    import threading
    import time

    os.setsid()

    def exit_with_cli() -> None:
        while os.getppid() == cli_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=exit_with_cli, daemon=True).start()
