"""AI Edge Quantizer variants against the converter's on MobileNetV2 (alpha 0.35, 96x96, weights=None).

Usage: python benchmarks/aeq_mobilenet.py
One pipeline run (random data: sizes and latency hold, accuracy does not) with the converter's fp32, dynamic and
int8 and the AEQ variants; prints the pipeline's table, each variant's conversion / quantization time, and the
size targets: aeq_w8 and aeq_a8w8 <= 0.3x, aeq_w4 <= 0.2x the fp32 variant's size.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_avg, pipeline_cmd, run_measured, snapshot  # noqa: E402

VARIANTS = ["fp32", "dynamic", "int8", "aeq_w8", "aeq_w4", "aeq_a8w8", "aeq_a16w8"]
TARGETS = {"aeq_w8": 0.3, "aeq_a8w8": 0.3, "aeq_w4": 0.2}


def build(path: Path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None).save(path)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="aeq-mobilenet-") as scratch:
        root = Path(scratch)
        code = snapshot(root / "code")
        model = root / "mobilenetv2_035_96.keras"
        build(model)
        overrides = [
            "model=keras",
            f"model.path={model}",
            "dataset=random",
            f"variants=[{','.join(VARIANTS)}]",
            "tracking.enabled=false",
            "hydra.run.dir=run",
        ]
        wall, _, done = run_measured(pipeline_cmd(*overrides), root, code=code)
        if done.returncode not in (0, 1):
            print(done.stdout[-3000:])
            raise SystemExit(f"pipeline failed with exit code {done.returncode}")
        print(done.stdout.strip().split("\n\n", 1)[-1])
        report = json.loads((root / "run" / "report.json").read_text())
    variants = report["variants"]
    print(f"\nMobileNetV2 0.35/96, {len(VARIANTS)} variants in {wall:.0f} s ({load_avg()})")
    print(f"{'variant':<11}{'backend':<11}{'size KiB':>9}{'x fp32':>8}{'p50 ms':>9}{'convert s':>11}{'quantize s':>12}")
    for name in VARIANTS:
        v = variants[name]
        m = v["metrics"]
        print(
            f"{name:<11}{v['backend']:<11}{v['size_bytes'] / 1024:>9.1f}{v['size_ratio']:>8.3f}"
            f"{m.get('latency_ms', {}).get('p50', float('nan')):>9.3f}{m['convert_s']:>11.2f}"
            f"{m.get('quantize_s', float('nan')):>12.2f}"
        )
    met = {name: variants[name]["size_ratio"] <= limit for name, limit in TARGETS.items()}
    for name, limit in TARGETS.items():
        print(
            f"{name}: {variants[name]['size_ratio']:.3f}x fp32 (target <= {limit}: {'met' if met[name] else 'NOT met'})"
        )
    return 0 if all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
