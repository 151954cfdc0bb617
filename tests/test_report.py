"""The QwenLong-L1 report: eval-run loading, stage and difference tables over seeds, the paper's claims judged on
made-up per-item scores, plots, and the whole report with its summary.json."""

import json
import math

import pytest

from repro.data.schema import Doc, Record, write_records
from repro.errors import ReproError
from repro.l1.report import DAPO_GRPO_MARGIN, claims, default_pairs, write_l1_report
from repro.loong.scores import EvalScores, ItemScore, load_eval
from repro.reporting.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED
from repro.reporting.plots import phase_changes, plot_scores_by_set, plot_training, read_step_rows, training_summary
from repro.reporting.summary import check_summary
from repro.reporting.tables import difference_table, stage_table, task_difference_table

# What every paired claim line says about its interval, after "(N items[ x S seeds]; "
BCA95 = "BCa 95% interval, 4,000 bootstrap resamples over items (a drawn item brings all its seeds)"
BCA90 = BCA95.replace("95%", "90%")


def stage(*items: tuple[str, str, int | None, float | None]) -> EvalScores:
    """Items as (id, task, length_set, score)."""
    return EvalScores({i: ItemScore(score, task, length_set) for i, task, length_set, score in items})


def flat(score: float, n: int = 4, length_set: int = 1) -> EvalScores:
    """n qa items i0.. on one set, each scoring `score`."""
    return stage(*((f"i{k}", "qa", length_set, score) for k in range(n)))


def per_item(scores: list[float], length_set: int = 1) -> EvalScores:
    return stage(*((f"i{k}", "qa", length_set, s) for k, s in enumerate(scores)))


def by_set(score_by_set: dict[int, float], n: int = 3) -> EvalScores:
    """n qa items per length set, each scoring that set's score."""
    return stage(*((f"s{s}-{i}", "qa", s, v) for s, v in score_by_set.items() for i in range(n)))


# base vs SFT: set 1 scores [0, 100] -> [100, 100]; set 2 [50, unparsed] -> [50, 50].
BASE = stage(("a1", "qa", 1, 0.0), ("a2", "qa", 1, 100.0), ("b1", "docmath", 2, 50.0), ("b2", "docmath", 2, None))
SFT = stage(("a1", "qa", 1, 100.0), ("a2", "qa", 1, 100.0), ("b1", "docmath", 2, 50.0), ("b2", "docmath", 2, 50.0))
# a second SFT seed: a1 drops to 0 and b2 does not parse
SFT_SEED1 = stage(("a1", "qa", 1, 0.0), ("a2", "qa", 1, 100.0), ("b1", "docmath", 2, 50.0), ("b2", "docmath", 2, None))


def write_run(folder, data_path, judgements: list[dict]) -> None:
    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text(f"model:\n  source: tiny\neval:\n  data: {data_path}\n  judge: rule\n")
    (folder / "judgements.jsonl").write_text("".join(json.dumps(j) + "\n" for j in judgements))


def record(item_id: str, task: str, length_set: int | None) -> Record:
    return Record(
        id=item_id,
        source="test",
        task=task,
        docs=[Doc("d", "text")],
        question="q?",
        answer="a",
        length_set=length_set,
    )


@pytest.fixture
def records_file(tmp_path):
    path = tmp_path / "data" / "test.jsonl"
    path.parent.mkdir()
    write_records(
        path, [record("r1", "qa", 1), record("r2", "docmath", 3), record("r3", "qa", None), record("r4", "qa", 2)]
    )
    return path


def test_load_eval_joins_by_id(tmp_path, records_file, monkeypatch):
    monkeypatch.chdir(tmp_path)  # eval.data is relative to the current directory
    judged = [
        {"id": "r2", "judge": "rule", "score": 100},
        {"id": "r1", "judge": "llm", "score": None},
        {"id": "r3", "judge": "rule", "score": 42.5},
    ]
    write_run(tmp_path / "run", "data/test.jsonl", judged)
    (tmp_path / "run" / "judgements.jsonl").open("a").write('{"id": "r4", "sco')  # torn last line
    scores = load_eval(tmp_path / "run")
    # record-file order; r4 (torn, not judged) is left out
    assert scores.items == {
        "r1": ItemScore(None, "qa", 1),
        "r2": ItemScore(100.0, "docmath", 3),
        "r3": ItemScore(42.5, "qa", None),
    }
    assert list(scores.items) == ["r1", "r2", "r3"]
    assert scores.length_sets() == [1, 3]
    # r1's judgement did not parse: left out of the average (not read as 0) and counted
    assert scores.avg() == pytest.approx((100 + 42.5) / 2)
    assert scores.unparsed() == 1


def test_load_eval_errors(tmp_path, records_file):
    write_run(tmp_path / "run", records_file, [{"id": "r1", "score": 10}])
    (tmp_path / "run" / "judgements.jsonl").unlink()
    with pytest.raises(ReproError, match="judgements.jsonl"):
        load_eval(tmp_path / "run")
    write_run(tmp_path / "run2", records_file, [{"id": "zz", "score": 10}])
    with pytest.raises(ReproError, match="'zz' is not in"):
        load_eval(tmp_path / "run2")
    write_run(tmp_path / "run3", records_file, [{"id": "r1", "score": 140}, {"id": "r2", "score": 1}])
    with pytest.raises(ReproError, match=r"judgements.jsonl:1: 'score'"):
        load_eval(tmp_path / "run3")
    (tmp_path / "run4").mkdir()
    with pytest.raises(ReproError, match="recipe.yaml"):
        load_eval(tmp_path / "run4")
    write_run(tmp_path / "run5", tmp_path / "nowhere.jsonl", [])
    with pytest.raises(ReproError, match="nowhere.jsonl"):
        load_eval(tmp_path / "run5")


def test_stage_table_cells():
    table = stage_table({"base": [BASE], "SFT": [SFT]})
    lines = table.splitlines()
    assert lines[0] == "| Stage | Set1 (n=2) | Set2 (n=2) | QA (n=2) | DocMath (n=2) | Overall (n=4) |"
    # base: set 1 (0 + 100) / 2; set 2 has 50 and an unparsed judgement, left out: 50 / 1 over one item;
    # overall (0 + 100 + 50) / 3. Read as 0, the unparsed one would give 25.0 and 37.5 instead.
    assert lines[2] == "| base | 50.0 | 50.0 (n=1) | 50.0 | 50.0 (n=1) | 50.0 (n=3) |"
    assert lines[3] == "| SFT | 100.0 | 50.0 | 100.0 | 50.0 | 75.0 |"
    assert table.endswith("paired differences, as in Loong's metrics: base 1 of 4, SFT 0 of 4.\n")
    assert "training seeds" not in table  # one seed: nothing to say


def test_stage_table_uneven_counts():
    table = stage_table({"base": [BASE], "short": [stage(("a1", "qa", 1, 30.0))]})
    assert "| short | 30.0 (n=1) | – | 30.0 (n=1) | – | 30.0 (n=1) |" in table


def test_stage_table_over_two_seeds():
    """base has one run (seed-independent), counted once per seed; SFT has two. A cell pools (item, seed) pairs.

    Set1: base [0, 100] twice = 50.0 over 4; SFT [100, 100] + [0, 100] = 300 / 4 = 75.0. Set2: base b1 50 twice
    (b2 unparsed twice) = 50.0 over 2; SFT [50, 50] + [50] = 50.0 over 3, the column's most. Overall: base
    (0 + 100 + 50) x 2 / 6 = 50.0; SFT (100 + 100 + 50 + 50 + 0 + 100 + 50) / 7 = 450 / 7 = 64.3."""
    table = stage_table({"base": [BASE], "SFT": [SFT, SFT_SEED1]})
    lines = table.splitlines()
    assert lines[0] == "| Stage | Set1 (n=4) | Set2 (n=3) | QA (n=4) | DocMath (n=3) | Overall (n=7) |"
    assert lines[2] == "| base | 50.0 | 50.0 (n=2) | 50.0 | 50.0 (n=2) | 50.0 (n=6) |"
    assert lines[3] == "| SFT | 75.0 | 50.0 | 75.0 | 50.0 | 64.3 |"
    assert "over 2 training seeds (n counts item x seed)" in table
    assert table.endswith("as in Loong's metrics: base 2 of 8, SFT 1 of 8.\n")


def test_difference_table_cells():
    table = difference_table({"base": [BASE], "SFT": [SFT]}, [("base", "SFT")])
    row = table.splitlines()[2].split(" | ")
    assert table.splitlines()[0] == "| Change | Set1 | Set2 | Overall | Paired items |"
    assert row[0] == "| base → SFT"
    # set 1 differences [100, 0]: a resample's mean is 0, 50 or 100 with chances 1/4, 1/2, 1/4; symmetric, so BCa's
    # acceleration is 0 and its bias correction about 0: the 2.5% and 97.5% levels fall in the end masses.
    assert row[1] == "+50.0 [+0.0, +100.0]"
    # set 2: b2 is unparsed in base, so only b1 pairs (50 -> 50): one difference, 0, nothing to resample
    assert row[2] == "+0.0 [+0.0, +0.0]"
    # overall [100, 0, 0], mean 33.3: a resample of three is all 0 with chance (2/3)^3 = 29.6% and all 100 with
    # 1/27 = 3.7%. BCa (acceleration 0.068, z0 = Phi^-1(14/27) = 0.05) moves the levels to about 5.0% and 99.1%:
    # still inside both end masses, so the interval is [0, 100].
    assert row[3] == "+33.3 [+0.0, +100.0]"
    assert row[4] == "3 |"
    assert "BCa below 50 items" in table


def test_difference_table_averages_each_item_over_the_seeds():
    """SFT has two seeds, base one. An item pairs when parsed in base and in every SFT seed: a1, a2, b1 (b2 is
    unparsed in base). Per item, the seeds' differences averaged: a1 (100 + 0) / 2 = 50, a2 0, b1 0.
    Set 1 [50, 0]: as [100, 0] halved, [0, 50]; overall [50, 0, 0]: as [100, 0, 0] halved (BCa is
    scale-free), [0, 50]."""
    table = difference_table({"base": [BASE], "SFT": [SFT, SFT_SEED1]}, [("base", "SFT")])
    assert "| base → SFT | +25.0 [+0.0, +50.0] | +0.0 [+0.0, +0.0] | +16.7 [+0.0, +50.0] | 3 |" in table


def test_task_difference_table_cells():
    """Two tasks, two items each: comparison goes 0, 0 -> 100, 100 (every difference +100, nothing to resample);
    spotlight goes 100, 100 -> 0, 100 (differences -100, 0: resampled means -100, -50 or 0, so [-100, 0])."""
    before = stage(("c1", "comparison", 1, 0.0), ("c2", "comparison", 1, 0.0), ("s1", "spotlight", 1, 100.0),
                   ("s2", "spotlight", 1, 100.0))  # fmt: skip
    after = stage(("c1", "comparison", 1, 100.0), ("c2", "comparison", 1, 100.0), ("s1", "spotlight", 1, 0.0),
                  ("s2", "spotlight", 1, 100.0))  # fmt: skip
    table = task_difference_table({"SFT": [before], "DAPO": [after]}, [("SFT", "DAPO")])
    header, _, row = table.strip().splitlines()
    assert header == "| Change | Spotlight Locating | Comparison |"
    assert row == "| SFT → DAPO | -50.0 [-100.0, +0.0] | +100.0 [+100.0, +100.0] |"


def test_difference_table_pairs_by_id():
    after = stage(("extra", "qa", 1, 0.0), ("a2", "qa", 1, 90.0), ("a1", "qa", 1, 10.0))
    table = difference_table({"base": [BASE], "x": [after]}, [("base", "x")])
    # only a1 (0 -> 10) and a2 (100 -> 90) are in both: differences +10 and -10, resampled means -10, 0, +10
    assert "| base → x | +0.0 [-10.0, +10.0] | – | +0.0 [-10.0, +10.0] | 2 |" in table
    with pytest.raises(ValueError, match="unknown stage"):
        difference_table({"base": [BASE]}, [("base", "SFT")])


def test_claims_on_a_clear_table_are_reproduced():
    """Three items on set 1 and three on set 4: base 0 everywhere, SFT 20, GRPO and DAPO 20 on set 1 and 80 on set 4.

    SFT − base is +20 on every item: no spread, so the interval is the point and the p-values are 0 (for) and 1
    (against). GRPO − SFT is [0, 0, 0, 60, 60, 60]: a resample's mean is 10 x (number of set-4 items drawn); no
    set-4 item with chance (1/2)^6 = 1/64 = 1.6% < 2.5%, at most one with 7/64 = 11%, so the interval is
    [10, 50]; about 1/64 of the resamples reach 0, which is its one-sided p. The gain on set 4 (60 per item) less
    the gain on set 1 (0) is +60 with no spread; DAPO − GRPO is 0 on every item, inside ±5.
    Holm over the six primaries: four p-values of 0 take the multipliers 6 to 3, the two RL ones (tied at 1/64)
    2 and 1, so both become 2/64 = 0.031 < 0.05."""
    stages = {
        "base": [by_set({1: 0.0, 4: 0.0})],
        "SFT": [by_set({1: 20.0, 4: 20.0})],
        "GRPO": [by_set({1: 20.0, 4: 80.0})],
        "DAPO": [by_set({1: 20.0, 4: 80.0})],
    }
    results = claims(stages)
    assert [r.claim.name for r in results] == [
        "SFT > base",
        "RL > SFT (GRPO)",
        "RL > SFT (DAPO)",
        "larger RL gains on longer sets (GRPO − SFT): Set4 gain − Set1 gain",
        "larger RL gains on longer sets (DAPO − SFT): Set4 gain − Set1 gain",
        "DAPO ≈ GRPO",
    ]
    assert all(r.claim.primary for r in results)
    assert [r.verdict for r in results] == [REPRODUCED] * 6
    assert results[0].line() == (
        f"SFT > base [primary]: reproduced; difference +20.0 [+20.0, +20.0] (6 items; {BCA95}); "
        "Holm-adjusted p = 0 for, 1 against; paper: +0.8 (14B), +3.1 (32B)"
    )
    assert results[1].line().startswith(f"RL > SFT (GRPO) [primary]: reproduced; difference +30.0 [+10.0, +50.0] "
                                        f"(6 items; {BCA95}); Holm-adjusted p = 0.03")  # fmt: skip
    assert results[1].evidence.p_for == pytest.approx(1 / 64, abs=0.002)
    assert results[1].p_adjusted == results[2].p_adjusted == pytest.approx(2 / 64, abs=0.004)
    assert results[3].line() == (
        "larger RL gains on longer sets (GRPO − SFT): Set4 gain − Set1 gain [primary]: reproduced; difference +60.0 "
        "[+60.0, +60.0] (3 + 3 items of the two sets; BCa 95% interval, 4,000 resamples, each set's items on their "
        "own); Holm-adjusted p = 0 for, 1 against; paper: gains grow with input length"
    )
    assert results[5].line() == (
        f"DAPO ≈ GRPO [primary]: reproduced; difference +0.0 [+0.0, +0.0] against a margin of 5 (6 items; {BCA90}); "
        "Holm-adjusted p = 0 for, 1 against; paper: within 0.4 points (+0.1 (14B), +0.4 (32B))"
    )


def test_rl_over_sft_not_reproduced_when_every_item_drops():
    """SFT scores 50 on four items; DAPO 40, 20, 40, 20: differences -10, -30, -10, -30. Every resampled mean lies
    in [-30, -10] (all four -30 with chance 1/16 > 2.5%, so the interval is exactly that), so no resample reaches 0:
    the p against the claim is the bootstrap's floor, about 1/4001 (a symmetric sample: acceleration 0, z0 about
    0), and Holm's x3 (GRPO, DAPO and DAPO ≈ GRPO are checked) keeps it far below 0.05. Not reproduced, and a
    not-reproduced line gives no power figure."""
    sft, dapo = flat(50.0), per_item([40.0, 20.0, 40.0, 20.0])
    grpo = per_item([50.0, 50.0, 30.0, 50.0])
    results = {r.claim.name: r for r in claims({"SFT": [sft], "GRPO": [grpo], "DAPO": [dapo]})}
    r = results["RL > SFT (DAPO)"]
    assert r.verdict == NOT_REPRODUCED
    assert r.line().startswith(f"RL > SFT (DAPO) [primary]: not reproduced; difference -20.0 [-30.0, -10.0] "
                               f"(4 items; {BCA95}); Holm-adjusted p = 1 for, ")  # fmt: skip
    assert r.p_against_adjusted < 3 * 4 / 4001
    assert r.line().endswith("; paper: +3.3 (14B), +2.0 (32B)")
    assert results["SFT > base"].evidence is None
    assert results["SFT > base"].line() == (
        "SFT > base [primary]: not checked (needs stages 'base' and 'SFT'; have SFT, GRPO, DAPO); "
        "paper: +0.8 (14B), +3.1 (32B)"
    )


def test_an_inconclusive_rl_claim_gives_the_power_it_had_and_the_items_it_would_need():
    """GRPO − SFT = [0, 0, -20, 0]: all four draws avoid the -20 item with chance (3/4)^4 = 32%, so about a third of
    the resamples sit at 0 (the interval's top) and neither direction is shown: inconclusive.

    sd of [0, 0, -20, 0] = sqrt((3 x 5^2 + 15^2) / 3) = 10, se = 10 / sqrt(4) = 5, 3 degrees of freedom; one primary
    claim is checked (no base, no second RL stage, one length set), so alpha is 0.05:
    MDE = (t_0.95,3 + t_0.80,3) x 5 = (2.3534 + 0.9785) x 5 = 16.66. The paper's smaller RL gain is +1.6
    (32B: 70.3 − 68.7): ((z_0.95 + z_0.80) x sd / 1.6)^2 = ((1.6449 + 0.8416) x 10 / 1.6)^2 = 241.5 -> 242 items."""
    (r,) = [r for r in claims({"SFT": [flat(50.0)], "GRPO": [per_item([50.0, 50.0, 30.0, 50.0])]})
            if r.evidence is not None]  # fmt: skip
    assert r.claim.name == "RL > SFT (GRPO)" and r.verdict == INCONCLUSIVE
    assert r.evidence.mean == -5.0 and r.evidence.high == 0.0 and -20.0 <= r.evidence.low < -5.0
    assert r.alpha == 0.05
    assert r.mde == pytest.approx((2.3534 + 0.9785) * 5, abs=1e-3)
    assert r.needed == math.ceil(((1.6449 + 0.8416) * 10 / 1.6) ** 2) == 242
    assert r.line().endswith(
        "; paper: +3.2 (14B), +1.6 (32B); the smallest effect this run could detect (power 80%, one-sided alpha "
        "0.05): 16.7 points; to detect the paper's +1.6: about 242 items"
    )


def dapo_vs_grpo(diffs: list[float]) -> dict[str, list[EvalScores]]:
    """GRPO scores 50 on each item, DAPO 50 + that item's difference (one set, one task, one seed)."""
    return {"GRPO": [flat(50.0, len(diffs))], "DAPO": [per_item([50.0 + d for d in diffs])]}


# DAPO ≈ GRPO against its ±5 margin by two one-sided tests. Two items with differences d1 <= d2: a resample's mean
# is d1, (d1 + d2) / 2 or d2 with chances 1/4, 1/2, 1/4 (symmetric: BCa moves nothing), so the 90% interval TOST
# reads is exactly [d1, d2]. "diff <= -5" is rejected only when no resample is at or below -5 (its p is then the
# bootstrap's floor, about 1/4001); an end at or past -5 puts at least a quarter of the resamples there (p about
# 1/4 or more). Likewise at +5, and for "not reproduced" with the interval wholly past one side.
DAPO_GRPO_CASES = [
    ([-2.0, 3.0], REPRODUCED, "inside the margin"),
    ([-4.5, 4.5], REPRODUCED, "half a point inside each end"),
    ([-5.0, 5.0], INCONCLUSIVE, "ends exactly at the margin: a quarter of the resamples sit at each"),
    ([-2.0, 12.0], INCONCLUSIVE, "straddles +5"),
    ([8.0, 12.0], NOT_REPRODUCED, "wholly above +5"),
    ([-12.0, -6.0], NOT_REPRODUCED, "wholly below -5"),
    ([5.0, 9.0], INCONCLUSIVE, "one end exactly at +5"),
]


@pytest.mark.parametrize(("diffs", "verdict", "why"), DAPO_GRPO_CASES, ids=[c[2] for c in DAPO_GRPO_CASES])
def test_dapo_grpo_equivalence_inside_outside_and_straddling(diffs, verdict, why):
    assert DAPO_GRPO_MARGIN == 5.0
    (r,) = [r for r in claims(dapo_vs_grpo(diffs)) if r.evidence is not None]
    assert r.claim.name == "DAPO ≈ GRPO" and r.verdict == verdict, why
    mean = (diffs[0] + diffs[1]) / 2
    assert r.line().startswith(
        f"DAPO ≈ GRPO [primary]: {verdict}; difference {mean:+.1f} [{diffs[0]:+.1f}, {diffs[1]:+.1f}] against a "
        f"margin of 5 (2 items; {BCA90}); "
    )
    assert r.line().count("paper: within 0.4 points (+0.1 (14B), +0.4 (32B))") == 1


def test_dapo_grpo_inconclusive_line_gives_the_margin_this_run_could_confirm():
    """Differences [-2, 12]: sd = 14 / sqrt(2) = 9.8995, se = 9.8995 / sqrt(2) = 7, 1 degree of freedom, alpha 0.05
    (the only primary claim checked). TOST at 80% power with no true difference needs the margin
    (t_0.95,1 + t_0.90,1) x se = (6.3138 + 3.0777) x 7 = 65.74; to confirm ±5 it needs
    ((z_0.95 + z_0.90) x sd / 5)^2 = ((1.6449 + 1.2816) x 9.8995 / 5)^2 = 33.6 -> 34 items."""
    (r,) = [r for r in claims(dapo_vs_grpo([-2.0, 12.0])) if r.evidence is not None]
    assert r.mde == pytest.approx((6.3138 + 3.0777) * 7, abs=1e-2)
    assert r.needed == math.ceil(((1.6449 + 1.2816) * 14 / math.sqrt(2) / 5) ** 2) == 34
    assert r.line().endswith("the smallest margin this run could confirm (power 80%): 65.7 points; "
                             "to confirm ±5: about 34 items")  # fmt: skip


def test_larger_gains_on_longer_sets_by_the_gap_between_the_sets():
    """The gain on the longest set against the gain on the shortest, each set's items resampled on their own.

    SFT 40 on every item. GRPO: set 1 gains [0, 10, 20] (mean 10), set 2 gains [60, 40, 50] (mean 50): the gap is
    +40, and every resampled gap lies in [40 − 20, 60 − 0] = [20, 60], clear of 0: reproduced. DAPO gains 20 on
    set 1 and 0 on set 2 on every item: the gap is -20 with no spread: not reproduced."""
    sft = stage(*((f"a{k}", "qa", 1, 40.0) for k in range(3)), *((f"b{k}", "qa", 2, 40.0) for k in range(3)))
    grpo = stage(("a0", "qa", 1, 40.0), ("a1", "qa", 1, 50.0), ("a2", "qa", 1, 60.0),
                 ("b0", "qa", 2, 100.0), ("b1", "qa", 2, 80.0), ("b2", "qa", 2, 90.0))  # fmt: skip
    dapo = stage(*((f"a{k}", "qa", 1, 60.0) for k in range(3)), *((f"b{k}", "qa", 2, 40.0) for k in range(3)))
    results = {r.claim.name: r for r in claims({"SFT": [sft], "GRPO": [grpo], "DAPO": [dapo]})}
    gap = results["larger RL gains on longer sets (GRPO − SFT): Set2 gain − Set1 gain"]
    assert gap.verdict == REPRODUCED
    assert gap.evidence.mean == pytest.approx(40.0) and 20.0 <= gap.evidence.low < 40.0 < gap.evidence.high <= 60.0
    # se = sqrt(var([0, 10, 20]) / 3 + var([60, 40, 50]) / 3) = sqrt(100 / 3 + 100 / 3)
    assert gap.evidence.se == pytest.approx(math.sqrt(200 / 3)) and gap.evidence.n == 6
    worse = results["larger RL gains on longer sets (DAPO − SFT): Set2 gain − Set1 gain"]
    assert worse.verdict == NOT_REPRODUCED
    assert (worse.evidence.mean, worse.evidence.low, worse.evidence.high) == (-20.0, -20.0, -20.0)


def test_larger_gains_not_checked_without_two_sets_or_an_sft_stage():
    one_set = {r.claim.name: r for r in claims({"SFT": [flat(40.0)], "GRPO": [flat(60.0)]})}
    assert one_set["larger RL gains on longer sets (GRPO − SFT)"].line() == (
        "larger RL gains on longer sets (GRPO − SFT) [primary]: not checked (needs two length sets); "
        "paper: gains grow with input length"
    )
    # two sets, but the longer one has a single item: no spread to measure on it
    sft = stage(("a0", "qa", 1, 40.0), ("a1", "qa", 1, 40.0), ("b0", "qa", 4, 40.0))
    grpo = stage(("a0", "qa", 1, 50.0), ("a1", "qa", 1, 50.0), ("b0", "qa", 4, 90.0))
    (gain,) = [r for r in claims({"SFT": [sft], "GRPO": [grpo]}) if r.claim.name.startswith("larger")]
    assert gain.evidence is None and "fewer than 2 paired items on Set1 or Set4" in gain.line()
    (gain,) = [r for r in claims({"base": [sft], "GRPO": [grpo]}) if r.claim.name.startswith("larger")]
    assert "(needs an SFT stage)" in gain.line()


def test_a_stage_with_two_seeds_shows_each_seeds_own_difference():
    """base has one run (50 on four items); SFT two seeds: seed 0 scores 70 on every item (+20), seed 1 scores 40
    (-10). The seeds disagree in sign; per item, averaged over the seeds, the gain is (20 − 10) / 2 = +5 on every
    item, so the claim is decided on +5 with no spread over items, and the line shows each seed's own +20 and -10
    so the flip is in plain sight."""
    (r,) = [r for r in claims({"base": [flat(50.0)], "SFT": [flat(70.0), flat(40.0)]}) if r.evidence is not None]
    assert r.evidence.per_seed == (20.0, -10.0)
    assert r.line() == (
        f"SFT > base [primary]: reproduced; difference +5.0 [+5.0, +5.0] (4 items x 2 seeds; {BCA95}); "
        "Holm-adjusted p = 0 for, 1 against; per seed: +20.0, -10.0; paper: +0.8 (14B), +3.1 (32B)"
    )


def test_default_pairs():
    assert default_pairs(["base", "SFT", "DAPO", "GRPO"]) == [
        ("base", "SFT"),
        ("SFT", "DAPO"),
        ("SFT", "GRPO"),
        ("GRPO", "DAPO"),
    ]
    assert default_pairs(["base", "grpo"]) == [("base", "grpo")]


def write_rl_run(folder, rows: list[dict]) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


RL_ROWS = [
    {"step": 1, "reward_mean": 0.2, "response_len": 300, "entropy": 1.1, "filtered_share": 0.5, "phase": 0.0,
     "groups_generated": 8, "groups_used": 4},
    {"step": 2, "reward_mean": 0.3, "response_len": 320, "entropy": 1.0, "filtered_share": 0.25, "phase": 0.0,
     "groups_generated": 8, "groups_used": 6},
    {"step": 3, "reward_mean": 0.4, "response_len": 350, "filtered_share": 0.25, "groups_generated": 4,
     "groups_used": 3},
    {"step": 4, "reward_mean": 0.6, "response_len": 380, "filtered_share": 0.0, "phase": 1.0,
     "groups_generated": 4, "groups_used": 4},
]  # fmt: skip


def test_training_rows_and_summary(tmp_path):
    write_rl_run(tmp_path / "dapo", RL_ROWS)
    (tmp_path / "dapo" / "metrics.jsonl").open("a").write('{"step": 5, "rew')  # torn last line
    rows = read_step_rows(tmp_path / "dapo")
    assert len(rows) == 4
    assert phase_changes(rows) == [4.0]  # step 3 has no phase: unknown, not a change
    table = training_summary({"dapo": tmp_path / "dapo"})
    # groups 24 generated / 17 used; filtered share (0.5 + 0.25 + 0.25 + 0) / 4; quarters are steps 1 and 4
    assert "| dapo | 4 | 2 | 24 | 17 | 0.250 | 0.200 | 0.600 |" in table
    with pytest.raises(ReproError, match="metrics.jsonl"):
        read_step_rows(tmp_path / "nothing")


def test_plots_write_pngs_with_missing_keys(tmp_path):
    write_rl_run(tmp_path / "grpo", RL_ROWS)
    write_rl_run(tmp_path / "bare", [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.4}])
    out = plot_training({"grpo": tmp_path / "grpo", "bare": tmp_path / "bare"}, tmp_path / "out" / "training.png")
    assert out.read_bytes().startswith(b"\x89PNG")
    out = plot_scores_by_set({"base": BASE, "SFT": SFT, "none": stage(("x", "qa", None, 10.0))}, tmp_path / "s.png")
    assert out.read_bytes().startswith(b"\x89PNG")
    assert plot_scores_by_set({"none": stage(("x", "qa", None, 10.0))}, out).read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["training.png"]  # no temp file left


def test_write_l1_report_end_to_end_with_two_seeds(tmp_path, records_file):
    """Records r1 (qa, set 1), r2 (docmath, set 3), r3 (qa, no set), r4 (qa, set 2). base is evaluated once (greedy,
    seed-independent); SFT, GRPO and DAPO once per training seed (0 and 1)."""
    scores = {
        "base": [[0, 50, 20, 10]],
        "SFT": [[50, 50, 30, 10], [30, 70, 50, 30]],
        "GRPO": [[100, 100, 80, 60], [60, 100, 80, 60]],  # SFT + 50 on every item in seed 0, + 30 in seed 1
        "DAPO": [[100, 100, 80, 60], [60, 100, 80, 60]],
    }
    stages = {}
    for name, runs in scores.items():
        stages[name] = []
        for seed, values in enumerate(runs):
            judged = [{"id": f"r{i + 1}", "judge": "rule", "score": v} for i, v in enumerate(values)]
            write_run(tmp_path / "eval" / f"{name}-{seed}", records_file, judged)
            stages[name].append(tmp_path / "eval" / f"{name}-{seed}")
    write_rl_run(tmp_path / "rl" / "grpo", RL_ROWS)
    write_rl_run(tmp_path / "rl" / "dapo", RL_ROWS[:2])
    write_rl_run(tmp_path / "sft", [{"step": 1, "loss": 2.0}, {"step": 2, "loss": None}, {"step": 3, "loss": 1.5}])
    rl_runs = {"GRPO": tmp_path / "rl" / "grpo", "DAPO": tmp_path / "rl" / "dapo"}
    out = tmp_path / "report"
    report = write_l1_report(out, stages, rl_runs, ["tiny model, 4 RL steps", "judge: rule"], profile="cpu-long",
                             seeds=(0, 1), timings_s={"sft": 12.34, "rl": 20.0}, sft_run=tmp_path / "sft")  # fmt: skip
    assert report == out / "report.md"
    text = report.read_text()
    assert text.startswith("# QwenLong-L1 reproduction report")
    assert "- tiny model, 4 RL steps" in text
    # n counts item x seed; base's single run counts once per seed
    assert "| Stage | Set1 (n=2) | Set2 (n=2) | Set3 (n=2) | QA (n=6) | DocMath (n=2) | Overall (n=8) |" in text
    # GRPO: set 1 (100 + 60) / 2, set 2 (60 + 60) / 2, set 3 100; QA (100 + 80 + 60 + 60 + 80 + 60) / 6 = 73.3;
    # overall (340 + 300) / 8 = 80.0
    assert "| GRPO | 80.0 | 60.0 | 100.0 | 73.3 | 100.0 | 80.0 |" in text
    assert "| base | 0.0 | 10.0 | 50.0 | 10.0 | 50.0 | 20.0 |" in text
    assert "| R1-Distill-Qwen-14B | 64.2 | 65.0 | 68.2 | 68.3 |" in text
    assert "The paper's numbers, from QwenLong-L1" in text
    assert "| base → SFT |" in text and "| GRPO → DAPO |" in text
    # GRPO − SFT: +50 on every item in seed 0 and +30 in seed 1: +40 per item, no spread
    assert (f"- RL > SFT (GRPO) [primary]: reproduced; difference +40.0 [+40.0, +40.0] (4 items x 2 seeds; {BCA95}); "
            "Holm-adjusted p = 0 for, 1 against; per seed: +50.0, +30.0; paper: +3.2 (14B), +1.6 (32B)") in text
    # each length set holds one item: no gap to measure
    assert ("- larger RL gains on longer sets (GRPO − SFT) [primary]: not checked (fewer than 2 paired items on Set1 "
            "or Set3)") in text  # fmt: skip
    assert "Verdicts: one-sided tests at alpha 0.05 with Holm's correction over the 4 primary claims checked" in text
    assert "| GRPO | 4 | 2 | 24 | 17 | 0.250 | 0.200 | 0.600 |" in text
    assert "- evaluation `SFT`: " + ", ".join(f"`{tmp_path / 'eval' / f'SFT-{s}'}`" for s in (0, 1)) in text
    for link in ("(claims.png)", "(scores_by_set.png)", "(sft_loss.png)", "(training.png)", "(rl_steps.png)",
                 "[items.md](items.md)"):  # fmt: skip
        assert link in text
    assert sorted(p.name for p in out.iterdir()) == [
        "claims.png", "items.md", "report.md", "rl_steps.png", "scores_by_set.png", "sft_loss.png", "summary.json",
        "training.png",
    ]  # fmt: skip
    for png in out.glob("*.png"):
        assert png.read_bytes().startswith(b"\x89PNG")

    summary = json.loads((out / "summary.json").read_text())
    assert check_summary(summary) == []
    assert (summary["paper"], summary["profile"], summary["seeds"]) == ("l1", "cpu-long", [0, 1])
    # base: (0 + 50 + 20 + 10) / 4 = 20.0, its one run counted for both seeds: n 8; qa (0 + 20 + 10) / 3
    assert summary["scores"]["base"] == {
        "overall": 20.0, "n": 8, "by_set": {"1": 0.0, "2": 10.0, "3": 50.0}, "by_task": {"qa": 10.0, "docmath": 50.0}
    }  # fmt: skip
    # SFT: (140 + 180) / 8
    assert (summary["scores"]["SFT"]["overall"], summary["scores"]["SFT"]["n"]) == (40.0, 8)
    assert [t["claim"] for t in summary["trends"]] == [
        "SFT > base", "RL > SFT (GRPO)", "RL > SFT (DAPO)", "larger RL gains on longer sets (GRPO − SFT)",
        "larger RL gains on longer sets (DAPO − SFT)", "DAPO ≈ GRPO",
    ]  # fmt: skip
    # no spread over items: the interval is the point and the smallest detectable effect 0
    assert summary["trends"][1] == {
        "claim": "RL > SFT (GRPO)", "primary": True, "verdict": "reproduced", "mean": 40.0, "low": 40.0,
        "high": 40.0, "n": 4, "mde": 0.0, "paper": "+3.2 (14B), +1.6 (32B)",
    }  # fmt: skip
    gap = summary["trends"][3]
    assert (gap["verdict"], gap["n"], gap["mean"], gap["mde"]) == ("inconclusive", 0, None, None)  # not checked
    # SFT − base per item, over the seeds: [(50 + 30) / 2, (0 + 20) / 2, (10 + 30) / 2, (0 + 20) / 2] = [40, 10,
    # 20, 10]: mean 20, every item gains, so every resampled mean lies in [10, 40]
    sft_base = summary["trends"][0]
    assert sft_base["verdict"] == "reproduced" and sft_base["mean"] == 20.0
    assert 10.0 <= sft_base["low"] < 20.0 < sft_base["high"] <= 40.0
    assert summary["trends"][5]["verdict"] == "reproduced" and summary["trends"][5]["mean"] == 0.0
    assert summary["timings_s"] == {"sft": 12.3, "rl": 20.0} and summary["total_s"] == 32.3
    with pytest.raises(ReproError, match="at least one evaluation run"):
        write_l1_report(tmp_path / "none", {}, {}, [])
