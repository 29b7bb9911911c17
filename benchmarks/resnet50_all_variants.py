"""A ResNet50-sized model (keras.applications.ResNet50, weights=None, ~100 MB fp32) through all six variants,
with wall time and peak memory of the whole process tree (targets: < 8 min, < 5 GB on 2 cores).

Usage: python benchmarks/resnet50_all_variants.py [--eval-samples N] [--max-seconds S]
int16x8 runs on LiteRT's reference kernels (no XNNPACK path), which for ResNet50 take seconds per invoke, so
verification uses a small evaluation set and timing is capped with benchmark.max_seconds (the report then says
that the capped variant's percentiles rest on few samples).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_avg, pipeline_cmd, run_measured, snapshot  # noqa: E402


def build(path: Path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    keras.applications.ResNet50(weights=None).save(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-samples", type=int, default=16)
    parser.add_argument("--calibration-samples", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="resnet50-") as scratch:
        root = Path(scratch)
        code = snapshot(root / "code")
        model = root / "resnet50.keras"
        build(model)
        overrides = [
            "model=keras",
            f"model.path={model}",
            "dataset=random",
            f"dataset.num_samples={args.eval_samples + args.calibration_samples}",
            f"dataset.max_eval_samples={args.eval_samples}",
            f"calibrate.num_samples={args.calibration_samples}",
            "benchmark.warmup=2",
            "benchmark.min_runs=10",
            "benchmark.min_seconds=1",
            f"benchmark.max_seconds={args.max_seconds}",
            "hydra.run.dir=run",
        ]
        wall, peak_mb, done = run_measured(pipeline_cmd(*overrides), root, code=code)
        print(done.stdout[-4000:])
        if done.returncode not in (0, 1):
            raise SystemExit(f"pipeline failed with exit code {done.returncode}")
        report = json.loads((root / "run" / "report.json").read_text())
        print(f"model file {model.stat().st_size / 1e6:.0f} MB")
    print(f"\nResNet50 (weights=None), six variants ({load_avg()})")
    print(f"{'variant':<10}{'status':<8}{'p50 ms':>10}{'count':>7}{'convert s':>11}{'size MB':>9}")
    for name, entry in report["variants"].items():
        m = entry["metrics"]
        lat = m.get("latency_ms") or {}
        print(
            f"{name:<10}{entry['status']:<8}{lat.get('p50', float('nan')):>10.2f}{lat.get('count', 0):>7}"
            f"{m.get('convert_s', float('nan')):>11.1f}{(entry['size_bytes'] or 0) / 1e6:>9.1f}"
        )
    for warning in report.get("warnings", []):
        print(f"  warning: {warning}")
    print(
        f"\nwall {wall / 60:.1f} min (target < 8), peak RSS of the process tree {peak_mb / 1024:.2f} GiB (target < 5)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
