"""The commands the docs give work exactly as written."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import cli
from tests.helpers.marked_processes import pids_of, stop_marked


@pytest.mark.slow
def test_readme_postprocess_override_reaches_the_import_check(tmp_path: Path) -> None:
    """As written on the command line, the override gets to our own check, not a Hydra error."""
    proc = cli(
        ["split.postprocess._target_=pkg.module.fn", "tracking.enabled=false", "hydra.run.dir=run"],
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "`split.postprocess._target_=pkg.module.fn` cannot be imported" in proc.stderr
    assert "not in struct" not in proc.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tiny_run(model: Path) -> list[str]:
    """A job that trains and tracks nothing (Ray runs TensorFlow on one thread per job): the command is what is
    tested."""
    return [
        "model=keras",
        f"model.path={model}",
        "dataset=random",
        "variants=[fp32]",
        "benchmark.enabled=false",
        "tracking.enabled=false",
    ]


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
    reason="the Ray launcher is an extra: pip install -e '.[ray]'",
)
@pytest.mark.xdist_group("ray")  # one Ray at a time on this machine
def test_sweeps_md_existing_cluster_command(tmp_path: Path, tiny_keras: Path) -> None:
    """docs/sweeps.md: `ray start --head`, then `hydra.launcher.ray.init.address=...` (no `+`, no workaround)."""
    port = _free_port()
    temp = Path(f"/tmp/rt{os.getpid()}")  # Ray's socket paths must stay short; this dir marks our processes
    ray = str(Path(sys.executable).with_name("ray"))
    start = [ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2"]
    start += ["--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"]
    # A private HOME: Ray keeps an auth token in ~/.ray, which other Ray users of this machine may rewrite.
    home = {"HOME": str(tmp_path)}
    subprocess.run(start, check=True, capture_output=True, timeout=180, env={**os.environ, **home})
    try:
        proc = cli(
            [
                "-m",
                "hydra/launcher=ray",
                f"hydra.launcher.ray.init.address=127.0.0.1:{port}",
                *tiny_run(tiny_keras),
                f"runtime.cache_dir={tmp_path / 'cache'}",
                f"hydra.sweep.dir={tmp_path / 'sweep'}",
                "calibrate.seed=0,1",
            ],
            cwd=tmp_path,
            env={"RAY_DEDUP_LOGS": "0", **home},
        )
    finally:
        stop_marked(str(temp))
        shutil.rmtree(temp, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "object_store_memory" not in proc.stderr
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == ["0", "1"]
    assert not pids_of(str(temp))
