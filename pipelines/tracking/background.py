"""The MlflowTracker in a process of its own: MLflow's import and the store's opening overlap the pipeline's
work, a crash or kill of the CLI never leaves that process behind, and runs a killed CLI left open are closed."""

from __future__ import annotations

import atexit
import os
from pathlib import Path
from typing import Any

from pipelines.engine.errors import ConfigError, EnvironmentFailure
from pipelines.tracking.tracker import MlflowTracker, config_hash
from pipelines.tracking.tracking_process import take_pool

_session: MlflowTracker | None = None  # lives in the tracking process


def _remote(method: str, *args: Any) -> Any:
    """Entry point in the tracking process: `open` creates the session, other methods are forwarded to it."""
    global _session
    if method == "open":
        import logging

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # keep "creating tables" off the console
        uri, experiment, cfg, run_name, parent_run_id, run_dir = args
        from pipelines.tracking.run_recovery import owner_tags

        _session = MlflowTracker(uri, experiment)
        run_id = _session.start(cfg, run_name, parent_run_id, owner_tags(run_dir))
        # Registered after MLflow's own exit hook, so it runs first: that hook would end the open run FINISHED
        # when this process exits after the CLI was killed. Only the CLI's finish/abort close runs (a killed
        # run is closed by the next run, pipelines/tracking/run_recovery.py).
        atexit.register(os._exit, 0)
        _recover(_session, cfg, run_dir)
        return run_id
    if method == "preload":
        return _preload()
    if method == "prepare_models":
        return _prepare_models()
    assert _session is not None
    try:
        return getattr(_session, method)(*args)
    except Exception as err:  # noqa: BLE001 - MLflow, requests and sqlite errors may not unpickle in the caller
        from pipelines.engine.environment import TrackingFailed, first_line

        raise TrackingFailed(first_line(err)) from None


def _recover(session: MlflowTracker, cfg: dict[str, Any], run_dir: Path | None) -> None:
    """Close runs of this configuration or run directory that a killed process left RUNNING
    (pipelines/tracking/run_recovery.py); the new parent run carries its owner's tags from its start."""
    from pipelines.tracking.run_recovery import close_dead_runs_quietly

    if session.parent_id is not None:
        match = {"config_hash": config_hash(cfg)} | ({"run_dir": str(run_dir.resolve())} if run_dir else {})
        close_dead_runs_quietly(session.uri, session.experiment_id, match, session.parent_id)


def _preload() -> None:
    """Import what logging the finished run needs while the stages compute (queued after `open`, so that the
    first stage never waits for it; after a run whose stages all come from the cache it costs nothing more)."""
    import mlflow.data.numpy_dataset  # noqa: F401
    import mlflow.models  # noqa: F401
    import PIL.Image  # noqa: F401

    import pipelines.output.quantization_report  # noqa: F401


def _prepare_models() -> None:
    """MLflow's check of a saved model's requirements against the installed packages, made while the stages
    compute: its first call maps every installed distribution to its modules (0.3-0.8 s, then kept for the
    process), which would otherwise fall on the first new variant's model after the last stage. Only a run that
    computes asks for it (`BackgroundTracker.before_work`): a rerun whose stages all come from the cache saves
    no new pyfunc directory (pipelines/tracking/logged_model.py), and would wait for the check for nothing."""
    from pipelines.tracking.logged_model import pip_requirements

    try:
        from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches

        warn_dependency_requirement_mismatches(pip_requirements())
    except Exception:  # noqa: BLE001, S110 - a head start only: `save_model` runs the same check anyway
        pass


_OPEN_TIMEOUT_S = 300
_CALL_TIMEOUT_S = 600


class BackgroundTracker:
    """The MlflowTracker in a process of its own, opened at once and waited for only when needed.

    Importing MLflow and opening its store take seconds; in their own process they overlap the pipeline's work
    (most of a re-run whose stages all come from the cache) instead of adding to it. `before_work` waits for it
    before the first stage that must compute, so an unusable store still fails before any work.
    """

    def __init__(
        self,
        uri: str,
        experiment: str,
        cfg: dict[str, Any],
        run_name: str,
        parent: str | None,
        run_dir: Path | None = None,
    ) -> None:
        self.uri = uri
        self.parent_id: str | None = None
        self._closed = False
        self._models_prepared = False
        self.page: str | None = None  # set by `finish`: how to open the parent run's page
        self._pool = take_pool()
        self._opened = self._pool.apply_async(_remote, ("open", uri, experiment, cfg, run_name, parent, run_dir))
        self._pool.apply_async(_remote, ("preload",))  # after the opening, not waited for

    def wait_started(self) -> str:
        """The parent run's id; raises ConfigError when the store cannot be used."""
        from multiprocessing import TimeoutError as PoolTimeout

        if self.parent_id is None:
            try:
                self.parent_id = self._opened.get(timeout=_OPEN_TIMEOUT_S)
            except PoolTimeout:
                self._pool.terminate()
                raise ConfigError(
                    f"The MLflow tracking store at '{self.uri}' did not answer within {_OPEN_TIMEOUT_S} s. Check "
                    "that the server is up, or run without tracking: `tracking.enabled=false`."
                ) from None
            except (ConfigError, EnvironmentFailure):
                self._pool.terminate()
                raise
        return self.parent_id

    def before_work(self) -> str:
        """`wait_started`, called before the first stage that computes; it also queues the requirements check of
        the models this run may save (`_prepare_models`), to run while the stages compute."""
        run_id = self.wait_started()
        if not self._models_prepared:
            self._models_prepared = True
            self._pool.apply_async(_remote, ("prepare_models",))
        return run_id

    def _call(self, method: str, *args: Any) -> Any:
        """A call in the tracking process; a timeout (e.g. that process died) is reported, not waited out."""
        self.wait_started()
        return self._pool.apply_async(_remote, (method, *args)).get(timeout=_CALL_TIMEOUT_S)

    def log_variant(
        self, name: str, entry: dict[str, Any], params: dict[str, Any], run_dir: Path, model_store: Path | None = None
    ) -> str:
        return str(self._call("log_variant", name, entry, params, run_dir, model_store))

    def finish(self, report: dict[str, Any], run_dir: Path, status: str) -> None:
        self.page = self._call("finish", report, run_dir, status)
        self._closed = True
        self._pool.terminate()  # everything is committed; MLflow's exit handlers would only cost time

    def abort(self, status: str = "FAILED", reach_store: bool = True) -> None:
        """End the parent run and its children (FAILED, or KILLED when interrupted) if it was opened; never
        raises (we are already failing). If the tracking process is gone (a signal to the whole process group),
        a fresh one closes them. `reach_store=False` (a server known to be down) does not wait for it."""
        from pipelines.tracking.run_recovery import close_in_fresh_process

        if self._closed:
            return
        self._closed = True
        opened = self.parent_id is not None or (self._opened.ready() and self._opened.successful())
        if opened and reach_store:
            try:
                self._pool.apply_async(_remote, ("abort", status)).get(timeout=60)
            except Exception:  # noqa: BLE001
                try:
                    parent_id = self.parent_id or self._opened.get(timeout=1)
                except Exception:  # noqa: BLE001
                    parent_id = None
                if parent_id:
                    close_in_fresh_process(self.uri, parent_id, status)
        self._pool.terminate()
