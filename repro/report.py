"""The QwenLong-L1 reproduction report: stage scores, paired bootstrap differences, paper trends, training curves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from repro.data.jsonl import appended_lines
from repro.data.schema import TASKS, read_records
from repro.errors import ReproError
from repro.fsio import atomic_write_text
from repro.loong.metrics import LOONG_TASKS, parsed_scores
from repro.plots import number, plot_scores_by_set, plot_training, training_summary

PAPER_SOURCE = "QwenLong-L1 (arXiv 2505.17667)"
PAPER_BENCHMARKS = "DocMath, Frames, LongBench 2WikiMultihopQA, HotpotQA, MuSiQue, NarrativeQA, Qasper"
PAPER_STAGES: tuple[str, ...] = ("base", "SFT", "GRPO", "DAPO")
# Average of the paper's 7 benchmarks (%), in PAPER_STAGES order.
PAPER_L1: dict[str, tuple[float, ...]] = {
    "R1-Distill-Qwen-14B": (64.2, 65.0, 68.2, 68.3),
    "R1-Distill-Qwen-32B": (65.6, 68.7, 70.3, 70.7),
}
PAPER_DAPO_GRPO_GAP = 0.4
TASK_LABELS = dict(LOONG_TASKS) | {"qa": "QA", "docmath": "DocMath", "multiple_choice": "Multiple choice"}
# Bootstrap resamples drawn per chunk, so a large item count never builds one huge index matrix.
_CHUNK_CELLS = 1_000_000


@dataclass(frozen=True)
class ItemScore:
    score: float | None  # None: the judge's output did not parse
    task: str
    length_set: int | None


@dataclass
class EvalScores:
    """One evaluation run's judged items by id, in the record file's order."""

    items: dict[str, ItemScore]
    source: str = ""

    def select(self, length_set: int | None = None, task: str | None = None) -> list[float | None]:
        return [
            it.score
            for it in self.items.values()
            if (length_set is None or it.length_set == length_set) and (task is None or it.task == task)
        ]

    def avg(self, length_set: int | None = None, task: str | None = None) -> float | None:
        """Mean of the parsed scores (unparsed ones left out, as in metrics.json); None when none is parsed."""
        scores = parsed_scores(self.select(length_set, task))
        return sum(scores) / len(scores) if scores else None

    def unparsed(self) -> int:
        """How many judgements did not parse."""
        return len(self.items) - len(parsed_scores(self.select()))

    def length_sets(self) -> list[int]:
        return sorted({it.length_set for it in self.items.values() if it.length_set is not None})

    def tasks(self) -> list[str]:
        return sorted({it.task for it in self.items.values()}, key=_task_order)


def _task_order(task: str) -> tuple[int, str]:
    return (TASKS.index(task), "") if task in TASKS else (len(TASKS), task)


def _resampled_means(values: np.ndarray, rng: np.random.Generator, n_resamples: int) -> np.ndarray:
    n = len(values)
    per_chunk = max(1, _CHUNK_CELLS // n)
    chunks = []
    for start in range(0, n_resamples, per_chunk):
        idx = rng.integers(0, n, size=(min(per_chunk, n_resamples - start), n))
        chunks.append(values[idx].mean(axis=1))
    return np.concatenate(chunks)


def _check_bootstrap_args(n_resamples: int, level: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")


def _interval(means: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """mean(b) - mean(a) over paired items, with its percentile bootstrap interval (item indices resampled)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    if not a:
        raise ValueError("no paired items")
    _check_bootstrap_args(n_resamples, level)
    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    means = _resampled_means(diffs, np.random.default_rng(seed), n_resamples)
    return (float(diffs.mean()), *_interval(means, level))


def gap_bootstrap(
    longer: Sequence[float], shorter: Sequence[float], n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """mean(longer) - mean(shorter) for two independent samples, each resampled on its own, with its interval."""
    if not longer or not shorter:
        raise ValueError("both samples need at least one value")
    _check_bootstrap_args(n_resamples, level)
    x, y = np.asarray(longer, dtype=float), np.asarray(shorter, dtype=float)
    rng = np.random.default_rng(seed)
    means = _resampled_means(x, rng, n_resamples) - _resampled_means(y, rng, n_resamples)
    return (float(x.mean() - y.mean()), *_interval(means, level))


def is_noise(low: float, high: float) -> bool:
    """True when the interval [low, high] contains 0."""
    return low <= 0 <= high


def _read_judgements(path: Path) -> dict[str, float | None]:
    if not path.is_file():
        raise ReproError(f"{path}: judgements file not found (is this a finished `repro eval` run folder?)")
    scores: dict[str, float | None] = {}
    for where, obj in appended_lines(path):
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str | int) or "score" not in obj:
            raise ReproError(f'{where}: expected {{"id": ..., "score": 0-100 or null}}')
        score = obj["score"]
        if score is not None and (number(obj, "score") is None or not 0 <= score <= 100):
            raise ReproError(f"{where}: 'score' must be a number in 0..100 or null, got {score!r}")
        scores[str(obj["id"])] = None if score is None else float(score)
    return scores


def load_eval(run_dir: str | Path) -> EvalScores:
    """Per item id: score, task and length set, joined from judgements.jsonl and the recipe's eval.data records."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReproError(f"{run_dir}: evaluation run folder not found")
    recipe_path = run_dir / "recipe.yaml"
    if not recipe_path.is_file():
        raise ReproError(f"{recipe_path}: recipe file not found (is this a `repro eval` run folder?)")
    try:
        recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ReproError(f"{recipe_path}: not valid YAML ({exc})") from None
    data = (
        recipe.get("eval", {}).get("data")
        if isinstance(recipe, dict) and isinstance(recipe.get("eval"), dict)
        else None
    )
    if not isinstance(data, str) or not data:
        raise ReproError(f"{recipe_path}: no eval.data key naming the record file")
    scores = _read_judgements(run_dir / "judgements.jsonl")
    records = {r.id: r for r in read_records(data).records}
    unknown = [i for i in scores if i not in records]
    if unknown:
        raise ReproError(
            f"{run_dir / 'judgements.jsonl'}: id '{unknown[0]}' is not in {data} "
            f"({len(unknown)} unknown ids); was the record file changed after the run?"
        )
    items = {i: ItemScore(scores[i], r.task, r.length_set) for i, r in records.items() if i in scores}
    return EvalScores(items=items, source=str(run_dir))


def _esc(name: str) -> str:
    return name.replace("|", "\\|")


def _signed(x: float) -> str:
    text = f"{x:+.1f}"
    return "+0.0" if text == "-0.0" else text


def _span(mean: float, low: float, high: float) -> str:
    return f"{_signed(mean)} [{_signed(low)}, {_signed(high)}]"


def format_difference(mean: float, low: float, high: float) -> str:
    """E.g. "+12.3 [+4.1, +20.5]", with " (noise)" when the interval contains 0."""
    return _span(mean, low, high) + (" (noise)" if is_noise(low, high) else "")


def stage_table(stages: dict[str, EvalScores]) -> str:
    """Markdown: one row per stage, avg score by length set, by task and overall over the parsed judgements; a cell
    averaged over fewer items than its column's most says how many; a closing line counts the unparsed ones."""
    sets = sorted({s for sc in stages.values() for s in sc.length_sets()})
    tasks = sorted({t for sc in stages.values() for t in sc.tasks()}, key=_task_order)
    columns = [(f"Set{s}", {"length_set": s}) for s in sets]
    columns += [(TASK_LABELS.get(t, t), {"task": t}) for t in tasks]
    columns.append(("Overall", {}))
    header, rows = ["Stage"], {name: [_esc(name)] for name in stages}
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


def _paired(
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


def _difference(
    stages: dict[str, EvalScores],
    before: str,
    after: str,
    length_set: int | None,
    task: str | None = None,
    **bootstrap: float,
) -> tuple[float, float, float, int] | None:
    a, b = _paired(stages[before], stages[after], length_set, task)
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
        cells = [f"{_esc(before)} → {_esc(after)}"]
        for length_set in [*sets, None]:
            diff = _difference(stages, before, after, length_set, **bootstrap)
            cells.append("–" if diff is None else format_difference(*diff[:3]))
        cells.append(str(len(_paired(stages[before], stages[after])[0])))
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
    tasks = sorted({t for sc in stages.values() for t in sc.tasks()}, key=_task_order)
    header = ["Change", *(TASK_LABELS.get(t, t) for t in tasks)]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for before, after in pairs:
        cells = [f"{_esc(before)} → {_esc(after)}"]
        for task in tasks:
            diff = _difference(stages, before, after, None, task, n_resamples=n_resamples, seed=seed)
            cells.append("–" if diff is None else format_difference(*diff[:3]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _find(stages: dict[str, EvalScores], name: str) -> str | None:
    return next((key for key in stages if key.lower() == name.lower()), None)


def _direction(mean: float, low: float, high: float) -> str:
    if is_noise(low, high):
        return "inconclusive (interval contains 0)"
    return "reproduced" if mean > 0 else "not reproduced"


def _paper_delta(before: str, after: str) -> str:
    names = [p.lower() for p in PAPER_STAGES]
    if before.lower() not in names or after.lower() not in names:
        return "no paper number for this pair"
    i, j = names.index(before.lower()), names.index(after.lower())
    parts = [f"{_signed(v[j] - v[i])} ({model.rsplit('-', 1)[-1]})" for model, v in PAPER_L1.items()]
    return "paper: " + ", ".join(parts)


def trend_lines(
    stages: dict[str, EvalScores],
    base: str = "base",
    sft: str = "SFT",
    rl: Sequence[str] = ("GRPO", "DAPO"),
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    paper_gap: float = PAPER_DAPO_GRPO_GAP,
) -> list[str]:
    """One line per paper trend saying, with its numbers, whether it reproduced on these stages."""
    bs = {"n_resamples": n_resamples, "seed": seed, "level": level}
    b, s = _find(stages, base), _find(stages, sft)
    rl_keys = [key for key in stages if key.lower() in {r.lower() for r in rl}]
    lines = []

    def delta(before: str, after: str, length_set: int | None = None) -> tuple[float, float, float, int] | None:
        return _difference(stages, before, after, length_set, **bs)

    def shown(before: str, after: str, diff: tuple[float, float, float, int]) -> str:
        return f"{after} − {before} = {_span(*diff[:3])} over {diff[3]} paired items"

    if b is None or s is None:
        lines.append(f"SFT > base: not checked (needs stages '{base}' and '{sft}'; have {', '.join(stages)})")
    elif (d := delta(b, s)) is None:
        lines.append(f"SFT > base: not checked (no item id in both '{b}' and '{s}')")
    else:
        lines.append(f"SFT > base: {_direction(*d[:3])} ({shown(b, s, d)}; {_paper_delta('base', 'SFT')})")
    for r in rl_keys:
        if s is None:
            lines.append(f"RL > SFT ({r}): not checked (no '{sft}' stage)")
        elif (d := delta(s, r)) is None:
            lines.append(f"RL > SFT ({r}): not checked (no item id in both '{s}' and '{r}')")
        else:
            lines.append(f"RL > SFT ({r}): {_direction(*d[:3])} ({shown(s, r, d)}; {_paper_delta('SFT', r)})")
    ref = s if s is not None else b
    for r in rl_keys:
        name = f"larger RL gains on longer sets ({r} − {ref})" if ref else f"larger RL gains on longer sets ({r})"
        sets = sorted({st for key in (ref, r) if key is not None for st in stages[key].length_sets()})
        if ref is None or len(sets) < 2:
            lines.append(f"{name}: not checked (needs an SFT or base stage and two length sets)")
            continue
        short, long_ = sets[0], sets[-1]
        a1, b1 = _paired(stages[ref], stages[r], short)
        ak, bk = _paired(stages[ref], stages[r], long_)
        if not a1 or not ak:
            lines.append(f"{name}: not checked (no paired items on Set{short} or Set{long_})")
            continue
        d1, dk = delta(ref, r, short), delta(ref, r, long_)
        gap = gap_bootstrap(
            [y - x for x, y in zip(ak, bk, strict=True)], [y - x for x, y in zip(a1, b1, strict=True)], **bs
        )
        lines.append(
            f"{name}: {_direction(*gap)} (Set{long_} {_span(*dk[:3])} vs Set{short} "
            f"{_span(*d1[:3])}; Set{long_} gain − Set{short} gain = {_span(*gap)}; "
            "paper: gains grow with input length)"
        )
    g, dp = _find(stages, "GRPO"), _find(stages, "DAPO")
    if g is not None and dp is not None:
        if (d := delta(g, dp)) is None:
            lines.append(f"DAPO ≈ GRPO: not checked (no item id in both '{g}' and '{dp}')")
        else:
            mean, low, high = d[:3]
            if -paper_gap <= low and high <= paper_gap:
                verdict = "reproduced"
            elif not is_noise(low, high) and abs(mean) > paper_gap:
                verdict = "not reproduced"
            elif is_noise(low, high):
                verdict = f"inconclusive (interval contains 0 but reaches past ±{paper_gap:.1f})"
            else:
                verdict = f"inconclusive (interval reaches past ±{paper_gap:.1f})"
            lines.append(
                f"DAPO ≈ GRPO: {verdict} (|{dp} − {g}| = {abs(mean):.1f}, {shown(g, dp, d)}, vs the paper's "
                f"{paper_gap:.1f} points; {_paper_delta('GRPO', 'DAPO')})"
            )
    return lines


def paper_table() -> str:
    """The paper's own table, labelled as such: its models on its 7 benchmarks, not this run's items."""
    lines = ["| Model (paper) | base | + SFT | L1-GRPO | L1-DAPO |", "|---|---|---|---|---|"]
    lines += [f"| {model} | " + " | ".join(f"{v:.1f}" for v in vals) + " |" for model, vals in PAPER_L1.items()]
    lines += [
        "",
        f"The paper's numbers, from {PAPER_SOURCE}: average accuracy (%) of its models over its own 7 benchmarks "
        f"({PAPER_BENCHMARKS}); not this run's models or items, so compare trends, not values.",
    ]
    return "\n".join(lines) + "\n"


def default_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """(base, SFT), (SFT or base, each RL stage), (GRPO, DAPO), for the stages present (case-insensitive)."""
    lower = {n.lower(): n for n in names}
    base, sft = lower.get("base"), lower.get("sft")
    rl = [lower[k] for k in ("dapo", "grpo") if k in lower]
    pairs = [(base, sft)] if base and sft else []
    ref = sft or base
    pairs += [(ref, r) for r in rl] if ref else []
    if "grpo" in lower and "dapo" in lower:
        pairs.append((lower["grpo"], lower["dapo"]))
    return pairs


def write_l1_report(out_dir: Path, stages: dict[str, Path], rl_runs: dict[str, Path], notes: list[str]) -> Path:
    """Write report.md, scores_by_set.png and (with RL runs) training.png into out_dir; returns report.md's path."""
    if not stages:
        raise ReproError("the report needs at least one evaluation run (stages)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = {name: load_eval(path) for name, path in stages.items()}
    pairs = default_pairs(list(scores))
    lines = ["# QwenLong-L1 reproduction report", "", "## Notes", ""]
    lines += [f"- {note}" for note in notes] or ["- (none given)"]
    lines += ["", "## Runs", ""]
    lines += [f"- evaluation `{_esc(name)}`: `{path}`" for name, path in stages.items()]
    lines += [f"- RL training `{_esc(name)}`: `{path}`" for name, path in rl_runs.items()]
    lines += ["", "## Scores by stage (this run)", "", stage_table(scores)]
    lines += ["## The paper's table (its models, its benchmarks)", "", paper_table()]
    lines += ["## Differences between stages (this run)", ""]
    lines += [difference_table(scores, pairs) if pairs else "No stage pair to compare.\n"]
    if pairs:
        lines += ["By task (same intervals):", "", task_difference_table(scores, pairs)]
    lines += ["## Paper trends", ""]
    lines += [f"- {line}" for line in trend_lines(scores)] or ["- No trend can be checked with these stages."]
    plot_scores_by_set(scores, out_dir / "scores_by_set.png")
    lines += ["", "![Score by length set](scores_by_set.png)", "", "## RL training", ""]
    if rl_runs:
        plot_training(rl_runs, out_dir / "training.png")
        lines += [training_summary(rl_runs), "![Training curves per step](training.png)"]
    else:
        lines.append("No RL training run given.")
    report = out_dir / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    return report
