"""The tracking process itself: MLflow runs in a one-process pool outside the CLI's process group, so the CLI
never imports MLflow and a signal to the group reaches only the CLI. Used by the background tracker and by
run recovery (which closes runs from a fresh one), so neither imports the other.

It is started before anything else (`pipelines/entry.py`): importing MLflow and its sqlite store takes about
3 s of CPU, the longest serial step of a run whose stages all come from the cache. This module imports nothing
heavy, so the process starts before the CLI imports Hydra and the engine."""

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


_prewarmed: Any = None
_INFORMATIONAL = {"-m", "--multirun", "-c", "--cfg", "-h", "--help", "--hydra-help", "-i", "--info", "--resolve"}


def tracked_single_run(args: list[str]) -> bool:
    """Whether this command will most likely log one pipeline run to MLflow (worth starting MLflow early)."""
    return not any(a in _INFORMATIONAL or a.startswith("--") for a in args) and "tracking.enabled=false" not in args


def warm(sql_store: bool = True) -> None:
    """In the tracking process: import MLflow and (unless the command names a server) its SQL store, the slow
    part, before the config is composed."""
    import mlflow  # noqa: F401

    if sql_store:
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401 - the default sqlite store's 0.8 s


def names_a_server(args: list[str]) -> bool:
    """Whether the command sets `tracking.uri` to an MLflow server (http/https), whose client needs no SQL store."""
    uris = [a.split("=", 1)[1] for a in args if a.lstrip("+").startswith("tracking.uri=")]
    return bool(uris) and uris[-1].startswith(("http://", "https://"))


def prewarm(args: list[str]) -> None:
    """Start the tracking process and its imports now; the background tracker takes it over (`take_pool`)."""
    global _prewarmed
    if _prewarmed is None:
        _prewarmed = new_pool()
        _prewarmed.apply_async(warm, (not names_a_server(args),))


def take_pool() -> Any:
    """The prewarmed process, or a new one."""
    global _prewarmed
    pool, _prewarmed = _prewarmed, None
    return pool if pool is not None else new_pool()


def discard_prewarmed() -> None:
    global _prewarmed
    if _prewarmed is not None:
        _prewarmed.terminate()
        _prewarmed = None
