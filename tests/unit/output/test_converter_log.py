"""A failed conversion's converter log is copied into the run directory and the message points there."""

from __future__ import annotations

from pathlib import Path


def test_a_failed_conversions_log_is_copied_into_the_run_directory(tmp_path: Path) -> None:
    """The raw converter log lands in the run directory and the message points there."""
    from pipelines.output.report import _with_log_in_run_dir

    kept = tmp_path / "cache" / "convert" / "failed-logs" / "abc-int8.log"
    kept.parent.mkdir(parents=True)
    kept.write_text("error: 'tf.TensorListReserve' op requires ...\n")
    message = f"convert[int8]: Variant 'int8' did not convert: ... The converter's full log: {kept}."
    run_variant = tmp_path / "run" / "variants" / "int8"
    rewritten = _with_log_in_run_dir(message, run_variant)
    assert str(run_variant / "converter.log") in rewritten and str(kept) not in rewritten
    assert (run_variant / "converter.log").read_text().startswith("error: 'tf.TensorListReserve'")
