"""Claims judged on a run: Holm over the primaries, verdicts each way, the power line, seeds paired by item."""

from __future__ import annotations

import pytest

from repro.loong.scores import EvalScores, ItemScore
from repro.reporting.claims import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    Claim,
    Evidence,
    equivalence_evidence,
    judge,
    paired_scores,
    trend_row,
)
from repro.reporting.stats import t_quantile


def ev(p_for: float, p_against: float, **kw) -> Evidence:
    return Evidence(kw.pop("mean", 1.0), -1.0, 3.0, 10, p_for, p_against, "10 items", **kw)


def test_holm_decides_the_primary_verdicts_and_the_exploratory_ones_stand_alone():
    claims = [Claim(f"c{i}", "greater", "paper") for i in range(4)]
    explore = Claim("x", "greater", "paper", primary=False)
    # p for: [0.01, 0.04, 0.03, 0.005] -> Holm [0.03, 0.06, 0.06, 0.02]; against: c1's 0.001 x 4 = 0.004
    evidence = [ev(0.01, 0.9), ev(0.04, 0.001), ev(0.03, 0.5), ev(0.005, 0.9)]
    results = judge([*zip(claims, evidence, [""] * 4, strict=True), (explore, ev(0.04, 0.5), "")])
    assert [r.p_adjusted for r in results[:4]] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [r.verdict for r in results] == [REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, REPRODUCED, REPRODUCED]
    assert results[4].p_adjusted == 0.04  # exploratory: its own p-value, no correction
    assert results[0].alpha == pytest.approx(0.05 / 4) and results[4].alpha == 0.05


def test_an_unchecked_claim_is_said_and_left_out_of_the_correction():
    checked = [(Claim("a", "greater", "p"), None, "no paired items"), (Claim("b", "greater", "p"), ev(0.03, 1), "")]
    results = judge(checked)
    assert results[0].line() == "a [primary]: not checked (no paired items); paper: p"
    assert results[1].p_adjusted == pytest.approx(0.03) and results[1].verdict == REPRODUCED  # one primary: no x2
    assert trend_row(results[0])["verdict"] == INCONCLUSIVE and trend_row(results[0])["n"] == 0


def test_an_inconclusive_line_gives_the_power_this_run_had_and_the_items_it_would_need():
    # se 2 over 10 items (df 9), sd 6.3246, one primary claim (alpha 0.05): MDE = (t_0.95,9 + t_0.80,9) * 2
    # = (1.8331 + 0.8834) * 2 = 5.433; items for the paper's +3: ((1.6449 + 0.8416) * 6.3246 / 3)^2 = 27.5 -> 28
    claim = Claim("RL > SFT", "greater", "+3.0", paper_effect=3.0)
    (r,) = judge([(claim, ev(0.2, 0.7, se=2.0, df=9, sd=6.3246), "")])
    assert r.verdict == INCONCLUSIVE
    assert r.mde == pytest.approx((1.8331 + 0.8834) * 2, abs=1e-3) and r.needed == 28
    assert "smallest effect this run could detect" in r.line() and "about 28 items" in r.line()
    assert r.mde == pytest.approx((t_quantile(0.95, 9) + t_quantile(0.8, 9)) * 2)


def scores(values: dict[str, float | None]) -> EvalScores:
    return EvalScores({i: ItemScore(v, "qa", 1) for i, v in values.items()})


def test_paired_scores_keep_items_parsed_everywhere_and_pair_a_single_run_with_each_seed():
    base = [scores({"a": 10, "b": 20, "c": None})]  # seed-independent: one run
    sft = [scores({"a": 30, "b": 25, "c": 40}), scores({"a": 10, "b": None, "c": 40})]
    before, after = paired_scores(base, sft)
    # c is unparsed in base, b in seed 1: only a is paired, in both seeds
    assert before == [[10], [10]] and after == [[30], [10]]


def test_equivalence_inside_and_outside_the_margin():
    # 24 items, differences around 0 (sd ~1.4): inside +-5 -> shown; around +10 -> shown past it
    a = [[0.0] * 24]
    inside = equivalence_evidence(a, [[(i % 5) - 2.0 for i in range(24)]], margin=5.0)
    outside = equivalence_evidence(a, [[10.0 + (i % 5) - 2 for i in range(24)]], margin=5.0)
    results = judge([(Claim("in", "equivalent", "p", margin=5.0), inside, ""),
                     (Claim("out", "equivalent", "p", margin=5.0), outside, "")])  # fmt: skip
    assert [r.verdict for r in results] == [REPRODUCED, NOT_REPRODUCED]
    assert inside.low > -5 and inside.high < 5 and outside.low > 5
