"""The int8_mixed search tries the tensors most likely to matter first."""

from __future__ import annotations

from stages.convert.quantization.mixed_search import order_candidates
from stages.convert.quantization.moves import Move


def _row(name: str, ratio: float, width: float, worst: float) -> dict[str, object]:
    return {"name": name, "rmse_over_scale": ratio, "range_min": 0.0, "range_max": width, "max_abs_error": worst}


def test_outlier_tensor_is_tried_early_although_rmse_over_scale_ranks_it_last() -> None:
    layers = [_row(f"t{i}", 2.0 - 0.1 * i, 5.0, 0.1) for i in range(8)] + [_row("outlier", 0.05, 600.0, 0.2)]
    moves = [Move("converter", "float", str(r["name"]), (str(r["name"]),)) for r in layers]
    ordered = order_candidates(moves, layers)
    assert sorted(m.target for m in ordered) == sorted(m.target for m in moves)  # nothing lost or doubled
    assert [m.target for m in ordered].index("outlier") < 3
    assert ordered[0].target == "t0"  # the debugger's own favourite still comes first
