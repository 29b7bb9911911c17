"""Every keras.applications architecture (weights=None, small inputs) through fp32 and int8, end to end
through the CLI; prints a table of what passed (issue 10).

    python benchmarks/keras_applications.py                 # a few small ones
    python benchmarks/keras_applications.py --all           # the whole family (hours on 2 cores)
    python benchmarks/keras_applications.py MobileNetV2 ResNet50
    python benchmarks/keras_applications.py --all --jobs 2 --resume --out benchmarks/results/keras_applications

`--resume` keeps the rows already in `--out`'s JSON and runs only the architectures missing there (for the same
`--bn-stats`: a row per architecture and setting). The code is
copied before the first run, so editing the tree while the family runs does not change what is measured. The
per-layer QuantizationDebugger table is off (`quantization.debugger=false`): it is a diagnostic that does not
change a verdict, and on the largest models it would double the int8 time.

fp32 must match Keras per output to 1e-4 (its `max_rmse` gate, plus the max |error| shown here); int8 passes,
fails a gate, or says in plain words why it cannot be full-integer.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from _common import PYTHON, REPO, load_avg, run_measured, snapshot

SMALL = ["MobileNet", "MobileNetV2", "MobileNetV3Small", "EfficientNetB0", "DenseNet121", "ConvNeXtTiny"]
# Architectures whose minimum input is above 96 (with weights=None), and the size they get.
MIN_SIZE: dict[str, int] = {}
BUILD = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from _keras_apps import build_and_save
build_and_save(*sys.argv[1:])
"""


# Approximate parameter counts (millions, keras.io/api/applications): the whole family runs smallest first.
PARAMS_M = {
    "MobileNetV3Small": 2.5,
    "MobileNetV2": 3.5,
    "MobileNet": 4.3,
    "MobileNetV3Large": 5.4,
    "EfficientNetB0": 5.3,
    "NASNetMobile": 5.3,
    "EfficientNetV2B0": 7.2,
    "EfficientNetB1": 7.9,
    "DenseNet121": 8.1,
    "EfficientNetV2B1": 8.2,
    "EfficientNetB2": 9.2,
    "EfficientNetV2B2": 10.2,
    "EfficientNetB3": 12.3,
    "EfficientNetV2B3": 14.5,
    "DenseNet169": 14.3,
    "EfficientNetB4": 19.5,
    "DenseNet201": 20.2,
    "Xception": 22.9,
    "InceptionV3": 23.9,
    "ResNet50V2": 25.6,
    "ResNet50": 25.6,
    "ConvNeXtTiny": 28.6,
    "EfficientNetB5": 30.6,
    "EfficientNetV2S": 21.6,
    "EfficientNetB6": 43.3,
    "ResNet101": 44.7,
    "ResNet101V2": 44.7,
    "ConvNeXtSmall": 50.2,
    "InceptionResNetV2": 55.9,
    "ResNet152": 60.4,
    "ResNet152V2": 60.4,
    "EfficientNetB7": 66.7,
    "EfficientNetV2M": 54.4,
    "ConvNeXtBase": 88.5,
    "NASNetLarge": 88.9,
    "EfficientNetV2L": 119.0,
    "VGG16": 138.4,
    "VGG19": 143.7,
    "ConvNeXtLarge": 197.7,
    "ConvNeXtXLarge": 350.1,
}


def architectures() -> list[str]:
    """Every architecture keras.applications exports, smallest first."""
    import keras

    names = [n for n in dir(keras.applications) if n[0].isupper() and callable(getattr(keras.applications, n))]
    return sorted(names, key=lambda n: (PARAMS_M.get(n, 1e9), n))


def one(name: str, work: Path, code: Path, bn_stats: str) -> dict[str, object]:
    size = MIN_SIZE.get(name, 96)
    model, data = work / f"{name}.keras", work / f"{name}.npz"
    started = time.perf_counter()
    build = [PYTHON, "-c", BUILD, name, str(size), str(model), str(data), bn_stats]
    _, _, built = run_measured(build, cwd=work, timeout=1800, code=code)
    row: dict[str, object] = {"model": name, "input": size, "bn_stats": bn_stats}
    if built.returncode != 0:
        row["fp32"] = "build failed: " + (built.stdout.strip().splitlines() or ["?"])[-1][:80]
        return row
    run_dir = work / f"run-{name}"
    args = [PYTHON, "-m", "pipelines", "model=keras", f"model.path={model}", "dataset=npz", f"dataset.path={data}"]
    args += ["variants=[fp32,int8]", "tracking.enabled=false", "benchmark.enabled=false", f"hydra.run.dir={run_dir}"]
    args += [f"runtime.cache_dir={work / 'cache' / name}", "calibrate.num_samples=12", "quantization.debugger=false"]
    _, peak, proc = run_measured(args, cwd=work, timeout=7200, code=code)
    for path in (model, data):  # the largest models are gigabytes; keep the disk for the next ones
        path.unlink(missing_ok=True)
    row["minutes"] = round((time.perf_counter() - started) / 60, 1)
    row["peak_mib"] = round(peak)
    report_file = run_dir / "report.json"
    if not report_file.exists():
        row["fp32"] = "no report: " + (proc.stdout.strip().splitlines() or ["?"])[-1][:100]
        return row
    report = json.loads(report_file.read_text())
    # The original model against itself (batch vs one at a time): the report's note when it is unstable.
    row["batch_vs_single"] = max((report["reference"]["metrics"].get("batch_vs_single") or {"-": 0.0}).values())
    # How far it moves when its inputs move by one float step: the error gates allow 3x this (gates.py).
    noise = (report["reference"]["metrics"].get("rounding_noise") or {}).get("rmse") or {}
    row["noise_rmse"] = f"{max(noise.values()):.1e}" if noise else "-"
    for variant in ("fp32", "int8"):
        entry = report["variants"].get(variant, {})
        errs = entry.get("metrics", {}).get("max_abs_err") or {}
        row[f"{variant}_max_err"] = f"{max(errs.values()):.1e}" if errs else "-"
        rmse = entry.get("metrics", {}).get("rmse") or {}  # what the fp32 gate `max_rmse` (1e-4) judges
        row[f"{variant}_rmse"] = f"{max(rmse.values()):.1e}" if rmse else "-"
        failed = [g for g, v in (entry.get("gates") or {}).items() if v.get("passed") is False]
        detail = entry.get("error") or (f"gates failed: {failed}" if failed else "")
        on_noise = [g for g, v in (entry.get("gates") or {}).items() if v.get("allowance")]
        if on_noise and not detail:
            detail = f"on rounding noise: {on_noise}"
        row[variant] = entry.get("status", "?") + (f" ({str(detail)[:160]})" if detail else "")
        row[f"{variant}_path"] = (entry.get("conversion") or {}).get("convert_path", "-")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) and rows (json) here")
    parser.add_argument("--jobs", type=int, default=1, help="architectures converted side by side")
    parser.add_argument("--resume", action="store_true", help="keep --out's rows; run only the missing ones")
    parser.add_argument(
        "--bn-stats",
        choices=["data", "init"],
        default="data",
        help="BatchNorm statistics: from the calibration images, as a trained model has (default), or as initialised",
    )
    args = parser.parse_args()
    names = architectures() if args.all else (args.names or SMALL)
    rows: list[dict[str, object]] = []
    if args.resume and args.out and args.out.with_suffix(".json").exists():
        rows = json.loads(args.out.with_suffix(".json").read_text())  # every row stays in the table
        done = {r["model"] for r in rows if r.get("bn_stats", "init") == args.bn_stats}
        names = [n for n in names if n not in done]
    print(f"{len(names)} to run, {args.jobs} at a time; {load_avg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="keras-apps-") as tmp:
        code = snapshot(Path(tmp) / "code")
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for done in as_completed([pool.submit(one, n, Path(tmp), code, args.bn_stats) for n in names]):
                row = done.result()
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.out:
                    write(rows, args.out)
    print(table(rows))


def table(rows: list[dict[str, object]]) -> str:
    cols = [
        "model",
        "input",
        "bn_stats",
        "fp32",
        "fp32_rmse",
        "fp32_max_err",
        "noise_rmse",
        "fp32_path",
        "int8",
        "int8_max_err",
        "minutes",
        "peak_mib",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    rows = sorted(rows, key=lambda r: (PARAMS_M.get(str(r["model"]), 1e9), str(r["model"])))
    cell = {"bn_stats": "init"}  # rows from before --bn-stats had the initial statistics
    lines += ["| " + " | ".join(str(r.get(c, cell.get(c, "-"))).replace("|", "/") for c in cols) + " |" for r in rows]
    passed = sum(1 for r in rows if str(r.get("fp32", "")).startswith("passed"))
    return "\n".join(lines) + f"\n\nfp32 passed: {passed}/{len(rows)}"


def write(rows: list[dict[str, object]], out: Path) -> None:
    """The table under the markdown's hand-written preamble (what the rows mean; kept as it is), and the rows."""
    out.parent.mkdir(parents=True, exist_ok=True)
    md = out.with_suffix(".md")
    preamble = md.read_text().split("| model |")[0] if md.exists() else ""
    md.write_text(preamble + table(rows) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
