"""The per-layer table's figure, drawn by the convert stage that computed the table.

Drawn here, not after the run: beside the other variants' stages it costs no wall time, and the stage cache keeps
it with the table (a run's last seconds, before MLflow logs the variants that carry it, were spent drawing one
such figure per quantized variant: about 2 s for the default variants). A figure that cannot be drawn is left
out; the table and the variant stand.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

PLOT_FILE = "worst_layers.png"

log = logging.getLogger(__name__)


def wide_range(values: list[float]) -> bool:
    """Whether positive figures span more than 10x: the axis turns logarithmic."""
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and bool(positive) and max(positive) / min(positive) > 10


def write_layers_plot(variant: str, layers: list[dict[str, Any]] | None, out_dir: Path) -> dict[str, str]:
    """`{"layers_plot": PLOT_FILE}` once the figure is in `out_dir`; `{}` when there is nothing to draw or the
    drawing failed (logged, never fatal)."""
    try:
        drawn = plot_worst_layers(variant, layers, out_dir / PLOT_FILE)
    except Exception as err:  # noqa: BLE001 - a diagnostic figure never fails the conversion
        log.warning("the worst-layers figure of %s was not drawn: %s: %s", variant, type(err).__name__, err)
        return {}
    return {"layers_plot": PLOT_FILE} if drawn is not None else {}


def plot_worst_layers(variant: str, layers: list[dict[str, Any]] | None, path: Path, count: int = 12) -> Path | None:
    """The worst layers by RMSE / scale next to their activation range: the two columns to read together
    (an outlier channel shows as a wide range with an unremarkable RMSE / scale; docs/quantization.md)."""
    rows = [r for r in layers or [] if r.get("rmse_over_scale") is not None][:count]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    short = [r["name"].split(";")[0] for r in rows]
    names = [f"{r['op']} {n if len(n) <= 40 else '…' + n[-39:]}" for r, n in zip(rows, short, strict=True)][::-1]
    ratio = [r["rmse_over_scale"] for r in rows][::-1]
    width = [(r["range_max"] or 0.0) - (r["range_min"] or 0.0) for r in rows][::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 1.6), sharey=True)
    left.barh(names, ratio, color="tab:orange")
    left.set_xlabel("RMSE / scale (quantization steps)")
    right.barh(names, width, color="tab:blue")
    right.set_xlabel("activation range (max - min)")
    if wide_range([w for w in width if w > 0]):
        right.set_xscale("log")
    fig.suptitle(f"{variant}: worst {len(rows)} layers by RMSE / scale")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
