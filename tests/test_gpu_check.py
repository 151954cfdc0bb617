"""gpu-check's rows run their paths on a CPU at small sizes: each passes or fails on its own, and the table
counts them; the refusal of 2 processes on 1 GPU is checked with one GPU pretended."""

from __future__ import annotations

import torch

from repro import gpu_check
from repro.gpu_check import Shape, format_table, logprob_checks, run_checks, sampling_checks, training_checks

SMALL = Shape(device="cpu", dtype="float32", prompt_tokens=64, group=3, new_tokens=8, steps=1)


def test_the_hot_paths_run_and_pass_on_a_cpu(tiny_model_dir):
    checks = logprob_checks(tiny_model_dir, SMALL) + sampling_checks(tiny_model_dir, SMALL)
    checks += training_checks(tiny_model_dir, SMALL)
    rows = run_checks(checks)
    assert [r.result for r in rows] == ["ok"] * 6, [r.result for r in rows]
    assert all(r.ms is not None and r.ms > 0 for r in rows)


def test_a_failing_row_is_a_row_and_the_table_counts_the_passed(monkeypatch):
    def broken() -> tuple[float, float]:
        raise RuntimeError("grouped and per-sample log-probs differ by 2.0e-02 > 0.001\nmore")

    rows = run_checks([("fine", lambda: (1.0, 2.0)), ("broken", broken)])
    assert [r.passed for r in rows] == [True, False]
    assert rows[1].result == "FAILED: grouped and per-sample log-probs differ by 2.0e-02 > 0.001"
    assert format_table(rows).splitlines()[-1] == "1 of 2 checks passed"


def test_two_processes_on_one_gpu_are_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert gpu_check.two_processes_check() == (None, None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # two GPUs: nothing to refuse, the row says so
    (row,) = run_checks([("refused", gpu_check.two_processes_check)])
    assert row.result.startswith("FAILED: needs exactly one visible GPU")
