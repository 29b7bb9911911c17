"""The run's figures drawn beside MLflow's logging of the variants, not before it.

Drawing them takes 1-3 s of the CLI's CPU (matplotlib's import, each quantized variant's worst layers, the
trade-off plot), logging the variants about 1 s in the tracking process, and the CLI's main thread only waits on
that process meanwhile. So a tracked run draws the figures in a thread of the CLI while the variants are logged;
the parent run, logged once they are drawn, carries the trade-off plot and puts each variant's worst-layers
figure into its child run. The local report is still written before anything is sent to MLflow; it names the
figures from its next write on (the one with the MLflow run ids).
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

from pipelines.output.report import write_plots


class PlotBeside:
    """`write_plots` in a thread; `wait` joins it and raises what it raised (a full disk, say)."""

    def __init__(self, report: dict[str, Any], run_dir: Path, cache_root: Path | None) -> None:
        self._report = report
        self.as_written = copy.deepcopy(report)  # the local report before tracking (which adds the run ids)
        self._error: BaseException | None = None
        self.waited = False  # whether `wait` returned: the report names the figures
        self._thread = threading.Thread(target=self._draw, args=(run_dir, cache_root), daemon=True)
        self._thread.start()

    def _draw(self, run_dir: Path, cache_root: Path | None) -> None:
        try:
            write_plots(self.as_written, run_dir, cache_root)  # names the figures in that copy
        except BaseException as err:  # noqa: BLE001 - raised again in the main thread by `wait`
            self._error = err

    def join(self) -> None:
        """Wait for the thread without raising (the caller is already failing)."""
        self._thread.join()

    def wait(self) -> None:
        """Block until the figures are written, then name them in the report (the caller rewrites it)."""
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if "plot" in self.as_written:
            self._report["plot"] = self.as_written["plot"]
        for name, drawn in self.as_written["variants"].items():
            figure = (drawn.get("quantization") or {}).get("layers_plot")
            if figure is not None:
                self._report["variants"][name]["quantization"]["layers_plot"] = figure
        self.waited = True
