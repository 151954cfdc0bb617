"""Unparsed LLM-judge ratings: left out of every average and counted, in metrics.json and in each report alike."""

from __future__ import annotations

import json
import re

import pytest

from repro.config import load_recipe
from repro.cprs.report import write_cprs_report
from repro.data.schema import Doc, Record, write_records
from repro.l1.report import write_l1_report
from repro.loong import eval as loong_eval
from repro.loong.eval import run_eval
from repro.solopo.report import write_solopo_report

# (id, task, length set, the judge's reply, the rating it holds: None = no rating parses)
BEFORE = [
    ("i1", "spotlight", 1, "Complete and correct.\nRating: [[100]]", 100.0),
    ("i2", "spotlight", 2, "Half the items are missing.\nRating: [[40]]", 40.0),
    ("i3", "comparison", 1, "I cannot rate this answer.", None),
    ("i4", "comparison", 2, "One value is off.\nRating: [[80]]", 80.0),
]
AFTER = [(i, task, s, "Correct.\nRating: [[100]]", 100.0) for i, task, s, _, _ in BEFORE]
REPLIES = {(run, i): reply for run, rows in (("before", BEFORE), ("after", AFTER)) for i, _, _, reply, _ in rows}


def fake_judge(recipe):
    """The judge backend: replies with each item's made-up judgement, found by the prediction it is shown."""

    def run(chats, on_result):
        for index, chat in enumerate(chats):
            item, run_name = re.search(r"answer to (\w+) in (\w+)", chat[0]["content"]).groups()
            on_result(index, REPLIES[run_name, item])

    return run


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """Two LLM-judged evaluation runs of the same four records: 'before' (one judgement unparsed) and 'after'."""
    monkeypatch.setattr(loong_eval, "_llm_judge_backend", fake_judge)
    data = tmp_path / "data.jsonl"
    records = [
        Record(id=i, source="test", task=task, docs=[Doc("d", "text")], question="q?", answer="a", length_set=s)
        for i, task, s, _, _ in BEFORE
    ]
    write_records(data, records)
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(
        f"output_dir: {tmp_path / 'runs'}\neval:\n  data: {data}\n  judge: llm\n  llm_judge:\n    model: judge\n"
    )
    folders = {}
    for name, rows in (("before", BEFORE), ("after", AFTER)):
        preds = tmp_path / f"{name}.jsonl"
        lines = [json.dumps({"id": i, "prediction": f"answer to {i} in {name}"}) for i, *_ in rows]
        preds.write_text("".join(line + "\n" for line in lines))
        run_eval(load_recipe(recipe_file, [f"name={name}"]), tmp_path / name, str(preds))
        folders[name] = tmp_path / name
    return folders


def test_the_judgements_file_keeps_the_unparsed_rating_as_null(runs):
    lines = (runs["before"] / "judgements.jsonl").read_text().splitlines()
    assert {j["id"]: j["score"] for j in map(json.loads, lines)} == {i: score for i, *_, score in BEFORE}


def test_metrics_json_leaves_the_unparsed_judgement_out_and_counts_it(runs):
    m = json.loads((runs["before"] / "metrics.json").read_text())
    # parsed ratings 100, 40, 80 (i3 left out): 220 / 3 = 73.33; one 100 in three = 0.3333; 3 of 4 parsed.
    # Read as 0, i3 would make the average 220 / 4 = 55.0 and the perfect rate 1 / 4.
    assert (m["avg_score"], m["perfect_rate"]) == (round(220 / 3, 2), round(1 / 3, 4)) == (73.33, 0.3333)
    assert (m["n"], m["n_parsed"], m["parse_rate"]) == (4, 3, 0.75)
    # spotlight: i1 100, i2 40 -> 140 / 2 = 70.0, perfect 1 / 2; comparison: only i4 80 parsed
    assert m["by_task"]["spotlight"] == {"avg_score": 70.0, "perfect_rate": 0.5, "n": 2, "n_parsed": 2}
    assert m["by_task"]["comparison"] == {"avg_score": 80.0, "perfect_rate": 0.0, "n": 2, "n_parsed": 1}
    # set 1: only i1 (100) parsed; set 2: i2 40, i4 80 -> 60.0
    assert m["by_set"]["1"] == {"avg_score": 100.0, "perfect_rate": 1.0, "n": 2, "n_parsed": 1}
    assert m["by_set"]["2"] == {"avg_score": 60.0, "perfect_rate": 0.0, "n": 2, "n_parsed": 2}
    text = (runs["before"] / "report.md").read_text()
    assert "| before | 70.00 / 0.50 | 80.00 / 0.00 | – | – | 73.33 / 0.33 |" in text
    assert "before: 4 items, 3 judged scores parsed (75.0%); 1 unparsed, left out of the averages;" in text


# The reports' stage table: before's row over the parsed ratings, each cell with fewer items than its column's
# most saying how many: Set1 100 / 1, Set2 (40 + 80) / 2 = 60, Spotlight (100 + 40) / 2 = 70, Comparison 80 / 1,
# overall 220 / 3 = 73.3. Read as 0, i3 would give Set1 50.0, Comparison 40.0 and overall 55.0.
HEADER = "| Stage | Set1 (n=2) | Set2 (n=2) | Spotlight Locating (n=2) | Comparison (n=2) | Overall (n=4) |"
BEFORE_ROW = "| {} | 100.0 (n=1) | 60.0 | 70.0 | 80.0 (n=1) | 73.3 (n=3) |"
AFTER_ROW = "| {} | 100.0 | 100.0 | 100.0 | 100.0 | 100.0 |"
COUNTS = "left out of the averages and of the paired differences, as in Loong's metrics: {} 1 of 4, {} 0 of 4."
# after − before, paired by id with i3 left out (unparsed before): set 1 [0] (i1), nothing to resample; set 2 [60, 20]
# (i2, i4): resampled means 20, 40, 60 with chances 1/4, 1/2, 1/4, symmetric, so [20, 60]; overall [0, 60, 20], mean
# 80 / 3 = 26.7: a resample of three is all 60 with chance 1/27 = 3.7%, above the BCa upper level (about 98.7%
# with acceleration 0.037 and z0 = Phi^-1(14/27) = 0.05), so the top is 60; the lower level (about 4%) lands at the
# 1/27 mass at 0, so the bottom is 0 or one 20 in three draws, 6.7. 3 paired items.
DIFF = "| {} → {} | +0.0 [+0.0, +0.0] | +40.0 [+20.0, +60.0] | +26.7 ["


def assert_tables(text: str, before: str, after: str) -> None:
    assert HEADER in text
    assert BEFORE_ROW.format(before) in text and AFTER_ROW.format(after) in text
    assert COUNTS.format(before, after) in text
    (row,) = [line for line in text.splitlines() if line.startswith(DIFF.format(before, after))]
    assert row.removeprefix(DIFF.format(before, after)) in ("+0.0, +60.0] | 3 |", "+6.7, +60.0] | 3 |")


def test_l1_report(runs, tmp_path):
    stages = {"base": [runs["before"]], "SFT": [runs["after"]]}
    text = write_l1_report(tmp_path / "l1", stages, {}, []).read_text()
    assert_tables(text, "base", "SFT")
    # the claim pairs the same three items
    assert "- SFT > base [primary]: " in text and "; difference +26.7 [" in text
    assert "] (3 items; BCa 95% interval" in text


def test_solopo_report(runs, tmp_path):
    long_evals = {"SFT": [runs["before"]], "DPO solopo": [runs["after"]]}
    text = write_solopo_report(tmp_path / "solopo", long_evals, {}, {}, None, []).read_text()
    assert_tables(text, "SFT", "DPO solopo")


def test_cprs_report(runs, tmp_path):
    evals = {"full": [runs["before"]], "cprs": [runs["after"]]}
    text = write_cprs_report(tmp_path / "cprs", evals, {}, {}, {}, {}, []).read_text()
    assert_tables(text, "full", "cprs")
    # the longest set pairs i2 and i4 only: [60, 20], both gains, so every resampled mean lies in [20, 60]
    assert "- Compressed > full context on the longest set (set 2) [primary]: " in text
    assert "; difference +40.0 [+20.0, +60.0] (2 items; " in text
