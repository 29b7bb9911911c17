"""The trade-off plot drawn beside MLflow's logging of the variants, not before it.

Drawing it takes about 1 s of the CLI's CPU (matplotlib's import and the figure), logging the variants about as
long in the tracking process, and the CLI's main thread only waits on that process meanwhile. So a tracked run
draws the plot in a thread of the CLI while the variants are logged, and the parent run, which carries the
plot, is logged once it is drawn. The local report is still written before anything is sent to MLflow; it
names the plot from its next write on (the one with the MLflow run ids).
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

from pipelines.output.report import write_tradeoff_plot


class PlotBeside:
    """`write_tradeoff_plot` in a thread; `wait` joins it and raises what it raised (a full disk, say)."""

    def __init__(self, report: dict[str, Any], run_dir: Path, cache_root: Path | None) -> None:
        self._report = report
        self.as_written = copy.deepcopy(report)  # the local report before tracking (which adds the run ids)
        self._error: BaseException | None = None
        self.waited = False  # whether `wait` returned: the report holds the plot's name
        self._thread = threading.Thread(target=self._draw, args=(run_dir, cache_root), daemon=True)
        self._thread.start()

    def _draw(self, run_dir: Path, cache_root: Path | None) -> None:
        try:
            write_tradeoff_plot(self.as_written, run_dir, cache_root)  # names the plot in that copy
        except BaseException as err:  # noqa: BLE001 - raised again in the main thread by `wait`
            self._error = err

    def join(self) -> None:
        """Wait for the thread without raising (the caller is already failing)."""
        self._thread.join()

    def wait(self) -> None:
        """Block until the plot is written, then name it in the report (the caller rewrites the report)."""
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if "plot" in self.as_written:
            self._report["plot"] = self.as_written["plot"]
        self.waited = True
