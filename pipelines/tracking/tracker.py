"""The one place that talks to MLflow: a parent run per pipeline run, a nested child run per variant.

Stages return metrics; this hook flattens config into params (`.`-joined keys), logs metrics under
`<stage>/<metric>` names, attaches each variant's `.tflite` and verification details, and ends the parent run
FAILED when the pipeline fails. What the UI shows on top (descriptions, per-variant figures, table, image) is
pipelines/tracking/dashboard.py; the datasets and each variant's LoggedModel are pipelines/tracking/lineage.py.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines.engine.errors import ConfigError, EnvironmentFailure
from pipelines.tracking import dashboard, lineage


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists become JSON strings."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list | tuple):
        return {prefix: json.dumps(value)}
    return {prefix: value}


def variant_metrics(entry: dict[str, Any]) -> dict[str, float]:
    """A report entry's numbers as MLflow metrics named `<stage>/<metric>`."""
    m = entry["metrics"]
    metrics: dict[str, float] = {}
    if entry.get("size_bytes"):
        metrics["convert/size_bytes"] = entry["size_bytes"]
    if entry.get("size_ratio") is not None:
        metrics["convert/size_ratio"] = entry["size_ratio"]
    if "convert_s" in m:
        metrics["convert/seconds"] = m["convert_s"]
    if "quantize_s" in m:  # AI Edge Quantizer variants: the quantization alone, after the fp32 conversion
        metrics["convert/quantize_seconds"] = m["quantize_s"]
    for key in ("accuracy", "accuracy_delta", "argmax_agreement"):
        if key in m:
            metrics[f"verify/{key}"] = m[key]
    for kind in ("rmse", "max_abs_err"):
        for output, value in (m.get(kind) or {}).items():
            metrics[f"verify/{kind}/{_metric_name(output)}"] = value
    for stat, value in (m.get("latency_ms") or {}).items():
        if stat != "count":
            metrics[f"benchmark/latency_ms_{stat}"] = value
    for key in ("init_ms", "first_invoke_ms", "peak_rss_mb", "interpreter_peak_mb"):
        if key in m:
            metrics[f"benchmark/{key}"] = m[key]
    for stage, values in m.items():  # a user-added per-variant stage's own metrics (pipelines/output/report.py)
        if isinstance(values, dict) and stage not in ("rmse", "relative_rmse", "max_abs_err", "latency_ms", "head"):
            for key, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    metrics.setdefault(f"{stage}/{_metric_name(str(key))}", float(value))
    metrics["gates/passed"] = float(entry["status"] == "passed")
    return metrics


def _metric_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def config_hash(cfg: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fail_fast_over_http() -> None:
    """An unreachable server should fail a run in seconds, not after MLflow's default minutes of retries."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
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


class MlflowTracker:
    """Parent run for the pipeline run, child runs per variant."""

    def __init__(self, uri: str, experiment: str) -> None:
        _fail_fast_over_http()
        import mlflow

        self.mlflow = mlflow
        self.uri = uri
        self.experiment = experiment
        self.parent_id: str | None = None
        self.experiment_id = ""
        self.calibrated: set[str] = set()

    def start(self, cfg: dict[str, Any], run_name: str, parent_run_id: str | None = None) -> str:
        """Open the parent run; an unreachable or unusable store fails here, before any work."""
        mlflow = self.mlflow
        mlflow.set_tracking_uri(self.uri)
        try:
            with sqlite_init_lock(self.uri):  # parallel runs racing to create a fresh store corrupt its schema
                mlflow.set_experiment(self.experiment)
            tags = {"config_hash": config_hash(cfg), "git_commit": git_commit(), "host": socket.gethostname()}
            if parent_run_id:
                tags["mlflow.parentRunId"] = parent_run_id
            run = mlflow.start_run(run_name=run_name, tags=tags, log_system_metrics=dashboard.setup_mlflow())
        except Exception as err:  # noqa: BLE001 - MlflowException, requests errors, sqlalchemy errors
            raise store_error(self.uri, err, "use", "run") from None
        mlflow.log_params({k: str(v)[:500] for k, v in flatten(_run_params(cfg)).items()})
        self.parent_id, self.experiment_id = run.info.run_id, run.info.experiment_id
        self.calibrated = lineage.calibrated_variants(cfg)
        return run.info.run_id

    def log_variant(self, name: str, entry: dict[str, Any], params: dict[str, Any], run_dir: Path) -> str:
        mlflow = self.mlflow
        # The run's own status is what filters see: an errored variant ends FAILED, not FINISHED. `failed`,
        # `unverified` and `skipped` are verdicts on a run that completed: the `status` tag filters on them.
        end_status = "FAILED" if entry["status"] == "error" else "FINISHED"
        with mlflow.start_run(run_name=name, nested=True) as child:
            mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})
            mlflow.log_metrics(variant_metrics(entry), model_id=dashboard.log_child(mlflow, name, entry, run_dir))
            mlflow.set_tags({"variant": name, "status": entry["status"]})
            if entry.get("reason"):
                mlflow.set_tag("reason", str(entry["reason"])[:5000])
            host = (entry.get("benchmark") or {}).get("environment") or {}  # what the latency figures depend on
            mlflow.set_tags({f"benchmark.{k}": str(v) for k, v in host.items() if k != "load_avg_1m"})
            if entry.get("error"):
                mlflow.set_tag("error", str(entry["error"])[:5000])
            if entry.get("tflite_path"):
                mlflow.log_artifact(str(run_dir / entry["tflite_path"]))
            self._log_quantization(entry, run_dir)
            mlflow.log_dict({k: v for k, v in entry.items() if k != "mlflow_run_id"}, "verification.json")
            if entry.get("recipe"):  # AI Edge Quantizer variants: the recipe actually applied
                mlflow.log_dict(entry["recipe"]["entries"], "recipe.json")
            if end_status != "FINISHED":
                mlflow.end_run(status=end_status)
            return child.info.run_id

    def _log_quantization(self, entry: dict[str, Any], run_dir: Path) -> None:
        """Per-layer CSV and plot as artifacts, the int8_mixed search's trials as an MLflow table."""
        from pipelines.output.quantization_report import trial_rows

        info = entry.get("quantization") or {}
        for key in ("layers_csv", "layers_plot"):
            if info.get(key) and (run_dir / info[key]).exists():
                self.mlflow.log_artifact(str(run_dir / info[key]), "quantization")
        rows = trial_rows(entry)
        if rows:
            self.mlflow.log_table(data=rows, artifact_file="quantization/trials.json")
            self.mlflow.log_metrics(
                {
                    "quantization/trials": len(rows["trial"]),
                    "quantization/float_weight_fraction": info["float_weight_fraction"],
                }
            )

    def finish(self, report: dict[str, Any], run_dir: Path, status: str) -> str | None:
        """Close the parent run; returns how to open its page (see dashboard.run_page)."""
        mlflow = self.mlflow
        ref = report["reference"]["metrics"]
        if report.get("calibration"):  # which samples calibrated the variants: count, seed, source, checksum
            mlflow.log_params({f"calibration.{k}": str(v)[:500] for k, v in report["calibration"].items()})
        if "accuracy" in ref:
            mlflow.log_metric("reference/accuracy", ref["accuracy"])
        if "latency_ms" in ref:
            mlflow.log_metric("reference/latency_ms_p50", ref["latency_ms"]["p50"])
        for name in ("report.json", "report.md", "tradeoffs.png"):
            if (run_dir / name).exists():
                mlflow.log_artifact(str(run_dir / name))
        dashboard.log_parent(mlflow, report, run_dir, self.calibrated)
        mlflow.end_run(status=status)
        return dashboard.run_page(self.uri, self.experiment_id, str(self.parent_id))

    def abort(self, status: str = "FAILED") -> None:
        """End the active runs and every child run still RUNNING under the parent."""
        from pipelines.tracking.run_recovery import close_tree

        while self.mlflow.active_run() is not None:
            self.mlflow.end_run(status=status)
        if self.parent_id is not None:
            close_tree(_client(self.uri), self.parent_id, status)


_session: MlflowTracker | None = None  # lives in the tracking process


def _remote(method: str, *args: Any) -> Any:
    """Entry point in the tracking process: `open` creates the session, other methods are forwarded to it."""
    global _session
    if method == "warm":
        import mlflow  # noqa: F401 - the slow part, done before the config is even composed

        return None
    if method == "open":
        import logging

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # keep "creating tables" off the console
        uri, experiment, cfg, run_name, parent_run_id, run_dir = args
        _session = MlflowTracker(uri, experiment)
        run_id = _session.start(cfg, run_name, parent_run_id)
        # Registered after MLflow's own exit hook, so it runs first: that hook would end the open run FINISHED
        # when this process exits after the CLI was killed. Only the CLI's finish/abort close runs (a killed
        # run is closed by the next run, pipelines/tracking/run_recovery.py).
        atexit.register(os._exit, 0)
        _claim_and_recover(_session, cfg, run_dir)
        return run_id
    assert _session is not None
    try:
        return getattr(_session, method)(*args)
    except Exception as err:  # noqa: BLE001 - MLflow, requests and sqlite errors may not unpickle in the caller
        from pipelines.engine.environment import TrackingFailed, first_line

        raise TrackingFailed(first_line(err)) from None


def _claim_and_recover(session: MlflowTracker, cfg: dict[str, Any], run_dir: Path | None) -> None:
    """Tag the new parent run with its owner process, then close runs of this configuration or run directory
    that a killed process left RUNNING (pipelines/tracking/run_recovery.py)."""
    from pipelines.tracking.run_recovery import close_dead_runs_quietly, owner_tags

    tags = owner_tags(run_dir)
    try:
        session.mlflow.set_tags(tags)
    except Exception:  # noqa: BLE001 - without the tags only the recovery of this run after kill -9 is lost
        return
    active = session.mlflow.active_run()
    if active is not None and session.parent_id is not None:
        match = {"config_hash": config_hash(cfg), **({"run_dir": tags["run_dir"]} if "run_dir" in tags else {})}
        close_dead_runs_quietly(session.uri, active.info.experiment_id, match, session.parent_id)


_prewarmed: Any = None
_OPEN_TIMEOUT_S = 300
_CALL_TIMEOUT_S = 600


def _new_pool() -> Any:
    """A one-process pool: its worker keeps the session between calls, and `terminate` ends it at once."""
    from multiprocessing import get_context

    return get_context("spawn").Pool(1, initializer=_tracking_process_init, initargs=(os.getpid(),))


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


def prewarm() -> None:
    """Start the tracking process and its MLflow import now, while Hydra composes the config."""
    global _prewarmed
    if _prewarmed is None:
        _prewarmed = _new_pool()
        _prewarmed.apply_async(_remote, ("warm",))


def _take_pool() -> Any:
    global _prewarmed
    pool, _prewarmed = _prewarmed, None
    return pool if pool is not None else _new_pool()


def discard_prewarmed() -> None:
    global _prewarmed
    if _prewarmed is not None:
        _prewarmed.terminate()
        _prewarmed = None


class BackgroundTracker:
    """The MlflowTracker in a process of its own, opened at once and waited for only when needed.

    Importing MLflow and opening its store take seconds; in their own process they overlap the pipeline's work
    (most of a re-run whose stages all come from the cache) instead of adding to it. `wait_started` is called
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
        self.page: str | None = None  # set by `finish`: how to open the parent run's page
        self._pool = _take_pool()
        self._opened = self._pool.apply_async(_remote, ("open", uri, experiment, cfg, run_name, parent, run_dir))

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

    def _call(self, method: str, *args: Any) -> Any:
        """A call in the tracking process; a timeout (e.g. that process died) is reported, not waited out."""
        self.wait_started()
        return self._pool.apply_async(_remote, (method, *args)).get(timeout=_CALL_TIMEOUT_S)

    def log_variant(self, name: str, entry: dict[str, Any], params: dict[str, Any], run_dir: Path) -> str:
        return str(self._call("log_variant", name, entry, params, run_dir))

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


def _run_params(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: cfg[k] for k in ("model", "dataset", "split", "calibrate", "benchmark") if k in cfg} | {
        "variants": sorted(cfg.get("variants", {}))
    }


def variant_params(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    return {**_run_params(cfg), "variant": {"name": name, **cfg["variants"][name]}}


def _client(uri: str) -> Any:
    _fail_fast_over_http()
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def start_sweep_run(uri: str, experiment: str, run_name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
    """Create (not activate) a sweep's parent run before any job starts; this also initialises a new store once.

    Sweep parents of the same sweep (`config_hash` tag) or sweep directory left RUNNING by a killed process
    are closed here as KILLED (pipelines/tracking/run_recovery.py)."""
    from pipelines.tracking.run_recovery import close_dead_runs_quietly, owner_tags

    try:
        client = _client(uri)
        with sqlite_init_lock(uri):  # a fresh store's tables and the experiment are created once
            found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
        run = client.create_run(
            experiment_id,
            run_name=run_name,
            tags={
                **tags,
                **owner_tags(),
                "sweep": "true",
                "git_commit": git_commit(),
                "host": socket.gethostname(),
            },
        )
    except Exception as err:  # noqa: BLE001 - MlflowException, requests errors, sqlalchemy errors
        raise store_error(uri, err, "open the sweep's parent run in", "sweep") from None
    for key, value in params.items():
        client.log_param(run.info.run_id, key, str(value)[:6000])
    match: dict[str, str] = {k: tags[k] for k in ("config_hash", "sweep_dir") if k in tags}
    close_dead_runs_quietly(uri, experiment_id, match, run.info.run_id)
    return str(run.info.run_id)


def end_sweep_run(
    uri: str, run_id: str, status: str, files: list[Path], metrics: dict[str, float], note: str | None = None
) -> None:
    """Attach the sweep report (files, metrics, description) to the parent run and close it with its status."""
    from mlflow.entities import Metric
    from mlflow.utils.time import get_current_time_millis

    client = _client(uri)
    try:
        now = get_current_time_millis()
        batch = [Metric(key, value, now, 0) for key, value in metrics.items()]
        for start in range(0, len(batch), 1000):  # MLflow's limit per batch
            client.log_batch(run_id, metrics=batch[start : start + 1000])
        if note:
            client.set_tag(run_id, dashboard.NOTE_TAG, note)
        for path in files:
            if path.exists():
                client.log_artifact(run_id, str(path))
    finally:
        client.set_terminated(run_id, status=status)
