"""The paired percentile bootstrap the reports use today (item indices resampled), and the gap between two."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Bootstrap resamples drawn per chunk, so a large item count never builds one huge index matrix.
_CHUNK_CELLS = 1_000_000


def _resampled_means(values: np.ndarray, rng: np.random.Generator, n_resamples: int) -> np.ndarray:
    n = len(values)
    per_chunk = max(1, _CHUNK_CELLS // n)
    chunks = []
    for start in range(0, n_resamples, per_chunk):
        idx = rng.integers(0, n, size=(min(per_chunk, n_resamples - start), n))
        chunks.append(values[idx].mean(axis=1))
    return np.concatenate(chunks)


def _check_bootstrap_args(n_resamples: int, level: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")


def _interval(means: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """mean(b) - mean(a) over paired items, with its percentile bootstrap interval (item indices resampled)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    if not a:
        raise ValueError("no paired items")
    _check_bootstrap_args(n_resamples, level)
    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    means = _resampled_means(diffs, np.random.default_rng(seed), n_resamples)
    return (float(diffs.mean()), *_interval(means, level))


def gap_bootstrap(
    longer: Sequence[float], shorter: Sequence[float], n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """mean(longer) - mean(shorter) for two independent samples, each resampled on its own, with its interval."""
    if not longer or not shorter:
        raise ValueError("both samples need at least one value")
    _check_bootstrap_args(n_resamples, level)
    x, y = np.asarray(longer, dtype=float), np.asarray(shorter, dtype=float)
    rng = np.random.default_rng(seed)
    means = _resampled_means(x, rng, n_resamples) - _resampled_means(y, rng, n_resamples)
    return (float(x.mean() - y.mean()), *_interval(means, level))


def is_noise(low: float, high: float) -> bool:
    """True when the interval [low, high] contains 0."""
    return low <= 0 <= high


