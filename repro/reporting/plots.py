"""Reports' training-run side and plots: metrics.jsonl rows, the RL summary table, PNGs (Agg, atomic writes)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from repro.data.jsonl import appended_lines
from repro.errors import ReproError
from repro.fsio import atomic_write_bytes

if TYPE_CHECKING:
    from repro.loong.scores import EvalScores

TRAIN_PANELS: tuple[str, ...] = ("reward_mean", "response_len", "entropy", "filtered_share")


def read_step_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of a training run's metrics.jsonl (or of that file itself); a torn last line is ignored."""
    path = Path(run_dir)
    if not path.is_file():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise ReproError(f"{path}: training metrics file not found (is this a `repro rl` run folder?)")
    rows = []
    for where, row in appended_lines(path):
        if not isinstance(row, dict):
            raise ReproError(f"{where}: expected a JSON object per line, got {type(row).__name__}")
        rows.append(row)
    return rows


def number(row: Mapping[str, Any], key: str) -> float | None:
    """row[key] as a float when it is a finite number; None when missing or anything else."""
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def step_of(row: Mapping[str, Any], index: int) -> float:
    """The row's optimizer step; its 1-based position when the row has none."""
    step = number(row, "step")
    return float(index + 1) if step is None else step


def phase_changes(rows: list[dict[str, Any]]) -> list[float]:
    """Steps where the curriculum phase differs from the last known one; rows without a phase are skipped."""
    changes, last = [], None
    for i, row in enumerate(rows):
        phase = number(row, "phase")
        if phase is None:
            continue
        if last is not None and phase != last:
            changes.append(step_of(row, i))
        last = phase
    return changes


def save_png(fig: Figure, out_png: str | Path) -> Path:
    """Render `fig` to a temp file beside `out_png`, fsync, then rename it over `out_png`."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    atomic_write_bytes(out_png, buffer.getvalue())
    return Path(out_png)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def training_summary(rl_runs: dict[str, Path]) -> str:
    """Markdown: per RL run, steps, groups generated vs used, mean filtered share, reward first vs last quarter."""
    header = "| Run | Steps | Phases | Groups generated | Groups used | Mean filtered share | Reward, first ¼ "
    header += "| Reward, last ¼ |"
    lines = [header, "|---" * 8 + "|"]
    for name, path in rl_runs.items():
        rows = read_step_rows(path)

        def values(key: str, part: list[dict] = rows) -> list[float]:
            return [v for r in part if (v := number(r, key)) is not None]

        quarter = max(1, len(rows) // 4)
        generated, used = values("groups_generated"), values("groups_used")
        cells = [
            name.replace("|", "\\|"),
            str(len(rows)),
            str(len(set(values("phase")))) if values("phase") else "–",
            f"{sum(generated):.0f}" if generated else "–",
            f"{sum(used):.0f}" if used else "–",
            _fmt(_mean(values("filtered_share"))),
            _fmt(_mean(values("reward_mean", rows[:quarter]))),
            _fmt(_mean(values("reward_mean", rows[-quarter:]))),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Groups summed over steps; filtered share = share of generated groups dropped (all rewards equal), "
        "averaged over steps; reward = mean of reward_mean over the first and last quarter of the logged steps.",
    ]
    return "\n".join(lines) + "\n"


def no_data(ax: Any) -> None:
    ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="gray")


def plot_training(rl_runs: dict[str, Path], out_png: Path) -> Path:
    """Panels reward_mean, response_len, entropy, filtered_share per step, one line per run, dashed at phase changes.

    A run without a key gets no line in that panel; a panel no run has says "no data".
    """
    fig = Figure(figsize=(11, 7.5), layout="constrained")
    axes = fig.subplots(2, 2).flat
    runs = {name: read_step_rows(path) for name, path in rl_runs.items()}
    for ax, key in zip(axes, TRAIN_PANELS, strict=True):
        if not plot_step_lines(ax, runs, key, phases=True):
            no_data(ax)
    handles = [Line2D([], [], color=f"C{i}", label=name) for i, name in enumerate(runs)]
    handles.append(Line2D([], [], color="gray", linestyle="--", label="phase change"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5))
    return save_png(fig, out_png)


def plot_step_lines(ax: Any, runs: dict[str, list[dict[str, Any]]], key: str, phases: bool = False) -> bool:
    """One line per run of `key` against the step (dashed at phase changes with `phases`); False if none had it."""
    drawn = False
    for i, (name, rows) in enumerate(runs.items()):
        points = [(step_of(r, j), v) for j, r in enumerate(rows) if (v := number(r, key)) is not None]
        if not points:
            continue
        drawn = True
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, color=f"C{i}", label=name, marker="." if len(points) < 30 else None)
        for x in phase_changes(rows) if phases else []:
            ax.axvline(x, color=f"C{i}", linestyle="--", linewidth=0.9, alpha=0.6)
    ax.set_title(key)
    ax.set_xlabel("step")
    return drawn


def plot_scores_by_set(stages: dict[str, EvalScores], out_png: Path) -> Path:
    """Parsed judgements' average score by length set, one line per stage; a stage without a set has no point there."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    sets = sorted({s for scores in stages.values() for s in scores.length_sets()})
    for i, (name, scores) in enumerate(stages.items()):
        ys = [scores.avg(length_set=s) for s in sets]
        ax.plot(sets, [math.nan if y is None else y for y in ys], color=f"C{i}", marker="o", label=name)
    if sets:
        ax.set_xticks(sets, [f"Set{s}" for s in sets])
        ax.legend()
    else:
        no_data(ax)
    ax.set_ylim(0, 100)
    ax.set_xlabel("length set (longer inputs to the right)")
    ax.set_ylabel("avg score (0-100)")
    ax.set_title("Score by length set")
    return save_png(fig, out_png)
