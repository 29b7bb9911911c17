"""The commands the docs give work exactly as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import cli


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
