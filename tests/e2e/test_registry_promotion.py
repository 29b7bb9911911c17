"""Registry promotion over HTTP: the best passing variant becomes a new version; `champion` moves only when the
candidate does not regress against the current champion on the same evaluation data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import cli

pytestmark = pytest.mark.xdist_group("mlflow_http")  # the session's MLflow server (tests/conftest.py)


FAST = ["variants=[fp32,fp16]", "benchmark.enabled=false", "calibrate.num_samples=20"]


@pytest.fixture(scope="module")
def server(mlflow_http: tuple[str, Path]) -> str:
    return mlflow_http[0]


def _run(tmp_path: Path, url: str, cache: Path, name: str, *extra: str) -> tuple[int, dict, str]:
    run_dir = tmp_path / name
    proc = cli(
        [
            *FAST,
            f"tracking.uri={url}",
            "registry.name=digits",
            "tracking.experiment=registry",
            f"runtime.cache_dir={cache}",
            f"hydra.run.dir={run_dir}",
            *extra,
        ],
        cwd=tmp_path,
    )
    report = json.loads((run_dir / "report.json").read_text())
    return proc.returncode, report, proc.stdout + proc.stderr


@pytest.mark.slow
def test_champion_moves_on_no_regression_and_stays_put_for_a_worse_model(
    server: str, tmp_path: Path, shared_cache: str
) -> None:
    import mlflow
    import numpy as np
    from mlflow.tracking import MlflowClient

    from stages.calibrate.datasets import digits_split

    cache = Path(shared_cache)
    client = MlflowClient(tracking_uri=server)
    code, first, out = _run(tmp_path, server, cache, "first")
    assert code == 0, out[-3000:]
    assert first["registry"]["promoted"] and first["registry"]["variant"] == "fp16"  # smallest passing file
    code, second, out = _run(tmp_path, server, cache, "second")
    assert code == 0, out[-3000:]
    assert second["registry"]["previous_champion"] == first["registry"]["version"]
    champion = client.get_model_version_by_alias("digits", "champion")
    assert champion.version == second["registry"]["version"]
    assert champion.run_id == second["variants"]["fp16"]["mlflow_run_id"]
    assert "model.tflite" in {a.path for a in client.list_artifacts(champion.run_id)}

    # A model trained for one epoch passes its own gates (its variants match it) but is worse than champion.
    code, worse, out = _run(tmp_path, server, cache, "worse", "model.build_args.epochs=1")
    assert code == 1, out[-3000:]
    assert worse["status"] == "passed" and not worse["registry"]["promoted"]
    assert "below the current champion" in worse["registry"]["reason"] and "not moved" in out
    assert worse["registry"]["accuracy"] < worse["registry"]["champion_accuracy"]
    assert client.get_model_version_by_alias("digits", "champion").version == champion.version
    assert client.get_model_version("digits", worse["registry"]["version"]).tags["promoted"] == "false"

    mlflow.set_tracking_uri(server)
    model = mlflow.pyfunc.load_model("models:/digits@champion")
    _, _, x_test, y_test = digits_split()
    outputs = model.predict(x_test)
    assert np.mean(np.argmax(outputs["probs"], -1) == y_test) == pytest.approx(
        second["variants"]["fp16"]["metrics"]["accuracy"], abs=1e-6
    )
