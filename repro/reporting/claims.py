"""A paper's claims judged on a run: each claim's evidence, Holm over the primary ones, verdicts with their power."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from repro.errors import ReproError
from repro.loong.scores import EvalScores
from repro.reporting.stats import (
    NORMAL,
    Estimate,
    PowerFit,
    exponent_equivalence_p,
    gap_estimate,
    holm,
    items_needed,
    mann_whitney_p,
    paired_estimate,
    t_cdf,
    t_quantile,
)

ALPHA = 0.05  # one-sided, family-wise over a report's primary claims (Holm)
POWER = 0.8
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
Kind = Literal["greater", "equivalent", "not_worse", "faster", "linear"]


@dataclass(frozen=True)
class Claim:
    """A trend the paper reports, as the run can test it.

    greater: after > before; equivalent: |after - before| < margin; not_worse: after > before - margin (all in
    points, paired over items); faster: the new timings below the old ones; linear: time grows as length^k with
    k within 1 +- margin. `paper` says what the paper reports; `paper_effect` (points) sizes the items a run
    would need to see it.
    """

    name: str
    kind: Kind
    paper: str
    primary: bool = True
    paper_effect: float | None = None
    margin: float = 0.0


@dataclass
class Evidence:
    """What a run shows for one claim: the estimate and its interval, and two one-sided p-values, one for the
    claim (`p_for`) and one for its opposite (`p_against`: the reverse trend, or a difference past the margin)."""

    mean: float
    low: float
    high: float
    n: int
    p_for: float
    p_against: float
    unit: str  # what n counts and how the interval was made, for the line
    se: float = 0.0
    df: int = 0
    sd: float = 0.0
    per_seed: tuple[float, ...] = ()


@dataclass
class Result:
    claim: Claim
    evidence: Evidence | None
    verdict: str = INCONCLUSIVE
    p_adjusted: float | None = None
    p_against_adjusted: float | None = None
    mde: float | None = None  # the smallest true effect this run detects with POWER (equivalence: the margin)
    needed: int | None = None  # items to detect the paper's effect (equivalence: to show the stated margin)
    why_unchecked: str = ""
    alpha: float = ALPHA

    def line(self) -> str:
        return result_line(self)


# --- evidence ----------------------------------------------------------------------------------------------------


def paired_scores(
    before: Sequence[EvalScores], after: Sequence[EvalScores], length_set: int | None = None, task: str | None = None
) -> tuple[list[list[float]], list[list[float]]]:
    """[seeds][items] scores of the items judged (parsed) in both stages in every seed; a stage with one run
    (seed-independent, such as the base model's greedy evaluation) is paired with each seed of the other."""
    seeds = max(len(before), len(after))
    runs_a = list(before) * seeds if len(before) == 1 else list(before)
    runs_b = list(after) * seeds if len(after) == 1 else list(after)
    if len(runs_a) != len(runs_b):
        raise ReproError(
            f"two stages were evaluated for {len(before)} and {len(after)} training seeds; pair like with like"
        )
    ids = [
        i
        for i, it in runs_a[0].items.items()
        if (length_set is None or it.length_set == length_set)
        and (task is None or it.task == task)
        and all(i in r.items and r.items[i].score is not None for r in runs_a + runs_b)
    ]
    return [[r.items[i].score for i in ids] for r in runs_a], [[r.items[i].score for i in ids] for r in runs_b]


def _seeds_unit(est: Estimate) -> str:
    seeds = f" x {est.seeds} seeds" if est.seeds > 1 else ""
    return (
        f"{est.n} items{seeds}; {est.method} {est.level:.0%} interval, {est.n_resamples:,} bootstrap resamples "
        "over items (a drawn item brings all its seeds)"
    )


def _from_estimate(est: Estimate, p_for: float, p_against: float) -> Evidence:
    return Evidence(est.mean, est.low, est.high, est.n, p_for, p_against, _seeds_unit(est), est.se, est.df, est.sd,
                    est.per_seed)  # fmt: skip


def greater_evidence(a: list[list[float]], b: list[list[float]]) -> Evidence:
    """after (b) > before (a), paired over items."""
    est = paired_estimate(a, b)
    return _from_estimate(est, est.p_greater, est.p_less)


def shifted(rows: list[list[float]], by: float) -> list[list[float]]:
    return [[v + by for v in row] for row in rows]


def equivalence_evidence(a: list[list[float]], b: list[list[float]], margin: float) -> Evidence:
    """|after - before| < margin by two one-sided tests; the interval shown is the 90% one TOST reads. Against:
    the difference lies past the margin on one side (the smaller of the two one-sided p-values)."""
    est = paired_estimate(a, b, level=1 - 2 * ALPHA)
    above_low = paired_estimate(a, shifted(b, margin)).p_greater  # H0: diff <= -margin
    below_high = paired_estimate(a, shifted(b, -margin)).p_less  # H0: diff >= +margin
    past_high = paired_estimate(a, shifted(b, -margin)).p_greater  # H0: diff <= +margin
    past_low = paired_estimate(a, shifted(b, margin)).p_less  # H0: diff >= -margin
    return _from_estimate(est, max(above_low, below_high), min(past_high, past_low))


def not_worse_evidence(a: list[list[float]], b: list[list[float]], margin: float) -> Evidence:
    """after > before - margin (non-inferiority); against: after < before - margin."""
    est = paired_estimate(a, b)
    moved = paired_estimate(a, shifted(b, margin))
    return _from_estimate(est, moved.p_greater, moved.p_less)


def gap_evidence(long_a, long_b, short_a, short_b) -> Evidence:
    """The gain on the longest set exceeds the gain on the shortest: each set's per-item gains (seeds averaged)
    resampled on their own."""
    gains = [[sum(y - x for x, y in zip(ra, rb, strict=True)) / len(ra) for ra, rb in zip(*pair, strict=True)]
             for pair in ((_columns(long_a), _columns(long_b)), (_columns(short_a), _columns(short_b)))]  # fmt: skip
    est = gap_estimate(gains[0], gains[1])
    unit = (f"{len(gains[0])} + {len(gains[1])} items of the two sets; {est.method} {est.level:.0%} interval, "
            f"{est.n_resamples:,} resamples, each set's items on their own")  # fmt: skip
    return Evidence(est.mean, est.low, est.high, est.n, est.p_greater, est.p_less, unit, est.se, est.df, est.sd)


def _columns(rows: list[list[float]]) -> list[list[float]]:
    """[seeds][items] -> [items][seeds]."""
    return [list(col) for col in zip(*rows, strict=True)] if rows else []


def faster_evidence(new: Sequence[float], old: Sequence[float]) -> Evidence:
    """The new timings (or peaks) below the old ones over repeats: the ratio of medians, the range of ratios the
    repeats allow, and the exact one-sided Mann-Whitney p-values."""
    if min(old) <= 0 or min(new) < 0:
        raise ReproError(f"timings must be positive to compare, got {list(new)} against {list(old)}")
    med = statistics.median(new) / statistics.median(old)
    low, high = min(new) / max(old), max(new) / min(old)
    unit = f"{len(new)} and {len(old)} repeats; ratio of medians, range over the repeats; exact Mann-Whitney"
    return Evidence(med, low, high, len(new) + len(old), mann_whitney_p(new, old), mann_whitney_p(old, new), unit)


def linear_evidence(fit: PowerFit, margin: float) -> Evidence:
    """time ~ length^k with k within 1 +- margin (TOST on the fitted slope); against: k past the margin."""
    if fit.se > 0 and fit.df > 0:
        past_high = 1 - t_cdf((fit.exponent - (1 + margin)) / fit.se, fit.df)
        past_low = t_cdf((fit.exponent - (1 - margin)) / fit.se, fit.df)
        against = min(past_high, past_low)
    else:
        against = 0.0 if abs(fit.exponent - 1) > margin else 1.0
    unit = f"{fit.points} timings; least squares on logs, {fit.level:.0%} t interval of the exponent"
    return Evidence(fit.exponent, fit.low, fit.high, fit.points, exponent_equivalence_p(fit, 1.0, margin), against,
                    unit, fit.se, fit.df)  # fmt: skip


# --- verdicts ----------------------------------------------------------------------------------------------------


def judge(checked: Sequence[tuple[Claim, Evidence | None, str]]) -> list[Result]:
    """Verdicts for (claim, evidence or None, why it is not checked) triples, in order.

    Holm's step-down correction runs over the primary claims that have evidence, on the p-values for the claims
    and, separately, on those against them: a claim is reproduced when its adjusted p is below ALPHA, not
    reproduced when the adjusted p against it is, else inconclusive. Exploratory (non-primary) claims use their
    own p-values and say so. Power figures use the strictest Holm step, ALPHA / (number of primary claims).
    """
    results = [Result(claim, ev, why_unchecked=why) for claim, ev, why in checked]
    primary = [r for r in results if r.claim.primary and r.evidence is not None]
    for key, attr in (("p_for", "p_adjusted"), ("p_against", "p_against_adjusted")):
        adjusted = holm([getattr(r.evidence, key) for r in primary])
        for r, p in zip(primary, adjusted, strict=True):
            setattr(r, attr, p)
    strictest = ALPHA / max(len(primary), 1)
    for r in results:
        if r.evidence is None:
            continue
        if not r.claim.primary:
            r.p_adjusted, r.p_against_adjusted = r.evidence.p_for, r.evidence.p_against
        if r.p_adjusted < ALPHA:
            r.verdict = REPRODUCED
        elif r.p_against_adjusted < ALPHA:
            r.verdict = NOT_REPRODUCED
        r.alpha = strictest if r.claim.primary else ALPHA
        _power(r)
    return results


def _power(r: Result) -> None:
    ev, claim = r.evidence, r.claim
    if ev is None or claim.kind in ("faster", "linear") or ev.df < 1:
        return
    if claim.kind == "equivalent":
        # with no true difference, TOST reaches POWER when the margin is (t_{1-a} + t_{(1+POWER)/2}) * se
        r.mde = (t_quantile(1 - r.alpha, ev.df) + t_quantile((1 + POWER) / 2, ev.df)) * ev.se
        z = NORMAL.inv_cdf(1 - r.alpha) + NORMAL.inv_cdf((1 + POWER) / 2)
        r.needed = max(2, math.ceil((z * ev.sd / claim.margin) ** 2)) if claim.margin > 0 and ev.sd > 0 else None
        return
    r.mde = (t_quantile(1 - r.alpha, ev.df) + t_quantile(POWER, ev.df)) * ev.se
    if claim.paper_effect and ev.sd > 0:
        r.needed = items_needed(ev.sd, claim.paper_effect, alpha=r.alpha, power=POWER)


# --- lines -------------------------------------------------------------------------------------------------------


def signed(x: float) -> str:
    text = f"{x:+.1f}"
    return "+0.0" if text == "-0.0" else text


def _value(claim: Claim, x: float) -> str:
    return f"{x:.2f}" if claim.kind in ("faster", "linear") else signed(x)


def result_line(r: Result) -> str:
    """One line a reader can act on: the verdict, the estimate with its interval and unit, the adjusted p, each
    seed's own difference, and for an inconclusive claim the power this run had and the items it would need."""
    claim = r.claim
    tag = "primary" if claim.primary else "exploratory"
    if r.evidence is None:
        return f"{claim.name} [{tag}]: not checked ({r.why_unchecked}); paper: {claim.paper}"
    ev = r.evidence
    what = {"faster": "ratio new / old", "linear": "exponent"}.get(claim.kind, "difference")
    margin = f" against a margin of {claim.margin:g}" if claim.kind in ("equivalent", "not_worse", "linear") else ""
    adj = "Holm-adjusted " if claim.primary else ""
    parts = [
        f"{claim.name} [{tag}]: {r.verdict}",
        f"{what} {_value(claim, ev.mean)} [{_value(claim, ev.low)}, {_value(claim, ev.high)}]{margin} ({ev.unit})",
        f"{adj}p = {r.p_adjusted:.3g} for, {r.p_against_adjusted:.3g} against",
    ]
    if len(ev.per_seed) > 1:
        parts.append("per seed: " + ", ".join(signed(v) for v in ev.per_seed))
    parts.append(f"paper: {claim.paper}")
    if r.verdict == INCONCLUSIVE and r.mde is not None:
        if claim.kind == "equivalent":
            power = f"the smallest margin this run could confirm (power {POWER:.0%}): {r.mde:.1f} points"
            need = f"; to confirm ±{claim.margin:g}: about {r.needed:,} items" if r.needed else ""
        else:
            power = (f"the smallest effect this run could detect (power {POWER:.0%}, one-sided alpha "
                     f"{r.alpha:.3g}): {r.mde:.1f} points")  # fmt: skip
            need = (f"; to detect the paper's {signed(claim.paper_effect)}: about {r.needed:,} items"
                    if r.needed and claim.paper_effect else "")  # fmt: skip
        parts.append(power + need)
    return "; ".join(parts)


def trend_row(r: Result) -> dict:
    """The claim as summary.json's `trends` holds it (a claim the run could not check: mean, low and high null)."""
    ev = r.evidence
    return {
        "claim": r.claim.name,
        "primary": r.claim.primary,
        "verdict": r.verdict if ev is not None else INCONCLUSIVE,
        "mean": ev.mean if ev else None,
        "low": ev.low if ev else None,
        "high": ev.high if ev else None,
        "n": ev.n if ev else 0,
        "mde": r.mde,
        "paper": r.claim.paper,
    }


def method_note(results: Sequence[Result]) -> str:
    """How the verdicts were reached, printed once under them."""
    k = sum(1 for r in results if r.claim.primary and r.evidence is not None)
    return (
        f"Verdicts: one-sided tests at alpha {ALPHA} with Holm's correction over the {k} primary claims checked "
        "(bootstrap p-values inverted from the BCa interval below 50 items, from the percentile one above; "
        "equivalence by two one-sided tests against its margin, its interval at 90%; timings by exact "
        "Mann-Whitney over repeats, growth by the fitted exponent). Reproduced: the claim's adjusted p < alpha; "
        "not reproduced: the adjusted p against it < alpha; otherwise inconclusive, with the smallest effect "
        f"the run could have detected at {POWER:.0%} power. Intervals are 95% unless said, unadjusted; "
        "exploratory claims are not corrected."
    )


def forest_rows(results: Sequence[Result]) -> list[dict]:
    """The claims measured in score points, as the forest plot takes them (timing claims have their own units)."""
    return [
        {"claim": r.claim.name, "mean": r.evidence.mean, "low": r.evidence.low, "high": r.evidence.high,
         "paper": r.claim.paper_effect, "verdict": r.verdict, "primary": r.claim.primary}  # fmt: skip
        for r in results
        if r.evidence is not None and r.claim.kind in ("greater", "equivalent", "not_worse")
    ]
