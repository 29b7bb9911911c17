"""Each variant's LoggedModel: a pyfunc directory saved once per content and reused by later runs, yet one
LoggedModel per child run that loads and predicts as the verified .tflite does, with only the runtime code."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tests.helpers.mlflow_store import new_sqlite_store
from tests.helpers.stage_chain import keras_model, load_split_calibrate, run_stage


@pytest.fixture(scope="module")
def run_dir(tiny_keras: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory holding a real fp32 variant: `variants/fp32/model.tflite` and its model_config.json."""
    from pipelines.tracking.lineage import model_config
    from pipelines.tracking.logged_model import MODEL_CONFIG
    from stages.convert.stage import convert

    tmp = tmp_path_factory.mktemp("upstream")
    up = load_split_calibrate(
        tmp, keras_model(tiny_keras), {"dataset": {"kind": "digits"}, "num_samples": 8, "seed": 0}
    )
    variant = {"name": "fp32", "mode": "fp32", "io_dtype": "float32"}
    converted = run_stage(convert, tmp, "convert", {"variant": variant}, up["load"], up["split"], up["calibrate"])
    outcomes = {k: SimpleNamespace(result=v) for k, v in up.items()} | {
        "convert[fp32]": SimpleNamespace(result=converted)
    }
    run_dir = tmp / "run"
    (run_dir / "variants" / "fp32").mkdir(parents=True)
    (run_dir / "variants" / "fp32" / "model.tflite").write_bytes(converted.path("tflite").read_bytes())
    (run_dir / "variants" / "fp32" / MODEL_CONFIG).write_text(json.dumps(model_config("fp32", outcomes)))
    return run_dir


def _entry() -> dict[str, Any]:
    return {"status": "passed", "tflite_path": "variants/fp32/model.tflite", "metrics": {"accuracy": 0.5}, "gates": {}}


@pytest.mark.slow  # two tracked runs and two pyfunc loads: ~13 s on a busy 2-core host
def test_two_runs_of_one_variant_save_its_pyfunc_once_and_get_a_model_each(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.tracking.tracker import MlflowTracker
    from stages.litert_runtime import SignatureModel

    monkeypatch.chdir(tmp_path)
    uri = new_sqlite_store(tmp_path / "mlflow.db")
    store = tmp_path / "mlflow-models"
    child_ids = []
    for run in ("first", "second"):
        tracker = MlflowTracker(uri, "models")
        tracker.start({"model": {"name": "m"}, "variants": {"fp32": {}}}, run)
        child_ids.append(tracker.log_variant("fp32", _entry(), {"variant": {"name": "fp32"}}, run_dir, store))
        tracker.mlflow.end_run()
    assert len(list(store.iterdir())) == 1  # the second run reused the first run's pyfunc directory

    mlflow = tracker.mlflow
    client = mlflow.MlflowClient(uri)
    models = {m.source_run_id: m for m in client.search_logged_models([tracker.experiment_id])}
    assert set(models) == set(child_ids)  # one LoggedModel per child run, not one shared
    feeds = {"image": np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32)}
    config = json.loads((run_dir / "variants" / "fp32" / "model_config.json").read_text())
    expected = SignatureModel(str(run_dir / "variants" / "fp32" / "model.tflite"), config["names"])(feeds)
    for child_id, model in models.items():
        assert str(model.status) == "READY" and model.name == "fp32" and model.model_type == "tflite"
        assert {m.key: m.value for m in model.metrics or []}["verify/accuracy"] == 0.5  # linked to the model
        assert [o.model_id for o in client.get_run(child_id).outputs.model_outputs] == [model.model_id]
        local = Path(
            mlflow.artifacts.download_artifacts(f"models:/{model.model_id}", dst_path=str(tmp_path / child_id))
        )
        mlmodel = mlflow.models.Model.load(str(local / "MLmodel"))
        assert (mlmodel.model_id, mlmodel.run_id) == (model.model_id, child_id)
        code = {p.relative_to(local / "code").as_posix() for p in (local / "code").rglob("*.py")}
        assert "stages/litert_runtime.py" in code and not any(p.startswith("stages/convert/") for p in code)
        outputs = mlflow.pyfunc.load_model(f"models:/{model.model_id}").predict(feeds)
        assert np.array_equal(outputs["probs"], expected["probs"])


def test_new_content_saves_a_new_pyfunc_directory(tmp_path: Path) -> None:
    from pipelines.tracking.logged_model import content_key

    tflite, other, config = tmp_path / "model.tflite", tmp_path / "other.tflite", tmp_path / "model_config.json"
    tflite.write_bytes(b"TFL3 weights")
    other.write_bytes(b"TFL3 weights\0")
    config.write_text('{"variant": "fp32"}')
    assert content_key(tflite, config, "fp32") == content_key(tflite, config, "fp32")
    assert content_key(other, config, "fp32") != content_key(tflite, config, "fp32")
    assert content_key(tflite, config, "fp16") != content_key(tflite, config, "fp32")
