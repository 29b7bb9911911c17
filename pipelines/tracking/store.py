"""Opening an MLflow store: fail fast over HTTP, create a fresh sqlite store atomically and once, and turn a store
that cannot be used into a one-paragraph message (exit code 2, or 3 when the disk is at fault)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines.engine.errors import ConfigError, EnvironmentFailure


def fail_fast_over_http() -> None:
    """An unreachable server should fail a run in seconds, not after MLflow's default minutes of retries: two
    retries, 1 s and 2 s apart (MLflow's defaults: 7 retries from 2 s apart, doubling). Each can be set in the
    environment, which wins."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0.5")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def store_error(uri: str, err: Exception, doing: str, verb: str) -> ConfigError | EnvironmentFailure:
    """The one-paragraph message for a tracking store that cannot be used: exit code 2, or 3 when the store is
    full or not writable (the environment failed, not the configuration)."""
    from pipelines.engine.environment import tracking_failure_kind

    first = str(err).splitlines()[0][:300] if str(err) else ""
    kind = tracking_failure_kind(f"{type(err).__name__}: {first}")
    if kind in ("the store is full", "permission was denied"):
        return EnvironmentFailure(
            f"Cannot {doing} the MLflow tracking store at '{uri}': {kind} ({type(err).__name__}: {first}). "
            f"Free space or fix its permissions, then run the same command again, or {verb} without tracking: "
            "`tracking.enabled=false`."
        )
    return ConfigError(
        f"Cannot {doing} the MLflow tracking store at '{uri}' ({type(err).__name__}: {first}). Start the server "
        f"or fix `tracking.uri`, or {verb} without tracking: `tracking.enabled=false`."
    )


@contextmanager
def sqlite_init_lock(uri: str) -> Iterator[None]:
    """Serialise opening a sqlite store (table creation, migrations, experiment creation) across processes."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    from filelock import FileLock

    db = Path(uri.removeprefix("sqlite:///")).expanduser()
    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(db) + ".lock", timeout=300):
        if not db.exists():
            create_sqlite_store(db)
        yield


def create_sqlite_store(db: Path) -> None:
    """Create a fresh store (MLflow's tables and migrations) in a temp file and rename it into place: a full
    disk or a kill during creation leaves no store rather than a half-migrated one MLflow cannot open again."""
    from mlflow.tracking import MlflowClient

    tmp = db.with_name(f".{db.name}.{os.getpid()}.tmp")
    try:
        MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments(max_results=1)
        os.replace(tmp, db)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            leftover.unlink(missing_ok=True)


def client(uri: str) -> Any:
    """An MlflowClient that gives up on an unreachable server in seconds."""
    fail_fast_over_http()
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)
