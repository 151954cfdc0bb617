"""Markdown tables the reports share: scores by stage, paired differences by set and by task."""

from __future__ import annotations

from repro.loong.metrics import LOONG_TASKS, parsed_scores
from repro.loong.scores import EvalScores, task_order
from repro.reporting.bootstrap import is_noise, paired_bootstrap

TASK_LABELS = dict(LOONG_TASKS) | {"qa": "QA", "docmath": "DocMath", "multiple_choice": "Multiple choice"}


def escape_cell(name: str) -> str:
    return name.replace("|", "\\|")


def signed(x: float) -> str:
    text = f"{x:+.1f}"
    return "+0.0" if text == "-0.0" else text


def format_span(mean: float, low: float, high: float) -> str:
    return f"{signed(mean)} [{signed(low)}, {signed(high)}]"


def formatdifference(mean: float, low: float, high: float) -> str:
    """E.g. "+12.3 [+4.1, +20.5]", with " (noise)" when the interval contains 0."""
    return format_span(mean, low, high) + (" (noise)" if is_noise(low, high) else "")


def stage_table(stages: dict[str, EvalScores]) -> str:
    """Markdown: one row per stage, avg score by length set, by task and overall over the parsed judgements; a cell
    averaged over fewer items than its column's most says how many; a closing line counts the unparsed ones."""
    sets = sorted({s for sc in stages.values() for s in sc.length_sets()})
    tasks = sorted({t for sc in stages.values() for t in sc.tasks()}, key=task_order)
    columns = [(f"Set{s}", {"length_set": s}) for s in sets]
    columns += [(TASK_LABELS.get(t, t), {"task": t}) for t in tasks]
    columns.append(("Overall", {}))
    header, rows = ["Stage"], {name: [escape_cell(name)] for name in stages}
    for label, where in columns:
        counts = {name: len(parsed_scores(sc.select(**where))) for name, sc in stages.items()}
        most = max(counts.values(), default=0)
        header.append(f"{label} (n={most})")
        for name, sc in stages.items():
            avg = sc.avg(**where)
            cell = "–" if avg is None else f"{avg:.1f}"
            rows[name].append(cell if counts[name] in (0, most) else f"{cell} (n={counts[name]})")
    unparsed = ", ".join(f"{name} {sc.unparsed()} of {len(sc.items)}" for name, sc in stages.items())
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows.values()]
    lines += [
        "",
        f"Avg score 0-100 over the parsed judgements; unparsed ones (score null) are left out of the averages and "
        f"of the paired differences, as in Loong's metrics: {unparsed}.",
    ]
    return "\n".join(lines) + "\n"


def paired_scores(
    before: EvalScores, after: EvalScores, length_set: int | None = None, task: str | None = None
) -> tuple[list[float], list[float]]:
    """Scores of the items judged in both stages, by id; an item unparsed in either stage is left out."""
    ids = [
        i
        for i, it in before.items.items()
        if i in after.items
        and (length_set is None or it.length_set == length_set)
        and (task is None or it.task == task)
        and it.score is not None
        and after.items[i].score is not None
    ]
    return [before.items[i].score for i in ids], [after.items[i].score for i in ids]


def difference(
    stages: dict[str, EvalScores],
    before: str,
    after: str,
    length_set: int | None,
    task: str | None = None,
    **bootstrap: float,
) -> tuple[float, float, float, int] | None:
    a, b = paired_scores(stages[before], stages[after], length_set, task)
    return (*paired_bootstrap(a, b, **bootstrap), len(a)) if a else None


def difference_table(
    stages: dict[str, EvalScores],
    pairs: list[tuple[str, str]],
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> str:
    """Markdown: per (before, after) pair, after - before by length set and overall, items paired by id."""
    missing = sorted({name for pair in pairs for name in pair if name not in stages})
    if missing:
        raise ValueError(f"unknown stage(s) {', '.join(missing)} (stages: {', '.join(stages)})")
    sets = sorted({s for sc in stages.values() for s in sc.length_sets()})
    bootstrap = {"n_resamples": n_resamples, "seed": seed, "level": level}
    header = ["Change", *(f"Set{s}" for s in sets), "Overall", "Paired items"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for before, after in pairs:
        cells = [f"{escape_cell(before)} → {escape_cell(after)}"]
        for length_set in [*sets, None]:
            diff = difference(stages, before, after, length_set, **bootstrap)
            cells.append("–" if diff is None else formatdifference(*diff[:3]))
        cells.append(str(len(paired_scores(stages[before], stages[after])[0])))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Cells: after − before in avg score points, items paired by id (an item unparsed in either stage left "
        f"out), with a {level:.0%} "
        f"percentile bootstrap interval over items ({n_resamples} resamples, seed {seed}); "
        "(noise) = the interval contains 0.",
    ]
    return "\n".join(lines) + "\n"


def task_difference_table(
    stages: dict[str, EvalScores], pairs: list[tuple[str, str]], n_resamples: int = 2000, seed: int = 0
) -> str:
    """Markdown: per (before, after) pair, after - before by task (RL trains on some tasks: this shows what
    it moved, and what it cost the others)."""
    tasks = sorted({t for sc in stages.values() for t in sc.tasks()}, key=task_order)
    header = ["Change", *(TASK_LABELS.get(t, t) for t in tasks)]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for before, after in pairs:
        cells = [f"{escape_cell(before)} → {escape_cell(after)}"]
        for task in tasks:
            diff = difference(stages, before, after, None, task, n_resamples=n_resamples, seed=seed)
            cells.append("–" if diff is None else formatdifference(*diff[:3]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def find_stage(stages: dict[str, EvalScores], name: str) -> str | None:
    return next((key for key in stages if key.lower() == name.lower()), None)


def direction(mean: float, low: float, high: float) -> str:
    if is_noise(low, high):
        return "inconclusive (interval contains 0)"
    return "reproduced" if mean > 0 else "not reproduced"


