"""The per-layer table's figure, drawn by the convert stage: written beside the table, never fatal."""

from __future__ import annotations

from pathlib import Path

from stages.convert.quantization.layers_plot import PLOT_FILE, wide_range, write_layers_plot


def _rows(n: int) -> list[dict]:
    return [
        {"name": f"c{i};x", "op": "CONV_2D", "rmse_over_scale": 0.1 * (n - i), "range_min": -1.0, "range_max": 9.0**i}
        for i in range(n)
    ]


def test_the_figure_is_written_beside_the_table_and_named_in_the_stage_files(tmp_path: Path) -> None:
    assert write_layers_plot("int8", _rows(3), tmp_path) == {"layers_plot": PLOT_FILE}
    assert (tmp_path / PLOT_FILE).read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*tmp*"))  # written to a temp name, then renamed


def test_nothing_to_draw_or_a_failed_drawing_leaves_no_figure_and_raises_nothing(tmp_path: Path) -> None:
    no_ratio = [{**r, "rmse_over_scale": None} for r in _rows(2)]
    assert write_layers_plot("int8", no_ratio, tmp_path) == {}
    assert write_layers_plot("int8", None, tmp_path) == {}
    (tmp_path / "a-file").write_text("")
    assert write_layers_plot("int8", _rows(2), tmp_path / "a-file") == {}  # its folder is a file
    assert not (tmp_path / PLOT_FILE).exists()


def test_ranges_wider_than_ten_times_turn_the_axis_logarithmic() -> None:
    assert wide_range([1.0, 100.0]) and not wide_range([1.0, 5.0]) and not wide_range([0.0, 100.0])
