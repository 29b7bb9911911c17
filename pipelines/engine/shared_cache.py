"""The stage cache's shared tier: entries on an fsspec URL that every node of a cluster reads and writes.

Layout under the URL: `<stage>/<key>/<files...>` and `<stage>/<key>/result.json`, the manifest. An object store
has no rename, so a commit uploads the entry's files under their final names first and the manifest LAST: the
manifest is the commit. A reader trusts only a manifest, downloads into a local temp folder, verifies every
file's size and sha256 against it, and only then renames the folder into the local cache. Entries are
content-addressed and immutable, so two nodes committing the same key upload identical bytes (wasted work,
never a corrupt entry); files without a manifest (a writer killed mid-upload) are never read.

The lock becomes a lease: `.leases/<stage>-<key>.json` holds {owner, expires_at}, renewed while the stage runs.
A node that finds a live lease of another owner polls for the manifest until the lease expires, then takes it
over: a dead node delays the others by at most `lease_s`. Leases are best-effort (no conditional create on
every store): two nodes may both compute an entry, which is waste, not corruption.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipelines.engine.remote import filesystem, upload_tree

log = logging.getLogger(__name__)

MANIFEST = "result.json"
LEASES = ".leases"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_checksums(entry: Path) -> dict[str, dict[str, Any]]:
    """Size and sha256 of every file of a local entry but its manifest, by relative POSIX path."""
    return {
        p.relative_to(entry).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(entry.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


class SharedTier:
    """Entries on shared storage; the local StageCache keeps the working copy that stages read."""

    def __init__(self, url: str, lease_s: float = 300.0, poll_s: float = 1.0) -> None:
        self.url = url.rstrip("/")
        self.fs, self.base = filesystem(url, "runtime.cache_dir")
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def _entry(self, stage: str, key: str) -> str:
        return f"{self.base}/{stage}/{key}"

    def _read_manifest(self, stage: str, key: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.fs.cat_file(f"{self._entry(stage, key)}/{MANIFEST}"))
        except FileNotFoundError:
            return None
        return data

    def exists(self, stage: str, key: str) -> bool:
        try:
            return self._read_manifest(stage, key) is not None
        except (OSError, ValueError):
            return False

    def fetch(self, stage: str, key: str, into: Path) -> Path | None:
        """Download a committed entry into a new temp folder under `into`, verified against its manifest;
        None when there is no manifest or a file does not match (the entry is then recomputed and re-uploaded)."""
        manifest = self._read_manifest(stage, key)
        if manifest is None:
            return None
        work = into / f".tmp-{key}-fetch-{uuid.uuid4().hex[:8]}"
        work.mkdir(parents=True)
        try:
            for rel, expected in manifest["files"].items():
                target = work / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(f"{self._entry(stage, key)}/{rel}", str(target))
                if target.stat().st_size != expected["size"] or _sha256(target) != expected["sha256"]:
                    raise ValueError(f"{rel} does not match its checksum")
            (work / MANIFEST).write_text(json.dumps(manifest["local"], indent=1))
        except (OSError, ValueError, KeyError) as err:
            log.warning("Shared cache entry %s/%s/%s is unusable (%s); recomputing it.", self.url, stage, key, err)
            shutil.rmtree(work, ignore_errors=True)
            return None
        return work

    def publish(self, stage: str, key: str, entry: Path) -> None:
        """Upload a committed local entry: its files under their final names, then the manifest (the commit)."""
        local = json.loads((entry / MANIFEST).read_text())
        files = file_checksums(entry)
        remote = self._entry(stage, key)
        upload_tree(self.fs, entry, remote, list(files))
        manifest = {"stage": stage, "key": key, "files": files, "local": local, "writer": self.owner}
        self.fs.pipe_file(f"{remote}/{MANIFEST}", json.dumps(manifest, indent=1).encode())

    # -- leases -------------------------------------------------------------------------------------------
    def _lease_path(self, stage: str, key: str) -> str:
        return f"{self.base}/{LEASES}/{stage}-{key}.json"

    def _read_lease(self, path: str) -> dict[str, Any] | None:
        try:
            lease: dict[str, Any] = json.loads(self.fs.cat_file(path))
        except (FileNotFoundError, ValueError):
            return None
        return lease

    def _write_lease(self, path: str) -> None:
        body = {"owner": self.owner, "expires_at": time.time() + self.lease_s}
        self.fs.pipe_file(path, json.dumps(body).encode())

    @contextmanager
    def leased(self, stage: str, key: str) -> Iterator[None]:
        """Hold the key's lease while computing it; wait for a live lease of another node to end first.

        Returns early (without a lease) as soon as the entry's manifest appears: the caller looks it up again."""
        path = self._lease_path(stage, key)
        while True:
            lease = self._read_lease(path)
            if lease is None or lease.get("owner") == self.owner or float(lease.get("expires_at", 0)) < time.time():
                self._write_lease(path)
                time.sleep(min(0.2, self.poll_s))  # best effort: a node that wrote after us wins, we wait for it
                lease = self._read_lease(path)
                if lease is not None and lease.get("owner") == self.owner:
                    break
            elif self.exists(stage, key):
                yield
                return
            else:
                time.sleep(self.poll_s)
        stop = threading.Event()
        renew = threading.Thread(target=self._renew, args=(path, stop), daemon=True)
        renew.start()
        try:
            yield
        finally:
            stop.set()
            renew.join()
            try:
                self.fs.rm_file(path)
            except OSError:  # expired and taken over, or the store is gone: it expires by itself
                pass

    def _renew(self, path: str, stop: threading.Event) -> None:
        while not stop.wait(self.lease_s / 3):
            try:
                self._write_lease(path)
            except Exception as err:  # noqa: BLE001 - a lost renewal only lets another node duplicate work
                log.warning("Could not renew the shared cache lease %s: %s", path, err)
