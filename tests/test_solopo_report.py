"""The SoLoPO report: comparison pairs, the paper's claims judged (SoLo-X > X long per algorithm, SoLo cheaper from
timed repeats), efficiency ratios, plots, the whole report with its summary.json."""

from __future__ import annotations

import json
import math

import pytest

from repro.data.schema import Doc, Record, write_records
from repro.errors import ReproError
from repro.loong.scores import EvalScores, ItemScore
from repro.reporting.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED
from repro.reporting.stats import mann_whitney_p
from repro.reporting.summary import check_summary
from repro.solopo.report import (
    PAPER_EFFICIENCY,
    cheaper_claims,
    check_efficiency,
    claims,
    efficiency_tables,
    paper_delta,
    plot_po_training,
    plot_stage_scores,
    po_training_summary,
    solo_claims,
    solopo_pairs,
    write_solopo_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TASKS = ("qa", "qa", "docmath", "docmath")
BCA95 = "BCa 95% interval, 4,000 bootstrap resamples over items (a drawn item brings all its seeds)"
MANN_WHITNEY = "5 and 5 repeats; ratio of medians, range over the repeats; exact Mann-Whitney"

# Per-item long-context scores, items r1..r4 (TASKS above). Paired differences solopo − long:
#   DPO   [100, 50, 50, 50]:     every resampled mean >= 50, clear of 0            -> reproduced
#   SimPO [-100, -50, -50, -50]: every resampled mean <= -50                       -> not reproduced
#   ORPO  [100, 0, 0, 100]:      four 0s drawn with chance 1/16, so about 6% of the resamples sit at 0: its p is
#                                about 1/16, above 0.05 even before Holm           -> inconclusive
LONG_SCORES = {
    "SFT": [0, 50, 0, 0],
    "DPO long": [0, 50, 0, 50],
    "DPO solopo": [100, 100, 50, 100],
    "SimPO long": [100, 50, 100, 50],
    "SimPO solopo": [0, 0, 50, 0],
    "ORPO long": [0, 100, 0, 0],
    "ORPO solopo": [100, 100, 0, 100],
}


def stage(scores: list[float | None]) -> EvalScores:
    return EvalScores({f"r{i + 1}": ItemScore(s, TASKS[i], None) for i, s in enumerate(scores)})


def record(item_id: str, task: str) -> Record:
    return Record(id=item_id, source="test", task=task, docs=[Doc("d", "text")], question="q?", answer="a")


def write_eval(folder, data_path, scores: list[float | None]) -> None:
    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text(f"model:\n  source: tiny\neval:\n  data: {data_path}\n  judge: rule\n")
    judged = [{"id": f"r{i + 1}", "judge": "rule", "score": s} for i, s in enumerate(scores)]
    (folder / "judgements.jsonl").write_text("".join(json.dumps(j) + "\n" for j in judged))


def write_train_run(folder, rows: list[dict]) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def records_file(tmp_path):
    path = tmp_path / "data" / "long.jsonl"
    path.parent.mkdir()
    write_records(path, [record(f"r{i + 1}", task) for i, task in enumerate(TASKS)])
    return path


def efficiency_at(length: int, solo: tuple[float, float], vanilla: tuple[float, float], kit: tuple[float, float]):
    """Rows (step_s, peak_mib) at one long length: solopo (shared prefix), long per-sample, long shared prefix."""
    return [
        {"mode": "solopo", "forward": "shared prefix", "long_tokens": length, "short_tokens": length // 8,
         "step_s": solo[0], "peak_mib": solo[1]},
        {"mode": "long", "forward": "per-sample", "long_tokens": length, "short_tokens": length // 8,
         "step_s": vanilla[0], "peak_mib": vanilla[1]},
        {"mode": "long", "forward": "shared prefix", "long_tokens": length, "short_tokens": length // 8,
         "step_s": kit[0], "peak_mib": kit[1]},
    ]  # fmt: skip


def with_repeats(rows: list[dict], mode: str, forward: str, length: int, steps: list[float], peaks: list[float]):
    """rows with the (mode, forward) row at `length` given its timed repeats (the median as step_s and peak_mib)."""
    for row in rows:
        if (row["mode"], row["forward"], row["long_tokens"]) == (mode, forward, length):
            row.update(step_s=sorted(steps)[2], peak_mib=sorted(peaks)[2], step_s_repeats=steps, peak_mib_repeats=peaks)
    return rows


# at 8192 (the longest) the claim's two cases ran 5 times each: solopo steps around 2.0 s (1.8-2.2) at 1000 MiB,
# per-sample long around 4.0 s (3.8-4.2) at 4000 MiB; shared-prefix long once, 2.5 s and 800 MiB
CLAIM_ROWS = efficiency_at(4096, (1.0, 500.0), (1.5, 1000.0), (1.0, 400.0)) + efficiency_at(
    8192, (2.0, 1000.0), (4.0, 4000.0), (2.5, 800.0)
)
with_repeats(CLAIM_ROWS, "solopo", "shared prefix", 8192, [2.0, 1.9, 2.1, 1.8, 2.2], [1000.0] * 5)
with_repeats(CLAIM_ROWS, "long", "per-sample", 8192, [4.0, 3.9, 4.1, 3.8, 4.2], [4000.0] * 5)
EFFICIENCY = {
    "device": "test GPU",
    "rows": CLAIM_ROWS,
    "cap_mib": 80000.0,
    "max_long_tokens": {"solopo": 16384, "long (per-sample)": 8192, "long (shared prefix)": 12288},
}


def test_solopo_pairs_order_and_presence():
    names = ["SFT", "DPO solopo", "DPO long", "DPO expand_long", "DPO short", "simpo SOLOPO", "ORPO long"]
    assert solopo_pairs(names) == [
        ("DPO long", "DPO solopo"),
        ("SFT", "DPO solopo"),
        ("SFT", "DPO long"),
        ("DPO long", "DPO expand_long"),
        ("DPO expand_long", "DPO solopo"),
        ("SFT", "simpo SOLOPO"),  # matched case-insensitively, spelled as given
        ("SFT", "ORPO long"),
    ]
    assert solopo_pairs(["DPO solopo", "DPO long"]) == [("DPO long", "DPO solopo")]
    assert solopo_pairs(["SFT", "DPO short"]) == []


def test_paper_delta():
    # SoLo-X − X long from the paper's table: DPO 47.8 − 46.9, 62.8 − 62.2; ORPO 49.5 − 45.3, 65.1 − 55.1
    assert paper_delta("DPO") == "+0.9 LongBench v1 QA, +0.6 RULER QA"
    assert paper_delta("SimPO") == "+3.8 LongBench v1 QA, +6.4 RULER QA"
    assert paper_delta("ORPO") == "+4.2 LongBench v1 QA, +10.0 RULER QA"


def long_stages(scores: dict[str, list[float | None]]) -> dict[str, list[EvalScores]]:
    return {name: [stage(values)] for name, values in scores.items()}


def test_solo_beats_long_per_algorithm():
    """With the efficiency measured, five primary claims are judged (three algorithms, time, memory).

    DPO: four draws from [100, 50, 50, 50]: the mean is 50 + 12.5 x (number of 100s drawn), never below 50; no 100
    drawn with chance (3/4)^4 = 32%, so the interval starts at 50. SimPO is its mirror image. ORPO: [100, 0, 0, 100]
    draws four 0s with chance 1/16, so the interval is [0, 100] and its p about 1/16; Holm over the five p-values
    for (DPO ~0, time 1/252, memory 1/252, ORPO ~1/16, SimPO ~1) gives ORPO the multiplier 2: about 0.125.
    Its power: sd of [100, 0, 0, 100] = sqrt(4 x 50^2 / 3) = 57.735, se 57.735 / 2 = 28.868, 3 degrees of freedom,
    alpha 0.05 / 5 = 0.01: MDE = (t_0.99,3 + t_0.80,3) x se = (4.5407 + 0.9785) x 28.868 = 159.3; to detect the
    paper's smaller ORPO gain, +4.2 (49.5 − 45.3): ((z_0.99 + z_0.80) x 57.735 / 4.2)^2
    = ((2.3263 + 0.8416) x 13.746)^2 = 1896.4 -> 1,897 items."""
    results = claims(long_stages(LONG_SCORES), EFFICIENCY)
    dpo, simpo, orpo = results[:3]
    assert [r.verdict for r in results] == [REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, REPRODUCED, REPRODUCED]
    assert dpo.line().startswith("SoLo-DPO > DPO long on long inputs [primary]: reproduced; difference +62.5 [+50.0, ")
    assert f"(4 items; {BCA95})" in dpo.line()
    assert dpo.line().endswith("; paper: +0.9 LongBench v1 QA, +0.6 RULER QA")
    assert (dpo.evidence.mean, dpo.evidence.low) == (62.5, 50.0) and dpo.evidence.high <= 100.0
    assert (simpo.evidence.mean, simpo.evidence.high) == (-62.5, -50.0) and simpo.evidence.low >= -100.0
    assert simpo.line().startswith("SoLo-SimPO > SimPO long on long inputs [primary]: not reproduced; difference -62.5")
    assert (orpo.evidence.mean, orpo.evidence.low, orpo.evidence.high) == (50.0, 0.0, 100.0)
    assert orpo.evidence.p_for == pytest.approx(1 / 16, abs=0.01)
    assert orpo.p_adjusted == pytest.approx(2 * orpo.evidence.p_for)
    assert orpo.alpha == pytest.approx(0.01)
    assert orpo.mde == pytest.approx((4.5407 + 0.9785) * 100 / math.sqrt(12), abs=1e-2)
    assert orpo.needed == math.ceil(((2.3263 + 0.8416) * 57.735 / 4.2) ** 2) == 1897
    assert orpo.line().endswith(
        "; paper: +4.2 LongBench v1 QA, +10.0 RULER QA; the smallest effect this run could detect (power 80%, "
        "one-sided alpha 0.01): 159.3 points; to detect the paper's +4.2: about 1,897 items"
    )


def test_solo_beats_long_not_checked():
    (checked,) = solo_claims(long_stages({"SFT": [0, 0, 0, 0], "ORPO solopo": [50, 50, 50, 50]}))
    claim, evidence, why = checked
    assert claim.name == "SoLo-ORPO > ORPO long on long inputs" and evidence is None
    assert why == "needs long-context evaluations 'ORPO solopo' and 'ORPO long'"
    assert solo_claims(long_stages({"SFT": [0, 0, 0, 0]})) == []  # no algorithm evaluated: nothing to claim
    other_items = {"DPO long": [stage([0, 0, 0, 0])], "DPO solopo": [EvalScores({"x": ItemScore(10.0, "qa", None)})]}
    (result,) = claims(other_items, None)[:1]
    assert result.line() == (
        "SoLo-DPO > DPO long on long inputs [primary]: not checked (no item in both 'DPO long' and 'DPO solopo'); "
        "paper: +0.9 LongBench v1 QA, +0.6 RULER QA"
    )


def test_cheaper_reproduced_from_five_repeats_each_side():
    """At 8192 long tokens, 5 timed repeats of each case. Time: solopo [2.0, 1.9, 2.1, 1.8, 2.2] (median 2.0)
    against per-sample long [4.0, 3.9, 4.1, 3.8, 4.2] (median 4.0): ratio of medians 0.50, the repeats allow
    1.8 / 4.2 = 0.43 to 2.2 / 3.8 = 0.58. Every solopo repeat lies below every vanilla one: U = 5 x 5 = 25, and
    of the C(10, 5) = 252 ways to split the ten timings into two groups of five only the observed one reaches
    U = 25, so p = 1/252. Memory: five 1000s against five 4000s, the same split: 1/252, ratio 0.25.
    Two primary claims (no score stage given): Holm doubles the smaller, 2/252 = 0.00794 for both."""
    assert math.comb(10, 5) == 252
    assert mann_whitney_p([2.0, 1.9, 2.1, 1.8, 2.2], [4.0, 3.9, 4.1, 3.8, 4.2]) == pytest.approx(1 / 252)
    assert mann_whitney_p([1000.0] * 5, [4000.0] * 5) == pytest.approx(1 / 252)
    time, memory = claims({}, EFFICIENCY)
    assert time.line() == (
        "SoLo faster per step than vanilla long PO (at 8192 long tokens) [primary]: reproduced; ratio new / old 0.50 "
        f"[0.43, 0.58] ({MANN_WHITNEY}); Holm-adjusted p = 0.00794 for, 1 against; paper: {PAPER_EFFICIENCY}"
    )
    assert memory.line().startswith(
        "SoLo lighter in peak memory than vanilla long PO (at 8192 long tokens) [primary]: reproduced; ratio new / "
        f"old 0.25 [0.25, 0.25] ({MANN_WHITNEY}); Holm-adjusted p = 0.00794 for, 1 against; paper: at 9K long tokens"
    )
    assert time.p_adjusted == memory.p_adjusted == pytest.approx(2 / 252)


def test_cheaper_not_reproduced_when_solopo_needs_more_memory():
    """Memory: five solopo peaks of 5000 MiB against five vanilla ones of 4000: no solopo peak is below a vanilla
    one (U = 0, every split reaches it: p for = 1); the other way round, the 1/252 of the fully separated split.
    Holm over the two claims' p-values against ([1, 1/252]): 2/252. Time is still cheaper."""
    rows = efficiency_at(8192, (2.0, 5000.0), (4.0, 4000.0), (2.5, 800.0))
    with_repeats(rows, "solopo", "shared prefix", 8192, [2.0, 1.9, 2.1, 1.8, 2.2], [5000.0] * 5)
    with_repeats(rows, "long", "per-sample", 8192, [4.0, 3.9, 4.1, 3.8, 4.2], [4000.0] * 5)
    time, memory = claims({}, {"rows": rows})
    assert time.verdict == REPRODUCED and memory.verdict == NOT_REPRODUCED
    assert memory.evidence.mean == 1.25  # 5000 / 4000
    assert (memory.p_adjusted, memory.p_against_adjusted) == (1.0, pytest.approx(2 / 252))


def test_cheaper_from_single_timings_cannot_be_decided():
    """One timing each side (no repeats): there are 2 ways to split two values into groups of one; the observed one
    (U = 1) and its swap (U = 0): one of the two reaches U = 1, so the exact p is 1/2 however far apart the two
    timings lie: inconclusive."""
    time, memory = claims({}, {"rows": efficiency_at(8192, (2.0, 1000.0), (4.0, 4000.0), (2.5, 800.0))})
    assert time.evidence.p_for == memory.evidence.p_for == 0.5
    assert (time.verdict, memory.verdict) == (INCONCLUSIVE, INCONCLUSIVE)
    assert "(1 and 1 repeats; " in time.line() and "ratio new / old 0.50 [0.50, 0.50]" in time.line()


def test_cheaper_not_checked():
    assert [why for _, _, why in cheaper_claims(None)] == ["efficiency not measured"] * 2
    time, memory = claims({}, None)
    assert time.line() == (
        "SoLo faster per step than vanilla long PO [primary]: not checked (efficiency not measured); "
        f"paper: {PAPER_EFFICIENCY}"
    )
    only_kit = {"rows": [r for r in EFFICIENCY["rows"] if r["forward"] == "shared prefix"]}
    needs = "needs a solopo row and a long 'per-sample' row at one length"
    assert [why for _, _, why in cheaper_claims(only_kit)] == [needs] * 2
    assert [why for _, _, why in cheaper_claims({"rows": []})] == [needs] * 2


def test_efficiency_rows_checked():
    with pytest.raises(ReproError, match="efficiency row 0: missing peak_mib"):
        efficiency_tables({"rows": [{"mode": "long", "forward": "x", "long_tokens": 1, "short_tokens": 1,
                                     "step_s": 1.0}]})  # fmt: skip
    with pytest.raises(ReproError, match="step_s must be finite numbers"):
        cheaper_claims({"rows": [{"mode": "long", "forward": "x", "long_tokens": 1, "short_tokens": 1,
                                  "step_s": None, "peak_mib": 1.0}]})  # fmt: skip
    with pytest.raises(ReproError, match="'rows' list"):
        cheaper_claims({"device": "x"})
    row = {"mode": "long", "forward": "x", "long_tokens": 1, "short_tokens": 1, "step_s": 1.0, "peak_mib": 1.0}
    for bad in ([], [1.0, None], "1.0", [float("nan")]):
        with pytest.raises(ReproError, match="efficiency row 0: step_s_repeats must be a non-empty list of finite"):
            check_efficiency({"rows": [{**row, "step_s_repeats": bad}]})
    assert check_efficiency({"rows": [{**row, "peak_mib_repeats": [1.0, 2]}]})  # ints count as numbers


def test_efficiency_tables_ratios():
    text = efficiency_tables(EFFICIENCY)
    assert "Device: test GPU." in text
    assert "| long | per-sample | 8192 | 1024 | 4.000 | 4000.0 |" in text
    # 2.0 / 4.0 = 0.50x time, 1000 / 4000 = 0.25x memory; 2.0 / 2.5 = 0.80x, 1000 / 800 = 1.25x
    assert "| 8192 | solopo / long (per-sample) | 0.50x | 0.25x |" in text
    assert "| 8192 | solopo / long (shared prefix) | 0.80x | 1.25x |" in text
    # 1.0 / 1.5 = 0.67x, 500 / 1000 = 0.50x; 1.0 / 1.0, 500 / 400
    assert "| 4096 | solopo / long (per-sample) | 0.67x | 0.50x |" in text
    assert "| 4096 | solopo / long (shared prefix) | 1.00x | 1.25x |" in text
    # max length: 16384 / 8192 = 2.00x, 16384 / 12288 = 1.33x
    assert "| long (per-sample) | 8192 | 2.00x |" in text
    assert "| long (shared prefix) | 12288 | 1.33x |" in text
    assert "| solopo | 16384 | – |" in text
    assert "under a memory cap of 80000 MiB" in text


def test_efficiency_ratio_names_forward_when_two_solopo_rows_and_guards_zero():
    rows = [
        {"mode": "solopo", "forward": "per-sample", "long_tokens": 100, "short_tokens": 10, "step_s": 1.0,
         "peak_mib": 10.0},
        {"mode": "solopo", "forward": "shared prefix", "long_tokens": 100, "short_tokens": 10, "step_s": 0.0,
         "peak_mib": 5.0},
    ]  # fmt: skip
    text = efficiency_tables({"device": "cpu", "rows": rows, "cap_mib": None, "max_long_tokens": {}})
    assert "| 100 | solopo (per-sample) / solopo (shared prefix) | – | 2.00x |" in text  # 1.0 / 0.0 has no ratio
    assert "| 100 | solopo (shared prefix) / solopo (per-sample) | 0.00x | 0.50x |" in text
    assert "Longest trainable long context: not measured." in text


TRAIN_ROWS = [
    {"step": 1, "loss": 0.8, "po_loss": 0.7, "ra_loss": 0.1, "margin": 0.0, "accuracy": 0.5},
    {"step": 2, "loss": None, "po_loss": None, "ra_loss": None, "margin": None, "accuracy": None},
    {"step": 3, "loss": 0.6, "margin": 0.4},
    {"step": 4, "loss": 0.4, "po_loss": 0.35, "ra_loss": 0.05, "margin": 1.0, "accuracy": 1.0},
]


def test_training_plot_and_summary_skip_null_values(tmp_path):
    write_train_run(tmp_path / "solo", TRAIN_ROWS)
    write_train_run(tmp_path / "bare", [{"step": 1, "loss": None}, {"step": 2}])
    out = plot_po_training({"DPO solopo": tmp_path / "solo", "bare": tmp_path / "bare"}, tmp_path / "p" / "t.png")
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert sorted(p.name for p in out.parent.iterdir()) == ["t.png"]  # no temp file left
    table = po_training_summary({"DPO solopo": tmp_path / "solo", "bare": tmp_path / "bare"})
    # 4 rows: a quarter is one row, step 1 first and step 4 last
    assert "| DPO solopo | 4 | 0.800 | 0.400 | 0.000 | 1.000 | 0.500 | 1.000 |" in table
    assert "| bare | 2 | – | – | – | – | – | – |" in table


def test_scores_plot_with_short_subset(tmp_path):
    long_scores = {"SFT": stage([0, 0, 0, 0]), "DPO solopo": stage([100, 100, 50, None])}
    out = plot_stage_scores(long_scores, {"SFT": stage([50, 50, 50, 50])}, tmp_path / "scores.png")
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert plot_stage_scores(long_scores, {}, tmp_path / "long_only.png").read_bytes().startswith(PNG_MAGIC)


def test_write_solopo_report_end_to_end(tmp_path, records_file):
    long_evals, short_evals = {}, {}
    for name, scores in LONG_SCORES.items():
        write_eval(tmp_path / "eval" / "long" / name, records_file, scores)
        long_evals[name] = [tmp_path / "eval" / "long" / name]
    write_eval(tmp_path / "eval" / "long" / "DPO expand_long", records_file, [50, 50, 50, 50])
    long_evals["DPO expand_long"] = [tmp_path / "eval" / "long" / "DPO expand_long"]
    for name, scores in {"SFT": [100, 100, 100, None], "DPO solopo": [100, 100, 100, 100]}.items():
        write_eval(tmp_path / "eval" / "short" / name, records_file, scores)
        short_evals[name] = [tmp_path / "eval" / "short" / name]
    write_train_run(tmp_path / "train" / "dpo_solopo", TRAIN_ROWS)
    out = tmp_path / "report"
    report = write_solopo_report(out, long_evals, short_evals, {"DPO solopo": tmp_path / "train" / "dpo_solopo"},
                                 EFFICIENCY, ["tiny model"], profile="cpu", seeds=(0,),
                                 timings_s={"sft": 30.0, "dpo solopo": 45.06})  # fmt: skip
    assert report == out / "report.md"
    text = report.read_text()
    assert text.startswith("# SoLoPO reproduction report\n")
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Notes",
        "## The paper's claims on this run",
        "## Scores on long contexts (this run)",
        "## Scores on short contexts (this run)",
        "## The paper's table (its model, its benchmarks)",
        "## Exploratory: differences on long contexts",
        "## Items the stages disagree on (long contexts)",
        "## Efficiency (measured in this run)",
        "## Preference-optimisation training",
        "## Runs",
    ]
    assert "- tiny model" in text
    assert "| Stage | QA (n=2) | DocMath (n=2) | Overall (n=4) |" in text
    # DPO solopo long: QA (100 + 100) / 2, DocMath (50 + 100) / 2, overall 350 / 4
    assert "| DPO solopo | 100.0 | 75.0 | 87.5 |" in text
    # short contexts: SFT's r4 (DocMath) is unparsed, left out: DocMath 100 / 1, overall 300 / 3 (read as 0, it
    # would give 50.0 and 75.0); the count of unparsed judgements closes the table
    assert "| SFT | 100.0 | 100.0 (n=1) | 100.0 (n=3) |" in text
    assert "as in Loong's metrics: SFT 1 of 4, DPO solopo 0 of 4." in text
    assert "| SoLo-SimPO | 48.4 | 63.9 |" in text and "| Qwen2.5-7B-Instruct (no PO) | 34.4 | 44.0 |" in text
    assert "| Change | Overall | Paired items |" in text
    # expand_long [50, 50, 50, 50] − long [0, 50, 0, 50] = [50, 0, 50, 0]: resampled means 0 or 50 each with chance
    # (1/2)^4 = 6.25% > 2.5%, a symmetric sample: [0, 50]
    assert "| DPO long → DPO expand_long | +25.0 [+0.0, +50.0] | 4 |" in text
    # by task, DPO long → solopo: QA differences [100, 50] (resampled means 50, 75, 100), DocMath [50, 50]
    assert "| DPO long → DPO solopo | +75.0 [+50.0, +100.0] | +50.0 [+50.0, +50.0] |" in text
    assert "- SoLo-DPO > DPO long on long inputs [primary]: reproduced; difference +62.5 [+50.0, " in text
    assert "- SoLo-SimPO > SimPO long on long inputs [primary]: not reproduced; " in text
    assert "- SoLo-ORPO > ORPO long on long inputs [primary]: inconclusive; difference +50.0 [+0.0, +100.0]" in text
    # Holm over five: the two 1/252 p-values take the multipliers 4 and 3: 4/252 = 0.0159 for both
    assert "- SoLo faster per step than vanilla long PO (at 8192 long tokens) [primary]: reproduced; ratio new / old " \
           "0.50 [0.43, 0.58]" in text  # fmt: skip
    assert "Holm-adjusted p = 0.0159 for, 1 against; paper: at 9K long tokens" in text
    assert "paper: paper:" not in text
    assert "| 8192 | solopo / long (per-sample) | 0.50x | 0.25x |" in text
    assert "| DPO solopo | 4 | 0.800 | 0.400 | 0.000 | 1.000 | 0.500 | 1.000 |" in text
    assert "![Overall score per stage](scores.png)" in text and "(claims.png)" in text and "(items.md)" in text
    assert "![Loss, margin and accuracy per step](training.png)" in text
    assert sorted(p.name for p in out.iterdir()) == [
        "claims.png", "items.md", "report.md", "scores.png", "summary.json", "training.png"
    ]  # fmt: skip
    for png in ("claims.png", "scores.png", "training.png"):
        assert (out / png).read_bytes().startswith(PNG_MAGIC)

    summary = json.loads((out / "summary.json").read_text())
    assert check_summary(summary) == []
    assert (summary["paper"], summary["profile"], summary["seeds"]) == ("solopo", "cpu", [0])
    # the long-context scores; no length sets in these records
    assert summary["scores"]["DPO solopo"] == {"overall": 87.5, "n": 4, "by_set": {},
                                               "by_task": {"qa": 100.0, "docmath": 75.0}}  # fmt: skip
    assert [t["verdict"] for t in summary["trends"]] == [
        "reproduced", "not reproduced", "inconclusive", "reproduced", "reproduced"
    ]  # fmt: skip
    time = summary["trends"][3]
    assert time["claim"] == "SoLo faster per step than vanilla long PO (at 8192 long tokens)"
    assert (time["mean"], time["low"], time["high"], time["n"], time["mde"]) == (
        0.5, pytest.approx(1.8 / 4.2), pytest.approx(2.2 / 3.8), 10, None
    )  # fmt: skip
    assert time["paper"] == PAPER_EFFICIENCY
    assert summary["trends"][0]["paper"] == "+0.9 LongBench v1 QA, +0.6 RULER QA"
    assert summary["timings_s"] == {"sft": 30.0, "dpo solopo": 45.1} and summary["total_s"] == 75.1


def test_write_solopo_report_without_efficiency_or_training(tmp_path, records_file):
    write_eval(tmp_path / "sft", records_file, [0, 0, 0, 0])
    report = write_solopo_report(tmp_path / "r", {"SFT": [tmp_path / "sft"]}, {}, {}, None, [])
    text = report.read_text()
    assert "## Scores on short contexts" not in text
    assert "- (none given)" in text
    assert "No stage pair to compare on long contexts." in text
    assert "Not measured in this run." in text
    assert "- SoLo faster per step than vanilla long PO [primary]: not checked (efficiency not measured" in text
    assert "No training run given." in text
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "claims.png", "items.md", "report.md", "scores.png", "summary.json"
    ]  # fmt: skip
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert check_summary(summary) == []
    assert [(t["verdict"], t["n"]) for t in summary["trends"]] == [("inconclusive", 0)] * 2
    assert summary["timings_s"] == {} and summary["total_s"] == 0.0
    with pytest.raises(ReproError, match="at least one long-context evaluation"):
        write_solopo_report(tmp_path / "r2", {}, {}, {}, None, [])


def test_a_case_that_did_not_fit_is_shown_and_the_claims_use_lengths_where_both_ran():
    oom = "killed by the system, most likely out of memory"
    rows = efficiency_at(4096, (1.0, 500.0), (1.5, 1000.0), (1.0, 400.0)) + efficiency_at(
        8192, (2.0, 1000.0), (4.0, 4000.0), (2.5, 800.0)
    )
    rows[4] = {"mode": "long", "forward": "per-sample", "long_tokens": 8192, "short_tokens": 1024, "failed": oom}
    efficiency = {"device": "cpu", "rows": rows}
    text = efficiency_tables(efficiency)
    assert f"| long | per-sample | 8192 | 1024 | did not run | {oom} |" in text
    assert "| 8192 | solopo / long (shared prefix) | 0.80x | 1.25x |" in text
    assert "| 8192 | solopo / long (per-sample)" not in text
    time, memory = claims({}, efficiency)
    # at 4096, where both ran (one timing each): 1.0 / 1.5 = 0.67 in time, 500 / 1000 = 0.50 in memory
    assert time.claim.name == "SoLo faster per step than vanilla long PO (at 4096 long tokens)"
    assert "ratio new / old 0.67 [0.67, 0.67]" in time.line() and "ratio new / old 0.50" in memory.line()
    with pytest.raises(ReproError, match="efficiency row 0: missing short_tokens"):
        check_efficiency({"rows": [{"mode": "long", "forward": "x", "long_tokens": 1, "failed": oom}]})
