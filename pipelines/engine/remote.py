"""Shared storage named by an fsspec URL (`s3://bucket/prefix`, `gs://...`, `file:///mnt/shared/...`).

The cloud libraries take their credentials and endpoint the way they always do (for S3: `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL` for an S3-compatible server, or a profile); nothing here reads
them. A missing protocol library or an unreachable store is a ConfigError (exit 2) found before any work.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from pipelines.engine.errors import ConfigError

log = logging.getLogger("tflite_pipeline")

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]+://")


def is_url(location: str) -> bool:
    """Whether a setting names shared storage (`proto://...`) rather than a local path."""
    return bool(_URL.match(location))


def filesystem(url: str, key: str) -> tuple[Any, str]:
    """(fsspec filesystem, path without protocol) for `url`; `key` names the setting in error messages."""
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise ConfigError(
            f"`{key}={url}` needs fsspec and the library of its protocol: pip install -e '.[cluster]'."
        ) from None
    try:
        fs, path = url_to_fs(url)
    except (ImportError, ValueError) as err:
        raise ConfigError(
            f"`{key}={url}` cannot be opened: {err}. Install the storage's library (pip install -e "
            "'.[cluster]' for s3://) or use a local path."
        ) from None
    return fs, str(path).rstrip("/")


def check_reachable(fs: Any, path: str, key: str, url: str) -> None:
    """Fail before any work when the store refuses us (bad credentials, no bucket, no endpoint)."""
    probe = f"{path}/.probe-{os.getpid()}"
    try:
        fs.pipe_file(probe, b"ok")
        fs.rm_file(probe)
    except Exception as err:  # noqa: BLE001 - every backend raises its own errors (botocore, aiohttp, OSError)
        raise ConfigError(
            f"`{key}={url}` cannot be written: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}. "
            "Check the bucket exists and the credentials (for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
            "AWS_ENDPOINT_URL for an S3-compatible server), or use a local path."
        ) from None


def upload_tree(fs: Any, local: Path, remote: str, names: list[str] | None = None) -> int:
    """Copy files under `local` (all, or the relative `names`) to `remote`; returns how many."""
    files = [local / n for n in names] if names is not None else sorted(p for p in local.rglob("*") if p.is_file())
    count = 0
    for path in files:
        if path.is_file():
            fs.put_file(str(path), f"{remote}/{path.relative_to(local).as_posix()}")
            count += 1
    return count


def publish_outputs(run_dir: Path, url: str, only: list[str] | None = None) -> str | None:
    """Copy a run's report files and variant models (or the files named in `only`) to `<url>/<run name>/`;
    returns where, or None on failure (logged: the local run directory is complete, the copy is a convenience
    for runs on other nodes)."""
    fs, base = filesystem(url, "runtime.outputs_url")
    name = run_name(run_dir)
    names = [n for n in only or ("report.json", "report.md", "tradeoffs.png") if (run_dir / n).is_file()]
    if only is None:
        names += [p.relative_to(run_dir).as_posix() for p in sorted(run_dir.glob("variants/*/*.tflite"))]
    try:
        upload_tree(fs, run_dir, f"{base}/{name}", names)
    except Exception as err:  # noqa: BLE001 - a store error must not turn a finished run into a crash
        log.error("Could not copy the run's outputs to %s/%s: %s", url, name, err)
        return None
    return f"{url.rstrip('/')}/{name}"


def run_name(run_dir: Path) -> str:
    """The run directory relative to the working directory when inside it (`outputs/runs/<date>/<time>`,
    `outputs/multirun/<date>/<time>/<job>`), else its last three parts: unique per run, the same on every node."""
    resolved = run_dir.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return "/".join(resolved.parts[-3:])
