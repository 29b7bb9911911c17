"""Latency summaries from raw samples (milliseconds)."""

from __future__ import annotations

import numpy as np


def summarize(samples_ms: list[float]) -> dict[str, float]:
    values = np.asarray(samples_ms, dtype=np.float64)
    return {
        "mean": round(float(values.mean()), 4),
        "p50": round(float(np.percentile(values, 50)), 4),
        "p90": round(float(np.percentile(values, 90)), 4),
        "p99": round(float(np.percentile(values, 99)), 4),
        "stdev": round(float(values.std()), 4),
        "count": int(values.size),
    }
