"""The SoLoPO report: comparison pairs, verdicts on paired differences, efficiency ratios, plots, the whole report."""

from __future__ import annotations

import json

import pytest

from repro.data.schema import Doc, Record, write_records
from repro.errors import ReproError
from repro.loong.scores import EvalScores, ItemScore
from repro.solopo.report import (
    cheaper_lines,
    check_efficiency,
    efficiency_tables,
    paper_delta,
    plot_po_training,
    plot_stage_scores,
    po_training_summary,
    solo_beats_long_lines,
    solopo_pairs,
    write_solopo_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TASKS = ("qa", "qa", "docmath", "docmath")

# Per-item long-context scores, items r1..r4 (TASKS above). Paired differences solopo − long:
#   DPO   [100, 50, 50, 50]:   mean +62.5, every resampled mean >= 50       -> reproduced
#   SimPO [-100, -50, -50, -50]: mean -62.5, every resampled mean <= -50    -> not reproduced
#   ORPO  [100, 0, 0, 100]:    mean +50.0, a resample of four 0s has chance 1/16 > 2.5%, so the interval
#                              reaches 0 (and 100, by symmetry)             -> inconclusive (noise)
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


EFFICIENCY = {
    "device": "test GPU",
    # at 8192 (the longest): solopo 2.0 s / 1000 MiB vs per-sample long 4.0 / 4000 and shared-prefix long 2.5 / 800
    "rows": efficiency_at(4096, (1.0, 500.0), (1.5, 1000.0), (1.0, 400.0))
    + efficiency_at(8192, (2.0, 1000.0), (4.0, 4000.0), (2.5, 800.0)),
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
    assert paper_delta("DPO") == "paper: +0.9 LongBench v1 QA, +0.6 RULER QA"
    assert paper_delta("SimPO") == "paper: +3.8 LongBench v1 QA, +6.4 RULER QA"
    assert paper_delta("ORPO") == "paper: +4.2 LongBench v1 QA, +10.0 RULER QA"


def test_solo_beats_long_verdicts():
    lines = solo_beats_long_lines({name: stage(scores) for name, scores in LONG_SCORES.items()})
    assert len(lines) == 3
    # DPO: four draws from {100, 50, 50, 50}: mean 50 + 12.5 * (number of 100s); P(four 100s) = 1/256 < 2.5% and
    # P(three or more) = 13/256 > 2.5%, so the interval is [50, 87.5]
    assert lines[0] == (
        "SoLo-DPO > DPO long on long inputs: reproduced (DPO solopo − DPO long = +62.5 [+50.0, +87.5] over 4 paired "
        "items; paper: +0.9 LongBench v1 QA, +0.6 RULER QA)"
    )
    assert lines[1].startswith("SoLo-SimPO > SimPO long on long inputs: not reproduced (SimPO solopo − SimPO long = ")
    assert "-62.5 [-87.5, -50.0] over 4" in lines[1]
    assert lines[2].startswith("SoLo-ORPO > ORPO long on long inputs: inconclusive (noise) (")
    assert "+50.0 [+0.0, +100.0] over 4" in lines[2]


def test_solo_beats_long_cannot_be_checked():
    lines = solo_beats_long_lines({"SFT": stage([0, 0, 0, 0]), "ORPO solopo": stage([50, 50, 50, 50])})
    assert lines == [
        "SoLo-ORPO > ORPO long on long inputs: cannot be checked (needs long-context evaluations 'ORPO solopo' and "
        "'ORPO long'; have SFT, ORPO solopo)"
    ]
    (line,) = solo_beats_long_lines({"SFT": stage([0, 0, 0, 0])})
    assert line.startswith("SoLo-X > X long on long inputs: cannot be checked")
    other_items = EvalScores({"x": ItemScore(10.0, "qa", None)})
    (line,) = solo_beats_long_lines({"DPO long": stage([0, 0, 0, 0]), "DPO solopo": other_items})
    assert (
        line == "SoLo-DPO > DPO long on long inputs: cannot be checked (no item id in both 'DPO long' and 'DPO solopo')"
    )


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


def test_efficiency_rows_checked():
    with pytest.raises(ReproError, match="efficiency row 0: missing peak_mib"):
        efficiency_tables({"rows": [{"mode": "long", "forward": "x", "long_tokens": 1, "short_tokens": 1,
                                     "step_s": 1.0}]})  # fmt: skip
    with pytest.raises(ReproError, match="step_s must be finite numbers"):
        cheaper_lines({"rows": [{"mode": "long", "forward": "x", "long_tokens": 1, "short_tokens": 1,
                                 "step_s": None, "peak_mib": 1.0}]})  # fmt: skip
    with pytest.raises(ReproError, match="'rows' list"):
        cheaper_lines({"device": "x"})


def test_cheaper_reproduced_at_longest_length():
    vanilla_line, kit_line = cheaper_lines(EFFICIENCY)
    assert vanilla_line.startswith(
        "SoLo cheaper in time and memory: reproduced (at 8192 long tokens, solopo (shared prefix) / long (per-sample): "
        "step time 0.50x (2.000 s vs 4.000 s), peak memory 0.25x (1000.0 vs 4000.0 MiB); paper: at 9K long tokens "
        "SoLo-DPO runs 52% faster"
    )
    assert "9K to 19K" in vanilla_line
    assert kit_line.startswith(
        "SoLo against the kit's shared-prefix long PO (no paper claim): at 8192 long tokens, solopo (shared prefix) / "
        "long (shared prefix): step time 0.80x (2.000 s vs 2.500 s), peak memory 1.25x (1000.0 vs 800.0 MiB)"
    )


def test_cheaper_not_reproduced_uses_longest_length_only():
    # cheaper on both counts at 4096, but at 8192 solopo needs more memory than per-sample long (5000 vs 4000 MiB)
    efficiency = {"rows": efficiency_at(4096, (1.0, 500.0), (2.0, 1000.0), (1.0, 400.0))
                  + efficiency_at(8192, (2.0, 5000.0), (4.0, 4000.0), (2.5, 800.0))}  # fmt: skip
    line = cheaper_lines(efficiency)[0]
    assert line.startswith("SoLo cheaper in time and memory: not reproduced (at 8192 long tokens")
    assert "step time 0.50x" in line and "peak memory 1.25x" in line


def test_cheaper_cannot_be_checked():
    (line,) = cheaper_lines(None)
    assert line.startswith("SoLo cheaper in time and memory: cannot be checked (efficiency not measured")
    only_kit = {"rows": [r for r in EFFICIENCY["rows"] if r["forward"] == "shared prefix"]}
    lines = cheaper_lines(only_kit)
    assert lines[0].startswith("SoLo cheaper in time and memory: cannot be checked (needs a 'solopo' row and a 'long' "
                               "row with forward 'per-sample' at 8192 long tokens")  # fmt: skip
    assert lines[1].startswith("SoLo against the kit's shared-prefix long PO")
    assert cheaper_lines({"rows": []})[0].startswith("SoLo cheaper in time and memory: cannot be checked (no ")


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
        long_evals[name] = tmp_path / "eval" / "long" / name
    write_eval(tmp_path / "eval" / "long" / "DPO expand_long", records_file, [50, 50, 50, 50])
    long_evals["DPO expand_long"] = tmp_path / "eval" / "long" / "DPO expand_long"
    for name, scores in {"SFT": [100, 100, 100, None], "DPO solopo": [100, 100, 100, 100]}.items():
        write_eval(tmp_path / "eval" / "short" / name, records_file, scores)
        short_evals[name] = tmp_path / "eval" / "short" / name
    write_train_run(tmp_path / "train" / "dpo_solopo", TRAIN_ROWS)
    out = tmp_path / "report"
    report = write_solopo_report(
        out, long_evals, short_evals, {"DPO solopo": tmp_path / "train" / "dpo_solopo"}, EFFICIENCY, ["tiny model"]
    )
    assert report == out / "report.md"
    text = report.read_text()
    assert text.startswith("# SoLoPO reproduction report\n")
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Notes",
        "## Runs",
        "## Scores on long contexts (this run)",
        "## Scores on short contexts (this run)",
        "## The paper's table (its model, its benchmarks)",
        "## Differences (this run)",
        "## Efficiency (measured in this run)",
        "## Paper trends",
        "## Preference-optimisation training",
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
    assert "The paper's numbers, from SoLoPO" in text
    assert "| Change | Overall | Paired items |" in text
    assert "| DPO long → DPO solopo | +62.5 [+50.0, +87.5] | 4 |" in text
    # expand_long [50, 50, 50, 50] − long [0, 50, 0, 50] = [50, 0, 50, 0]; solopo − expand_long = [50, 50, 0, 50]
    # each resample draws four differences; an end value is the interval's end when all four hitting it has a
    # chance above 2.5%: (1/2)^4 and (3/4)^4 are, (1/4)^4 is not (one draw of the other value is then the end)
    assert "| DPO long → DPO expand_long | +25.0 [+0.0, +50.0] (noise) | 4 |" in text
    assert "| DPO expand_long → DPO solopo | +37.5 [+12.5, +50.0] | 4 |" in text
    # ORPO long [0, 100, 0, 0] − SFT [0, 50, 0, 0] = [0, 50, 0, 0]
    assert "| SFT → ORPO long | +12.5 [+0.0, +37.5] (noise) | 4 |" in text
    # by task, DPO long → solopo: QA differences [100, 50] (resampled means 50, 75, 100), DocMath [50, 50]
    assert "| DPO long → DPO solopo | +75.0 [+50.0, +100.0] | +50.0 [+50.0, +50.0] |" in text
    assert "- SoLo-DPO > DPO long on long inputs: reproduced" in text
    assert "- SoLo-SimPO > SimPO long on long inputs: not reproduced" in text
    assert "- SoLo-ORPO > ORPO long on long inputs: inconclusive (noise)" in text
    assert "- SoLo cheaper in time and memory: reproduced" in text
    assert "| 8192 | solopo / long (per-sample) | 0.50x | 0.25x |" in text
    assert "| DPO solopo | 4 | 0.800 | 0.400 | 0.000 | 1.000 | 0.500 | 1.000 |" in text
    assert "![Overall score per stage](scores.png)" in text
    assert "![Loss, margin and accuracy per step](training.png)" in text
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "scores.png", "training.png"]
    for png in ("scores.png", "training.png"):
        assert (out / png).read_bytes().startswith(PNG_MAGIC)


def test_write_solopo_report_without_efficiency_or_training(tmp_path, records_file):
    write_eval(tmp_path / "sft", records_file, [0, 0, 0, 0])
    report = write_solopo_report(tmp_path / "r", {"SFT": tmp_path / "sft"}, {}, {}, None, [])
    text = report.read_text()
    assert "## Scores on short contexts" not in text
    assert "- (none given)" in text
    assert "No stage pair to compare on long contexts." in text
    assert "Not measured in this run." in text
    assert "- SoLo-X > X long on long inputs: cannot be checked" in text
    assert "- SoLo cheaper in time and memory: cannot be checked (efficiency not measured" in text
    assert "No training run given." in text
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["report.md", "scores.png"]
    with pytest.raises(ReproError, match="at least one long-context evaluation"):
        write_solopo_report(tmp_path / "r2", {}, {}, {}, None, [])


def test_a_case_that_did_not_fit_is_shown_and_the_trend_uses_lengths_where_both_ran():
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
    vanilla_line, kit_line, only_solo = cheaper_lines(efficiency)
    # at 4096, where both ran: 1.0 / 1.5 = 0.67x time, 500 / 1000 = 0.50x memory
    assert vanilla_line.startswith("SoLo cheaper in time and memory: reproduced (at 4096 long tokens")
    assert "step time 0.67x" in vanilla_line and "peak memory 0.50x" in vanilla_line
    assert kit_line.startswith("SoLo against the kit's shared-prefix long PO (no paper claim): at 4096 long tokens")
    assert only_solo == (
        "At 8192 long tokens only SoLo trained: solopo (shared prefix) took 2.000 s and 1000.0 MiB, "
        f"long (per-sample) did not run ({oom})"
    )
    with pytest.raises(ReproError, match="efficiency row 0: missing short_tokens"):
        check_efficiency({"rows": [{"mode": "long", "forward": "x", "long_tokens": 1, "failed": oom}]})
