"""Reports' training-run side and plots: metrics.jsonl rows, the RL summary table, PNGs (Agg, atomic writes)."""

from __future__ import annotations

import io
import math
import textwrap
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


def plot_step_lines(
    ax: Any, runs: dict[str, list[dict[str, Any]]], key: str, phases: bool = False, linestyle: str = "-"
) -> bool:
    """One line per run of `key` against the step (dashed at phase changes with `phases`); False if none had it."""
    drawn = False
    for i, (name, rows) in enumerate(runs.items()):
        points = [(step_of(r, j), v) for j, r in enumerate(rows) if (v := number(r, key)) is not None]
        if not points:
            continue
        drawn = True
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, color=f"C{i}", label=name, linestyle=linestyle, marker="." if len(points) < 30 else None)
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


VERDICT_COLORS = {"reproduced": "tab:green", "not reproduced": "tab:red", "inconclusive": "dimgray"}


def forest_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The claims top to bottom: primary ones first, each group in the order given."""
    return sorted(rows, key=lambda row: not row.get("primary", False))


def forest_plot(
    rows: list[dict[str, Any]],
    out_png: str | Path,
    xlabel: str = "difference (score points, 0-100 scale)",
    title: str = "Each claim's difference with its interval",
) -> Path:
    """One row per claim: its interval and mean, the paper's effect (open diamond) where given, the verdict at right.

    rows: {"claim", "mean", "low", "high", "paper" (number or None), "verdict", "primary"}; primary claims come
    first and say so. A row without a finite mean and interval says "no estimate"; no rows at all say "no data".
    """
    rows = forest_order(rows)
    fig = Figure(figsize=(9, 1.6 + 0.55 * max(1, len(rows))), layout="constrained")
    ax = fig.subplots()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    if not rows:
        no_data(ax)
        ax.set_yticks([])
        return save_png(fig, out_png)
    ys = [len(rows) - 1 - k for k in range(len(rows))]
    ax.axvline(0.0, color="gray", linestyle=":", linewidth=1)
    for y, row in zip(ys, rows, strict=True):
        color = VERDICT_COLORS.get(str(row.get("verdict")), "black")
        mean, low, high = number(row, "mean"), number(row, "low"), number(row, "high")
        if mean is None or low is None or high is None:
            ax.text(0.0, y, " no estimate", va="center", color="gray", fontsize="small")
        else:
            ax.hlines(y, low, high, color=color, linewidth=2)
            ax.plot([mean], [y], "o", color=color)
        paper = number(row, "paper")
        if paper is not None:
            ax.plot([paper], [y], "D", color="black", markerfacecolor="none", markersize=8)
    primaries = sum(1 for row in rows if row.get("primary", False))
    if 0 < primaries < len(rows):
        ax.axhline(len(rows) - primaries - 0.5, color="lightgray", linewidth=1)
    labels = [_claim_label(row) for row in rows]
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_yticks(ys, labels)
    for tick, row in zip(ax.get_yticklabels(), rows, strict=True):
        tick.set_fontweight("bold" if row.get("primary", False) else "normal")
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks(ys, [str(row.get("verdict", "")) for row in rows])
    right.tick_params(length=0)
    for tick, row in zip(right.get_yticklabels(), rows, strict=True):
        tick.set_color(VERDICT_COLORS.get(str(row.get("verdict")), "black"))
    handles = [
        Line2D([], [], color="black", marker="o", label="mean difference and interval"),
        Line2D([], [], color="black", marker="D", markerfacecolor="none", linestyle="none", label="paper's effect"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize="small")
    return save_png(fig, out_png)


def _claim_label(row: dict[str, Any]) -> str:
    text = textwrap.fill(str(row.get("claim", "")), 40)
    return f"{text}\n(primary)" if row.get("primary", False) else text


def loss_points(rows: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(step, loss) per metrics row; the loss is NaN where it is null or missing (a skipped update): a gap."""
    return [(step_of(row, j), math.nan if (v := number(row, "loss")) is None else v) for j, row in enumerate(rows)]


def plot_loss_curve(run_dir: str | Path, out_png: str | Path, title: str) -> Path:
    """A training run's loss per step from its metrics.jsonl (SFT, the CPRS compressor); skipped steps are gaps."""
    points = loss_points(read_step_rows(run_dir))
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    gaps = sum(1 for _, loss in points if math.isnan(loss))
    if gaps == len(points):
        no_data(ax)
        return save_png(fig, out_png)
    xs, ys = zip(*points, strict=True)
    ax.plot(xs, ys, color="C0", marker="." if len(points) < 30 else None)
    if gaps:
        note = f"{gaps} step{'s' if gaps > 1 else ''} without a loss (skipped updates): gaps"
        ax.text(0.99, 0.98, note, transform=ax.transAxes, ha="right", va="top", color="gray", fontsize="small")
    return save_png(fig, out_png)


def kept_share(row: Mapping[str, Any]) -> float | None:
    """Share of the round's generated groups that were kept, 1 - filtered_share; None on rows without it."""
    filtered = number(row, "filtered_share")
    return None if filtered is None else 1.0 - filtered


def plot_rl_steps(rl_runs: dict[str, Path], out_png: str | Path) -> Path:
    """Per RL step: reward_mean, the kept share of generated groups, clip fractions low and high; a line per run.

    Rows without a panel's key (update steps after a round's first carry no round metrics) are left out of it;
    a panel no run has says "no data".
    """
    runs = {name: read_step_rows(path) for name, path in rl_runs.items()}
    kept = {
        name: [{"step": step_of(r, j), "kept_share": v} for j, r in enumerate(rows) if (v := kept_share(r)) is not None]
        for name, rows in runs.items()
    }
    fig = Figure(figsize=(13, 4.5), layout="constrained")
    reward_ax, kept_ax, clip_ax = fig.subplots(1, 3)
    if not plot_step_lines(reward_ax, runs, "reward_mean", phases=True):
        no_data(reward_ax)
    if plot_step_lines(kept_ax, kept, "kept_share"):
        kept_ax.set_ylim(-0.03, 1.03)
    else:
        no_data(kept_ax)
    kept_ax.set_title("kept share of generated groups")
    kept_ax.set_ylabel("kept share of generated groups (1 − filtered_share)")
    low = plot_step_lines(clip_ax, runs, "clip_frac_low")
    high = plot_step_lines(clip_ax, runs, "clip_frac_high", linestyle=":")
    if not (low or high):
        no_data(clip_ax)
    clip_ax.set_title("clip fractions")
    clip_ax.set_ylabel("share of tokens clipped")
    handles = [Line2D([], [], color=f"C{i}", label=name) for i, name in enumerate(runs)]
    handles += [
        Line2D([], [], color="gray", linestyle="--", label="phase change"),
        Line2D([], [], color="black", label="clip low"),
        Line2D([], [], color="black", linestyle=":", label="clip high"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6))
    return save_png(fig, out_png)
