"""The CPRS report: trend verdicts from hand-made evaluations, timing growth, tables, the whole report."""

from __future__ import annotations

import json

from repro.cprs.report import timing_growth, trend_lines, write_cprs_report
from repro.data.schema import Doc, Record, write_records
from repro.loong.scores import EvalScores, ItemScore

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def scores(values: list[float], sets: list[int]) -> EvalScores:
    return EvalScores(
        {f"r{i}": ItemScore(v, "spotlight", s) for i, (v, s) in enumerate(zip(values, sets, strict=True))}
    )


def test_trends_read_the_paired_differences_ratio_timing_and_latency():
    """Items r0-r3, sets [1, 1, 2, 2]. On set 2 cprs − full = [100, 100] − [0, 0] = +100 with every resample
    +100: reproduced. cprs − bm25 overall = [0, 0, 0, 0]: the interval is [0, 0], which contains 0: inconclusive.
    Timing 8K: 2.0 s, 32K: 10.0 s -> ratio 5.00 > 4.4: not linear. Latency set 2: 4.0 s full, 1.0 s cprs: 4.00x."""
    sets = [1, 1, 2, 2]
    stages = {
        "full": scores([100, 0, 0, 0], sets),
        "cprs": scores([0, 0, 100, 100], sets),
        "bm25": scores([0, 0, 100, 100], sets),
    }
    ratios = {
        1: {"input_tokens": 600, "kept_tokens": 100, "ratio": 6.0},
        2: {"input_tokens": 1200, "kept_tokens": 100, "ratio": 12.0},
    }
    timing = {"8192": {"seconds": 2.0, "windows": 8}, "32768": {"seconds": 10.0, "windows": 32}}
    latency = {"1": {"full_s": 2.0, "cprs_s": 3.0}, "2": {"full_s": 4.0, "cprs_s": 1.0}}
    lines = trend_lines(stages, ratios, timing, latency)
    text = "\n".join(lines)
    assert "longest set (set 2): reproduced" in text and "+100.0 [+100.0, +100.0]" in text
    assert "BM25 at the same token budget: inconclusive" in text
    assert "Compression ratio: 9.00x" in text  # (600 + 1200) / (100 + 100)
    assert "grows linearly: not reproduced" in text and "= 5.00 for 4x" in text
    assert "(set 2): reproduced (1.0 s against 4.0 s, 4.00x" in text
    assert lines[-1].startswith("This run cannot separate CPRS against BM25 (4 items) beyond the noise")
    assert "the full context on set" not in lines[-1]  # that one was separated


def test_fixed_budget_bm25_and_oracle_lines():
    """Items r0-r3, one set. cprs − bm25-fixed = [100, 100, 0, 0] − [0, 0, 0, 0] = +50; the oracle scores 100 on
    every item, so full − oracle = -100 with every resample -100, and cprs − oracle = [0, 0, -100, -100] = -50."""
    sets = [1, 1, 1, 1]
    stages = {
        "full": scores([0, 0, 0, 0], sets),
        "cprs": scores([100, 100, 0, 0], sets),
        "bm25-fixed": scores([0, 0, 0, 0], sets),
        "oracle": scores([100, 100, 100, 100], sets),
    }
    text = "\n".join(trend_lines(stages, {}, {}, {}))
    assert "Compressed > BM25 at a fixed budget per set (the paper's RAG: 16K tokens of 128K): " in text
    assert "(cprs − bm25-fixed = +50.0 [" in text and "paper: +4.27 Ruler-128K" in text
    assert "BM25 at the same token budget" not in text  # no bm25 row given
    oracle = next(line for line in text.splitlines() if line.startswith("The reader on the gold evidence alone"))
    assert "full − oracle = -100.0 [-100.0, -100.0] over 4 items" in oracle
    assert "cprs − oracle = -50.0 [" in oracle
    without = trend_lines({"full": stages["full"], "cprs": stages["cprs"]}, {}, {}, {})
    assert not any(line.startswith("The reader on the gold evidence") for line in without)


def test_timing_growth_prefers_lengths_four_apart():
    timing = {str(n): {"seconds": n / 1000, "windows": 1} for n in (2048, 4096, 8192, 32768)}
    a, b, ratio = timing_growth(timing)
    assert (a, b) == (8192, 32768) and abs(ratio - 4.0) < 1e-9
    assert timing_growth({"2048": {"seconds": 1.0, "windows": 1}}) is None


def test_whole_report_has_its_sections_and_plots(tmp_path):
    data = tmp_path / "test.jsonl"
    records = [
        Record(id=f"r{i}", source="t", task="spotlight", docs=[Doc("d", "x")], question="q", answer="a", length_set=s)
        for i, s in enumerate([1, 1, 2, 2])
    ]
    write_records(data, records)
    evals = {}
    methods = {
        "full": [100, 0, 0, 0],
        "cprs": [100, 100, 100, 0],
        "bm25": [0, 0, 100, 0],
        "bm25-fixed": [0, 100, 100, 0],
        "truncate": [0, 0, 0, 0],
        "oracle": [100, 100, 100, 100],
    }
    for method, values in methods.items():
        folder = tmp_path / f"eval-{method}"
        folder.mkdir()
        (folder / "recipe.yaml").write_text(f"model:\n  source: tiny\neval:\n  data: {data}\n  judge: rule\n")
        rows = [{"id": f"r{i}", "judge": "rule", "score": v} for i, v in enumerate(values)]
        (folder / "judgements.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        evals[method] = folder
    spans = {"keyword": (0.25, 0.5, 1 / 3), "sentence": (0.5, 0.5, 0.5), "paragraph": (1.0, 0.8, 8 / 9)}
    ratios = {1: {"input_tokens": 500, "kept_tokens": 50, "ratio": 10.0}}
    timing = {"2048": {"seconds": 1.0, "windows": 2}, "8192": {"seconds": 4.0, "windows": 8}}
    report = write_cprs_report(tmp_path, evals, spans, ratios, {}, timing, ["a note"], {1: 62, 2: 125})
    text = report.read_text()
    # one row per context, the oracle among them: the mean of its four items is 100.0, CPRS's 75.0
    rows = {line.split(" | ")[0][2:]: line for line in text.splitlines() if line.startswith("| ")}
    assert {"full", "cprs", "bm25", "bm25-fixed", "truncate", "oracle"} <= set(rows)
    assert rows["oracle"].endswith("| 100.0 |") and rows["cprs"].endswith("| 75.0 |")
    assert "`oracle` = the gold evidence sentences alone" in text and "600-token chunks" in text
    assert "set 1: 62, set 2: 125 tokens" in text
    for pair in ("bm25-fixed → cprs", "oracle → cprs", "truncate → cprs"):
        assert pair in text
    for heading in ("## The reader's scores by context", "## Differences", "## Span quality", "## Compression ratio"):
        assert heading in text
    assert "| keyword | 0.250 | 0.500 | 0.333 |" in text
    assert "| 1 | 500 | 50 | 10.00x |" in text
    assert "| 8,192 | 8 | 4.00 | 2048 |" in text  # 8192 tokens / 4.0 s
    assert "full → cprs" in text and "bm25 → cprs" in text
    assert "grows linearly: reproduced" in text  # 4.0 / 1.0 = 4.00 <= 4.4
    for png in ("scores_by_set.png", "timing.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG_MAGIC
