"""`tflite-pipeline [HYDRA OVERRIDES]`: compose the config, run the DAG, report, track, exit with a code.

Exit codes (the contract): 0 every variant passed its gates; 1 a variant failed a gate, errored or is
unverified; 2 bad input or configuration found before any work; 3 the environment failed (the tracking store
was unreachable, full or refused us, or the disk was full, read-only or not writable): the work done so far is
kept locally (the report, when the verdicts exist) and the same command resumes from the cache; 130 interrupted
(Ctrl-C or SIGTERM; the MLflow runs are closed as KILLED).

The local report comes first: report.json and report.md are written as soon as the verdicts exist, before
anything is sent to MLflow, and rewritten with the MLflow run ids once tracking succeeded. A tracking failure
never loses them and never changes a verdict.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from pipelines.engine.cache import StageCache, open_cache
from pipelines.engine.dag import build_dag
from pipelines.engine.environment import disk_errno, disk_failure_message, kept_locally
from pipelines.engine.errors import (
    EXIT_BAD_INPUT,
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_OK,
    ConfigError,
    EnvironmentFailure,
)
from pipelines.engine.pool import WorkerPool
from pipelines.engine.preflight import check_output_dirs, preflight
from pipelines.engine.runner import run_dag
from pipelines.engine.schema import register_configs, validate
from pipelines.output.plot_beside import PlotBeside
from pipelines.output.report import build_report, write_plots, write_report
from pipelines.output.table import format_table
from pipelines.run_mode import skip_mode_composition
from pipelines.tracking.lineage import prepare as prepare_lineage
from pipelines.tracking.publish import disk_failure_in_stages, remove_partial_files, track_run
from stages.run_memo import run_memo

log = logging.getLogger("tflite_pipeline")
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")

_state: dict[str, Any] = {"started": False, "exit_codes": []}


def resolve(cfg: DictConfig) -> dict[str, Any]:
    """The fully resolved config as plain data, or ConfigError naming the missing, broken or out-of-range key."""
    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True, enum_to_str=True)
    except MissingMandatoryValue as err:
        key = err.full_key
        raise ConfigError(
            f"`{key}` must be set for this configuration, e.g. `{key}=...` on the command line."
        ) from None
    except OmegaConfBaseException as err:
        raise ConfigError(f"The configuration is invalid: {str(err).splitlines()[0]}") from None
    validate(cfg)  # each config's own range checks, on its typed object
    return plain  # type: ignore[return-value]


def run_pipeline(cfg: dict[str, Any], run_dir: Path) -> int:
    """Run one pipeline; returns the exit code. Raises ConfigError for bad input found before any work and
    EnvironmentFailure when the disk failed (nothing half-written is left; the same command resumes)."""
    preflight(cfg, run_dir)
    registry_cfg = cfg.get("registry") or {}
    if registry_cfg.get("name"):
        from pipelines.tracking.registry import check_config

        check_config(cfg)
    nodes = build_dag(cfg["pipeline"]["stages"], cfg["variants"])
    runtime = cfg["runtime"]
    cache = open_cache(runtime)
    tracker = _open_tracker(cfg, run_dir) if cfg["tracking"]["enabled"] else None
    written = {"report": False}
    try:
        return _execute(cfg, run_dir, nodes, cache, tracker, written)
    except BaseException as err:
        if tracker is not None:
            tracker.abort("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        code = disk_errno(err)
        if code is None:
            raise
        remove_partial_files(run_dir)
        kept = kept_locally(run_dir, written["report"], cache.root)
        raise EnvironmentFailure(disk_failure_message(code, getattr(err, "filename", None), cfg, kept)) from None


def _execute(
    cfg: dict[str, Any], run_dir: Path, nodes: list[Any], cache: StageCache, tracker: Any, written: dict[str, bool]
) -> int:
    """Run the DAG, write the local report, then track; returns the exit code."""
    runtime = cfg["runtime"]
    cache.remove_stale_workdirs()
    started = time.perf_counter()
    log.info(
        "Running %d stages for variants %s (cache: %s)",
        len(nodes),
        ", ".join(sorted(cfg["variants"])),
        cache.root,
    )
    log_path = None if runtime["debug"] else str(run_dir / "worker.log")
    pool = WorkerPool(runtime["workers"], log_path=log_path, max_rss_mb=runtime["worker_max_rss_mb"])
    with run_memo(), pool:  # the memo before the workers: they inherit its directory (stages/run_memo.py)
        before_work = tracker.before_work if tracker is not None else None
        outcomes = run_dag(
            nodes,
            cache,
            pool,
            runtime["stage_timeout_s"],
            before_work,
            exclusive=runtime["exclusive_stages"],
            progress_every_s=runtime["progress_every_s"],
        )
    input_errors = [o for nid, o in outcomes.items() if "[" not in nid and o.status == "error" and o.input_error]
    if input_errors:
        if runtime["debug"]:
            log.error("traceback:\n%s", input_errors[0].details)
        raise ConfigError(input_errors[0].error or "bad input")
    report = build_report(cfg, outcomes, run_dir)
    report["cache"] = cache.report()  # local hits, shared hits, computed entries
    prepare_lineage(report, outcomes, run_dir)  # datasets and servable models, for MLflow and the registry
    report["wall_s"] = round(time.perf_counter() - started, 2)
    tracking_problem = _write_and_track(cfg, report, outcomes, run_dir, cache.root, tracker, written)
    problem = tracking_problem
    if runtime.get("outputs_url"):
        from pipelines.engine.remote import publish_outputs

        publish_outputs(run_dir, runtime["outputs_url"])
    disk = disk_failure_in_stages(outcomes)
    if disk is not None:  # one paragraph: the full disk is the cause, a failed store its consequence
        problem = disk_failure_message(*disk, cfg, kept_locally(run_dir, True, cache.root))
        if tracking_problem:
            problem += f" The MLflow store at '{tracker.uri}' failed as well; the same command logs the run."
    if runtime["debug"]:
        for nid, outcome in outcomes.items():
            if outcome.details:
                log.error("%s traceback:\n%s", nid, outcome.details)
    print("\n" + format_table(report))
    registry = report.get("registry")
    if registry is not None:
        if registry["promoted"]:
            print(
                f"\nRegistry: {registry['name']}@{registry['alias']} -> version {registry['version']} "
                f"({registry['variant']})"
            )
        else:
            log.error("Registry: %s@%s not moved: %s.", registry["name"], registry["alias"], registry["reason"])
    print(f"\nReport: {run_dir / 'report.md'}  ({report['wall_s']:.1f}s)")
    if tracker is not None and tracker.page:
        print(tracker.page)
    if problem:
        print(f"\nError: {problem}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    if registry is not None and not registry["promoted"]:
        return EXIT_FAILED
    return EXIT_OK if report["status"] == "passed" else EXIT_FAILED


def _write_and_track(
    cfg: dict[str, Any],
    report: dict[str, Any],
    outcomes: dict[str, Any],
    run_dir: Path,
    cache_root: Path,
    tracker: Any,
    written: dict[str, bool],
) -> str | None:
    """The local report first, then MLflow, with the figures drawn while the variants are logged
    (pipelines/output/plot_beside.py); returns a tracking failure's message, if any."""
    figures = cache_root if cfg["runtime"]["use_cache"] else None  # figures drawn before are copied from there
    if tracker is None:
        write_plots(report, run_dir, figures)
        write_report(report, run_dir)
        written["report"] = True
        return None
    plot = PlotBeside(report, run_dir, figures)
    write_report(report, run_dir)  # the local report first: nothing has been sent to MLflow yet
    written["report"] = True
    try:
        problem = track_run(tracker, cfg, report, outcomes, run_dir, cache_root, plot.wait)
    except BaseException:
        plot.join()  # nothing of it is written after the caller cleans up
        raise
    if not plot.waited:  # tracking failed before rewriting the report: the local report as written, with its figures
        plot.wait()
        write_report(plot.as_written, run_dir)
    return problem


def _open_tracker(cfg: dict[str, Any], run_dir: Path) -> Any:
    """Start the MLflow tracker (in its own process); inside a sweep, nest under the sweep's parent run."""
    from pipelines.tracking.background import BackgroundTracker
    from pipelines.tracking.sweep import job_context

    uri = cfg["tracking"]["uri"]
    experiment = cfg["tracking"]["experiment"] or cfg["model"]["name"] or "tflite-pipeline"
    parent = None
    sweep = job_context()
    if sweep is not None and sweep.error:
        raise EnvironmentFailure(sweep.error) if sweep.error_exit == EXIT_ENVIRONMENT else ConfigError(sweep.error)
    if sweep is not None and sweep.parent_run_id:
        uri, experiment, parent = sweep.tracking_uri or uri, sweep.experiment or experiment, sweep.parent_run_id
    return BackgroundTracker(uri, experiment, cfg, run_dir.name, parent, run_dir)


def _remove_if_empty(run_dir: Path) -> None:
    """After a configuration error, leave no run directory behind (Hydra creates it before we run)."""
    leftovers = [p for p in run_dir.iterdir() if p.name not in (".hydra", "worker.log") and p.suffix != ".log"]
    if not leftovers:
        shutil.rmtree(run_dir, ignore_errors=True)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _task(cfg: DictConfig) -> int:
    _state["started"] = True
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        code = run_pipeline(resolve(cfg), run_dir)
    except ConfigError as err:
        print(f"Error: {err}", file=sys.stderr)
        _remove_if_empty(run_dir)
        code = EXIT_BAD_INPUT
    except EnvironmentFailure as err:
        print(f"Error: {err}", file=sys.stderr)
        code = EXIT_ENVIRONMENT
    _state["exit_codes"].append(code)
    return code


def main() -> None:
    """Console entry point: Hydra's own errors (bad override, unknown option or key) exit with code 2."""
    # Like `python -m`, let `_target_`s name modules in the working directory (a user's numpy tail); the
    # worker processes inherit this path.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    register_configs()
    logging.raiseExceptions = False  # a log file on a full disk must not print tracebacks; the run reports it
    signal.signal(signal.SIGTERM, _interrupt)  # closes MLflow runs as KILLED, like Ctrl-C
    try:
        check_output_dirs(sys.argv[1:])
    except ConfigError as err:
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    skip_mode_composition(CONF_DIR)
    try:
        _run_hydra()
    except KeyboardInterrupt:
        print(
            "Interrupted: the MLflow runs were closed as KILLED and nothing half-written was kept; run the same "
            "command again to resume from the cache.",
            file=sys.stderr,
        )
        sys.exit(EXIT_INTERRUPTED)
    finally:
        from pipelines.tracking.tracking_process import discard_prewarmed

        discard_prewarmed()


EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _run_hydra() -> None:
    from pipelines.tracking.sweep import finish_sweep

    try:
        _task()
    except SystemExit as exit_:
        # A multirun whose job raised ends here too (Hydra skips on_multirun_end): close the sweep first.
        sweep_code = finish_sweep()
        if exit_.code == 1 and not _state["started"] and sweep_code is None:
            sys.exit(EXIT_BAD_INPUT)
        if sweep_code is not None:
            sys.exit(max(sweep_code, EXIT_FAILED))
        raise
    except KeyboardInterrupt:
        finish_sweep(interrupted=True)
        raise
    sweep_code = finish_sweep()  # joblib and Ray jobs run elsewhere: their codes come from each job's job.json
    if sweep_code is not None:
        sys.exit(sweep_code)
    codes = _state["exit_codes"]
    sys.exit(max(codes) if codes else EXIT_OK)
