"""Markdown tables the reports share: scores by stage, paired differences by set and by task, over seeds."""

from __future__ import annotations

from collections.abc import Sequence

from repro.loong.metrics import LOONG_TASKS, parsed_scores
from repro.loong.scores import EvalScores, task_order
from repro.reporting.claims import paired_scores, signed
from repro.reporting.stats import Estimate, paired_estimate

TASK_LABELS = dict(LOONG_TASKS) | {"qa": "QA", "docmath": "DocMath", "multiple_choice": "Multiple choice"}
# A report's stages: each stage's evaluation runs, one per training seed (one for a seed-independent stage)
Stages = dict[str, list[EvalScores]]


def escape_cell(name: str) -> str:
    return name.replace("|", "\\|")


def format_span(mean: float, low: float, high: float) -> str:
    return f"{signed(mean)} [{signed(low)}, {signed(high)}]"


def pooled(runs: Sequence[EvalScores], seeds: int) -> EvalScores:
    """A stage's runs as one set of judged (item, seed) pairs: a single run counts once per seed, so every
    stage of a table weighs its items alike."""
    runs = list(runs) * seeds if len(runs) == 1 else list(runs)
    items = {f"{i}@{k}": it for k, run in enumerate(runs) for i, it in run.items.items()}
    return EvalScores(items, source=", ".join(r.source for r in runs))


def seed_count(stages: Stages) -> int:
    return max((len(runs) for runs in stages.values()), default=1)


def stage_table(stages: Stages) -> str:
    """Markdown: one row per stage, avg score by length set, by task and overall over the parsed judgements of
    every seed; a cell averaged over fewer judgements than its column's most says how many; a closing line counts
    the unparsed ones."""
    seeds = seed_count(stages)
    pools = {name: pooled(runs, seeds) for name, runs in stages.items()}
    sets = sorted({s for sc in pools.values() for s in sc.length_sets()})
    tasks = sorted({t for sc in pools.values() for t in sc.tasks()}, key=task_order)
    columns = [(f"Set{s}", {"length_set": s}) for s in sets]
    columns += [(TASK_LABELS.get(t, t), {"task": t}) for t in tasks]
    columns.append(("Overall", {}))
    header, rows = ["Stage"], {name: [escape_cell(name)] for name in pools}
    for label, where in columns:
        counts = {name: len(parsed_scores(sc.select(**where))) for name, sc in pools.items()}
        most = max(counts.values(), default=0)
        header.append(f"{label} (n={most})")
        for name, sc in pools.items():
            avg = sc.avg(**where)
            cell = "–" if avg is None else f"{avg:.1f}"
            rows[name].append(cell if counts[name] in (0, most) else f"{cell} (n={counts[name]})")
    unparsed = ", ".join(f"{name} {sc.unparsed()} of {len(sc.items)}" for name, sc in pools.items())
    per_seed = f", over {seeds} training seeds (n counts item x seed)" if seeds > 1 else ""
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows.values()]
    lines += [
        "",
        f"Avg score 0-100 over the parsed judgements{per_seed}; unparsed ones (score null) are left out of the "
        f"averages and of the paired differences, as in Loong's metrics: {unparsed}.",
    ]
    return "\n".join(lines) + "\n"


def difference(
    stages: Stages, before: str, after: str, length_set: int | None = None, task: str | None = None
) -> Estimate | None:
    """after - before over the items judged in both (every seed), with its interval; None without such items."""
    a, b = paired_scores(stages[before], stages[after], length_set, task)
    return paired_estimate(a, b) if a and a[0] else None


def _cell(est: Estimate | None) -> str:
    return "–" if est is None else format_span(est.mean, est.low, est.high)


def difference_table(stages: Stages, pairs: list[tuple[str, str]]) -> str:
    """Markdown: per (before, after) pair, after - before by length set and overall, items paired by id."""
    missing = sorted({name for pair in pairs for name in pair if name not in stages})
    if missing:
        raise ValueError(f"unknown stage(s) {', '.join(missing)} (stages: {', '.join(stages)})")
    sets = sorted({s for runs in stages.values() for sc in runs for s in sc.length_sets()})
    header = ["Change", *(f"Set{s}" for s in sets), "Overall", "Paired items"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for before, after in pairs:
        cells = [f"{escape_cell(before)} → {escape_cell(after)}"]
        cells += [_cell(difference(stages, before, after, length_set)) for length_set in [*sets, None]]
        cells.append(str(len(paired_scores(stages[before], stages[after])[0][0])))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", DIFFERENCE_NOTE]
    return "\n".join(lines) + "\n"


def task_difference_table(stages: Stages, pairs: list[tuple[str, str]]) -> str:
    """Markdown: per (before, after) pair, after - before by task (RL trains on some tasks: this shows what
    it moved, and what it cost the others)."""
    tasks = sorted({t for runs in stages.values() for sc in runs for t in sc.tasks()}, key=task_order)
    header = ["Change", *(TASK_LABELS.get(t, t) for t in tasks)]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for before, after in pairs:
        cells = [f"{escape_cell(before)} → {escape_cell(after)}"]
        cells += [_cell(difference(stages, before, after, None, task)) for task in tasks]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


DIFFERENCE_NOTE = (
    "Exploratory: after − before in avg score points, items paired by id (an item unparsed in either stage "
    "left out), averaged over the training seeds; 95% bootstrap interval over items (BCa below 50 items, "
    "percentile above; 4,000 resamples), not corrected for the number of cells."
)


def find_stage(stages: Stages, name: str) -> str | None:
    return next((key for key in stages if key.lower() == name.lower()), None)
