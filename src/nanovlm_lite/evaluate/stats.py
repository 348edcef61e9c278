"""How sure an accuracy is: 95% intervals, and paired tests between two points.

Multiple-choice accuracy is a proportion, so it gets the Wilson score interval (right
near 0 and 1, where the normal approximation is not). Direct-answer accuracy is a mean
of min(1, matches/3) scores, not a proportion, so it gets a percentile bootstrap over
questions. Two points that answered the same questions are compared question by question:
the exact McNemar test (a two-sided binomial test on the questions where exactly one of
them is right) and a paired bootstrap interval of the accuracy difference. Bootstraps
use a fixed seed, so a rerun gives the same interval.
"""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

LEVEL = 0.95
N_BOOTSTRAP = 10_000
SEED = 0


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)  # 1.959964 for 95%


def wilson_interval(k: int, n: int, level: float = LEVEL) -> tuple[float, float] | tuple[None, None]:
    """The Wilson score interval of k successes in n trials; (None, None) when n is 0."""
    if n == 0:
        return None, None
    if not 0 <= k <= n:
        raise ValueError(f"wilson_interval: {k} successes out of {n} trials")
    z = _z(level)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at k = 0 or k = n the bound is exactly 0 or 1; round-off must not move it past p
    return (0.0 if k == 0 else max(0.0, centre - half),
            1.0 if k == n else min(1.0, centre + half))


def _resample_means(values: np.ndarray, n_boot: int, seed: int, chunk: int = 1000) -> np.ndarray:
    """Means of n_boot resamples (with replacement) of the rows of `values`, in chunks so
    memory stays at chunk x len(values)."""
    rng = np.random.default_rng(seed)
    n = len(values)
    means = []
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
        means.append(values[idx].mean(axis=1))
    return np.concatenate(means)


def bootstrap_interval(scores, level: float = LEVEL, n_boot: int = N_BOOTSTRAP,
                       seed: int = SEED) -> tuple[float, float] | tuple[None, None]:
    """Percentile bootstrap interval of the mean of per-question scores (questions
    resampled with replacement); (None, None) for no scores."""
    scores = np.asarray(list(scores), dtype=np.float64)
    if scores.size == 0:
        return None, None
    means = _resample_means(scores, n_boot, seed)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: the questions one point gets right and the other
    wrong (`only_a`, `only_b`) are, if the two are equally accurate, Binomial(n, 1/2);
    p = P(a split at least as uneven), = 2 x the smaller tail, at most 1."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_difference(correct_a, correct_b, level: float = LEVEL, n_boot: int = N_BOOTSTRAP,
                      seed: int = SEED) -> dict:
    """Point a against point b on the same questions (two equal-length 0/1 sequences in
    the same question order): the accuracy difference a - b, its paired bootstrap interval
    (questions resampled together), the discordant counts and the exact McNemar p-value."""
    a = np.asarray(list(correct_a), dtype=np.float64)
    b = np.asarray(list(correct_b), dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: {a.size} answers against {b.size}")
    if a.size == 0:
        return {"difference": None, "low": None, "high": None, "only_a": 0, "only_b": 0,
                "p_value": None, "n": 0}
    diff = a - b
    only_a, only_b = int((diff > 0).sum()), int((diff < 0).sum())
    if only_a == only_b == 0:  # identical answers: every resample differs by exactly 0
        low = high = 0.0
    else:
        means = _resample_means(diff, n_boot, seed)
        alpha = (1 - level) / 2
        low, high = (float(v) for v in np.quantile(means, [alpha, 1 - alpha]))
    return {"difference": float(diff.mean()), "low": low, "high": high, "only_a": only_a,
            "only_b": only_b, "p_value": mcnemar_exact(only_a, only_b), "n": int(a.size)}
