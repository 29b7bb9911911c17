"""Cold vs cached re-run of the default example (issue 2's target: the warm run takes <= 15% of the cold one).

Usage: python benchmarks/cache_rerun.py [--rounds N]
Each round uses a fresh scratch directory (empty cache, new mlflow.db): one cold run, then one re-run with
nothing changed. Both are whole `python -m pipelines` processes, start-up included, as a user sees them; once
with MLflow tracking (the default) and once without, since importing MLflow and opening its sqlite store is a
fixed cost of several seconds that no cache can remove.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cached_count, load_avg, median, pipeline_cmd, run_measured, snapshot  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    modes = {"MLflow on (default)": [], "tracking.enabled=false": ["tracking.enabled=false"]}
    results: dict[str, tuple[list[float], list[float]]] = {mode: ([], []) for mode in modes}
    with tempfile.TemporaryDirectory(prefix="cache-rerun-code-") as code_dir:
        code = snapshot(Path(code_dir))
        for round_ in range(args.rounds):
            for mode, overrides in modes.items():
                with tempfile.TemporaryDirectory(prefix="cache-rerun-") as scratch:
                    for label, store in zip(("cold", "warm"), results[mode], strict=True):
                        wall, _, done = run_measured(pipeline_cmd(*overrides), Path(scratch), code=code)
                        if done.returncode != 0:
                            print(done.stdout[-3000:])
                            raise SystemExit(f"{label} run failed with exit code {done.returncode}")
                        store.append(wall)
                        hits, total = cached_count(done.stdout)
                        print(
                            f"round {round_ + 1}, {mode}: {label:<4} {wall:6.1f} s "
                            f"({hits}/{total} stages from the cache)"
                        )
    print(f"\ncache re-run, default example, whole processes, median of {args.rounds} rounds ({load_avg()})")
    print(f"{'mode':<26}{'cold s':>8}{'warm s':>8}{'warm/cold':>11}  target <= 0.15")
    for mode, (cold, warm) in results.items():
        ratio = median(warm) / median(cold)
        verdict = "met" if ratio <= 0.15 else "NOT met"
        print(f"{mode:<26}{median(cold):>8.1f}{median(warm):>8.1f}{ratio:>11.3f}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
