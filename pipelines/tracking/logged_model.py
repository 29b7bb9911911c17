"""Each variant as a MLflow LoggedModel, built once per content.

`mlflow.pyfunc.log_model` writes the whole pyfunc again for every run (environment files, code, artifacts, the
requirements check: about 0.4 s a variant on a quiet machine, 1 s or more on a busy one), although a cached rerun
logs the very same files. So the pyfunc directory (`mlflow.pyfunc.save_model`) is built once per content (the
.tflite, its model_config.json, the pyfunc and runtime code, the pinned requirements, MLflow's version) and kept
beside the figure cache (`<cache>/mlflow-models/`); each run still gets a LoggedModel of its own (one per child
run, as the dashboard and the registry expect), whose artifacts are that directory with the MLmodel file's ids
set to the new model. The model's code is the part of `stages/` the pyfunc runs (`stages.litert_runtime` and the
bundled `stages.postprocess` tails), not all of `stages/`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STAGES_DIR = Path(__file__).resolve().parents[2] / "stages"
PYFUNC_FILE = Path(__file__).resolve().parent / "tflite_pyfunc.py"
MODEL_CONFIG = "model_config.json"  # beside each variant's model.tflite: what the pyfunc needs to serve it
RUNTIME_CODE = ("__init__.py", "litert_runtime.py", "postprocess")  # what the pyfunc imports from stages/


def _runtime_files() -> list[Path]:
    files: list[Path] = []
    for name in RUNTIME_CODE:
        path = STAGES_DIR / name
        files += sorted(p for p in path.rglob("*.py")) if path.is_dir() else [path]
    return files


def pip_requirements() -> list[str]:
    """The served model's runtime: the LiteRT interpreter and numpy, pinned to what verified it."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for dist in ("ai-edge-litert", "numpy"):
        try:
            reqs.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            reqs.append(dist)
    return reqs


def content_key(tflite: Path, config: Path, variant: str) -> str:
    """Everything the pyfunc directory is made of: its files, the requirements and MLflow's version."""
    from importlib.metadata import version

    files = {"tflite": tflite, "config": config, "pyfunc": PYFUNC_FILE}
    files |= {str(path.relative_to(STAGES_DIR)): path for path in _runtime_files()}
    digest = hashlib.sha256()
    for label, path in files.items():
        data = path.read_bytes()
        digest.update(f"{label}:{len(data)}:".encode() + data)
    digest.update(repr((variant, pip_requirements(), version("mlflow"))).encode())
    return digest.hexdigest()[:32]


def _save_pyfunc(tflite: Path, config: Path, variant: str, path: Path) -> None:
    """The pyfunc directory, written by MLflow itself."""
    import mlflow

    with tempfile.TemporaryDirectory() as code:
        runtime = Path(code) / "stages"  # a package of the runtime modules only, kept as `stages`
        runtime.mkdir()
        for name in RUNTIME_CODE:
            source = STAGES_DIR / name
            if source.is_dir():
                shutil.copytree(source, runtime / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, runtime / name)
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=str(PYFUNC_FILE),
            artifacts={"tflite": str(tflite), "config": str(config)},
            code_paths=[str(runtime)],
            pip_requirements=pip_requirements(),
            metadata={"variant": variant},
        )


@contextmanager
def pyfunc_dir(tflite: Path, config: Path, variant: str, store: Path | None) -> Iterator[Path]:
    """The variant's pyfunc directory: from `store` when this content was saved before, else saved now (and
    kept there, written to a temp name and renamed so that a killed run leaves nothing half-written)."""
    if store is None:
        with tempfile.TemporaryDirectory() as tmp:
            _save_pyfunc(tflite, config, variant, Path(tmp) / "model")
            yield Path(tmp) / "model"
        return
    kept = store / content_key(tflite, config, variant)
    if not (kept / "MLmodel").is_file():
        store.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=store))
        try:
            _save_pyfunc(tflite, config, variant, work / "model")
            os.replace(work / "model", kept)
        except OSError:
            if not (kept / "MLmodel").is_file():  # another run stored the same content first: use that
                raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    yield kept


def log_model(
    client: Any,
    run: Any,
    name: str,
    entry: dict[str, Any],
    run_dir: Path,
    params: dict[str, str],
    tags: dict[str, str],
    store: Path | None,
) -> str | None:
    """The variant as a LoggedModel of the child run `run` (the LiteRT pyfunc); None when not servable."""
    from mlflow.entities import LoggedModelStatus

    if not entry.get("tflite_path"):
        return None
    tflite = run_dir / entry["tflite_path"]
    config = tflite.with_name(MODEL_CONFIG)
    if not config.exists():
        return None
    with pyfunc_dir(tflite, config, name, store) as saved:
        model = client.create_logged_model(
            experiment_id=run.info.experiment_id,
            name=name,
            source_run_id=run.info.run_id,
            tags=tags | {"variant": name, "status": entry["status"]},
            params=params,
            model_type="tflite",
        )
        try:
            with tempfile.TemporaryDirectory() as tmp:
                staged = Path(tmp) / "model"
                shutil.copytree(saved, staged, ignore=shutil.ignore_patterns("MLmodel"))
                _write_mlmodel(saved / "MLmodel", staged / "MLmodel", model, run.info.run_id, tflite, config)
                client.log_model_artifacts(model.model_id, str(staged))
        except BaseException:
            client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
            raise
        client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    return str(model.model_id)


def _write_mlmodel(source: Path, target: Path, model: Any, run_id: str, tflite: Path, config: Path) -> None:
    """The saved MLmodel file, now naming this LoggedModel, its run, its location and this run's files."""
    from datetime import datetime, timezone

    from mlflow.models import Model

    mlmodel = Model.load(str(source))
    mlmodel.model_id = mlmodel.model_uuid = model.model_id
    mlmodel.run_id = run_id
    mlmodel.artifact_path = model.artifact_location
    mlmodel.utc_time_created = str(datetime.now(timezone.utc).replace(tzinfo=None))
    artifacts = mlmodel.flavors.get("python_function", {}).get("artifacts") or {}
    for key, path in (("tflite", tflite), ("config", config)):  # where the files came from (informative)
        if isinstance(artifacts.get(key), dict):
            artifacts[key]["uri"] = str(path)
    mlmodel.save(str(target))
