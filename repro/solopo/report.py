"""The SoLoPO reproduction report: long/short-context scores, paired differences, efficiency, paper trends, plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from repro.errors import ReproError
from repro.fsio import atomic_write_text
from repro.loong.scores import EvalScores, load_eval
from repro.reporting.claims import (
    Claim,
    Evidence,
    Result,
    faster_evidence,
    greater_evidence,
    judge,
    method_note,
    paired_scores,
)
from repro.reporting.figures import claims_figure, items_section
from repro.reporting.plots import no_data, number, plot_step_lines, read_step_rows, save_png
from repro.reporting.summary import write_summary
from repro.reporting.tables import Stages, difference_table, pooled, seed_count, stage_table, task_difference_table

PAPER_SOURCE = "SoLoPO (arXiv 2505.11166)"
PAPER_MODEL = "Qwen2.5-7B-Instruct"
PAPER_BENCHMARKS = ("LongBench v1 QA", "RULER QA")
ALGOS: tuple[str, ...] = ("DPO", "SimPO", "ORPO")
MODES: tuple[str, ...] = ("solopo", "long", "expand_long", "short")
SFT = "SFT"
# The paper's scores (%) in PAPER_BENCHMARKS order: its base model, then per algorithm (long-context PO, SoLo-PO).
PAPER_BASE = (34.4, 44.0)
PAPER_PO: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "DPO": ((46.9, 62.2), (47.8, 62.8)),
    "SimPO": ((44.6, 57.5), (48.4, 63.9)),
    "ORPO": ((45.3, 55.1), (49.5, 65.1)),
}
PAPER_EFFICIENCY = (
    "at 9K long tokens SoLo-DPO runs 52% faster than vanilla DPO (SoLo-ORPO 26%), and the longest trainable "
    "length goes from 9K to 19K tokens (vanilla ORPO runs out of memory at 16K)"
)
PER_SAMPLE, SHARED_PREFIX = "per-sample", "shared prefix"
TRAIN_KEYS: tuple[str, ...] = ("loss", "margin", "accuracy")
EFFICIENCY_ROW_KEYS: tuple[str, ...] = ("mode", "forward", "long_tokens", "short_tokens", "step_s", "peak_mib")
REPEAT_KEYS: tuple[str, ...] = ("step_s_repeats", "peak_mib_repeats")


def stage_name(names: Sequence[str], algo: str, mode: str) -> str | None:
    """The stage called "<algo> <mode>" among names (case-insensitive), as spelled there; None when absent."""
    wanted = f"{algo} {mode}".lower()
    return next((n for n in names if n.lower() == wanted), None)


def _sft_name(names: Sequence[str]) -> str | None:
    return next((n for n in names if n.lower() == SFT.lower()), None)


def solopo_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """(before, after) comparisons for the stages present, per algorithm: long → solopo, SFT → solopo, SFT → long,
    long → expand_long and expand_long → solopo (the last two split SoLoPO's gain into data and training context)."""
    sft = _sft_name(names)
    pairs: list[tuple[str, str]] = []
    for algo in ALGOS:
        solo, long_, expand = (stage_name(names, algo, m) for m in ("solopo", "long", "expand_long"))
        candidates = [(long_, solo), (sft, solo), (sft, long_), (long_, expand), (expand, solo)]
        pairs += [(a, b) for a, b in candidates if a is not None and b is not None]
    return pairs


def paper_table() -> str:
    """The paper's own scores, labelled as such: its model on its benchmarks, not this run's items."""
    header = ["Method (paper)", *PAPER_BENCHMARKS]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines.append(f"| {PAPER_MODEL} (no PO) | " + " | ".join(f"{v:.1f}" for v in PAPER_BASE) + " |")
    for algo, (long_, solo) in PAPER_PO.items():
        lines.append(f"| {algo} on the long context | " + " | ".join(f"{v:.1f}" for v in long_) + " |")
        lines.append(f"| SoLo-{algo} | " + " | ".join(f"{v:.1f}" for v in solo) + " |")
    lines += [
        "",
        f"The paper's numbers, from {PAPER_SOURCE}: {PAPER_MODEL} trained on MuSiQue pairs and scored on "
        f"{' and '.join(PAPER_BENCHMARKS)}; not this run's model or items, so compare trends, not values.",
    ]
    return "\n".join(lines) + "\n"


def paper_delta(algo: str) -> str:
    """E.g. "+0.9 LongBench v1 QA, +0.6 RULER QA" (SoLo-X minus X on the long context; the claim line says "paper:")."""
    long_, solo = PAPER_PO[algo]
    return ", ".join(f"{s - lg:+.1f} {bench}" for bench, lg, s in zip(PAPER_BENCHMARKS, long_, solo, strict=True))


def paper_effect(algo: str) -> float:
    """The paper's smaller SoLo-X minus X gain over its two benchmarks (points)."""
    long_, solo = PAPER_PO[algo]
    return min(s - lg for lg, s in zip(long_, solo, strict=True))


def solo_claims(stages: Stages) -> list[tuple[Claim, Evidence | None, str]]:
    """Per algorithm with a SoLoPO or long-context stage: SoLo-X > X long on long inputs, paired over items."""
    names = list(stages)
    checked = []
    for algo in ALGOS:
        solo, long_ = stage_name(names, algo, "solopo"), stage_name(names, algo, "long")
        if solo is None and long_ is None:
            continue
        claim = Claim(f"SoLo-{algo} > {algo} long on long inputs", "greater", paper_delta(algo),
                      paper_effect=paper_effect(algo))  # fmt: skip
        if solo is None or long_ is None:
            checked.append((claim, None, f"needs long-context evaluations '{algo} solopo' and '{algo} long'"))
            continue
        a, b = paired_scores(stages[long_], stages[solo])
        evidence = greater_evidence(a, b) if a and a[0] else None
        checked.append((claim, evidence, f"no item in both '{long_}' and '{solo}'"))
    return checked


def cheaper_claims(efficiency: dict[str, Any] | None) -> list[tuple[Claim, Evidence | None, str]]:
    """SoLo cheaper than the paper's vanilla long PO (both responses on the long context, per sample) in step time
    and in peak memory, at the longest length both ran, over the repeats measured there."""
    claims = [Claim("SoLo faster per step than vanilla long PO", "faster", PAPER_EFFICIENCY),
              Claim("SoLo lighter in peak memory than vanilla long PO", "faster", PAPER_EFFICIENCY)]  # fmt: skip
    if efficiency is None:
        return [(c, None, "efficiency not measured") for c in claims]
    rows = measured(check_efficiency(efficiency))
    both = sorted({r["long_tokens"] for r in rows if r["mode"] == "long" and r["forward"] == PER_SAMPLE}
                  & {r["long_tokens"] for r in rows if r["mode"] == "solopo"})  # fmt: skip
    if not both:
        return [(c, None, f"needs a solopo row and a long '{PER_SAMPLE}' row at one length") for c in claims]
    at = [r for r in rows if r["long_tokens"] == both[-1]]
    solo, vanilla = _pick(at, "solopo", SHARED_PREFIX), _pick([r for r in at if r["forward"] == PER_SAMPLE], "long")
    out = []
    for claim, key in zip(claims, ("step_s", "peak_mib"), strict=True):
        new, old = solo.get(f"{key}_repeats", [solo[key]]), vanilla.get(f"{key}_repeats", [vanilla[key]])
        named = Claim(f"{claim.name} (at {both[-1]} long tokens)", claim.kind, claim.paper)
        out.append((named, faster_evidence(new, old), ""))
    return out


def claims(stages: Stages, efficiency: dict[str, Any] | None) -> list[Result]:
    """The paper's headline claims, judged: SoLo-X > X long for each algorithm, SoLo cheaper (time, memory)."""
    return judge([*solo_claims(stages), *cheaper_claims(efficiency)])


def check_efficiency(efficiency: dict[str, Any]) -> list[dict[str, Any]]:
    """The efficiency rows, each checked to hold every key the report reads (a failed case: its reason instead of
    step time and peak)."""
    rows = efficiency.get("rows")
    if not isinstance(rows, list):
        raise ReproError("efficiency: expected a 'rows' list")
    for i, row in enumerate(rows):
        failed = isinstance(row, dict) and isinstance(row.get("failed"), str)
        keys = EFFICIENCY_ROW_KEYS[:4] if failed else EFFICIENCY_ROW_KEYS
        missing = [k for k in keys if not isinstance(row, dict) or k not in row]
        if missing:
            raise ReproError(f"efficiency row {i}: missing {', '.join(missing)}")
        bad = [k for k in keys[2:] if number(row, k) is None]
        if bad:
            raise ReproError(f"efficiency row {i}: {', '.join(bad)} must be finite numbers")
        for key in () if failed else REPEAT_KEYS:  # optional: the claims read them when present
            repeats = row.get(key, [0.0])
            if not isinstance(repeats, list) or not repeats or any(number({key: v}, key) is None for v in repeats):
                raise ReproError(f"efficiency row {i}: {key} must be a non-empty list of finite numbers")
    return rows


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def _row_ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> str:
    return _ratio(number(a, key), number(b, key))


def _row_label(row: dict[str, Any]) -> str:
    return f"{row['mode']} ({row['forward']})"


def _pick(rows: list[dict[str, Any]], mode: str, forward: str | None = None) -> dict[str, Any] | None:
    """The first row of `mode`, preferring `forward` when given and present."""
    of_mode = [r for r in rows if r["mode"] == mode]
    preferred = [r for r in of_mode if r["forward"] == forward]
    return (preferred or of_mode or [None])[0]


def efficiency_tables(efficiency: dict[str, Any]) -> str:
    """Markdown: measured rows, solopo's time and memory ratios per long length, and the longest length under a cap."""
    rows = check_efficiency(efficiency)
    header = ["Mode", "Forward", "Long tokens", "Short tokens", "Step s", "Peak MiB"]
    lines = [f"Device: {efficiency.get('device', 'not recorded')}.", ""]
    lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for r in rows:
        cells = ["did not run", r["failed"]] if "failed" in r else [f"{r['step_s']:.3f}", f"{r['peak_mib']:.1f}"]
        case = [r["mode"], r["forward"], str(r["long_tokens"]), str(r["short_tokens"])]
        lines.append("| " + " | ".join(case + cells) + " |")
    lines += ["", ratio_table(measured(rows)), max_length_table(efficiency)]
    return "\n".join(lines)


def measured(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows whose case ran (no "failed" reason)."""
    return [r for r in rows if "failed" not in r]


def ratio_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: at each long length, solopo's step time and peak memory over every other row's (below 1 = cheaper)."""
    lines = ["| Long tokens | Comparison | Step time ratio | Peak memory ratio |", "|---|---|---|---|"]
    for length in sorted({r["long_tokens"] for r in rows}):
        at = [r for r in rows if r["long_tokens"] == length]
        solos = [r for r in at if r["mode"] == "solopo"]
        for solo in solos:
            # name solopo's forward only when several solopo rows share this length
            solo_label = "solopo" if len(solos) == 1 else _row_label(solo)
            for other in (r for r in at if r is not solo):
                cells = [str(length), f"{solo_label} / {_row_label(other)}"]
                cells += [_row_ratio(solo, other, "step_s"), _row_ratio(solo, other, "peak_mib")]
                lines.append("| " + " | ".join(cells) + " |")
    if len(lines) == 2:
        return "No solopo row to compare at any long length.\n"
    return "\n".join(lines) + "\n"


def max_length_table(efficiency: dict[str, Any]) -> str:
    """Markdown: the longest long context each label trained under the memory cap, and solopo's over each."""
    lengths = efficiency.get("max_long_tokens") or {}
    if not lengths:
        return "Longest trainable long context: not measured.\n"
    cap = number(efficiency, "cap_mib")
    solo = next((label for label in lengths if label.split()[0] == "solopo"), None)
    lines = ["| Label | Max long tokens | solopo / this |", "|---|---|---|"]
    for label, tokens in lengths.items():
        ratio = "–" if solo is None or label == solo else _ratio(lengths[solo], tokens)
        lines.append(f"| {label} | {tokens} | {ratio} |")
    where = "(no cap recorded)" if cap is None else f"under a memory cap of {cap:.0f} MiB"
    lines += ["", f"Longest long context (tokens) one training step fits {where}."]
    return "\n".join(lines) + "\n"


def _compare(solo: dict[str, Any], other: dict[str, Any]) -> str:
    return (
        f"{_row_label(solo)} / {_row_label(other)}: step time {_row_ratio(solo, other, 'step_s')} "
        f"({solo['step_s']:.3f} s vs {other['step_s']:.3f} s), peak memory {_row_ratio(solo, other, 'peak_mib')} "
        f"({solo['peak_mib']:.1f} vs {other['peak_mib']:.1f} MiB)"
    )


def plot_po_training(train_runs: dict[str, Path], out_png: Path) -> Path:
    """Panels loss, margin, accuracy per step, one line per run; missing or null values are skipped."""
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    axes = fig.subplots(1, len(TRAIN_KEYS))
    runs = {name: read_step_rows(path) for name, path in train_runs.items()}
    for ax, key in zip(axes, TRAIN_KEYS, strict=True):
        if plot_step_lines(ax, runs, key):
            ax.legend(fontsize="small")
        else:
            no_data(ax)
    return save_png(fig, out_png)


def plot_stage_scores(long_scores: dict[str, EvalScores], short_scores: dict[str, EvalScores], out_png: Path) -> Path:
    """Grouped bars: overall avg score per stage on long contexts, and on short ones where evaluated."""
    fig = Figure(figsize=(max(6.0, 1.1 * (len(long_scores) + len(short_scores))), 4.5), layout="constrained")
    ax = fig.subplots()
    names = list(dict.fromkeys([*long_scores, *short_scores]))
    groups = [("long context", long_scores)] + ([("short context", short_scores)] if short_scores else [])
    width = 0.8 / len(groups)
    for g, (label, scores) in enumerate(groups):
        heights = [scores[n].avg() if n in scores else None for n in names]
        xs = [i + (g - (len(groups) - 1) / 2) * width for i in range(len(names))]
        bars = ax.bar(xs, [math.nan if h is None else h for h in heights], width, color=f"C{g}", label=label)
        ax.bar_label(bars, labels=["" if h is None else f"{h:.1f}" for h in heights], fontsize="small")
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylim(0, 105)
    ax.set_ylabel("avg score (0-100)")
    ax.set_title("Overall score per stage")
    ax.legend()
    return save_png(fig, out_png)


def _quarter_mean(rows: list[dict[str, Any]], key: str, last: bool) -> str:
    quarter = max(1, len(rows) // 4)
    values = [v for r in (rows[-quarter:] if last else rows[:quarter]) if (v := number(r, key)) is not None]
    return "–" if not values else f"{sum(values) / len(values):.3f}"


def po_training_summary(train_runs: dict[str, Path]) -> str:
    """Markdown: per training run, steps and loss, margin, accuracy over the first and last quarter of its rows."""
    header = ["Run", "Steps"] + [f"{k}, {part} ¼" for k in TRAIN_KEYS for part in ("first", "last")]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for name, path in train_runs.items():
        rows = read_step_rows(path)
        cells = [name.replace("|", "\\|"), str(len(rows))]
        cells += [_quarter_mean(rows, k, last) for k in TRAIN_KEYS for last in (False, True)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Means over the first and last quarter of the logged steps; missing or null values left out."]
    return "\n".join(lines) + "\n"


def _differences_section(scores: Stages) -> list[str]:
    pairs = solopo_pairs(list(scores))
    lines = ["## Exploratory: differences on long contexts", ""]
    if not pairs:
        return [*lines, "No stage pair to compare on long contexts.", ""]
    lines += [difference_table(scores, pairs)]
    return [*lines, "By task (same intervals):", "", task_difference_table(scores, pairs)]


def write_solopo_report(
    out_dir: Path,
    long_evals: dict[str, list[Path]],
    short_evals: dict[str, list[Path]],
    train_runs: dict[str, Path],
    efficiency: dict[str, Any] | None,
    notes: list[str],
    profile: str = "",
    seeds: Sequence[int] = (0,),
    timings_s: dict[str, float] | None = None,
) -> Path:
    """Write report.md, summary.json, scores.png and (with training runs) training.png into out_dir; returns
    report.md's path. Evaluations: each stage's run folders, one per training seed."""
    if not long_evals:
        raise ReproError("the report needs at least one long-context evaluation run")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    long_scores: Stages = {name: [load_eval(p) for p in paths] for name, paths in long_evals.items()}
    short_scores: Stages = {name: [load_eval(p) for p in paths] for name, paths in short_evals.items()}
    results = claims(long_scores, efficiency)
    lines = ["# SoLoPO reproduction report", "", "## Notes", ""]
    lines += [f"- {note}" for note in notes] or ["- (none given)"]
    lines += ["", "## The paper's claims on this run", ""]
    lines += [f"- {r.line()}" for r in results]
    lines += ["", method_note(results), ""]
    lines += claims_figure(results, out_dir)
    lines += ["## Scores on long contexts (this run)", "", stage_table(long_scores)]
    if short_scores:
        lines += ["## Scores on short contexts (this run)", "", stage_table(short_scores)]
    count = seed_count(long_scores)
    plot_stage_scores({n: pooled(r, count) for n, r in long_scores.items()},
                      {n: pooled(r, count) for n, r in short_scores.items()}, out_dir / "scores.png")  # fmt: skip
    lines += ["![Overall score per stage](scores.png)", ""]
    lines += ["## The paper's table (its model, its benchmarks)", "", paper_table()]
    lines += _differences_section(long_scores)
    lines += ["## Items the stages disagree on (long contexts)", "", *items_section(long_evals, out_dir)]
    lines += ["## Efficiency (measured in this run)", ""]
    lines += [efficiency_tables(efficiency) if efficiency is not None else "Not measured in this run.\n"]
    lines += ["## Preference-optimisation training", ""]
    if train_runs:
        plot_po_training(train_runs, out_dir / "training.png")
        lines += [po_training_summary(train_runs), "![Loss, margin and accuracy per step](training.png)"]
    else:
        lines.append("No training run given.")
    lines += ["", "## Runs", ""]
    lines += [f"- long-context evaluation `{name}`: " + ", ".join(f"`{p}`" for p in paths)
              for name, paths in long_evals.items()]  # fmt: skip
    lines += [f"- short-context evaluation `{name}`: " + ", ".join(f"`{p}`" for p in paths)
              for name, paths in short_evals.items()]  # fmt: skip
    lines += [f"- training `{name}`: `{path}`" for name, path in train_runs.items()]
    report = out_dir / "report.md"
    atomic_write_text(report, "\n".join(lines) + "\n")
    write_summary(out_dir, "solopo", profile, seeds, long_scores, results, timings_s or {})
    return report
