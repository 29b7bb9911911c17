"""A real `mlflow server` on 127.0.0.1 (free port, sqlite store, proxied artifacts) for the HTTP tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def mlflow_server(root: Path, timeout_s: float = 120) -> Iterator[str]:
    """Start the server, wait until /health answers, yield its URL, stop it (only this process)."""
    with mlflow_server_process(root, timeout_s) as (url, _proc):
        yield url


@contextmanager
def mlflow_server_process(
    root: Path, timeout_s: float = 120, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`mlflow_server`, also yielding the process (in a session of its own: `os.killpg(proc.pid, ...)` stops
    the server with its workers); `port` restarts a server on a port a killed one used."""
    port = port or free_port()
    root.mkdir(parents=True, exist_ok=True)
    log = open(root / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--serve-artifacts",
        ],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        # No job runner: the tests use none, and its consumer processes would import MLflow beside the tests.
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n{(root / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not answer within {timeout_s}s")
            time.sleep(0.5)
        yield url, proc
    finally:
        _signal_group(proc.pid, signal.SIGTERM)  # a test may have killed it already
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
        log.close()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
