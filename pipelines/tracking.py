"""The one place that talks to MLflow: a parent run per pipeline run, a nested child run per variant.

Stages return metrics; this hook flattens config into params (`.`-joined keys), logs metrics under
`<stage>/<metric>` names, attaches each variant's `.tflite` and verification details, and ends the parent run
FAILED when the pipeline fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines.errors import ConfigError


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


def store_error(uri: str, err: Exception, doing: str, verb: str) -> ConfigError:
    """The one-paragraph message for a tracking store that cannot be used (exit code 2)."""
    first = str(err).splitlines()[0][:300] if str(err) else ""
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
        yield


class MlflowTracker:
    """Parent run for the pipeline run, child runs per variant."""

    def __init__(self, uri: str, experiment: str) -> None:
        _fail_fast_over_http()
        import mlflow

        self.mlflow = mlflow
        self.uri = uri
        self.experiment = experiment
        self.parent_id: str | None = None

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
            run = mlflow.start_run(run_name=run_name, tags=tags)
        except Exception as err:  # noqa: BLE001 - MlflowException, requests errors, sqlalchemy errors
            raise store_error(self.uri, err, "use", "run") from None
        mlflow.log_params({k: str(v)[:500] for k, v in flatten(_run_params(cfg)).items()})
        self.parent_id = run.info.run_id
        return run.info.run_id

    def log_variant(self, name: str, entry: dict[str, Any], params: dict[str, Any], run_dir: Path) -> str:
        mlflow = self.mlflow
        # The run's own status is what filters see: an errored variant ends FAILED, not FINISHED. `failed`,
        # `unverified` and `skipped` are verdicts on a run that completed: the `status` tag filters on them.
        end_status = "FAILED" if entry["status"] == "error" else "FINISHED"
        with mlflow.start_run(run_name=name, nested=True) as child:
            mlflow.log_params({k: str(v)[:500] for k, v in flatten(params).items()})
            mlflow.log_metrics(variant_metrics(entry))
            mlflow.set_tags({"variant": name, "status": entry["status"]})
            if entry.get("reason"):
                mlflow.set_tag("reason", str(entry["reason"])[:5000])
            host = (entry.get("benchmark") or {}).get("environment") or {}  # what the latency figures depend on
            mlflow.set_tags({f"benchmark.{k}": str(v) for k, v in host.items() if k != "load_avg_1m"})
            if entry.get("error"):
                mlflow.set_tag("error", str(entry["error"])[:5000])
            if entry.get("tflite_path"):
                mlflow.log_artifact(str(run_dir / entry["tflite_path"]))
            mlflow.log_dict({k: v for k, v in entry.items() if k != "mlflow_run_id"}, "verification.json")
            if entry.get("recipe"):  # AI Edge Quantizer variants: the recipe actually applied
                mlflow.log_dict(entry["recipe"]["entries"], "recipe.json")
            if end_status != "FINISHED":
                mlflow.end_run(status=end_status)
            return child.info.run_id

    def finish(self, report: dict[str, Any], run_dir: Path, status: str) -> None:
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
        mlflow.end_run(status=status)

    def abort(self) -> None:
        if self.mlflow.active_run() is not None:
            self.mlflow.end_run(status="FAILED")


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
        uri, experiment, cfg, run_name, parent_run_id = args
        _session = MlflowTracker(uri, experiment)
        return _session.start(cfg, run_name, parent_run_id)
    assert _session is not None
    return getattr(_session, method)(*args)


_prewarmed: Any = None
_OPEN_TIMEOUT_S = 300
_CALL_TIMEOUT_S = 600


def _new_pool() -> Any:
    """A one-process pool: its worker keeps the session between calls, and `terminate` ends it at once."""
    from multiprocessing import get_context

    return get_context("spawn").Pool(1)


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

    def __init__(self, uri: str, experiment: str, cfg: dict[str, Any], run_name: str, parent: str | None) -> None:
        self.uri = uri
        self.parent_id: str | None = None
        self._pool = _take_pool()
        self._opened = self._pool.apply_async(_remote, ("open", uri, experiment, cfg, run_name, parent))

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
            except ConfigError:
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
        self._call("finish", report, run_dir, status)
        self._pool.terminate()  # everything is committed; MLflow's exit handlers would only cost time

    def abort(self) -> None:
        """End the parent run FAILED if it was opened; never raises (we are already failing)."""
        try:
            if self.parent_id is not None or (self._opened.ready() and self._opened.successful()):
                self._pool.apply(_remote, ("abort",))
        except Exception:  # noqa: BLE001
            pass
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
    """Create (not activate) a sweep's parent run before any job starts; this also initialises a new store once."""
    try:
        client = _client(uri)
        with sqlite_init_lock(uri):  # a fresh store's tables and the experiment are created once
            found = client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
        run = client.create_run(
            experiment_id,
            run_name=run_name,
            tags={**tags, "sweep": "true", "git_commit": git_commit(), "host": socket.gethostname()},
        )
    except Exception as err:  # noqa: BLE001 - MlflowException, requests errors, sqlalchemy errors
        raise store_error(uri, err, "open the sweep's parent run in", "sweep") from None
    for key, value in params.items():
        client.log_param(run.info.run_id, key, str(value)[:6000])
    return str(run.info.run_id)


def end_sweep_run(uri: str, run_id: str, status: str, files: list[Path], metrics: dict[str, float]) -> None:
    """Attach the sweep report to the parent run and close it with the sweep's status."""
    client = _client(uri)
    try:
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        for path in files:
            if path.exists():
                client.log_artifact(run_id, str(path))
    finally:
        client.set_terminated(run_id, status=status)
