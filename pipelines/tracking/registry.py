"""Model registry for scheduled jobs: register the best passing variant, move `champion` unless it regresses.

`registry.name=NAME` registers the chosen variant's LoggedModel (every variant is logged as an MLflow pyfunc
model: the .tflite run by LiteRT, plus the numpy tail when the model was split; see pipelines/tracking/lineage.py
and pipelines/tracking/tflite_pyfunc.py) as a new version of NAME. The alias (`registry.alias`, default `champion`)
moves to the new version only when the candidate, loaded back from the registry, is no worse than the current
champion on this run's evaluation data, by at most `registry.max_regression` accuracy. Aliases, not the deprecated
stages.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from pipelines.engine.errors import ConfigError

log = logging.getLogger("tflite_pipeline")


def check_config(cfg: dict[str, Any]) -> None:
    """Refuse, before any work, a registry request that cannot be honoured."""
    reg = cfg.get("registry") or {}
    if reg.get("name") and not cfg["tracking"]["enabled"]:
        raise ConfigError(
            f"`registry.name={reg['name']}` needs MLflow tracking, but `tracking.enabled=false`. "
            "Enable tracking "
            "(and point `tracking.uri` at the registry's store) or drop `registry.name`."
        )


def _objective_key(objective: str, entry: dict[str, Any]) -> tuple[float, float]:
    """Sort key, smaller is better; ties broken by file size."""
    size = float(entry.get("size_bytes") or math.inf)
    metrics = entry.get("metrics") or {}
    if objective == "latency":
        return float((metrics.get("latency_ms") or {}).get("p50", math.inf)), size
    if objective == "accuracy":
        return -float(metrics.get("accuracy", -math.inf)), size
    return size, 0.0


def choose(report: dict[str, Any], objective: str) -> str | None:
    """The best variant among those that passed their gates, or None."""
    passing = {n: v for n, v in report["variants"].items() if v["status"] == "passed" and v.get("tflite_path")}
    return min(passing, key=lambda n: _objective_key(objective, passing[n])) if passing else None


def _accuracy(uri: str, label_output: str, feeds: dict[str, Any], labels: Any) -> float:
    """Load a registered model through pyfunc (as users will) and score it on the evaluation data."""
    import mlflow
    import numpy as np

    outputs = mlflow.pyfunc.load_model(uri).predict(feeds)
    if label_output not in outputs:
        raise KeyError(f"it has no output '{label_output}' (outputs: {sorted(outputs)})")
    return float(np.mean(np.argmax(outputs[label_output], axis=-1) == np.asarray(labels).reshape(-1)))


def promote(
    reg: dict[str, Any], report: dict[str, Any], outcomes: dict[str, Any], run_dir: Path, tracking_uri: str
) -> dict[str, Any]:
    """Register the best passing variant; move the alias unless it regresses. Returns report["registry"]."""
    name, alias, objective = reg["name"], reg["alias"], reg["objective"]
    result: dict[str, Any] = {
        "name": name,
        "alias": alias,
        "objective": objective,
        "variant": None,
        "version": None,
        "promoted": False,
        "reason": None,
    }
    variant = choose(report, objective)
    if variant is None:
        result["reason"] = "no variant passed its gates, so nothing was registered"
        return result
    result["variant"] = variant
    try:
        return _register(reg, report, outcomes, tracking_uri, variant, result)
    except Exception as err:  # noqa: BLE001 - registry/server errors must not lose the run's report
        result["reason"] = (
            f"registration failed: {type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else ''}"
        )
        return result


def _register(
    reg: dict[str, Any],
    report: dict[str, Any],
    outcomes: dict[str, Any],
    tracking_uri: str,
    variant: str,
    result: dict[str, Any],
) -> dict[str, Any]:
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from pipelines.tracking.lineage import model_config
    from stages.samples import load_samples

    mlflow.set_tracking_uri(tracking_uri)  # the run's tracker lives in its own process: point this one too
    name, alias, max_regression = reg["name"], reg["alias"], reg["max_regression"]
    model_config(variant, outcomes)  # raises, naming the fix, for a model no LiteRT pyfunc can serve
    client = MlflowClient(tracking_uri=tracking_uri)
    outputs = client.get_run(report["variants"][variant]["mlflow_run_id"]).outputs
    model_ids = [o.model_id for o in (outputs.model_outputs if outputs else [])]
    if not model_ids:
        raise LookupError(f"the run of variant '{variant}' has no logged model")
    new_version = str(mlflow.register_model(f"models:/{model_ids[0]}", name).version)
    result["version"] = new_version
    log.info("Registered %s variant '%s' as %s version %s", report["model"].get("name"), variant, name, new_version)
    try:
        champion = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        champion = None
    result["previous_champion"] = champion.version if champion is not None else None
    reason, promote_it = None, True
    if champion is not None and max_regression is not None:
        feeds, labels = load_samples(outcomes["calibrate"].result.path("eval"))
        label_output = outcomes["reference"].result.meta.get("label_output")
        if labels is None or label_output is None:
            promote_it = False
            reason = (
                f"the evaluation data has no labels, so version {new_version} cannot be compared with the "
                f"current {alias} (version {champion.version}); use a labelled dataset, or set "
                "`registry.max_regression=null` to promote without comparing"
            )
        else:
            candidate = _accuracy(f"models:/{name}/{new_version}", label_output, feeds, labels)
            result["accuracy"] = candidate
            try:
                current = _accuracy(f"models:/{name}/{champion.version}", label_output, feeds, labels)
            except Exception as err:  # noqa: BLE001 - an incompatible champion (other inputs/outputs)
                current = None
                promote_it = False
                reason = (
                    f"the current {alias} (version {champion.version}) cannot run on this evaluation data "
                    f"({type(err).__name__}: {err}); compare by hand, then move the alias with "
                    f"`MlflowClient().set_registered_model_alias('{name}', '{alias}', {new_version})`"
                )
            result["champion_accuracy"] = current
            if current is not None and candidate < current - max_regression:
                promote_it = False
                reason = (
                    f"version {new_version} ({variant}) scores accuracy {candidate:.4f} on this run's "
                    f"evaluation data, below the current {alias} (version {champion.version}) at "
                    f"{current:.4f} by more than registry.max_regression={max_regression}"
                )
    tags = {"variant": variant, "objective": reg["objective"], "promoted": str(promote_it).lower()}
    for key in ("accuracy", "champion_accuracy"):
        if result.get(key) is not None:
            tags[f"eval_{key}"] = f"{result[key]:.6f}"
    if reason:
        tags["rejected_because"] = reason[:5000]
    for key, value in tags.items():
        client.set_model_version_tag(name, new_version, key, value)
    if promote_it:
        client.set_registered_model_alias(name, alias, new_version)
        log.info("Alias %s@%s -> version %s", name, alias, new_version)
    result.update(promoted=promote_it, reason=reason)
    return result
