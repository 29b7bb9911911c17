"""`tflite-pipeline-cache check [CACHE]`: read every entry of a stage cache and verify it against its manifest.

CACHE is `runtime.cache_dir` (a local path or an fsspec URL such as `s3://bucket/prefix`; default
`outputs/cache`). Each `<stage>/<key>` is one of: ok (a manifest whose every file matches its size and sha256),
damaged (a manifest whose files do not match: the engine refuses it and recomputes), or half-written (files
without a manifest: a writer killed mid-upload, or one still uploading; never trusted, only taking space).
Exit code 0 when no entry is damaged, 1 otherwise, 2 for a cache that cannot be opened.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Any

from pipelines.engine.errors import ConfigError
from pipelines.engine.remote import filesystem, is_url

_SKIP = {".leases", ".locks", "figures", "failures"}


def check(location: str) -> dict[str, list[str]]:
    """{'ok': [...], 'damaged': [...], 'half_written': [...]} of `<stage>/<key>` names (damaged: with why)."""
    from pathlib import Path

    url = location if is_url(location) else str(Path(location).expanduser().resolve())
    fs, base = filesystem(url, "cache")
    if not fs.isdir(base):
        raise ConfigError(f"No stage cache at {location}: the directory or prefix does not exist.")
    found: dict[str, list[str]] = {"ok": [], "damaged": [], "half_written": []}
    for stage_dir in sorted(fs.ls(base, detail=False)):
        stage = stage_dir.rstrip("/").rsplit("/", 1)[-1]
        if stage in _SKIP or stage.startswith(".") or not fs.isdir(stage_dir):
            continue
        for entry in sorted(fs.ls(stage_dir, detail=False)):
            name = f"{stage}/{entry.rstrip('/').rsplit('/', 1)[-1]}"
            if not fs.isdir(entry):
                continue
            problem = _verify(fs, entry.rstrip("/"))
            if problem == "":
                found["ok"].append(name)
            elif problem is None:
                found["half_written"].append(name)
            else:
                found["damaged"].append(f"{name}: {problem}")
    return found


def _verify(fs: Any, entry: str) -> str | None:
    """'' when the entry verifies, None without a manifest, else what does not match."""
    try:
        manifest = json.loads(fs.cat_file(f"{entry}/result.json"))
    except FileNotFoundError:
        return None
    except ValueError as err:
        return f"unreadable manifest ({err})"
    files = manifest.get("files") or manifest.get("checksums") or {}  # shared tier / local cache manifests
    for rel, expected in files.items():
        digest, size = hashlib.sha256(), 0
        try:
            with fs.open(f"{entry}/{rel}", "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
                    size += len(chunk)
        except FileNotFoundError:
            return f"{rel} is missing"
        if size != expected["size"] or digest.hexdigest() != expected["sha256"]:
            return f"{rel} does not match its checksum"
    return ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tflite-pipeline-cache", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("check", help="verify every entry against its manifest")
    cmd.add_argument("cache", nargs="?", default="outputs/cache", help="runtime.cache_dir: a path or fsspec URL")
    cmd.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        found = check(args.cache)
    except ConfigError as err:
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(2)
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        print(
            f"{args.cache}: {len(found['ok'])} entries ok, {len(found['damaged'])} damaged, "
            f"{len(found['half_written'])} half-written (no manifest: never trusted, safe to delete)"
        )
        for line in found["damaged"]:
            print(f"  damaged: {line}")
        for name in found["half_written"]:
            print(f"  half-written: {name}")
    sys.exit(1 if found["damaged"] else 0)


if __name__ == "__main__":
    main()
