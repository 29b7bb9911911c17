"""The report's latency side: the slower-than-fp32 warning, the Pareto front and the trade-off figure (drawn once
per content, copied after)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.output.plots import label_groups, pareto_front, plot_tradeoffs
from pipelines.output.report_notes import latency_warnings
from pipelines.output.table import format_table


def _variant(p50: float, capped: bool = False) -> dict[str, Any]:
    return {
        "status": "passed",
        "size_bytes": 1000,
        "error": None,
        "gates": {},
        "size_ratio": 1.0,
        "metrics": {"latency_ms": {"p50": p50, "p90": p50 * 1.1}, "accuracy": 0.9},
        "benchmark": {"capped": [1] if capped else [], "environment": {"cpu": "Test CPU"}},
    }


def test_warning_when_a_quantized_variant_is_slower_than_fp32() -> None:
    cfg = {
        "variants": {
            "fp32": {"mode": "fp32"},
            "int8": {"mode": "int8"},
            "dynamic": {"mode": "dynamic"},
            "fp16": {"mode": "fp16"},
        }
    }
    variants = {
        "fp32": _variant(1.0),
        "int8": _variant(0.5),
        "dynamic": _variant(2.0),
        "fp16": _variant(1.03),
    }
    warnings = latency_warnings(cfg, variants)
    assert len(warnings) == 1 and warnings[0].startswith("dynamic is slower than fp32")
    assert "2.0x" in warnings[0] and "Test CPU" in warnings[0]
    report = {
        "model": {"size_bytes": 4000},
        "reference": {"metrics": {}},
        "variants": variants,
        "warnings": warnings,
    }
    table = format_table(report)
    assert "Warnings" in table and "2 !" in table and "0.5 !" not in table


def test_no_fp32_baseline_no_speed_warning_but_capped_warns() -> None:
    cfg = {"variants": {"int8": {"mode": "int8"}, "dynamic": {"mode": "dynamic"}}}
    warnings = latency_warnings(cfg, {"int8": _variant(0.5), "dynamic": _variant(2.0, capped=True)})
    assert warnings == [w for w in warnings if "max_seconds" in w] and len(warnings) == 1


def test_pareto_front_and_label_groups() -> None:
    points = {"a": (1.0, 0.9), "b": (2.0, 0.95), "c": (2.0, 0.8), "d": (1.01, 0.9)}
    assert pareto_front(points) == {"a", "b"}
    groups = label_groups(points, log_x=False, log_y=False)
    assert ["a", "d"] in groups and len(groups) == 3


def test_plot_is_written(tmp_path: Path) -> None:
    report = {
        "model": {"name": "m"},
        "reference": {"metrics": {"accuracy": 0.9, "latency_ms": {"p50": 5.0}}},
        "variants": {"fp32": _variant(1.0), "int8": {**_variant(0.01), "size_bytes": 250}},
    }
    path = plot_tradeoffs(report, tmp_path / "tradeoffs.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # one variant still gets its figure (the run directory's contract)
    alone = {**report, "variants": {"fp32": report["variants"]["fp32"]}}
    assert plot_tradeoffs(alone, tmp_path / "alone.png") == tmp_path / "alone.png"


def test_a_figure_is_drawn_once_per_content_and_copied_after(tmp_path: Path) -> None:
    from pipelines.output.figure_cache import cached_figure
    from pipelines.output.plots import tradeoff_inputs

    report = {
        "model": {"name": "m"},
        "reference": {"metrics": {"accuracy": 0.9}},
        "variants": {"fp32": _variant(1.0), "int8": {**_variant(0.01), "size_bytes": 250}},
    }
    drawn: list[Path] = []

    def draw(inputs: dict, path: Path) -> Path | None:
        drawn.append(path)
        return plot_tradeoffs(inputs, path)

    cache = tmp_path / "cache"
    first = cached_figure(cache, tradeoff_inputs(report), tmp_path / "a" / "tradeoffs.png", draw)
    again = cached_figure(cache, tradeoff_inputs(report), tmp_path / "b" / "tradeoffs.png", draw)
    assert first is not None and again is not None and len(drawn) == 1
    assert again.read_bytes() == first.read_bytes()
    report["variants"]["int8"]["size_bytes"] = 500  # another figure: drawn, not copied
    moved = cached_figure(cache, tradeoff_inputs(report), tmp_path / "c" / "tradeoffs.png", draw)
    assert len(drawn) == 2 and moved is not None and moved.read_bytes() != first.read_bytes()
    assert cached_figure(None, tradeoff_inputs(report), tmp_path / "d" / "tradeoffs.png", draw) and len(drawn) == 3


def test_variants_sharing_one_per_layer_table_share_one_drawn_figure(tmp_path: Path) -> None:
    """int8 and int8_io read one per-layer table (stages/run_memo.py): one figure is drawn for both and copied
    into each variant's folder; a variant with a table of its own gets a figure of its own."""
    from pipelines.output.report import write_layer_plots

    def table(ratio: float) -> list[dict[str, Any]]:
        return [{"name": "conv;x", "op": "CONV_2D", "rmse_over_scale": ratio, "range_min": -1.0, "range_max": 3.0}]

    report = {
        "variants": {
            "fp32": _variant(1.0),
            "int8": {**_variant(0.5), "quantization": {"layers": table(0.4)}},
            "int8_io": {**_variant(0.5), "quantization": {"layers": table(0.4)}},
            "int16x8": {**_variant(9.0), "quantization": {"layers": table(0.01)}},
        }
    }
    write_layer_plots(report, tmp_path / "run", tmp_path / "cache")
    drawn = list((tmp_path / "cache" / "figures").glob("*.png"))
    assert len(drawn) == 2  # int8 and int8_io once, int16x8 once
    figures = {n: report["variants"][n]["quantization"].get("layers_plot") for n in ("int8", "int8_io", "int16x8")}
    assert figures == {n: f"variants/{n}/worst_layers.png" for n in figures}
    shared = [(tmp_path / "run" / figures[n]).read_bytes() for n in ("int8", "int8_io")]
    assert shared[0] == shared[1] and shared[0] != (tmp_path / "run" / figures["int16x8"]).read_bytes()
    assert "quantization" not in report["variants"]["fp32"]


def test_the_plot_drawn_beside_tracking_is_named_once_waited_for_and_its_failure_is_raised_then(
    tmp_path: Path,
) -> None:
    from pipelines.output.plot_beside import PlotBeside

    layer = {"name": "conv;x", "op": "CONV_2D", "rmse_over_scale": 0.4, "range_min": -1.0, "range_max": 3.0}
    quantized = {**_variant(0.01), "size_bytes": 250, "quantization": {"layers": [layer]}}
    report = {
        "model": {"name": "m"},
        "reference": {"metrics": {"accuracy": 0.9}},
        "variants": {"fp32": _variant(1.0), "int8": quantized},
    }
    plot = PlotBeside(report, tmp_path, None)
    report["variants"]["fp32"]["mlflow_run_id"] = "r1"  # tracking goes on meanwhile, in the main thread
    plot.wait()
    assert report["plot"] == "tradeoffs.png" and plot.waited
    assert (tmp_path / "tradeoffs.png").read_bytes()[:4] == b"\x89PNG"
    assert report["variants"]["int8"]["quantization"]["layers_plot"] == "variants/int8/worst_layers.png"
    assert (tmp_path / "variants" / "int8" / "worst_layers.png").is_file()
    assert "mlflow_run_id" not in plot.as_written["variants"]["fp32"]  # the report as written before tracking
    assert plot.as_written["plot"] == "tradeoffs.png"

    (tmp_path / "a-file").write_text("")
    failing = PlotBeside(report, tmp_path / "a-file" / "run", None)  # a file where its folder should be
    try:
        failing.wait()
    except OSError as err:
        assert "a-file" in str(err)
    else:
        raise AssertionError("the thread's failure was not raised")
    assert not failing.waited
