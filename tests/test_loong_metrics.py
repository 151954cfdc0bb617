"""Loong metrics: Avg Score / Perfect Rate per task, set and set x task, parse rate, and the markdown tables."""

import json

import pytest

from repro.loong.metrics import LOONG_LEADERBOARD, aggregate, format_tables, paper_reference_rows

ITEMS = [
    {"task": "spotlight", "length_set": 1, "score": 100.0, "dropped_docs": 1},
    {"task": "spotlight", "length_set": 1, "score": 80.0},
    {"task": "clustering", "length_set": 1, "score": 40.0, "dropped_docs": 0},
    {"task": "clustering", "length_set": 1, "score": None},  # judge output did not parse
    {"task": "spotlight", "length_set": 2, "score": 100.0},
    {"task": "spotlight", "length_set": 2, "score": 100.0, "dropped_docs": 2},
    {"task": "clustering", "length_set": 2, "score": 30.0},
    {"task": "clustering", "length_set": 2, "score": 70.0},
]


def test_overall():
    m = aggregate(ITEMS)
    # Parsed scores 100, 80, 40, 100, 100, 30, 70: sum 520 over 7 = 74.2857…; three of seven are 100.
    assert m["avg_score"] == 74.29
    assert m["perfect_rate"] == 0.4286
    assert (m["n"], m["n_parsed"], m["parse_rate"]) == (8, 7, 0.875)
    assert m["dropped_docs"] == 3


def test_by_task():
    m = aggregate(ITEMS)
    # spotlight: 100, 80, 100, 100 -> 380 / 4 = 95.0, perfect 3/4
    assert m["by_task"]["spotlight"] == {"avg_score": 95.0, "perfect_rate": 0.75, "n": 4, "n_parsed": 4}
    # clustering: 40, 30, 70 (one unparsed) -> 140 / 3 = 46.666… -> 46.67, no 100s
    assert m["by_task"]["clustering"] == {"avg_score": 46.67, "perfect_rate": 0.0, "n": 4, "n_parsed": 3}
    assert list(m["by_task"]) == ["spotlight", "clustering"]


def test_by_set():
    m = aggregate(ITEMS)
    # Set 1: 100, 80, 40 -> 220 / 3 = 73.333… -> 73.33; one 100 of three -> 0.3333
    assert m["by_set"]["1"] == {"avg_score": 73.33, "perfect_rate": 0.3333, "n": 4, "n_parsed": 3}
    # Set 2: 100, 100, 30, 70 -> 300 / 4 = 75.0; two 100s of four
    assert m["by_set"]["2"] == {"avg_score": 75.0, "perfect_rate": 0.5, "n": 4, "n_parsed": 4}


def test_by_set_task():
    cells = aggregate(ITEMS)["by_set_task"]
    assert cells["1"]["spotlight"] == {"avg_score": 90.0, "perfect_rate": 0.5, "n": 2, "n_parsed": 2}
    assert cells["1"]["clustering"] == {"avg_score": 40.0, "perfect_rate": 0.0, "n": 2, "n_parsed": 1}
    assert cells["2"]["spotlight"] == {"avg_score": 100.0, "perfect_rate": 1.0, "n": 2, "n_parsed": 2}
    assert cells["2"]["clustering"] == {"avg_score": 50.0, "perfect_rate": 0.0, "n": 2, "n_parsed": 2}


def test_json_round_trip_keeps_string_keys():
    m = aggregate(ITEMS)
    assert json.loads(json.dumps(m)) == m


def test_empty_and_all_unparsed():
    m = aggregate([])
    assert (m["n"], m["avg_score"], m["perfect_rate"], m["parse_rate"]) == (0, None, None, None)
    m = aggregate([{"task": "comparison", "length_set": 3, "score": None}])
    assert (m["avg_score"], m["perfect_rate"], m["parse_rate"]) == (None, None, 0.0)
    assert m["by_set"]["3"]["n"] == 1


@pytest.mark.parametrize("score", [101, -1, "90", True, float("nan")])
def test_bad_score_rejected(score):
    with pytest.raises(ValueError, match="item 0"):
        aggregate([{"task": "spotlight", "length_set": 1, "score": score}])


def test_format_tables_layout():
    text = format_tables(aggregate(ITEMS), reference_rows=paper_reference_rows(["GPT-4o"]))
    lines = text.splitlines()
    header = "| Model | Spotlight Locating | Comparison | Clustering | Chain of Reasoning | Overall |"
    assert header in lines
    # Spotlight 95.00 / 0.75, no comparison or chain items, clustering 46.67 / 0.00, overall 74.29 / 0.43
    assert "| this run | 95.00 / 0.75 | – | 46.67 / 0.00 | – | 74.29 / 0.43 |" in lines
    assert "| GPT-4o (Loong paper, full benchmark) | – | – | – | – | 53.47 / 0.26 |" in lines
    set_header = [line for line in lines if line.startswith("| Model | Set1")]
    assert len(set_header) == 1 and set_header[0].endswith("| Overall |")
    assert "| this run | 73.33 / 0.33 | 75.00 / 0.50 | – | – | 74.29 / 0.43 |" in lines
    paper_sets = "70.40 / – | 58.38 / – | 46.95 / – | 31.11 / –"
    assert f"| GPT-4o (Loong paper, full benchmark) | {paper_sets} | 53.47 / 0.26 |" in lines
    assert "this run: 8 items, 7 judged scores parsed (87.5%); 1 unparsed, left out of the averages; " in text
    assert any(line.startswith("Paper rows:") for line in lines)


def test_leaderboard_numbers():
    overall = {name: (e["avg_score"], e["perfect_rate"]) for name, e in LOONG_LEADERBOARD.items()}
    assert overall == {
        "Gemini-1.5-pro": (55.37, 0.27),
        "GPT-4o": (53.47, 0.26),
        "Claude3.5-Sonnet": (48.85, 0.23),
        "Qwen2-72B": (43.29, 0.15),
        "GPT-4o-mini": (42.95, 0.18),
        "Llama-3.1-8B": (36.31, 0.14),
    }
    assert [LOONG_LEADERBOARD["GPT-4o"]["by_set"][s]["avg_score"] for s in "1234"] == [70.40, 58.38, 46.95, 31.11]
    with pytest.raises(KeyError):
        paper_reference_rows(["GPT-5"])
