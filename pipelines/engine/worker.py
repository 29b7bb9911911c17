"""A persistent worker process that runs stages, so a crash in TensorFlow or LiteRT fails one stage only.

The converter and the interpreter can segfault or hang on bad input. Stages run in a single long-lived child
process (TensorFlow is imported once there, never in the main process); if it dies or exceeds its timeout,
the stage fails with the signal decoded and the next stage gets a fresh worker.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from pipelines.engine.errors import StageCrashed, StageFailed


def _import_target(target: str) -> Any:
    module_name, _, attr = target.rpartition(".")
    return getattr(importlib.import_module(module_name), attr)


def warm() -> None:
    """Import TensorFlow, the seconds every stage's first call would otherwise spend before its work."""
    import tensorflow  # noqa: F401


WARM = "pipelines.engine.worker.warm"  # the pipeline's stages all need TensorFlow


def _serve(conn: Connection, log_path: str | None) -> None:
    """Child main loop: receive (target, kwargs), reply ('ok', result) or ('error', info)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if log_path:  # TensorFlow and LiteRT log straight to fd 1/2; keep the console for progress.
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    from pipelines.engine.keras_extras import skip_keras_extras
    from stages.result import InputError, StageError

    skip_keras_extras()
    while True:
        try:
            target, kwargs = conn.recv()
        except EOFError:  # the engine closed the pipe: every result has been sent
            _exit_now()
        try:
            result = _import_target(target)(**kwargs)
            conn.send(("ok", result))
        except BaseException as err:  # noqa: BLE001 - everything goes back to the engine
            known = isinstance(err, StageError)
            message = str(err) if known else f"{type(err).__name__}: {err}"
            conn.send(("error", (message, traceback.format_exc(), isinstance(err, InputError))))


def _exit_now() -> None:
    """Leave without Python's shutdown: with TensorFlow loaded it takes about a second, which the engine would
    wait for at the end of every run, and there is nothing left to flush but the standard streams."""
    import atexit
    import sys

    atexit._run_exitfuncs()  # the stages' own exit handlers (scratch folders): well under a millisecond
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"crashed ({name})"
    return f"exited unexpectedly (exit code {code})"


_CRASH_HINTS = {
    "convert": "the TensorFlow converter took the process down on this model and variant (the calibration data "
    "was checked before converting: it is not empty, constant or non-finite). Drop this variant or use another "
    "(`dynamic`, `fp16`); int8 of Keras LSTMs is one known case",
    "calibrate": "TensorFlow took the process down while preparing the data",
    "verify": "the LiteRT interpreter took the process down running the .tflite",
    "benchmark": "the LiteRT interpreter took the process down running the .tflite",
    "reference": "TensorFlow took the process down running the original model",
}


def crash_message(code: int | None, what: str) -> str:
    """'the worker process crashed (SIGSEGV) while running convert[int8]: the TensorFlow converter ...'."""
    if code == -signal.SIGKILL:  # the engine's own kills (timeouts) say so elsewhere: this one came from outside
        return f"the worker process {describe_exit(code)} while running {what}: {_killed_hint()}"
    hint = _CRASH_HINTS.get(what.split("[")[0])
    return f"the worker process {describe_exit(code)} while running {what}" + (f": {hint}" if hint else "")


def _killed_hint() -> str:
    """SIGKILL that the engine did not send: nearly always the kernel's out-of-memory killer."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        machine = f"this machine has {total:.0f} GiB"
    except (ValueError, OSError):
        machine = "check the machine's memory"
    return (
        f"something outside the pipeline killed it, usually the kernel's out-of-memory killer ({machine}; "
        "the largest models need several times their weights' size while converting). Close other work, run "
        "fewer variants per command (e.g. `variants=[fp32]`, then the others), or use a machine with more memory"
    )


def resident_mb(pid: int, field: str = "VmRSS") -> float | None:
    """A process's resident memory in MiB (Linux /proc; `VmHWM`: its peak so far); None where unreadable."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


@dataclass
class _Job:
    what: str
    timeout_s: float
    deadline: float
    done: tuple[str, Any] | None = None  # ("reply", (status, payload)) or ("crash", message)


class Worker:
    """Runs `target(**kwargs)` in a child process; restarts the child after a crash or a timeout.

    TensorFlow keeps much of what each conversion allocated (about 1 GB per ResNet50-sized variant), so a
    worker that has grown past `max_rss_mb` is retired after its stage and the next stage starts a fresh one.
    """

    def __init__(self, log_path: str | None = None, max_rss_mb: float | None = None, warm: str | None = WARM) -> None:
        self._log_path = log_path
        self._max_rss_mb = max_rss_mb
        self._warm = warm  # what `warm_up` imports (None: nothing, for stages that need no TensorFlow)
        self._proc: Any = None
        self._conn: Connection | None = None
        self._warming = False
        self._job: _Job | None = None
        self.last_peak_mb: float | None = None  # the child's peak resident memory after its last stage

    def _start(self) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self._log_path), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent

    def warm_up(self) -> None:
        """Start the child and let it import TensorFlow now, without waiting: the engine calls this before it
        waits for something else (the MLflow store), so the two take their seconds side by side."""
        if self._proc is None or not self._proc.is_alive():
            self._start()
            if self._warm is None:
                return
            assert self._conn is not None
            self._conn.send((self._warm, {}))
            self._warming = True

    def call(self, target: str, kwargs: dict[str, Any], timeout_s: float, what: str) -> Any:
        """Run one stage; raise StageFailed (it raised) or StageCrashed (the process died or hung)."""
        self.submit(target, kwargs, timeout_s, what)
        while not self.poll(0.05):
            pass
        return self.collect()

    def submit(self, target: str, kwargs: dict[str, Any], timeout_s: float, what: str) -> None:
        """Send one stage to the child without waiting: `poll` tells when its outcome is known, `collect` takes
        it (the pool keeps several workers busy this way, all from the engine's main thread)."""
        if self._proc is None or not self._proc.is_alive():
            self._start()
        assert self._conn is not None
        self._conn.send((target, kwargs))
        self._job = _Job(what, timeout_s, time.monotonic() + timeout_s)

    @property
    def busy(self) -> bool:
        return self._job is not None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    def waitables(self) -> list[Any]:
        """What `multiprocessing.connection.wait` can block on: the reply pipe and the process's exit."""
        return [] if self._proc is None or self._conn is None else [self._conn, self._proc.sentinel]

    def poll(self, wait_s: float = 0.0) -> bool:
        """Whether the submitted stage's outcome is known: its reply, the process's death or its timeout."""
        job = self._job
        assert job is not None and self._conn is not None
        if job.done is not None:
            return True
        if self._warming:  # the warm-up's reply comes first; its time does not count against the stage
            if self._conn.poll(wait_s):
                self._conn.recv()
                self._warming = False
                job.deadline = time.monotonic() + job.timeout_s
                return False
            if self._proc.is_alive():
                return False
            self._warming = False
        if self._conn.poll(0 if not self._proc.is_alive() else wait_s):
            try:
                job.done = ("reply", self._conn.recv())
            except (EOFError, OSError):
                self._proc.join(timeout=5)  # the pipe closes a moment before the exit status is known
                code = self._proc.exitcode
                self._reset(kill=True)
                job.done = ("crash", crash_message(code, job.what))
        elif not self._proc.is_alive():
            code = self._proc.exitcode
            self._reset()
            job.done = ("crash", crash_message(code, job.what))
        elif time.monotonic() > job.deadline:
            self._reset(kill=True)
            job.done = ("crash", f"{job.what} did not finish within {job.timeout_s:.0f} s and was stopped")
        return job.done is not None

    def collect(self) -> Any:
        """The finished stage's result; raises StageFailed (it raised) or StageCrashed (died or hung)."""
        job, self._job = self._job, None
        assert job is not None and job.done is not None
        kind, payload = job.done
        if kind == "crash":
            raise StageCrashed(payload)
        self.last_peak_mb = resident_mb(self._proc.pid, "VmHWM") if self._proc is not None else None
        self._retire_if_bloated()
        status, value = payload
        if status == "ok":
            return value
        message, details, input_error = value
        raise StageFailed(message, details, input_error)

    def _retire_if_bloated(self) -> None:
        if self._max_rss_mb and self._proc is not None:
            rss = resident_mb(self._proc.pid)
            if rss is not None and rss > self._max_rss_mb:
                self.close()

    def _reset(self, kill: bool = False) -> None:
        if self._proc is not None:
            if kill and self._proc.is_alive():
                self._proc.kill()
            self._proc.join(timeout=5)
        self._proc = None
        self._conn = None
        self._warming = False

    def kill(self) -> None:
        """Stop the child now, whatever it is doing (an interrupted run: its stage's result is not wanted)."""
        self._reset(kill=True)
        self._job = None

    def close(self) -> None:
        if self._warming and self._proc is not None:  # nothing ran yet: no need to wait for TensorFlow's import
            self._proc.kill()
        if self._conn is not None:
            self._conn.close()  # the child sees EOF and exits
        if self._proc is not None:
            self._proc.join(timeout=10)
            if self._proc.is_alive():
                self._proc.kill()
        self._proc = None
        self._conn = None
        self._warming = False

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
