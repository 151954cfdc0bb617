"""The QwenLong-L1 report: paired bootstrap, eval-run loading, stage and difference tables, trends, plots."""

import json

import pytest

from repro.data.schema import Doc, Record, write_records
from repro.errors import ReproError
from repro.l1.report import default_pairs, trend_lines, write_l1_report
from repro.loong.scores import EvalScores, ItemScore, load_eval
from repro.reporting.bootstrap import is_noise, paired_bootstrap
from repro.reporting.plots import phase_changes, plot_scores_by_set, plot_training, read_step_rows, training_summary
from repro.reporting.tables import difference_table, stage_table, task_difference_table


def stage(*items: tuple[str, str, int | None, float | None]) -> EvalScores:
    """Items as (id, task, length_set, score)."""
    return EvalScores({i: ItemScore(score, task, length_set) for i, task, length_set, score in items})


# base vs SFT: set 1 scores [0, 100] -> [100, 100]; set 2 [50, unparsed] -> [50, 50].
BASE = stage(("a1", "qa", 1, 0.0), ("a2", "qa", 1, 100.0), ("b1", "docmath", 2, 50.0), ("b2", "docmath", 2, None))
SFT = stage(("a1", "qa", 1, 100.0), ("a2", "qa", 1, 100.0), ("b1", "docmath", 2, 50.0), ("b2", "docmath", 2, 50.0))


def test_bootstrap_identical_and_shift():
    a = [10.0, 35.0, 80.0, 0.0, 100.0]
    assert paired_bootstrap(a, a) == (0.0, 0.0, 0.0)
    assert paired_bootstrap(a, [x + 10 for x in a]) == (10.0, 10.0, 10.0)


def test_bootstrap_worked_case_and_determinism():
    # differences [0, 0, 0, 30]: resampled means lie in {0, 7.5, 15, 22.5, 30}; P(mean = 0) = (3/4)^4 > 2.5%.
    mean, low, high = paired_bootstrap([0, 0, 0, 0], [0, 0, 0, 30], seed=3)
    assert mean == 7.5
    assert low == 0.0
    assert low <= 7.5 <= high <= 30
    assert paired_bootstrap([0, 0, 0, 0], [0, 0, 0, 30], seed=3) == (mean, low, high)
    # differences [100, 0]: means 0, 50, 100 with chances 1/4, 1/2, 1/4, so the 2.5/97.5 percentiles are 0 and 100
    assert paired_bootstrap([0, 100], [100, 100], n_resamples=5000) == (50.0, 0.0, 100.0)


def test_bootstrap_bad_input():
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap([1, 2], [1])
    with pytest.raises(ValueError, match="no paired items"):
        paired_bootstrap([], [])
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap([1], [2], level=1.0)


def test_is_noise():
    assert is_noise(-1.0, 2.0) and is_noise(0.0, 5.0) and is_noise(0.0, 0.0)
    assert not is_noise(0.5, 2.0) and not is_noise(-3.0, -0.1)


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
    table = stage_table({"base": BASE, "SFT": SFT})
    lines = table.splitlines()
    assert lines[0] == "| Stage | Set1 (n=2) | Set2 (n=2) | QA (n=2) | DocMath (n=2) | Overall (n=4) |"
    # base: set 1 (0 + 100) / 2; set 2 has 50 and an unparsed judgement, left out: 50 / 1 over one item;
    # overall (0 + 100 + 50) / 3. Read as 0, the unparsed one would give 25.0 and 37.5 instead.
    assert lines[2] == "| base | 50.0 | 50.0 (n=1) | 50.0 | 50.0 (n=1) | 50.0 (n=3) |"
    assert lines[3] == "| SFT | 100.0 | 50.0 | 100.0 | 50.0 | 75.0 |"
    assert table.endswith("paired differences, as in Loong's metrics: base 1 of 4, SFT 0 of 4.\n")


def test_stage_table_uneven_counts():
    table = stage_table({"base": BASE, "short": stage(("a1", "qa", 1, 30.0))})
    assert "| short | 30.0 (n=1) | – | 30.0 (n=1) | – | 30.0 (n=1) |" in table


def test_difference_table_cells():
    table = difference_table({"base": BASE, "SFT": SFT}, [("base", "SFT")], n_resamples=5000)
    row = table.splitlines()[2].split(" | ")
    assert table.splitlines()[0] == "| Change | Set1 | Set2 | Overall | Paired items |"
    assert row[0] == "| base → SFT"
    # set 1 differences [100, 0]: each resampled mean hits both ends with chance 1/4. Set 2: b2 is unparsed in
    # base, so only b1 pairs (50 -> 50): [0]. Overall [100, 0, 0]: mean 33.3; a resample of three is all 0 with
    # chance (2/3)^3 = 30% and all 100 with chance 1/27 = 3.7%, both above 2.5%, so the interval is [0, 100].
    assert row[1] == "+50.0 [+0.0, +100.0] (noise)"
    assert row[2] == "+0.0 [+0.0, +0.0] (noise)"
    assert row[3] == "+33.3 [+0.0, +100.0] (noise)"
    assert row[4] == "3 |"


def test_task_difference_table_cells():
    """Two tasks, two items each: comparison goes 0, 0 -> 100, 100 (every resample +100); spotlight goes
    100, 100 -> 0, 100 (differences -100, 0: resampled means -100, -50 or 0, so the interval is [-100, 0])."""
    before = stage(("c1", "comparison", 1, 0.0), ("c2", "comparison", 1, 0.0), ("s1", "spotlight", 1, 100.0),
                   ("s2", "spotlight", 1, 100.0))  # fmt: skip
    after = stage(("c1", "comparison", 1, 100.0), ("c2", "comparison", 1, 100.0), ("s1", "spotlight", 1, 0.0),
                  ("s2", "spotlight", 1, 100.0))  # fmt: skip
    table = task_difference_table({"SFT": before, "DAPO": after}, [("SFT", "DAPO")], n_resamples=4000)
    header, _, row = table.strip().splitlines()
    assert header == "| Change | Spotlight Locating | Comparison |"
    assert row == "| SFT → DAPO | -50.0 [-100.0, +0.0] (noise) | +100.0 [+100.0, +100.0] |"


def test_difference_table_pairs_by_id():
    after = stage(("extra", "qa", 1, 0.0), ("a2", "qa", 1, 90.0), ("a1", "qa", 1, 10.0))
    table = difference_table({"base": BASE, "x": after}, [("base", "x")])
    # only a1 (0 -> 10) and a2 (100 -> 90) are in both: differences +10 and -10
    assert "| base → x | +0.0 [-10.0, +10.0] (noise) | – | +0.0 [-10.0, +10.0] (noise) | 2 |" in table
    with pytest.raises(ValueError, match="unknown stage"):
        difference_table({"base": BASE}, [("base", "SFT")])


def const(score_by_set: dict[int, float], n: int = 3) -> EvalScores:
    return stage(*((f"s{s}-{i}", "qa", s, v) for s, v in score_by_set.items() for i in range(n)))


def test_trend_lines_reproduced():
    stages = {
        "base": const({1: 0.0, 4: 0.0}),
        "SFT": const({1: 20.0, 4: 20.0}),
        "GRPO": const({1: 20.0, 4: 80.0}),
        "DAPO": const({1: 20.0, 4: 80.0}),
    }
    lines = trend_lines(stages)
    assert lines[0] == (
        "SFT > base: reproduced (SFT − base = +20.0 [+20.0, +20.0] over 6 paired items; paper: +0.8 (14B), +3.1 (32B))"
    )
    # GRPO − SFT differences: three 0s (set 1) and three 60s (set 4); P(no 60 drawn) = 1/64 < 2.5%, so the interval
    # ends at one 60 in six (10) and five in six (50)
    assert lines[1].startswith("RL > SFT (GRPO): reproduced (GRPO − SFT = +30.0 [+10.0, +50.0] over 6")
    assert lines[2].startswith("RL > SFT (DAPO): reproduced")
    assert lines[3] == (
        "larger RL gains on longer sets (GRPO − SFT): reproduced (Set4 +60.0 [+60.0, +60.0] vs Set1 +0.0 [+0.0, +0.0]; "
        "Set4 gain − Set1 gain = +60.0 [+60.0, +60.0]; paper: gains grow with input length)"
    )
    assert lines[5].startswith("DAPO ≈ GRPO: reproduced (|DAPO − GRPO| = 0.0, DAPO − GRPO = +0.0 [+0.0, +0.0]")
    assert "vs the paper's 0.4 points" in lines[5]
    assert len(lines) == 6


def test_trend_lines_not_reproduced():
    stages = {
        "base": const({1: 50.0, 2: 50.0}),
        "SFT": const({1: 40.0, 2: 40.0}),
        "GRPO": const({1: 60.0, 2: 40.0}),
        "DAPO": const({1: 90.0, 2: 90.0}),
    }
    lines = trend_lines(stages)
    assert lines[0].startswith("SFT > base: not reproduced (SFT − base = -10.0 [-10.0, -10.0]")
    assert lines[3].startswith("larger RL gains on longer sets (GRPO − SFT): not reproduced (Set2 +0.0")
    assert lines[5].startswith("DAPO ≈ GRPO: not reproduced (|DAPO − GRPO| = 40.0")


def test_trend_lines_inconclusive_and_missing():
    stages = {"base": BASE, "SFT": SFT, "DAPO": SFT}
    lines = trend_lines(stages)
    # b2 is unparsed in base: three pairs, differences [100, 0, 0]
    assert lines[0].startswith("SFT > base: inconclusive (interval contains 0) (SFT − base = +33.3 [+0.0, ")
    assert "over 3 paired items" in lines[0]
    assert lines[1].startswith("RL > SFT (DAPO): inconclusive (interval contains 0) (DAPO − SFT = +0.0 [+0.0, +0.0]")
    assert not any(line.startswith("DAPO ≈ GRPO") for line in lines)  # GRPO absent
    noisy = {
        "GRPO": stage(("a", "qa", 1, 0.0), ("b", "qa", 1, 10.0)),
        "DAPO": stage(("a", "qa", 1, 10.0), ("b", "qa", 1, 0.0)),
    }
    lines = trend_lines(noisy)
    assert lines[0].startswith("SFT > base: not checked")
    assert lines[-1].startswith("DAPO ≈ GRPO: inconclusive (interval contains 0 but reaches past ±0.4)")


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


def test_write_l1_report_end_to_end(tmp_path, records_file):
    scores = {"base": [0, 50, 20, 10], "SFT": [50, 50, 30, 10], "GRPO": [100, 100, 60, 50], "DAPO": [100, 90, 60, 60]}
    stages = {}
    for name, values in scores.items():
        judged = [{"id": f"r{i + 1}", "judge": "rule", "score": v} for i, v in enumerate(values)]
        write_run(tmp_path / "eval" / name, records_file, judged)
        stages[name] = tmp_path / "eval" / name
    write_rl_run(tmp_path / "rl" / "grpo", RL_ROWS)
    write_rl_run(tmp_path / "rl" / "dapo", RL_ROWS[:2])
    rl_runs = {"GRPO": tmp_path / "rl" / "grpo", "DAPO": tmp_path / "rl" / "dapo"}
    out = tmp_path / "report"
    report = write_l1_report(out, stages, rl_runs, ["tiny model, 4 RL steps", "judge: rule"])
    assert report == out / "report.md"
    text = report.read_text()
    assert text.startswith("# QwenLong-L1 reproduction report")
    assert "- tiny model, 4 RL steps" in text
    assert "| Stage | Set1 (n=1) | Set2 (n=1) | Set3 (n=1) | QA (n=3) | DocMath (n=1) | Overall (n=4) |" in text
    assert "| GRPO | 100.0 | 50.0 | 100.0 | 70.0 | 100.0 | 77.5 |" in text
    assert "| R1-Distill-Qwen-14B | 64.2 | 65.0 | 68.2 | 68.3 |" in text
    assert "| R1-Distill-Qwen-32B | 65.6 | 68.7 | 70.3 | 70.7 |" in text
    assert "The paper's numbers, from QwenLong-L1" in text
    assert "| base → SFT |" in text and "| GRPO → DAPO |" in text
    assert "- SFT > base: " in text and "- RL > SFT (DAPO): " in text and "- DAPO ≈ GRPO: " in text
    assert "- larger RL gains on longer sets (GRPO − SFT): " in text
    assert "| GRPO | 4 | 2 | 24 | 17 | 0.250 | 0.200 | 0.600 |" in text
    assert "![Training curves per step](training.png)" in text
    assert "![Score by length set](scores_by_set.png)" in text
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "scores_by_set.png", "training.png"]
    assert (out / "training.png").read_bytes().startswith(b"\x89PNG")


def dapo_vs_grpo(diffs: list[float]) -> tuple[EvalScores, EvalScores]:
    """GRPO scores 50 on each item, DAPO 50 + that item's difference (one set, one task)."""
    grpo = stage(*((f"i{k}", "qa", 1, 50.0) for k in range(len(diffs))))
    dapo = stage(*((f"i{k}", "qa", 1, 50.0 + d) for k, d in enumerate(diffs)))
    return grpo, dapo


# The verdict (repro/report.py, trend_lines): with the interval [low, high] of DAPO − GRPO and the margin g,
#   1. -g <= low and high <= g                     -> reproduced
#   2. else the interval excludes 0 and |mean| > g  -> not reproduced
#   3. else the interval contains 0                 -> inconclusive (contains 0 but reaches past ±g)
#   4. else (excludes 0, reaches past g, |mean| <= g) -> inconclusive (interval reaches past ±g)
# Two paired items with differences a <= b: a resample's mean is a, (a + b) / 2 or b with chances 1/4, 1/2, 1/4,
# so the 95% interval is exactly [a, b] and the mean (a + b) / 2. Margin 0.5 and differences in eighths are exact
# binary fractions, so "exactly at the margin" is exact.
DAPO_GRPO_CASES = [
    # both ends exactly at ±g: branch 1 compares with <=, so the edges are inside
    ([-0.5, 0.5], "reproduced", "ends exactly at -g and +g"),
    # a real difference (interval excludes 0) that stays within the margin is still "about equal"
    ([0.125, 0.375], "reproduced", "inside the margin, clear of 0"),
    ([0.5, 0.5], "reproduced", "a single point exactly at +g"),
    ([-0.5, -0.5], "reproduced", "a single point exactly at -g"),
    # one eighth past +g with 0 inside: branch 1 fails, branch 2 needs 0 outside, branch 3 holds
    ([-0.5, 0.625], "inconclusive (interval contains 0 but reaches past ±0.5)", "straddles 0 and +g"),
    # low exactly 0 counts as containing 0 (is_noise is inclusive)
    ([0.0, 0.75], "inconclusive (interval contains 0 but reaches past ±0.5)", "starts exactly at 0"),
    # wholly past +g, mean 0.875 > g: branch 2
    ([0.75, 1.0], "not reproduced", "outside the margin"),
    ([-1.0, -0.625], "not reproduced", "outside the margin below -g"),
    # straddles +g, clear of 0, mean 0.375 <= g: branches 1-3 fail, so branch 4
    ([0.125, 0.625], "inconclusive (interval reaches past ±0.5)", "straddles +g, mean inside"),
    # the mean exactly at g is not past it (branch 2 needs |mean| > g), so branch 4 again
    ([0.25, 0.75], "inconclusive (interval reaches past ±0.5)", "straddles +g, mean exactly g"),
    ([-0.75, -0.25], "inconclusive (interval reaches past ±0.5)", "straddles -g, mean exactly -g"),
    # one eighth more and the mean is past g: branch 2
    ([0.375, 0.75], "not reproduced", "straddles +g, mean 0.5625 past g"),
]


@pytest.mark.parametrize(("diffs", "verdict", "why"), DAPO_GRPO_CASES, ids=[c[2] for c in DAPO_GRPO_CASES])
def test_dapo_grpo_verdict_branches_and_margin_edges(diffs, verdict, why):
    grpo, dapo = dapo_vs_grpo(diffs)
    line = trend_lines({"GRPO": grpo, "DAPO": dapo}, paper_gap=0.5)[-1]
    mean, low, high = (diffs[0] + diffs[1]) / 2, min(diffs), max(diffs)
    assert line.startswith(f"DAPO ≈ GRPO: {verdict} (|DAPO − GRPO| = {abs(mean):.1f}, "), why
    assert f"DAPO − GRPO = {mean:+.1f} [{low:+.1f}, {high:+.1f}] over 2 paired items" in line
    assert "vs the paper's 0.5 points" in line


def test_dapo_grpo_verdict_at_the_papers_margin():
    """The default margin is the paper's 0.4 (DAPO − GRPO of its 14B and 32B models). Differences -0.4 and +0.4
    (scores 0.4 − 0 and 0 − 0.4, exact): the interval is [-0.4, +0.4], its ends at the margin, so branch 1;
    -0.5 and +0.5 reach past it with 0 inside, so branch 3."""
    grpo = stage(("a", "qa", 1, 0.0), ("b", "qa", 1, 0.4))
    dapo = stage(("a", "qa", 1, 0.4), ("b", "qa", 1, 0.0))
    assert trend_lines({"GRPO": grpo, "DAPO": dapo})[-1].startswith("DAPO ≈ GRPO: reproduced (|DAPO − GRPO| = 0.0")
    grpo = stage(("a", "qa", 1, 0.0), ("b", "qa", 1, 0.5))
    dapo = stage(("a", "qa", 1, 0.5), ("b", "qa", 1, 0.0))
    line = trend_lines({"GRPO": grpo, "DAPO": dapo})[-1]
    assert line.startswith("DAPO ≈ GRPO: inconclusive (interval contains 0 but reaches past ±0.4)")


def test_rl_over_sft_not_reproduced():
    """SFT scores 50 on three items; DAPO 40, 20, 40 (differences -10, -30, -10, mean -16.7). Every resample's
    mean lies in [-30, -10], so the interval excludes 0 and lies below it: RL scored lower than SFT beyond the
    noise, "not reproduced". GRPO 50, 50, 30 (differences 0, 0, -20) keeps 0 in its interval (all-0 resamples
    have chance (2/3)^3 = 30%): "inconclusive", not "not reproduced"."""
    sft = stage(("a", "qa", 1, 50.0), ("b", "qa", 1, 50.0), ("c", "qa", 1, 50.0))
    dapo = stage(("a", "qa", 1, 40.0), ("b", "qa", 1, 20.0), ("c", "qa", 1, 40.0))
    grpo = stage(("a", "qa", 1, 50.0), ("b", "qa", 1, 50.0), ("c", "qa", 1, 30.0))
    lines = trend_lines({"SFT": sft, "GRPO": grpo, "DAPO": dapo})
    dapo_line = next(line for line in lines if line.startswith("RL > SFT (DAPO)"))
    assert dapo_line.startswith("RL > SFT (DAPO): not reproduced (DAPO − SFT = -16.7 [-30.0, -10.0] over 3 paired")
    assert dapo_line.endswith("paper: +3.3 (14B), +2.0 (32B))")
    grpo_line = next(line for line in lines if line.startswith("RL > SFT (GRPO)"))
    assert grpo_line.startswith("RL > SFT (GRPO): inconclusive (interval contains 0) (GRPO − SFT = -6.7 [-20.0, +0.0]")
