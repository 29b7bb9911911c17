"""Tier 2: the DAG builder and the runner with tiny real stages in the real worker process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines.engine.cache import StageCache
from pipelines.engine.dag import build_dag
from pipelines.engine.errors import ConfigError
from pipelines.engine.runner import run_dag
from pipelines.engine.worker import Worker


def _stages(log: Path, value: int = 2, data_path: str | None = None) -> dict[str, Any]:
    common = {"log_file": str(log)}
    return {
        "produce": {
            "_target_": "tests.helpers.toy_stages.produce",
            "config": {**common, "value": value, "data_path": data_path},
        },
        "scale": {
            "_target_": "tests.helpers.toy_stages.scale",
            "needs": ["produce"],
            "per_variant": True,
            "config": common,
        },
        "report": {
            "_target_": "tests.helpers.toy_stages.report",
            "needs": ["scale"],
            "per_variant": True,
            "config": common,
        },
    }


VARIANTS = {"double": {"factor": 2}, "triple": {"factor": 3}}


def _run(
    tmp_path: Path,
    stages: dict[str, Any],
    variants: dict[str, Any] = VARIANTS,
    max_rss_mb: float | None = None,
) -> dict:
    nodes = build_dag(stages, variants)
    with Worker(max_rss_mb=max_rss_mb) as worker:
        return run_dag(nodes, StageCache(tmp_path / "cache"), worker, timeout_s=60)


def _executions(log: Path) -> list[str]:
    lines = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


def test_order_fans_out_per_variant() -> None:
    nodes = build_dag(_stages(Path("log")), VARIANTS)
    ids = [n.id for n in nodes]
    assert ids[0] == "produce"
    assert set(ids) == {"produce", "scale[double]", "scale[triple]", "report[double]", "report[triple]"}
    assert ids.index("scale[double]") < ids.index("report[double]")
    assert nodes[ids.index("report[triple]")].upstream == {"scale": "scale[triple]"}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s["scale"].update(needs=["produce", "nowhere"]), "nowhere"),
        (lambda s: s["produce"].update(needs=["report"]), "cycle"),
        (lambda s: s["produce"].pop("_target_"), "_target_"),
        (lambda s: s.update(total={"_target_": "x.y", "needs": ["scale"]}), "per_variant"),
    ],
)
def test_invalid_dags_fail_fast_with_a_clear_message(mutate: Any, message: str) -> None:
    stages = _stages(Path("log"))
    mutate(stages)
    with pytest.raises(ConfigError, match=message):
        build_dag(stages, VARIANTS)


def test_results_flow_and_a_rerun_recomputes_nothing(tmp_path: Path) -> None:
    log = tmp_path / "log"
    outcomes = _run(tmp_path, _stages(log))
    assert outcomes["report[triple]"].result.metrics["value"] == 7
    assert sorted(_executions(log)) == sorted(
        ["produce", "scale[double]", "scale[triple]", "report[double]", "report[triple]"]
    )
    again = _run(tmp_path, _stages(log))
    assert _executions(log) == []
    assert all(o.cached for o in again.values())


def test_a_config_change_recomputes_exactly_what_depends_on_it(tmp_path: Path) -> None:
    log = tmp_path / "log"
    _run(tmp_path, _stages(log))
    _executions(log)
    _run(tmp_path, _stages(log), {"double": {"factor": 2}, "triple": {"factor": 4}})
    assert sorted(_executions(log)) == ["report[triple]", "scale[triple]"]
    _run(tmp_path, _stages(log, value=5))
    assert len(_executions(log)) == 5


def test_an_input_file_change_invalidates(tmp_path: Path) -> None:
    log, data = tmp_path / "log", tmp_path / "data.txt"
    data.write_text("abc")
    _run(tmp_path, _stages(log, data_path=str(data)))
    _executions(log)
    _run(tmp_path, _stages(log, data_path=str(data)))
    assert _executions(log) == []
    data.write_text("abcd")
    outcomes = _run(tmp_path, _stages(log, data_path=str(data)))
    assert len(_executions(log)) == 5
    assert outcomes["produce"].result.metrics["value"] == 6


def test_a_failing_stage_skips_only_its_dependents(tmp_path: Path) -> None:
    log = tmp_path / "log"
    outcomes = _run(tmp_path, _stages(log), {"ok": {"factor": 2}, "bad": {"factor": 3, "fail": True}})
    assert outcomes["scale[bad]"].status == "error"
    assert "told to fail" in outcomes["scale[bad]"].error
    assert outcomes["report[bad]"].status == "skipped"
    assert outcomes["report[ok]"].status == "ok"
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "cache" / "scale").iterdir())


def test_a_segfault_fails_one_variant_and_the_worker_is_replaced(tmp_path: Path) -> None:
    log = tmp_path / "log"
    variants = {"a": {"factor": 2}, "b": {"factor": 3, "crash": True}, "c": {"factor": 4}}
    outcomes = _run(tmp_path, _stages(log), variants)
    assert outcomes["scale[b]"].status == "error"
    assert "SIGSEGV" in outcomes["scale[b]"].error
    assert outcomes["report[a]"].status == outcomes["report[c]"].status == "ok"


def test_a_kill_from_outside_is_told_as_the_likely_out_of_memory_killer(tmp_path: Path) -> None:
    variants = {"a": {"factor": 2}, "b": {"factor": 3, "crash": "kill"}}
    outcomes = _run(tmp_path, _stages(tmp_path / "log"), variants)
    error = outcomes["scale[b]"].error or ""
    assert "crashed (SIGKILL)" in error and "out-of-memory killer" in error and "GiB" in error
    assert "variants=[fp32]" in error and outcomes["report[a]"].status == "ok"


def test_a_damaged_cache_entry_is_recomputed(tmp_path: Path) -> None:
    log = tmp_path / "log"
    outcomes = _run(tmp_path, _stages(log))
    _executions(log)
    Path(outcomes["scale[double]"].result.path("scaled")).write_text("999")
    again = _run(tmp_path, _stages(log))
    assert _executions(log) == ["scale[double]"]
    assert again["report[double]"].result.metrics["value"] == 5


@pytest.mark.parametrize(("max_rss_mb", "processes"), [(None, 1), (1.0, 2)])
def test_a_worker_past_its_memory_limit_is_replaced(tmp_path: Path, max_rss_mb: float | None, processes: int) -> None:
    outcomes = _run(tmp_path, _stages(tmp_path / "log"), max_rss_mb=max_rss_mb)
    pids = {outcomes[f"scale[{v}]"].result.metrics["pid"] for v in VARIANTS}
    assert len(pids) == processes
    assert outcomes["report[double]"].status == outcomes["report[triple]"].status == "ok"


def test_stale_temp_folders_of_killed_runs_are_removed(tmp_path: Path) -> None:
    import os

    cache = StageCache(tmp_path / "cache")
    old, fresh = cache.new_workdir("scale", "abc"), cache.new_workdir("scale", "def")
    os.utime(old, (0, 0))
    assert cache.remove_stale_workdirs(max_age_s=3600) == 1
    assert not old.exists() and fresh.exists()
