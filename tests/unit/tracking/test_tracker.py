"""What a variant's MLflow child run records: an errored variant's run ends FAILED, verdicts are tags."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.mlflow_store import new_sqlite_store


# MLflow: an errored variant's child run ends FAILED; verdicts are filterable tags.
def test_errored_variant_child_run_ends_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.tracking.tracker import MlflowTracker

    monkeypatch.chdir(tmp_path)
    uri = new_sqlite_store(tmp_path / "mlflow.db")
    tracker = MlflowTracker(uri, "honesty")
    tracker.start({"model": {"name": "m"}}, "run")
    entries = {
        "good": {"status": "passed", "metrics": {}, "gates": {}},
        "bad": {"status": "error", "metrics": {}, "gates": {}, "error": "convert[bad]: boom"},
        "weak": {"status": "unverified", "metrics": {}, "gates": {}},
    }
    ids = {
        name: tracker.log_variant(name, entry, {"variant": {"name": name}}, tmp_path) for name, entry in entries.items()
    }
    tracker.abort()
    client = tracker.mlflow.tracking.MlflowClient(uri)
    runs = {name: client.get_run(run_id) for name, run_id in ids.items()}
    assert runs["good"].info.status == "FINISHED"
    assert runs["bad"].info.status == "FAILED"
    assert runs["weak"].data.tags["status"] == "unverified"


def test_the_early_tracking_process_skips_the_sql_store_only_for_a_server_uri() -> None:
    from pipelines.tracking.tracking_process import names_a_server

    assert names_a_server(["model=keras", "tracking.uri=http://127.0.0.1:5000"])
    assert names_a_server(["+tracking.uri=https://mlflow.example.org", "variants=[fp32]"])
    assert not names_a_server([])  # the default: sqlite:///mlflow.db
    assert not names_a_server(["tracking.uri=sqlite:///runs.db"])
    assert not names_a_server(["tracking.uri=http://a:5000", "tracking.uri=sqlite:///b.db"])  # the last one wins


def _requirements_mapped() -> bool:
    """In the tracking process: whether MLflow's requirements check has mapped the installed packages yet."""
    from mlflow.utils import requirements_utils

    return requirements_utils._MODULES_TO_PACKAGES is not None


@pytest.mark.slow  # a tracking process of its own (MLflow's import)
def test_the_model_requirements_check_is_made_only_once_a_stage_computes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rerun whose stages all come from the cache saves no new pyfunc directory, so its tracking process does not
    map the installed packages for MLflow's requirements check (0.3-0.8 s before its first log call); a run that
    computes has that done while its stages run (`before_work`), not by its first variant's model at the end."""
    from pipelines.tracking.background import BackgroundTracker

    monkeypatch.chdir(tmp_path)
    tracker = BackgroundTracker(new_sqlite_store(tmp_path / "mlflow.db"), "e", {"model": {"name": "m"}}, "run", None)
    try:
        tracker.wait_started()  # what a fully cached run waits for before logging
        assert tracker._pool.apply_async(_requirements_mapped).get(timeout=300) is False
        tracker.before_work()  # called before the first stage that computes
        assert tracker._pool.apply_async(_requirements_mapped).get(timeout=300) is True
    finally:
        tracker.abort()
