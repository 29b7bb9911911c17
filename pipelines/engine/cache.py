"""Content-addressed stage cache: a result is reused only when nothing it depends on changed.

The key hashes the stage's resolved config, the source of its code (its module and the project modules
it imports), its upstream keys and the content of any input file its config names. Entries are written to a
temp folder and renamed into place, so a killed run never leaves a half-written entry; every file's checksum
is recorded and checked on reuse. A file lock per key lets parallel sweep jobs wait for and reuse each
other's work.

With `runtime.cache_dir` an fsspec URL (`s3://bucket/prefix`), this local cache is the node's working copy and
pipelines/engine/shared_cache.py the tier every node shares: a local miss looks there before computing, a
commit is uploaded, and the key's lock becomes a lease on the shared storage. The cache counts its local hits,
shared hits and computed entries (`stats`), which the report records.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from pipelines.engine.code_deps import code_files
from pipelines.engine.dag import Node
from stages.result import StageResult

if TYPE_CHECKING:
    from pipelines.engine.shared_cache import SharedTier

log = logging.getLogger(__name__)

_CODE_KEYS = ("_target_", "build")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint_path(path: Path) -> str:
    """Content hash of a file, or of every file (with its relative name) under a directory."""
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(child.relative_to(path)).encode())
        digest.update(sha256_file(child).encode())
    return digest.hexdigest()


def _walk_strings(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk_strings(v, str(k))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk_strings(item, key)
    elif isinstance(value, str):
        yield key, value


def _code_digests(dotted: str) -> dict[str, str]:
    """The content hash of each source file `dotted` depends on, by its name below its package's folder."""
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in code_files(dotted).items()}


def node_key(node: Node, upstream_keys: dict[str, str]) -> str:
    """Content hash of everything a node's result depends on."""
    code = _code_digests(node.target)
    inputs: dict[str, str] = {}
    for key, value in _walk_strings(node.config):
        if key in _CODE_KEYS:
            code.update(_code_digests(value))
        elif (key in ("path", "recipe") or key.endswith("_path")) and os.path.exists(value):
            inputs[value] = fingerprint_path(Path(value))
    payload = {
        "stage": node.stage,
        "target": node.target,
        "config": node.config,
        "code": code,
        "upstream": upstream_keys,
        "inputs": inputs,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


class StageCache:
    """Directory of finished stage results, one folder per (stage, key)."""

    def __init__(self, root: Path, enabled: bool = True, shared: SharedTier | None = None) -> None:
        self.root = root
        self.enabled = enabled
        self.shared = shared if enabled else None
        self.stats = {"local_hits": 0, "remote_hits": 0, "computed": 0}

    def report(self) -> dict[str, Any]:
        """What this run took from the cache and what it computed (report.json's `cache`)."""
        return {**self.stats, "shared_url": self.shared.url if self.shared else None}

    def entry_dir(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def has(self, stage: str, key: str) -> bool:
        """Cheap test (no checksums) whether an entry exists: for deciding, not for trusting."""
        if not self.enabled:
            return False
        local = (self.entry_dir(stage, key) / "result.json").is_file()
        return local or (self.shared is not None and self.shared.exists(stage, key))

    def lookup(self, stage: str, key: str) -> StageResult | None:
        """The stored result (local, else fetched from the shared tier into the local cache), or None when
        absent, disabled, or its files no longer match their checksums."""
        found = self._lookup_local(stage, key)
        if found is not None:
            self.stats["local_hits"] += 1
            return found
        if self.shared is None:
            return None
        fetched = self.shared.fetch(stage, key, self.root / stage)
        if fetched is None:
            return None
        final = self.entry_dir(stage, key)
        try:
            os.rename(fetched, final)
        except OSError:  # a job beside us fetched or computed it first: theirs is the same content
            shutil.rmtree(fetched, ignore_errors=True)
        found = self._lookup_local(stage, key)
        if found is not None:
            self.stats["remote_hits"] += 1
        return found

    def _lookup_local(self, stage: str, key: str) -> StageResult | None:
        entry = self.entry_dir(stage, key)
        manifest = entry / "result.json"
        if not self.enabled or not manifest.is_file():
            return None
        try:
            data = json.loads(manifest.read_text())
            for rel, expected in data["checksums"].items():
                path = entry / rel
                if (
                    not path.is_file()
                    or path.stat().st_size != expected["size"]
                    or sha256_file(path) != expected["sha256"]
                ):
                    raise ValueError(f"{rel} changed on disk")
        except (ValueError, KeyError, OSError) as err:
            log.warning("Cache entry %s/%s is damaged (%s); recomputing it.", stage, key, err)
            shutil.rmtree(entry, ignore_errors=True)
            return None
        return StageResult.from_json(data["result"], entry)

    @contextmanager
    def locked(self, stage: str, key: str) -> Iterator[None]:
        """Hold the key's lock so a parallel job computing the same entry is waited for, not duplicated."""
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock_dir / f"{stage}-{key}.lock")):
            if self.shared is None:
                yield
            else:
                with self.shared.leased(stage, key):
                    yield

    def new_workdir(self, stage: str, key: str) -> Path:
        """A fresh temp folder for a stage to write into; `commit` renames it into place."""
        work = self.root / stage / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        work.mkdir(parents=True)
        return work

    def commit(self, stage: str, key: str, work: Path, result: StageResult) -> StageResult:
        """Record checksums, then atomically move the temp folder to its final place."""
        checksums = {}
        for rel in result.files.values():
            path = work / rel
            checksums[rel] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
        manifest: dict[str, Any] = {
            "stage": stage,
            "key": key,
            "result": result.to_json(),
            "checksums": checksums,
        }
        tmp_manifest = work / "result.json.tmp"
        tmp_manifest.write_text(json.dumps(manifest, indent=1, default=str))
        os.replace(tmp_manifest, work / "result.json")
        final = self.entry_dir(stage, key)
        if final.exists():
            shutil.rmtree(final)
        os.rename(work, final)
        self.stats["computed"] += 1
        if self.shared is not None:
            try:
                self.shared.publish(stage, key, final)
            except Exception as err:  # noqa: BLE001 - the local entry stands; the other nodes compute it themselves
                log.warning("Could not upload cache entry %s/%s to %s: %s", stage, key, self.shared.url, err)
        return StageResult.from_json(manifest["result"], final)

    def remove_stale_workdirs(self, max_age_s: float = 3600.0) -> int:
        """Delete temp folders left by killed runs (never trusted, only taking space); returns how many.

        A folder younger than `max_age_s` may belong to a run still going on beside this one: left alone.
        """
        import time

        removed = 0
        for work in self.root.glob("*/.tmp-*"):
            try:
                if time.time() - work.stat().st_mtime > max_age_s:
                    shutil.rmtree(work, ignore_errors=True)
                    removed += 1
            except OSError:
                continue
        return removed

    def discard(self, work: Path) -> None:
        shutil.rmtree(work, ignore_errors=True)


def open_cache(runtime: dict[str, Any]) -> StageCache:
    """The run's cache from `runtime`: a local directory, or a local working copy (`runtime.local_cache_dir`)
    of a shared URL. An unusable URL is a ConfigError before any work."""
    location = str(runtime["cache_dir"])
    enabled = bool(runtime["use_cache"])
    from pipelines.engine.remote import is_url

    if not is_url(location):
        return StageCache(Path(location).expanduser().resolve(), enabled=enabled)
    local = Path(str(runtime.get("local_cache_dir") or "outputs/cache")).expanduser().resolve()
    if not enabled:
        return StageCache(local, enabled=False)
    from pipelines.engine.remote import check_reachable
    from pipelines.engine.shared_cache import SharedTier

    shared = SharedTier(location, lease_s=float(runtime.get("lease_s") or 300.0))
    check_reachable(shared.fs, shared.base, "runtime.cache_dir", location)
    return StageCache(local, enabled=True, shared=shared)
