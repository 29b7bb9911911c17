"""The whole pipeline on MobileNetV2 (alpha 0.35, 96x96, weights=None) with 5 variants vs "the seeds' way"
(one script per variant in its own process, each loading the model, converting, checking and timing).
Target: the pipeline at most 0.5x the scripts' wall time.

Usage: python benchmarks/mobilenet_vs_scripts.py [--rounds N]
Both sides start cold (fresh cache) and do comparable work: 100 calibration samples, 128 evaluation samples,
the same five conversions. The pipeline additionally logs to MLflow, writes the report and the plot, and times
each variant with warm-up and >= 50 runs; the scripts time 50 runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, load_avg, median, pipeline_cmd, run_measured, snapshot  # noqa: E402

VARIANTS = ["fp32", "fp16", "dynamic", "int8", "int8_io"]


def build(path: Path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None).save(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    script = Path(__file__).resolve().parent / "_seed_style_variant.py"
    pipeline_s, scripts_s, pipeline_mb, scripts_mb = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="mobilenet-") as scratch:
        root = Path(scratch)
        code = snapshot(root / "code")
        model = root / "mobilenetv2_035_96.keras"
        build(model)
        for round_ in range(args.rounds):
            work = root / f"round{round_}"
            work.mkdir()
            overrides = [
                "model=keras",
                f"model.path={model}",
                "dataset=random",
                f"variants=[{','.join(VARIANTS)}]",
            ]
            wall, peak, done = run_measured(pipeline_cmd(*overrides), work, code=code)
            if done.returncode not in (0, 1):
                print(done.stdout[-3000:])
                raise SystemExit(f"pipeline failed with exit code {done.returncode}")
            print(done.stdout.strip().split("\n\n", 1)[-1])
            pipeline_s.append(wall)
            pipeline_mb.append(peak)
            total, worst = 0.0, 0.0
            for variant in VARIANTS:
                wall, peak, done = run_measured([PYTHON, str(script), str(model), variant, str(work)], work)
                if done.returncode != 0:
                    print(done.stdout[-3000:])
                    raise SystemExit(f"seed-style script for {variant} failed")
                print(f"  {done.stdout.strip().splitlines()[-1]}  ({wall:.1f} s)")
                total += wall
                worst = max(worst, peak)
            scripts_s.append(total)
            scripts_mb.append(worst)
            print(f"round {round_ + 1}: pipeline {pipeline_s[-1]:.1f} s, scripts {total:.1f} s")
    ratio = median(pipeline_s) / median(scripts_s)
    print(f"\nMobileNetV2 0.35/96, 5 variants, median of {args.rounds} round(s) ({load_avg()})")
    print(f"{'':<26}{'wall s':>8}{'peak MiB':>10}")
    print(f"{'pipeline (one process)':<26}{median(pipeline_s):>8.1f}{median(pipeline_mb):>10.0f}")
    print(f"{'seeds way (5 scripts)':<26}{median(scripts_s):>8.1f}{median(scripts_mb):>10.0f}")
    print(f"pipeline/scripts = {ratio:.2f} (target <= 0.5: {'met' if ratio <= 0.5 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
