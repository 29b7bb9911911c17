"""The pipeline's own speed, side by side in one run (issue 26): the default example cold and cached, with and
without MLflow tracking; the parallel runner on (`runtime.workers` auto) and off (`runtime.workers=1`); and
MobileNetV2 (α 0.35, 96×96, weights=None), 5 variants, against one seed-style script per variant.

Usage: python benchmarks/speed.py [--parts default,parallel,mobilenet | none] [--cached-rounds 3] [--convnext]
Every figure is a whole `python -m pipelines` process (start-up included) run from a snapshot of the code, in a
fresh scratch directory; cached figures are the median of `--cached-rounds` reruns. `--convnext` adds
ConvNeXtSmall (weights=None, 224×224, ~50M parameters): the pipeline fp32-only against a bare hand-written
conversion and against the seeds' way doing the same work, and all six variants against six bare conversions
(benchmarks/_bare_conversion.py): several GB and many minutes per run, so it is off by default.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, cached_count, load_avg, median, pipeline_cmd, run_measured, snapshot  # noqa: E402

MOBILENET_VARIANTS = ["fp32", "fp16", "dynamic", "int8", "int8_io"]


def _run(overrides: list[str], cwd: Path, code: Path) -> tuple[float, float, str]:
    wall, peak, done = run_measured(pipeline_cmd(*overrides), cwd, code=code)
    if done.returncode not in (0, 1):
        print(done.stdout[-3000:])
        raise SystemExit(f"pipeline {' '.join(overrides)} failed with exit code {done.returncode}")
    return wall, peak, done.stdout


def default_example(root: Path, code: Path, rounds: int) -> list[str]:
    """Cold, then the median of `rounds` cached reruns, with MLflow (sqlite, the default) and without."""
    rows = []
    for label, overrides in (("MLflow on (sqlite)", []), ("tracking.enabled=false", ["tracking.enabled=false"])):
        work = root / f"default-{len(rows)}"
        work.mkdir()
        cold, peak, _ = _run(overrides, work, code)
        cached = []
        for _ in range(rounds):
            wall, _, out = _run(overrides, work, code)
            hits, total = cached_count(out)
            assert hits == total, f"a rerun computed {total - hits} stages"
            cached.append(wall)
        rows.append(f"| {label} | {cold:.1f} | {median(cached):.1f} | {peak:.0f} |")
        print(rows[-1], flush=True)
    return ["| default example | cold s | cached s (median) | cold peak MiB |", "|---|---|---|---|", *rows]


def parallel(root: Path, code: Path) -> list[str]:
    """The default example cold, parallel runner on (auto) and off (one worker), tracking off."""
    rows = []
    for label, workers in (("runtime.workers=null (auto)", "null"), ("runtime.workers=1", "1")):
        work = root / f"parallel-{workers}"
        work.mkdir()
        wall, peak, _ = _run(["tracking.enabled=false", f"runtime.workers={workers}"], work, code)
        rows.append(f"| {label} | {wall:.1f} | {peak:.0f} |")
        print(rows[-1], flush=True)
    return ["| default example, cold, no tracking | wall s | peak MiB |", "|---|---|---|", *rows]


def mobilenet(root: Path, code: Path) -> list[str]:
    """MobileNetV2 5 variants: the pipeline (parallel on and off) against five seed-style scripts."""
    from mobilenet_vs_scripts import build

    model = root / "mobilenetv2_035_96.keras"
    build(model)
    base = ["model=keras", f"model.path={model}", "dataset=random", f"variants=[{','.join(MOBILENET_VARIANTS)}]"]
    rows, walls = [], {}
    for label, extra in (("pipeline, workers auto", []), ("pipeline, workers=1", ["runtime.workers=1"])):
        work = root / f"mobilenet-{len(rows)}"
        work.mkdir()
        wall, peak, _ = _run([*base, *extra], work, code)
        walls[label] = wall
        rows.append(f"| {label} (MLflow on) | {wall:.1f} | {peak:.0f} |")
        print(rows[-1], flush=True)
    script = Path(__file__).resolve().parent / "_seed_style_variant.py"
    total, worst = 0.0, 0.0
    work = root / "mobilenet-scripts"
    work.mkdir()
    for variant in MOBILENET_VARIANTS:
        wall, peak, done = run_measured([PYTHON, str(script), str(model), variant, str(work)], work)
        if done.returncode != 0:
            print(done.stdout[-3000:])
            raise SystemExit(f"seed-style script for {variant} failed")
        total, worst = total + wall, max(worst, peak)
    rows.append(f"| seeds' way (5 scripts, one after another) | {total:.1f} | {worst:.0f} (largest) |")
    ratios = ", ".join(f"{label}: {wall / total:.2f}" for label, wall in walls.items())
    return ["| MobileNetV2 α0.35 96×96, 5 variants | wall s | peak MiB |", "|---|---|---|", *rows, "", ratios]


def convnext(root: Path, code: Path) -> list[str]:
    """ConvNeXtSmall (heavy: opt-in), side by side: the pipeline fp32-only against a bare conversion and against
    the seeds' way doing the same work; the pipeline's six variants against six bare conversions."""
    import keras

    model = root / "convnext_small.keras"
    keras.applications.ConvNeXtSmall(input_shape=(224, 224, 3), weights=None).save(model)
    here = Path(__file__).resolve().parent
    rows, walls, peaks = [], {}, {}

    def measure(label: str, cmd: list[str], cwd: Path, pipeline: bool = False) -> None:
        wall, peak, done = run_measured(cmd, cwd, code=code)
        if done.returncode not in ((0, 1) if pipeline else (0,)):
            print(done.stdout[-3000:])
            raise SystemExit(f"{label} failed with exit code {done.returncode}")
        walls[label], peaks[label] = wall, peak
        rows.append(f"| {label} | {wall:.1f} | {peak:.0f} | {load_avg()} |")
        print(rows[-1], flush=True)

    bare_fp32 = "bare conversion fp32 (load, convert, write)"
    seeds_fp32 = "seeds' way fp32 (+ predictions, compare, time)"
    bare = [PYTHON, str(here / "_bare_conversion.py"), str(model)]
    measure(bare_fp32, [*bare, "fp32", str(root / "fp32.tflite")], root)
    measure(seeds_fp32, [PYTHON, str(here / "_seed_style_variant.py"), str(model), "fp32", str(root), "16"], root)
    base = ["model=keras", f"model.path={model}", "dataset=random", "dataset.num_samples=16", "tracking.enabled=false"]
    for label, variants in (("pipeline fp32 only", ["variants=[fp32]"]), ("pipeline six variants", [])):
        work = root / f"convnext-{len(rows)}"
        work.mkdir()
        measure(label, pipeline_cmd(*base, *variants), work, pipeline=True)
    six = walls[bare_fp32]
    for variant in ("fp16", "dynamic", "int8", "int8_io", "int16x8"):
        measure(f"bare conversion {variant}", [*bare, variant, str(root / f"{variant}.tflite")], root)
        six += walls[f"bare conversion {variant}"]
    fp32 = walls["pipeline fp32 only"]
    ratios = [
        f"pipeline fp32 / bare fp32: {fp32 / walls[bare_fp32]:.2f} (target <= 1.5)",
        f"pipeline fp32 / seeds' way fp32: {fp32 / walls[seeds_fp32]:.2f} (target <= 0.8)",
        f"pipeline fp32 peak / bare fp32 peak: {peaks['pipeline fp32 only'] / peaks[bare_fp32]:.2f} (target <= 1.2)",
        f"pipeline six variants / six bare conversions ({six:.1f} s): {walls['pipeline six variants'] / six:.2f}"
        " (target <= 2)",
    ]
    return ["| ConvNeXtSmall 224×224 | wall s | peak MiB | load |", "|---|---|---|---|", *rows, "", *ratios]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="default,parallel,mobilenet")
    parser.add_argument("--cached-rounds", type=int, default=3)
    parser.add_argument("--convnext", action="store_true", help="also ConvNeXtSmall (GBs, many minutes)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    tables: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="speed-") as scratch:
        root = Path(scratch)
        code = snapshot(root / "code")
        if "default" in parts:
            tables.append(default_example(root, code, args.cached_rounds))
        if "parallel" in parts:
            tables.append(parallel(root, code))
        if "mobilenet" in parts:
            tables.append(mobilenet(root, code))
        if args.convnext:
            tables.append(convnext(root, code))
    print(f"\n{load_avg()}\n")
    print("\n\n".join("\n".join(table) for table in tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
