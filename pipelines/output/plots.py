"""Trade-off plots: quality against size, and latency against size, with the Pareto front marked.

Drawn for people choosing a variant: the front (nothing else is both smaller and better) is a red staircase,
variants that failed a gate are grey crosses, variants that land on the same spot share one label, the
reference model is a dotted line, latency carries a p90 whisker, and axes turn logarithmic when the figures
span more than 10x. The subtitle says where the latency was measured (CPU, threads, XNNPACK).
"""

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
    if (metrics.get("detection") or {}).get("matched_fraction") is not None:
        return "detections matched", metrics["detection"]["matched_fraction"]
    if metrics.get("rmse"):
        return "-max RMSE", -max(metrics["rmse"].values())
    return None


def label_groups(points: dict[str, tuple[float, float]], log_x: bool, log_y: bool) -> list[list[str]]:
    """Names whose points sit within 4% of the axis span of each other, so their labels are drawn once."""
    import math

    def scaled(value: float, log: bool) -> float:
        return math.log10(value) if log and value > 0 else value

    coords = {n: (scaled(x, log_x), scaled(y, log_y)) for n, (x, y) in points.items()}
    xs, ys = [c[0] for c in coords.values()], [c[1] for c in coords.values()]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    groups: list[list[str]] = []
    for name in sorted(coords, key=lambda n: coords[n]):
        x, y = coords[name]
        for group in groups:
            gx, gy = coords[group[0]]
            if abs(gx - x) <= 0.04 * span_x and abs(gy - y) <= 0.04 * span_y:
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


def _wide(values: list[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and bool(positive) and max(positive) / min(positive) > 10


def _panel(
    ax: Any,
    points: dict[str, tuple[float, float]],
    ylabel: str,
    lower_is_better: bool,
    passed: dict[str, bool],
    whiskers: dict[str, float],
    reference: float | None,
) -> None:
    signed = {n: (x, -y if lower_is_better else y) for n, (x, y) in points.items()}
    front = pareto_front(signed)
    log_x = _wide([p[0] for p in points.values()])
    extra = [reference] if reference else []
    log_y = lower_is_better and _wide([p[1] for p in points.values()] + list(whiskers.values()) + extra)
    for name, (x, y) in points.items():
        on_front, ok = name in front, passed.get(name, True)
        if name in whiskers:
            ax.errorbar(
                x,
                y,
                yerr=[[0], [max(0.0, whiskers[name] - y)]],
                fmt="none",
                ecolor="0.6",
                lw=1,
                capsize=3,
                zorder=1,
            )
        ax.scatter(
            x,
            y,
            s=90 if on_front else 45,
            marker="*" if on_front else ("o" if ok else "x"),
            color="tab:red" if on_front else ("tab:blue" if ok else "0.5"),
            zorder=3,
        )
    for group in label_groups(points, log_x, log_y):
        x, y = points[group[0]]
        ax.annotate(", ".join(group), (x, y), textcoords="offset points", xytext=(6, 5), fontsize=8)
    ordered = sorted((points[n] for n in front), key=lambda p: p[0])
    if ordered:  # a staircase: the best value reachable at each size
        steps_x, steps_y = [ordered[0][0]], [ordered[0][1]]
        for x, y in ordered[1:]:
            steps_x += [x, x]
            steps_y += [steps_y[-1], y]
        ax.plot(steps_x, steps_y, "--", color="tab:red", lw=1, label="Pareto front (★)", zorder=2)
    if reference is not None:
        ax.axhline(reference, ls=":", color="0.35", lw=1, label="reference model")
    if not all(passed.get(n, True) for n in points):
        ax.scatter([], [], marker="x", color="0.5", label="failed a gate")
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("size (KiB)" + (", log scale" if log_x else ""))
    ax.set_ylabel(ylabel + (", log scale" if log_y else ""))
    ax.set_title(("lower" if lower_is_better else "higher") + " is better; left is smaller", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)


def _where(report: dict[str, Any]) -> str:
    """'AMD EPYC, 1 thread, XNNPACK on' from the first variant that was timed."""
    for entry in report["variants"].values():
        bench = entry.get("benchmark") or {}
        if bench.get("environment"):
            threads = bench.get("num_threads")
            xnnpack = "on" if bench.get("use_xnnpack") else "off"
            plural = "" if threads == 1 else "s"
            return f"latency: {bench['environment'].get('cpu')}, {threads} thread{plural}, XNNPACK {xnnpack}, batch 1"
    return ""


def tradeoff_inputs(report: dict[str, Any]) -> dict[str, Any]:
    """The part of the report `plot_tradeoffs` reads, in the report's shape (the figure cache's key)."""
    fields = ("size_bytes", "metrics", "status", "benchmark")
    return {
        "model": {"name": report["model"]["name"]},
        "reference": {"metrics": (report.get("reference") or {}).get("metrics") or {}},
        "variants": {n: {f: v.get(f) for f in fields} for n, v in report["variants"].items()},
    }


def plot_tradeoffs(report: dict[str, Any], path: Path) -> Path | None:
    """Write the figure; None when no variant has the figures to plot. A one-variant run gets its figure too:
    the run directory's contract (shared/ARCHITECTURE.md) promises one after every run."""
    variants = {n: v for n, v in report["variants"].items() if v.get("size_bytes") and _quality(v["metrics"])}
    if not variants:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    passed = {n: v.get("status") == "passed" for n, v in variants.items()}
    scored = {n: _quality(v["metrics"]) for n, v in variants.items()}  # never None: filtered above
    quality = {n: (v["size_bytes"] / 1024, scored[n][1]) for n, v in variants.items()}  # type: ignore[index]
    label = next(iter(scored.values()))[0]  # type: ignore[index]
    ref = report.get("reference", {}).get("metrics", {})
    ref_quality = ref.get("accuracy") if label == "accuracy" else None
    _panel(axes[0], quality, label, False, passed, {}, ref_quality)
    timed = {n: v["metrics"]["latency_ms"] for n, v in variants.items() if v["metrics"].get("latency_ms")}
    if timed:
        latency = {n: (variants[n]["size_bytes"] / 1024, t["p50"]) for n, t in timed.items()}
        whiskers = {n: t["p90"] for n, t in timed.items() if "p90" in t}
        ref_latency = (ref.get("latency_ms") or {}).get("p50")
        _panel(axes[1], latency, "p50 latency (ms), whisker to p90", True, passed, whiskers, ref_latency)
    else:
        axes[1].set_visible(False)
    where = _where(report)
    fig.suptitle(f"{report['model']['name']}: variant trade-offs" + (f"\n{where}" if where else ""), fontsize=11)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


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
    if _wide([w for w in width if w > 0]):
        right.set_xscale("log")
    fig.suptitle(f"{variant}: worst {len(rows)} layers by RMSE / scale")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
