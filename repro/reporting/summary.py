"""summary.json beside every report.md: the run's stage scores, each claim's verdict, timings and the run record."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from repro.fsio import atomic_write_json
from repro.loong.scores import EvalScores
from repro.reporting.claims import Result, trend_row
from repro.reporting.tables import Stages, pooled, seed_count
from repro.runrecord import environment

SUMMARY_FILE = "summary.json"
ENVIRONMENT_KEYS = ("git_commit", "git_dirty", "python", "torch", "transformers", "peft", "device")


def stage_summary(scores: EvalScores) -> dict[str, Any]:
    """overall / by_set / by_task avg score (0-100, parsed judgements) and n, the parsed judgements counted."""

    def avg(**where: Any) -> float | None:
        value = scores.avg(**where)
        return None if value is None else round(value, 4)

    parsed = [s for s in scores.select() if s is not None]
    return {
        "overall": avg(),
        "n": len(parsed),
        "by_set": {str(s): avg(length_set=s) for s in scores.length_sets()},
        "by_task": {t: avg(task=t) for t in scores.tasks()},
    }


def write_summary(
    out_dir: Path,
    paper: str,
    profile: str,
    seeds: Sequence[int],
    stages: Stages,
    results: Sequence[Result],
    timings_s: dict[str, float],
) -> Path:
    """Write OUT/summary.json (atomically) in the shape checks outside the test suite read:
    {paper, profile, seeds, environment, scores: {STAGE: {overall, n, by_set, by_task}}, trends: [...],
    timings_s: {STAGE: seconds}, total_s}. Scores pool every seed's judgements (n counts item x seed)."""
    record = environment(seed=list(seeds))
    count = seed_count(stages) if stages else 1
    summary = {
        "paper": paper,
        "profile": profile,
        "seeds": list(seeds),
        "environment": {key: record[key] for key in ENVIRONMENT_KEYS},
        "scores": {name: stage_summary(pooled(runs, count)) for name, runs in stages.items()},
        "trends": [trend_row(r) for r in results],
        "timings_s": {name: round(float(t), 1) for name, t in timings_s.items()},
        "total_s": round(float(sum(timings_s.values())), 1),
    }
    path = Path(out_dir) / SUMMARY_FILE
    atomic_write_json(path, summary)
    return path


def check_summary(summary: dict) -> list[str]:
    """What in a summary.json breaks its contract (empty: nothing); the reproduction tests call it."""
    problems = []
    expect = {"paper": str, "profile": str, "seeds": list, "environment": dict, "scores": dict, "trends": list,
              "timings_s": dict, "total_s": (int, float)}  # fmt: skip
    for key, kind in expect.items():
        if not isinstance(summary.get(key), kind):
            problems.append(f"{key}: expected {kind}, got {type(summary.get(key)).__name__}")
    if summary.get("paper") not in ("l1", "solopo", "cprs"):
        problems.append(f"paper: {summary.get('paper')!r}")
    for key in ENVIRONMENT_KEYS:
        if key not in summary.get("environment", {}):
            problems.append(f"environment.{key} missing")
    for name, s in (summary.get("scores") or {}).items():
        if set(s) != {"overall", "n", "by_set", "by_task"} or not isinstance(s["n"], int):
            problems.append(f"scores.{name}: {sorted(s)}")
    trend_keys = {"claim", "primary", "verdict", "mean", "low", "high", "n", "mde", "paper"}
    for i, t in enumerate(summary.get("trends") or []):
        if set(t) != trend_keys:
            problems.append(f"trends[{i}] keys: {sorted(t)}")
        elif t["verdict"] not in ("reproduced", "not reproduced", "inconclusive"):
            problems.append(f"trends[{i}].verdict: {t['verdict']!r}")
    return problems
