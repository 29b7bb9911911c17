"""Cold vs cached re-run of the default example (issue 2's target: the warm run takes <= 15% of the cold one).

Usage: python benchmarks/cache_rerun.py [--rounds N]
Each round uses a fresh scratch directory (empty cache, new mlflow.db): one cold run, then one re-run with
nothing changed. Both are whole `python -m pipelines` processes, start-up included, as a user sees them.
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
    cold, warm = [], []
    with tempfile.TemporaryDirectory(prefix="cache-rerun-code-") as code_dir:
        code = snapshot(Path(code_dir))
        for round_ in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="cache-rerun-") as scratch:
                for label, store in (("cold", cold), ("warm", warm)):
                    wall, _, done = run_measured(pipeline_cmd(), Path(scratch), code=code)
                    if done.returncode != 0:
                        print(done.stdout[-3000:])
                        raise SystemExit(f"{label} run failed with exit code {done.returncode}")
                    store.append(wall)
                    hits, total = cached_count(done.stdout)
                    print(f"round {round_ + 1}: {label:<4} {wall:6.1f} s  ({hits}/{total} stages from the cache)")
    ratio = median(warm) / median(cold)
    print(f"\ncache re-run, default example, median of {args.rounds} rounds ({load_avg()})")
    print(f"{'cold':<8}{'warm':<8}{'warm/cold':<10}target")
    print(f"{median(cold):<8.1f}{median(warm):<8.1f}{ratio:<10.3f}<= 0.15 ({'met' if ratio <= 0.15 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
