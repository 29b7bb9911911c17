"""Tracking to a real `mlflow server` over HTTP on 127.0.0.1, artifacts proxied by the server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import cli
from tests.helpers.mlflow_server import free_port

pytestmark = pytest.mark.xdist_group("mlflow_http")  # the session's MLflow server (tests/conftest.py)


FAST = ["variants=[fp32]", "benchmark.enabled=false", "calibrate.num_samples=20"]


@pytest.fixture(scope="module")
def server(mlflow_http: tuple[str, Path]) -> tuple[str, Path]:
    return mlflow_http


@pytest.mark.slow
def test_a_pipeline_run_over_http_logs_runs_and_uploads_the_tflite(
    server: tuple[str, Path], tmp_path: Path, shared_cache: str
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    url, root = server
    cache = shared_cache
    proc = cli(
        [
            *FAST,
            f"tracking.uri={url}",
            "tracking.experiment=http-test",
            f"runtime.cache_dir={cache}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()  # nothing local
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    client = MlflowClient(tracking_uri=url)
    child = client.get_run(report["variants"]["fp32"]["mlflow_run_id"])
    assert child.data.tags["mlflow.parentRunId"] == report["mlflow_run_id"]
    assert child.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied through the server
    mlflow.set_tracking_uri(url)
    local = Path(
        mlflow.artifacts.download_artifacts(
            run_id=child.info.run_id, artifact_path="model.tflite", dst_path=str(tmp_path / "dl")
        )
    )
    assert local.read_bytes() == (tmp_path / "run" / "variants" / "fp32" / "model.tflite").read_bytes()
    assert list((root / "artifacts").rglob("model.tflite"))  # stored where the server was told to keep them


@pytest.mark.slow  # a CLI run in a subprocess: tier 4
def test_an_unreachable_server_is_a_configuration_error(tmp_path: Path) -> None:
    proc = cli([*FAST, f"tracking.uri=http://127.0.0.1:{free_port()}"], cwd=tmp_path, timeout=300)
    assert proc.returncode == 2
    assert "Start the server or fix `tracking.uri`" in proc.stdout + proc.stderr
