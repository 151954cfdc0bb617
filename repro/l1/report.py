"""The QwenLong-L1 reproduction report: stage scores, paired bootstrap differences, paper trends, training curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from repro.errors import ReproError
from repro.fsio import atomic_write_text
from repro.loong.scores import EvalScores, load_eval
from repro.reporting.bootstrap import gap_bootstrap, is_noise
from repro.reporting.plots import plot_scores_by_set, plot_training, training_summary
from repro.reporting.tables import (
    difference,
    difference_table,
    direction,
    escape_cell,
    find_stage,
    format_span,
    paired_scores,
    signed,
    stage_table,
    task_difference_table,
)

PAPER_SOURCE = "QwenLong-L1 (arXiv 2505.17667)"
PAPER_BENCHMARKS = "DocMath, Frames, LongBench 2WikiMultihopQA, HotpotQA, MuSiQue, NarrativeQA, Qasper"
PAPER_STAGES: tuple[str, ...] = ("base", "SFT", "GRPO", "DAPO")
# Average of the paper's 7 benchmarks (%), in PAPER_STAGES order.
PAPER_L1: dict[str, tuple[float, ...]] = {
    "R1-Distill-Qwen-14B": (64.2, 65.0, 68.2, 68.3),
    "R1-Distill-Qwen-32B": (65.6, 68.7, 70.3, 70.7),
}
PAPER_DAPO_GRPO_GAP = 0.4
def _paper_delta(before: str, after: str) -> str:
    names = [p.lower() for p in PAPER_STAGES]
    if before.lower() not in names or after.lower() not in names:
        return "no paper number for this pair"
    i, j = names.index(before.lower()), names.index(after.lower())
    parts = [f"{signed(v[j] - v[i])} ({model.rsplit('-', 1)[-1]})" for model, v in PAPER_L1.items()]
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
    b, s = find_stage(stages, base), find_stage(stages, sft)
    rl_keys = [key for key in stages if key.lower() in {r.lower() for r in rl}]
    lines = []

    def delta(before: str, after: str, length_set: int | None = None) -> tuple[float, float, float, int] | None:
        return difference(stages, before, after, length_set, **bs)

    def shown(before: str, after: str, diff: tuple[float, float, float, int]) -> str:
        return f"{after} − {before} = {format_span(*diff[:3])} over {diff[3]} paired items"

    if b is None or s is None:
        lines.append(f"SFT > base: not checked (needs stages '{base}' and '{sft}'; have {', '.join(stages)})")
    elif (d := delta(b, s)) is None:
        lines.append(f"SFT > base: not checked (no item id in both '{b}' and '{s}')")
    else:
        lines.append(f"SFT > base: {direction(*d[:3])} ({shown(b, s, d)}; {_paper_delta('base', 'SFT')})")
    for r in rl_keys:
        if s is None:
            lines.append(f"RL > SFT ({r}): not checked (no '{sft}' stage)")
        elif (d := delta(s, r)) is None:
            lines.append(f"RL > SFT ({r}): not checked (no item id in both '{s}' and '{r}')")
        else:
            lines.append(f"RL > SFT ({r}): {direction(*d[:3])} ({shown(s, r, d)}; {_paper_delta('SFT', r)})")
    ref = s if s is not None else b
    for r in rl_keys:
        name = f"larger RL gains on longer sets ({r} − {ref})" if ref else f"larger RL gains on longer sets ({r})"
        sets = sorted({st for key in (ref, r) if key is not None for st in stages[key].length_sets()})
        if ref is None or len(sets) < 2:
            lines.append(f"{name}: not checked (needs an SFT or base stage and two length sets)")
            continue
        short, long_ = sets[0], sets[-1]
        a1, b1 = paired_scores(stages[ref], stages[r], short)
        ak, bk = paired_scores(stages[ref], stages[r], long_)
        if not a1 or not ak:
            lines.append(f"{name}: not checked (no paired items on Set{short} or Set{long_})")
            continue
        d1, dk = delta(ref, r, short), delta(ref, r, long_)
        gap = gap_bootstrap(
            [y - x for x, y in zip(ak, bk, strict=True)], [y - x for x, y in zip(a1, b1, strict=True)], **bs
        )
        lines.append(
            f"{name}: {direction(*gap)} (Set{long_} {format_span(*dk[:3])} vs Set{short} "
            f"{format_span(*d1[:3])}; Set{long_} gain − Set{short} gain = {format_span(*gap)}; "
            "paper: gains grow with input length)"
        )
    g, dp = find_stage(stages, "GRPO"), find_stage(stages, "DAPO")
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
    lines += [f"- evaluation `{escape_cell(name)}`: `{path}`" for name, path in stages.items()]
    lines += [f"- RL training `{escape_cell(name)}`: `{path}`" for name, path in rl_runs.items()]
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
