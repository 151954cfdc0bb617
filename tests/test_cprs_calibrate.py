"""Choosing the critic's keep threshold on validation contexts, worked by hand on a ten-token context."""

from __future__ import annotations

import dataclasses
import json

import pytest

from repro.cprs.calibrate import ValidationContext, best_threshold, threshold_table
from repro.cprs.reproduce import CprsProfile, decoding_note, validation_records
from repro.cprs.sections import CprsSection
from repro.data.schema import Doc, Evidence, Record, write_records

# ten one-character tokens; the gold is characters 1-3 (tokens 1, 2, 3)
KEEP = [0.1, 0.9, 0.9, 0.9, 0.2, 0.6, 0.6, 0.1, 0.1, 0.1]
CONTEXT = ValidationContext(keep=KEEP, offsets=[(i, i + 1) for i in range(10)], gold=[(1, 4)])
NO_FILLING = dataclasses.replace(CprsSection(), fill_gaps=0, min_span_tokens=1)


def test_each_threshold_is_scored_on_the_characters_it_keeps():
    rows = threshold_table([CONTEXT], NO_FILLING, grid=(0.5, 0.7, 0.95))
    # 0.5 keeps tokens 1-3 and 5-6: 5 characters, 3 of them gold -> P 3/5, R 1, F1 2*0.6/1.6 = 0.75
    assert rows[0] == {"threshold": 0.5, "precision": 0.6, "recall": 1.0, "f1": pytest.approx(0.75), "kept_share": 0.5}
    # 0.7 keeps exactly the gold
    assert rows[1] == {"threshold": 0.7, "precision": 1.0, "recall": 1.0, "f1": 1.0, "kept_share": 0.3}
    # 0.95 keeps nothing: no precision credit for an empty prediction
    assert rows[2] == {"threshold": 0.95, "precision": 0.0, "recall": 0.0, "f1": 0.0, "kept_share": 0.0}
    assert best_threshold(rows)["threshold"] == 0.7


def test_the_table_decodes_as_compress_does_gap_filling_included():
    # with gaps under 2 tokens filled, 0.5 keeps tokens 1-6 as one span: 6 characters, 3 gold -> F1 2*0.5/1.5
    filled = dataclasses.replace(NO_FILLING, fill_gaps=2)
    row = threshold_table([CONTEXT], filled, grid=(0.5,))[0]
    assert (row["precision"], row["f1"], row["kept_share"]) == (0.5, pytest.approx(2 / 3), 0.6)
    # spans shorter than 3 tokens dropped: at 0.5 only tokens 1-3 survive
    short_dropped = dataclasses.replace(NO_FILLING, min_span_tokens=3)
    assert threshold_table([CONTEXT], short_dropped, grid=(0.5,))[0]["f1"] == 1.0


def test_a_tie_goes_to_the_lower_threshold_which_keeps_more():
    rows = threshold_table([CONTEXT], NO_FILLING, grid=(0.8, 0.7))  # both keep exactly tokens 1-3
    assert rows[0]["f1"] == rows[1]["f1"] == 1.0
    assert best_threshold(rows)["threshold"] == 0.7
    with pytest.raises(ValueError):
        best_threshold([])


def test_the_characters_are_pooled_over_contexts_not_averaged():
    # a second context whose 0.7-span (tokens 0-1) misses its gold (tokens 2-3): pooled P 3/5, R 3/5
    other = ValidationContext(keep=[0.9, 0.9, 0.1, 0.1], offsets=[(i, i + 1) for i in range(4)], gold=[(2, 4)])
    row = threshold_table([CONTEXT, other], NO_FILLING, grid=(0.7,))[0]
    assert (row["precision"], row["recall"], row["kept_share"]) == (0.6, 0.6, 5 / 14)


def evidence_record(rid: str, length_set: int) -> Record:
    gold = [Evidence(0, 0, 4)]
    return Record(rid, "t", "qa", [Doc("d", "some text")], "q?", "a", length_set=length_set, evidence=gold)


def testvalidation_records_are_never_test_items(tmp_path):
    path = tmp_path / "test.jsonl"
    rows = [evidence_record(f"s{s}-{i}", s) for s in (1, 2) for i in range(4)]
    rows.append(Record("bare", "t", "qa", [Doc("d", "x")], "q?", "a", length_set=1))  # no evidence: never chosen
    write_records(path, rows)
    profile = CprsProfile(budget="", recipe="", eval_recipe="", sets=[1, 2], calibration_per_set=2)
    test = [rows[0], rows[1], rows[4]]
    assert [r.id for r in validation_records(str(path), profile, test)] == ["s1-2", "s1-3", "s2-1", "s2-2"]
    assert validation_records(str(path), dataclasses.replace(profile, calibration_per_set=0), test) == []


def test_the_report_says_how_the_spans_were_decoded(tmp_path):
    assert "P(B)+P(I)+P(E) beats P(O)" in decoding_note(CprsSection(), [tmp_path / "none.json"])
    fixed = dataclasses.replace(CprsSection(), threshold=0.4)
    assert "reaches 0.4 (cprs.threshold)" in decoding_note(fixed, [tmp_path / "none.json"])
    chosen = tmp_path / "threshold.json"
    chosen.write_text(json.dumps({"threshold": 0.7, "f1": 0.3125, "recall": 0.446, "kept_share": 0.132, "records": 24}))
    note = decoding_note(fixed, [chosen])
    assert "on 24 held-out validation records" in note
    assert "0.7 (F1 0.312, recall 0.446, kept 13.2%)" in note
