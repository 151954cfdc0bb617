"""Loong metrics: Avg Score and Perfect Rate per task, set and set x task, with paper-style markdown tables."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

LOONG_TASKS: tuple[tuple[str, str], ...] = (
    ("spotlight", "Spotlight Locating"),
    ("comparison", "Comparison"),
    ("clustering", "Clustering"),
    ("chain_of_reasoning", "Chain of Reasoning"),
)
# Column names only: a run's own token ranges per set (Loong's 10-250K, or Loong-mini's) go in its report.
LOONG_SETS: tuple[tuple[str, str], ...] = (("1", "Set1"), ("2", "Set2"), ("3", "Set3"), ("4", "Set4"))

PAPER_ROW_SUFFIX = "(Loong paper, full benchmark)"
LOONG_LEADERBOARD_SOURCE = "Loong paper (arXiv 2406.17419), full benchmark of 1,600 items, GPT-4-turbo judge"
# The paper's numbers on the real benchmark, not on Loong-mini; perfect_rate is a share (0-1).
LOONG_LEADERBOARD: dict[str, dict[str, Any]] = {
    "Gemini-1.5-pro": {"avg_score": 55.37, "perfect_rate": 0.27},
    "GPT-4o": {
        "avg_score": 53.47,
        "perfect_rate": 0.26,
        "by_set": {
            "1": {"avg_score": 70.40, "perfect_rate": None},
            "2": {"avg_score": 58.38, "perfect_rate": None},
            "3": {"avg_score": 46.95, "perfect_rate": None},
            "4": {"avg_score": 31.11, "perfect_rate": None},
        },
    },
    "Claude3.5-Sonnet": {"avg_score": 48.85, "perfect_rate": 0.23},
    "Qwen2-72B": {"avg_score": 43.29, "perfect_rate": 0.15},
    "GPT-4o-mini": {"avg_score": 42.95, "perfect_rate": 0.18},
    "Llama-3.1-8B": {"avg_score": 36.31, "perfect_rate": 0.14},
}


def paper_reference_rows(models: Sequence[str] | None = None) -> list[tuple[str, dict]]:
    """LOONG_LEADERBOARD entries as format_tables reference rows, each labelled as the paper's number."""
    names = list(LOONG_LEADERBOARD) if models is None else list(models)
    unknown = [m for m in names if m not in LOONG_LEADERBOARD]
    if unknown:
        raise KeyError(f"not in LOONG_LEADERBOARD: {', '.join(unknown)} (known: {', '.join(LOONG_LEADERBOARD)})")
    return [(f"{m} {PAPER_ROW_SUFFIX}", LOONG_LEADERBOARD[m]) for m in names]


def parsed_scores(scores: Iterable[float | None]) -> list[float]:
    """The scores that enter an average: an unparsed judgement (None) is left out, and counted apart.

    This is Loong's rule (its cal_metric: avg score and perfect rate over the parsed ratings, the parsed share
    reported beside them), used by metrics.json and by every reproduction report alike.
    """
    return [s for s in scores if s is not None]


def _cell(scores: list[float | None]) -> dict[str, Any]:
    parsed = parsed_scores(scores)
    if not parsed:
        return {"avg_score": None, "perfect_rate": None, "n": len(scores), "n_parsed": 0}
    return {
        "avg_score": round(sum(parsed) / len(parsed), 2),
        "perfect_rate": round(sum(1 for s in parsed if s == 100) / len(parsed), 4),
        "n": len(scores),
        "n_parsed": len(parsed),
    }


def _check(i: int, item: dict) -> tuple[str, str | None, float | None, int]:
    if not isinstance(item, dict) or not isinstance(item.get("task"), str):
        raise ValueError(f"item {i}: expected a dict with a str 'task', got {item!r:.80}")
    score = item.get("score")
    if score is not None and (
        isinstance(score, bool)
        or not isinstance(score, (int, float))
        or not math.isfinite(score)
        or not 0 <= score <= 100
    ):
        raise ValueError(f"item {i}: 'score' must be a number in 0..100 or None, got {score!r}")
    length_set = item.get("length_set")
    dropped = item.get("dropped_docs") or 0
    return item["task"], None if length_set is None else str(length_set), score, int(dropped)


def _task_order(task: str) -> tuple[int, str]:
    known = [t for t, _ in LOONG_TASKS]
    return (known.index(task), "") if task in known else (len(known), task)


def _set_order(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (1 << 30, key)


def aggregate(items: list[dict]) -> dict[str, Any]:
    """Loong's metrics over judged items {task, length_set, score (0-100 or None if unparsed), dropped_docs?}.

    avg_score is the mean over parsed scores, perfect_rate the share of parsed scores equal to 100 (0-1),
    parse_rate = n_parsed / n. by_task, by_set (keys "1".."4") and by_set_task[set][task] hold
    {avg_score, perfect_rate, n, n_parsed}; a cell with no parsed score has None for both rates.
    Items without a length_set count overall and by task only.
    """
    rows = [_check(i, item) for i, item in enumerate(items)]
    by_task: dict[str, list[float | None]] = {}
    by_set: dict[str, list[float | None]] = {}
    by_set_task: dict[str, dict[str, list[float | None]]] = {}
    for task, length_set, score, _ in rows:
        by_task.setdefault(task, []).append(score)
        if length_set is not None:
            by_set.setdefault(length_set, []).append(score)
            by_set_task.setdefault(length_set, {}).setdefault(task, []).append(score)
    overall = _cell([score for _, _, score, _ in rows])
    return {
        "avg_score": overall["avg_score"],
        "perfect_rate": overall["perfect_rate"],
        "n": overall["n"],
        "n_parsed": overall["n_parsed"],
        "parse_rate": round(overall["n_parsed"] / overall["n"], 4) if rows else None,
        "dropped_docs": sum(dropped for *_, dropped in rows),
        "by_task": {t: _cell(by_task[t]) for t in sorted(by_task, key=_task_order)},
        "by_set": {s: _cell(by_set[s]) for s in sorted(by_set, key=_set_order)},
        "by_set_task": {
            s: {t: _cell(cells[t]) for t in sorted(cells, key=_task_order)}
            for s, cells in sorted(by_set_task.items(), key=lambda kv: _set_order(kv[0]))
        },
    }


def _fmt(entry: dict | None) -> str:
    if not entry:
        return "–"
    avg, perfect = entry.get("avg_score"), entry.get("perfect_rate")
    if avg is None and perfect is None:
        return "–"
    return f"{'–' if avg is None else f'{avg:.2f}'} / {'–' if perfect is None else f'{perfect:.2f}'}"


def _table(title: str, columns: Sequence[tuple[str, str]], part: str, rows: list[tuple[str, dict]]) -> list[str]:
    lines = [
        f"### {title} (Avg Score / Perfect Rate)",
        "",
        "| Model | " + " | ".join(label for _, label in columns) + " | Overall |",
        "|---|" + "---|" * (len(columns) + 1),
    ]
    for name, metrics in rows:
        cells = [_fmt(metrics.get(part, {}).get(key)) for key, _ in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_fmt(metrics)} |")
    return lines


def format_tables(
    metrics: dict[str, Any],
    reference_rows: Sequence[tuple[str, dict]] = (),
    label: str = "this run",
) -> str:
    """Markdown tables laid out like the Loong paper: by task, then by length set; extra rows below the run's.

    Reference rows take aggregate()-shaped dicts (LOONG_LEADERBOARD entries fit); missing cells show "–".
    """
    rows = [(label, metrics), *reference_rows]
    lines = _table("Loong by task", LOONG_TASKS, "by_task", rows)
    lines += [""] + _table("Loong by length set", LOONG_SETS, "by_set", rows)
    n, n_parsed = metrics.get("n", 0), metrics.get("n_parsed", 0)
    parse_rate = metrics.get("parse_rate")
    shown_rate = "–" if parse_rate is None else f"{100 * parse_rate:.1f}%"
    lines += [
        "",
        f"{label}: {n} items, {n_parsed} judged scores parsed ({shown_rate}); {n - n_parsed} unparsed, left out "
        f"of the averages; {metrics.get('dropped_docs', 0)} documents dropped to fit the context.",
    ]
    if any(name.endswith(PAPER_ROW_SUFFIX) for name, _ in reference_rows):
        lines.append(f"Paper rows: {LOONG_LEADERBOARD_SOURCE}; not item-for-item comparable with this run.")
    return "\n".join(lines) + "\n"
