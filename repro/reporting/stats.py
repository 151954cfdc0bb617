"""Statistics the reproduction reports share: paired bootstrap over items (BCa), Holm, TOST, power, timing fits."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

NORMAL = NormalDist()
BCA_BELOW = 50  # items: below this the intervals are BCa (percentile intervals under-cover at 12-24 items)
N_RESAMPLES = 4000
# Bootstrap resamples drawn per chunk, so a large item count never builds one huge index matrix.
_CHUNK_CELLS = 1_000_000


@dataclass(frozen=True)
class Estimate:
    """A paired difference: its mean, interval, one-sided p-values and how it was computed.

    `p_greater` tests H0: difference <= 0 against > 0; `p_less` H0: difference >= 0 against < 0. `sd` is the
    spread of the per-item differences (averaged over seeds first), the basis of the power figures.
    """

    mean: float
    low: float
    high: float
    n: int
    seeds: int
    sd: float
    p_greater: float
    p_less: float
    method: str  # "BCa" or "percentile"
    level: float
    n_resamples: int
    per_seed: tuple[float, ...] = ()
    se: float = 0.0  # standard error of the mean difference (the power figures' basis)
    df: int = 0  # its degrees of freedom


def item_differences(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> np.ndarray:
    """b - a per item, averaged over seeds: a and b are [seeds][items] of the same items in the same order."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"paired scores need the same [seeds, items] shape, got {x.shape} and {y.shape}")
    if x.shape[1] == 0:
        raise ValueError("no paired items")
    return (y - x).mean(axis=0)


def resampled_means(values: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of `n_resamples` resamples of `values` (with replacement, the same size), in chunks."""
    rng = np.random.default_rng(seed)
    n = len(values)
    per_chunk = max(1, _CHUNK_CELLS // n)
    chunks = []
    for start in range(0, n_resamples, per_chunk):
        idx = rng.integers(0, n, size=(min(per_chunk, n_resamples - start), n))
        chunks.append(values[idx].mean(axis=1))
    return np.concatenate(chunks)


def acceleration(values: np.ndarray) -> float:
    """BCa's acceleration for the mean, from the jackknife: sum(d^3) / (6 * sum(d^2)^1.5), d = x - mean(x) (the
    jackknife's own d, mean of the leave-one-out values minus each, is the same up to a factor that cancels)."""
    d = values - values.mean()
    s2 = float((d**2).sum())
    return float((d**3).sum()) / (6.0 * s2**1.5) if s2 > 0 else 0.0


def bias_correction(means: np.ndarray, estimate: float) -> float:
    """BCa's z0: the normal quantile of the share of resampled means below the estimate (ties count half)."""
    share = (np.sum(means < estimate) + 0.5 * np.sum(means == estimate)) / len(means)
    share = min(max(share, 0.5 / len(means)), 1 - 0.5 / len(means))
    return NORMAL.inv_cdf(share)


def _tail_p(means: np.ndarray, theta0: float, z0: float, a: float) -> float:
    """One-sided p-value of H0: theta <= theta0 that inverts the BCa lower bound (a = z0 = 0: percentile).

    With q = G(theta0), the share of resampled means at or below theta0, and w = Phi^-1(q) - z0, the level at
    which the BCa lower bound reaches theta0 is p = Phi(w / (1 + a w) - z0).
    """
    b = len(means)
    q = (np.sum(means <= theta0) + 1) / (b + 1)
    q = min(q, b / (b + 1))
    w = NORMAL.inv_cdf(q) - z0
    denom = 1 + a * w
    if denom <= 0:
        # theta0 lies past every bound BCa can give (its levels stop short of 0 and 1 when a != 0): with a > 0
        # (w < 0) it is below every lower bound, so H0 is rejected at any level; with a < 0 (w > 0) at none
        return 0.0 if w < 0 else 1.0
    return min(1.0, max(0.0, NORMAL.cdf(w / denom - z0)))


def _bounds(means: np.ndarray, level: float, z0: float, a: float) -> tuple[float, float]:
    tail = (1 - level) / 2
    qs = []
    for alpha in (tail, 1 - tail):
        z = z0 + NORMAL.inv_cdf(alpha)
        qs.append(NORMAL.cdf(z0 + z / (1 - a * z)))
    low, high = np.quantile(means, qs)
    return float(low), float(high)


def paired_estimate(
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]],
    level: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    method: str = "auto",
) -> Estimate:
    """mean(b - a) over items (seeds averaged per item), its interval and one-sided bootstrap p-values.

    The resampling unit is the item: a drawn item brings every seed's pair along, so a seed is a block within
    each item, and the training seeds' own differences are reported in `per_seed`. method "auto": BCa below
    BCA_BELOW items, percentile from there; "bca" or "percentile" to choose.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    diffs = item_differences(a, b)
    per_seed = tuple(float(v) for v in (np.asarray(b, float) - np.asarray(a, float)).mean(axis=1))
    n, mean = len(diffs), float(diffs.mean())
    sd = float(diffs.std(ddof=1)) if n > 1 else 0.0
    use_bca = method == "bca" or (method == "auto" and n < BCA_BELOW)
    label = "BCa" if use_bca else "percentile"
    se, df = (sd / math.sqrt(n), n - 1) if n > 1 else (0.0, 0)
    if sd == 0.0:  # every item differs by the same amount: no spread to resample
        return Estimate(mean, mean, mean, n, len(per_seed), 0.0, float(mean <= 0), float(mean >= 0), label, level,
                        n_resamples, per_seed, se, df)  # fmt: skip
    means = resampled_means(diffs, n_resamples, seed)
    z0, acc = (bias_correction(means, mean), acceleration(diffs)) if use_bca else (0.0, 0.0)
    low, high = _bounds(means, level, z0, acc)
    p_greater = _tail_p(means, 0.0, z0, acc)
    p_less = _tail_p(-means, 0.0, -z0, -acc)
    return Estimate(
        mean, low, high, n, len(per_seed), sd, p_greater, p_less, label, level, n_resamples, per_seed, se, df
    )


def gap_estimate(
    longer: Sequence[float],
    shorter: Sequence[float],
    level: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """mean(longer) - mean(shorter) for two independent sets of per-item differences (e.g. a stage's gain on the
    longest set against its gain on the shortest), each set resampled on its own; BCa with the jackknife over
    the items of both sets (one deleted at a time) below BCA_BELOW items in all, percentile from there."""
    x, y = np.asarray(longer, dtype=float), np.asarray(shorter, dtype=float)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("each set needs at least 2 items")
    mean = float(x.mean() - y.mean())
    n = len(x) + len(y)
    se = math.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
    df = min(len(x), len(y)) - 1
    use_bca = n < BCA_BELOW
    label = "BCa" if use_bca else "percentile"
    if se == 0.0:
        return Estimate(mean, mean, mean, n, 1, 0.0, float(mean <= 0), float(mean >= 0), label, level, n_resamples,
                        (), 0.0, df)  # fmt: skip
    means = resampled_means(x, n_resamples, seed) - resampled_means(y, n_resamples, seed + 1)
    z0, acc = 0.0, 0.0
    if use_bca:
        jack = np.concatenate([(x.sum() - x) / (len(x) - 1) - y.mean(), x.mean() - (y.sum() - y) / (len(y) - 1)])
        z0, acc = bias_correction(means, mean), acceleration(-jack)  # d = jackknife mean - jackknife value
    low, high = _bounds(means, level, z0, acc)
    sd = se * math.sqrt(n / 2)  # the spread per item of an equal split that gives this standard error
    return Estimate(mean, low, high, n, 1, sd, _tail_p(means, 0.0, z0, acc), _tail_p(-means, 0.0, -z0, -acc), label,
                    level, n_resamples, (), se, df)  # fmt: skip


def equivalence_p(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], margin: float, **kw) -> float:
    """Two one-sided tests (TOST) of |mean(b - a)| < margin: the larger of the p-values of H0: diff <= -margin
    and H0: diff >= +margin, each from the same bootstrap as paired_estimate."""
    if margin <= 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    lower = paired_estimate(a, [[v + margin for v in row] for row in b], **kw).p_greater
    upper = paired_estimate(a, [[v - margin for v in row] for row in b], **kw).p_less
    return max(lower, upper)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order: sorted ascending, the k-th smallest (k = 1..m)
    is multiplied by m - k + 1, made non-decreasing, and capped at 1."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * pvalues[i]))
        adjusted[i] = running
    return adjusted


# --- power ------------------------------------------------------------------------------------------------------


def t_cdf(t: float, df: float) -> float:
    """Student's t distribution function, from the regularised incomplete beta function."""
    if df <= 0:
        raise ValueError(f"df must be > 0, got {df}")
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2, 0.5, x)
    return 1 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The inverse of t_cdf, by bisection."""
    if not 0 < p < 1:
        raise ValueError(f"p must lie strictly between 0 and 1, got {p}")
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta I_x(a, b) by its continued fraction (Lentz's method)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x)) / a
    tiny = 1e-300
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if abs(1.0 - c * d) < 1e-12:
            break
    return front * (f - 1.0)


def mde(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """The smallest true paired difference a one-sided test at `alpha` detects with probability `power`:
    (t_{1-alpha} + t_{power}) * sd / sqrt(n), t with n - 1 degrees of freedom. None below 2 items."""
    if n < 2:
        return None
    return (t_quantile(1 - alpha, n - 1) + t_quantile(power, n - 1)) * sd / math.sqrt(n)


def items_needed(sd: float, effect: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Items a paired one-sided test needs to detect `effect` at `alpha` with `power` (normal quantiles):
    ceil(((z_{1-alpha} + z_{power}) * sd / effect)^2). None when the effect is 0."""
    if effect == 0:
        return None
    z = NORMAL.inv_cdf(1 - alpha) + NORMAL.inv_cdf(power)
    return max(2, math.ceil((z * sd / abs(effect)) ** 2))


# --- timing -----------------------------------------------------------------------------------------------------


def mann_whitney_p(smaller: Sequence[float], larger: Sequence[float]) -> float:
    """Exact one-sided Mann-Whitney p-value that `smaller` tends to lie below `larger`: the share of the
    C(n+m, n) ways to split the pooled values into groups of the two sizes whose U (pairs with the first value
    below the second, ties counting half) is at least the observed one. 3 against 3 fully separated: 1/20."""
    from itertools import combinations

    a, b = list(smaller), list(larger)
    if not a or not b:
        raise ValueError("both groups need at least one value")

    def u(first: Sequence[float], second: Sequence[float]) -> float:
        return sum(1.0 if x < y else 0.5 if x == y else 0.0 for x in first for y in second)

    observed = u(a, b)
    pooled = a + b
    splits = list(combinations(range(len(pooled)), len(a)))
    if len(splits) > 200_000:
        raise ValueError("too many values for the exact test")
    at_least = 0
    for chosen in splits:
        picked = set(chosen)
        first = [pooled[i] for i in chosen]
        second = [pooled[i] for i in range(len(pooled)) if i not in picked]
        at_least += u(first, second) >= observed - 1e-12
    return at_least / len(splits)


@dataclass(frozen=True)
class PowerFit:
    """time = c * length^exponent, fitted by least squares on logs, with the exponent's interval."""

    exponent: float
    low: float
    high: float
    points: int
    level: float
    se: float = 0.0
    df: int = 0


def power_law_fit(lengths: Sequence[float], seconds: Sequence[float], level: float = 0.95) -> PowerFit:
    """Least squares of log(seconds) on log(length) over every (length, repeat) point; the slope's interval
    is slope +- t_{(1+level)/2, n-2} * se. Needs at least two distinct lengths and three points."""
    x = np.log(np.asarray(lengths, dtype=float))
    y = np.log(np.asarray(seconds, dtype=float))
    if len(x) != len(y) or len(x) < 3 or len(set(x.tolist())) < 2:
        raise ValueError("a timing fit needs at least 3 points over at least 2 lengths")
    xc = x - x.mean()
    slope = float((xc * (y - y.mean())).sum() / (xc**2).sum())
    resid = y - y.mean() - slope * xc
    df = len(x) - 2
    se = math.sqrt(float((resid**2).sum()) / df / float((xc**2).sum())) if df > 0 else 0.0
    half = t_quantile((1 + level) / 2, df) * se if df > 0 else math.inf
    return PowerFit(slope, slope - half, slope + half, len(x), level, se, df)


def exponent_equivalence_p(fit: PowerFit, target: float, margin: float) -> float:
    """TOST p-value that the fitted exponent lies within target +- margin (t with the fit's degrees of freedom)."""
    if fit.df <= 0 or fit.se == 0:
        return 0.0 if abs(fit.exponent - target) < margin else 1.0
    low_p = 1 - t_cdf((fit.exponent - (target - margin)) / fit.se, fit.df)  # H0: exponent <= target - margin
    high_p = t_cdf((fit.exponent - (target + margin)) / fit.se, fit.df)  # H0: exponent >= target + margin
    return max(low_p, high_p)
