"""Bad benchmark settings stop the CLI before any work, with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.paths import REPO


@pytest.mark.slow  # a CLI run in a subprocess: the fast tier is tests/unit/
def test_bad_settings_stop_the_cli_before_any_work(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for override in ("benchmark.num_threads=0", "benchmark.max_seconds=0"):
        done = subprocess.run(
            [sys.executable, "-m", "pipelines", override, "tracking.enabled=false"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert done.returncode == 2, done.stderr[-2000:]
        assert "benchmark." in done.stderr + done.stdout
    assert not list(tmp_path.glob("outputs/cache/*"))
