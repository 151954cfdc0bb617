"""The reports' statistics by hand: Holm, TOST, power, the seed-blocked paired bootstrap, BCa, timing fits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from repro.reporting.stats import (
    _tail_p,
    acceleration,
    equivalence_p,
    exponent_equivalence_p,
    gap_estimate,
    holm,
    items_needed,
    mann_whitney_p,
    mde,
    paired_estimate,
    power_law_fit,
    t_cdf,
    t_quantile,
)


def test_holm_on_four_p_values():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> raised to 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # capped at 1; one p-value is its own adjustment
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([0.2]) == [0.2]


@pytest.mark.parametrize(
    ("p", "df", "t"),
    # Student's t quantiles from the printed tables
    [(0.975, 1, 12.7062), (0.975, 9, 2.2622), (0.95, 9, 1.8331), (0.80, 9, 0.8834), (0.975, 30, 2.0423)],
)
def test_t_quantiles_match_the_tables(p, df, t):
    assert t_quantile(p, df) == pytest.approx(t, abs=2e-4)
    assert t_cdf(t, df) == pytest.approx(p, abs=2e-5)
    assert t_cdf(-t, df) == pytest.approx(1 - p, abs=2e-5)


def test_mde_and_items_needed_by_closed_form():
    # 10 paired differences with sd 4: (t_0.95,9 + t_0.80,9) * 4 / sqrt(10) = (1.8331 + 0.8834) * 1.2649 = 3.4362
    assert mde(4.0, 10) == pytest.approx((1.8331 + 0.8834) * 4 / math.sqrt(10), abs=1e-3)
    assert mde(4.0, 1) is None
    # to detect 2 points at sd 8: ((1.6449 + 0.8416) * 8 / 2)^2 = 98.92 -> 99 items
    assert items_needed(8.0, 2.0) == 99
    assert items_needed(8.0, -2.0) == 99
    assert items_needed(8.0, 0.0) is None


def test_bca_acceleration_of_a_skewed_sample():
    # [0, 0, 0, 3]: d = [-.75, -.75, -.75, 2.25]; sum d^3 = 10.125; sum d^2 = 6.75; a = 10.125 / (6 * 6.75^1.5)
    assert acceleration(np.array([0.0, 0.0, 0.0, 3.0])) == pytest.approx(10.125 / (6 * 6.75**1.5))
    assert acceleration(np.array([1.0, 2.0, 3.0])) == 0.0  # symmetric
    assert acceleration(np.array([2.0, 2.0])) == 0.0  # no spread


def test_seed_blocked_bootstrap_where_the_seeds_disagree():
    # 3 items, 2 seeds: seed 0 gains [10, 20, 30], seed 1 loses [-10, 0, -20]. Per item, over seeds: [0, 10, 5].
    a = [[0, 0, 0], [0, 0, 0]]
    b = [[10, 20, 30], [-10, 0, -20]]
    est = paired_estimate(a, b, n_resamples=4000, method="percentile")
    assert est.mean == pytest.approx(5.0) and (est.n, est.seeds) == (3, 2)
    assert est.per_seed == pytest.approx((20.0, -10.0))  # the flip shows per seed
    # a drawn item brings both seeds: every resampled mean lies in [0, 10]; pooling the 6 (item, seed)
    # differences as independent would reach -20 and 30
    assert 0.0 <= est.low < 5.0 < est.high <= 10.0
    assert est.sd == pytest.approx(5.0)  # sd of [0, 10, 5]


def test_paired_estimate_p_values_and_degenerate_spread():
    gain = paired_estimate([[0] * 20], [[1 + (i % 3) for i in range(20)]])
    assert gain.method == "BCa" and gain.p_greater < 0.001 and gain.p_less > 0.99
    assert gain.low > 0
    flat = paired_estimate([[0, 0, 0]], [[2, 2, 2]])  # every item differs by 2: nothing to resample
    assert (flat.mean, flat.low, flat.high, flat.p_greater, flat.p_less) == (2.0, 2.0, 2.0, 0.0, 1.0)
    big = paired_estimate([[0] * 60], [[(i % 5) - 2 for i in range(60)]])
    assert big.method == "percentile" and 0.2 < big.p_greater < 0.8


def test_bca_p_value_inverts_the_bound_and_past_its_range_says_so():
    """The p of H0: theta <= theta0 is the level at which the BCa lower bound reaches theta0. Resampled means 1..99:
    with a = z0 = 0 it is the share at or below theta0, (10 + 1) / 100 = 0.11 at 10.5. With a = 0.5 the bound at
    level alpha is the Phi(z / (1 - a z)) quantile, z = Phi^-1(alpha): as alpha -> 0 that level only falls to
    Phi(-1/a) = Phi(-2) = 2.3%, so the bound never drops below about 3.2, and 0 is rejected at every level: p = 0
    (the inversion has no solution: w = Phi^-1(1/100) = -2.33 lies past -1/a = -2). Mirrored (a = -0.5, means
    -99..-1) the bound never rises past the 97.7% quantile, below 0: rejected at no level, p = 1."""
    means = np.arange(1.0, 100.0)
    assert _tail_p(means, 10.5, 0.0, 0.0) == pytest.approx(0.11)
    assert _tail_p(means, 0.0, 0.0, 0.5) == 0.0
    assert _tail_p(-means, 0.0, 0.0, -0.5) == 1.0


def test_bca_interval_of_a_symmetric_sample_is_the_percentile_interval():
    # acceleration 0 and z0 about 0: BCa moves nothing
    a, b = [[0] * 21], [[i - 10 for i in range(21)]]
    bca = paired_estimate(a, b, method="bca", seed=3)
    pct = paired_estimate(a, b, method="percentile", seed=3)
    assert bca.low == pytest.approx(pct.low, abs=0.25) and bca.high == pytest.approx(pct.high, abs=0.25)


@pytest.mark.parametrize(
    ("shift", "margin", "small"),
    [
        (0.0, 5.0, True),  # differences around 0 with sd ~1.5: wholly inside +-5
        (10.0, 5.0, False),  # around +10: wholly outside
        (5.0, 5.0, False),  # mean 4.92 (the pattern sums to -2 over 24), se ~0.29: straddling +5
    ],
)
def test_tost_inside_outside_and_straddling(shift, margin, small):
    a = [[0.0] * 24]
    b = [[shift + ((i % 5) - 2) for i in range(24)]]
    p = equivalence_p(a, b, margin, n_resamples=2000)
    assert (p < 0.05) is small


def test_power_law_fit_known_exponents_and_a_worked_case():
    lengths = [1000, 2000, 4000, 8000]
    linear = power_law_fit(lengths * 3, [0.002 * n for n in lengths] * 3)
    assert linear.exponent == pytest.approx(1.0) and linear.high - linear.low == pytest.approx(0.0, abs=1e-9)
    quadratic = power_law_fit(lengths, [1e-6 * n * n for n in lengths])
    assert quadratic.exponent == pytest.approx(2.0)
    # logs x = [0, 1, 2], y = [0, 1.1, 1.9]: slope 1.9 / 2 = 0.95; residuals [-.05, .1, -.05], SS 0.015, df 1;
    # se = sqrt(0.015 / 2) = 0.0866; t_0.975,1 = 12.706: half-width 1.1004
    fit = power_law_fit([1, math.e, math.e**2], [1, math.exp(1.1), math.exp(1.9)])
    assert fit.exponent == pytest.approx(0.95)
    assert (fit.low, fit.high) == (pytest.approx(0.95 - 1.1004, abs=1e-3), pytest.approx(0.95 + 1.1004, abs=1e-3))
    with pytest.raises(ValueError, match="at least 3 points"):
        power_law_fit([1000, 1000, 1000], [1, 2, 3])


def test_mann_whitney_exact_by_counting_splits():
    # 3 against 3, fully separated: of the C(6, 3) = 20 splits only the observed one has U = 9
    assert mann_whitney_p([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(1 / 20)
    # [1, 2, 4] against [3, 5, 6]: U = 8 (only 4 > 3 breaks it); splits with U >= 8: {1,2,3} (9) and {1,2,4} (8)
    assert mann_whitney_p([1.0, 2.0, 4.0], [3.0, 5.0, 6.0]) == pytest.approx(2 / 20)
    # the other way round nothing is separated: U = 0, every split reaches it
    assert mann_whitney_p([4.0, 5.0, 6.0], [1.0, 2.0, 3.0]) == pytest.approx(1.0)


def test_gap_of_two_independent_sets():
    # gains on the long set [10, 20, 30] (mean 20) against the short set [0, 4, 8] (mean 4): the gap is 16;
    # se = sqrt(var([10, 20, 30]) / 3 + var([0, 4, 8]) / 3) = sqrt(100 / 3 + 16 / 3) = sqrt(38.67) = 6.218
    est = gap_estimate([10.0, 20.0, 30.0], [0.0, 4.0, 8.0])
    assert est.mean == pytest.approx(16.0) and est.se == pytest.approx(math.sqrt(116 / 3))
    assert est.method == "BCa" and est.n == 6 and est.df == 2
    # every resampled gap lies in [10 - 8, 30 - 0] = [2, 30]
    assert 2.0 <= est.low < 16.0 < est.high <= 30.0 and est.p_greater < 0.01


def test_exponent_equivalence_by_the_t_distribution():
    # slope 0.95, se 0.0866, df 1 (the worked fit above): against 1 +- 0.2 the upper test is
    # t_cdf((0.95 - 1.2) / 0.0866, 1) = t_cdf(-2.887, 1) = 0.1062 and the lower 1 - t_cdf((0.95 - 0.8) / 0.0866, 1)
    # = 1 - t_cdf(1.732, 1) = 0.1667: p = 0.1667 (one degree of freedom cannot show it)
    fit = power_law_fit([1, math.e, math.e**2], [1, math.exp(1.1), math.exp(1.9)])
    assert exponent_equivalence_p(fit, 1.0, 0.2) == pytest.approx(0.1667, abs=1e-3)
    exact = power_law_fit([1000, 2000, 4000] * 2, [1.0, 2.0, 4.0] * 2)  # (almost) no residual: decided outright
    assert exponent_equivalence_p(exact, 1.0, 0.2) < 1e-12 and exponent_equivalence_p(exact, 2.0, 0.2) > 1 - 1e-12
