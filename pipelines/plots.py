"""Trade-off plots: quality against size, and latency against size, with the Pareto front marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pareto_front(points: dict[str, tuple[float, float]]) -> set[str]:
    """Names of points no other point beats on both axes (smaller x, larger y is better)."""
    front = set()
    for name, (x, y) in points.items():
        dominated = any(
            (ox <= x and oy >= y) and (ox < x or oy > y) for other, (ox, oy) in points.items() if other != name
        )
        if not dominated:
            front.add(name)
    return front


def _quality(metrics: dict[str, Any]) -> tuple[str, float] | None:
    if "accuracy" in metrics:
        return "accuracy", metrics["accuracy"]
    if metrics.get("rmse"):
        return "-max RMSE", -max(metrics["rmse"].values())
    return None


def plot_tradeoffs(report: dict[str, Any], path: Path) -> Path | None:
    """Write the figure; None when fewer than one variant has the figures to plot."""
    variants = {n: v for n, v in report["variants"].items() if v.get("size_bytes") and _quality(v["metrics"])}
    if not variants:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    quality = {n: (v["size_bytes"] / 1024, _quality(v["metrics"])[1]) for n, v in variants.items()}
    label = _quality(next(iter(variants.values()))["metrics"])[0]
    panels = [(axes[0], quality, label, False)]
    latency = {
        n: (v["size_bytes"] / 1024, v["metrics"]["latency_ms"]["p50"])
        for n, v in variants.items()
        if v["metrics"].get("latency_ms")
    }
    if latency:
        panels.append((axes[1], latency, "p50 latency (ms)", True))
    else:
        axes[1].set_visible(False)
    for ax, points, ylabel, lower_is_better in panels:
        signed = {n: (x, -y if lower_is_better else y) for n, (x, y) in points.items()}
        front = pareto_front(signed)
        for name, (x, y) in points.items():
            on_front = name in front
            ax.scatter(x, y, s=70 if on_front else 40, marker="*" if on_front else "o",
                       color="tab:red" if on_front else "tab:blue")
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ordered = sorted((points[n] for n in front), key=lambda p: p[0])
        ax.plot([p[0] for p in ordered], [p[1] for p in ordered], "--", color="tab:red", lw=1, label="Pareto front")
        ax.set_xlabel("size (KiB)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{report['model']['name']}: variants trade-offs")
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
