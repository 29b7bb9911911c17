"""The dashboard end to end: a pipeline run tracked to a real `mlflow server`, read back through MLflow's API
and rendered by a real browser (headless chromium: Debian's `chromium` package, which .ci/run installs). A sweep's
parent run with per-job figures: tests/e2e/test_sweeps.py (its joblib sweep)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pipelines.output.table import header, table_rows
from pipelines.tracking.dashboard import parent_note, summary_metrics, variant_note
from tests.helpers.cli import cli

# One xdist worker runs this module and the other users of the session's MLflow server (tests/conftest.py).
pytestmark = pytest.mark.xdist_group("mlflow_http")


FAST = ["calibrate.num_samples=20", "benchmark.warmup=2", "benchmark.min_runs=10", "benchmark.min_seconds=0"]


CHROMIUM = shutil.which("chromium")


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",  # lets the single-page app fetch and render before the DOM is dumped
]


class _Tables(HTMLParser):
    """Every <table> in a page as rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def rendered_tables(url: str, profile: Path) -> tuple[list[list[list[str]]], str]:
    """The tables of the page as chromium renders it (fresh profile each time), and the DOM itself."""
    assert CHROMIUM is not None
    shutil.rmtree(profile, ignore_errors=True)
    dom = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout
    parser = _Tables()
    parser.feed(dom)
    return parser.tables, dom


@pytest.fixture(scope="module")
def server(mlflow_http: tuple[str, Path]) -> str:
    return mlflow_http[0]


@pytest.fixture(scope="module")
def tracked(server: str, tmp_path_factory: pytest.TempPathFactory, shared_cache: str) -> tuple[dict[str, Any], str]:
    """The digits example (fp32 and int8) tracked to the server: its report and what the CLI printed."""
    work = tmp_path_factory.mktemp("dashboard-run")
    proc = cli(
        [
            "variants=[fp32,int8]",
            *FAST,
            f"tracking.uri={server}",
            "tracking.experiment=dashboard",
            f"runtime.cache_dir={shared_cache}",
            f"hydra.run.dir={work / 'run'}",
        ],
        cwd=work,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((work / "run" / "report.json").read_text()), proc.stdout


@pytest.mark.slow
def test_the_parent_run_carries_the_table_figures_datasets_and_a_model_per_variant(
    server: str, tracked: tuple[dict[str, Any], str]
) -> None:
    from mlflow.tracking import MlflowClient

    report, stdout = tracked
    client = MlflowClient(tracking_uri=server)
    parent = client.get_run(report["mlflow_run_id"])
    assert parent.data.tags["mlflow.note.content"] == parent_note(report)
    figures = summary_metrics(report)
    assert {"fp32/size_ratio", "int8/size_ratio", "int8/accuracy_delta", "int8/latency_ms_p50"} <= set(figures)
    assert {k: v for k, v in parent.data.metrics.items() if k in figures} == pytest.approx(figures)
    link = f"MLflow run: {server}/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}"
    assert f"{link}?workflowType=machine_learning" in stdout.splitlines()
    assert "View run" not in stdout  # MLflow's own links (GenAI view) are not printed

    datasets = {d.dataset.name: d for d in parent.inputs.dataset_inputs}
    assert set(datasets) == {"digits-calibration", "digits-evaluation"}
    for context in ("calibration", "evaluation"):
        logged = datasets[f"digits-{context}"]
        assert [t.value for t in logged.tags if t.key == "mlflow.data.context"] == [context]
        assert logged.dataset.digest == report["datasets"][context]["digest"]
        profile = json.loads(logged.dataset.profile)
        assert profile["features_shape"]["image"] == report["datasets"][context]["shapes"]["image"]
    assert report["datasets"]["calibration"]["count"] == 20
    assert report["datasets"]["calibration"]["digest"] == report["calibration"]["checksum"][:16]

    models = client.search_logged_models([parent.info.experiment_id])
    by_run = {m.source_run_id: m for m in models}
    assert len(models) == len(by_run) == len(report["variants"])  # one LoggedModel per variant
    for name, entry in report["variants"].items():
        child = client.get_run(entry["mlflow_run_id"])
        model = by_run[entry["mlflow_run_id"]]
        assert model.name == name and model.model_type == "tflite" and str(model.status) == "READY"
        linked = {m.key: m.value for m in model.metrics or []}
        assert linked["verify/accuracy"] == pytest.approx(entry["metrics"]["accuracy"])
        assert child.data.tags["mlflow.note.content"] == variant_note(name, entry)
        contexts = sorted(t.value for d in child.inputs.dataset_inputs for t in d.tags)
        assert contexts == (["calibration", "evaluation"] if name == "int8" else ["evaluation"])
    assert {i.model_id for i in parent.inputs.model_inputs} == {m.model_id for m in models}

    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"comparison.json", "tradeoffs.png", "images"} <= artifacts
    table = json.loads((Path(client.download_artifacts(parent.info.run_id, "comparison.json"))).read_text())
    assert [row[table["columns"].index("variant")] for row in table["data"]] == list(report["variants"])


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless browser: apt-get install chromium (.ci/run does)")
def test_the_parent_run_page_shows_the_comparison_table_in_a_browser(
    tracked: tuple[dict[str, Any], str], tmp_path: Path
) -> None:
    report, stdout = tracked
    url = next(line for line in stdout.splitlines() if line.startswith("MLflow run: ")).removeprefix("MLflow run: ")
    expected = [header(report), *table_rows(report)]
    deadline = time.monotonic() + 300
    while True:  # the server and the app's chunks may still be warming up: poll until the table renders
        tables, dom = rendered_tables(url, tmp_path / "profile")
        if expected in tables:
            break
        assert time.monotonic() < deadline, f"no comparison table rendered at {url}; page text ends: {dom[-2000:]}"
    assert "Model training" in dom and "Description" in dom
