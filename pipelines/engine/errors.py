"""Errors the engine turns into exit codes and one-paragraph messages."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # a variant failed a gate or errored; the others still ran
EXIT_BAD_INPUT = 2  # bad input or configuration found before any conversion work
EXIT_ENVIRONMENT = 3  # the environment failed (tracking store, full disk, permissions); what was done is kept


class ConfigError(Exception):
    """Bad configuration or input detected before any work: exit code 2, message only."""


class EnvironmentFailure(Exception):
    """The tracking store or the file system failed: exit code 3, message only (what was kept, how to resume)."""


class StageFailed(Exception):
    """A stage raised inside the worker; `message` is for the user, `details` (traceback) for debugging."""

    def __init__(self, message: str, details: str = "", input_error: bool = False) -> None:
        super().__init__(message)
        self.details = details
        self.input_error = input_error


class StageCrashed(StageFailed):
    """The worker process died (segfault, abort, out of memory) or hung while running a stage."""
