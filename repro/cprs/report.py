"""The CPRS reproduction report: the reader's scores per context method, span quality, ratio, latency, scaling."""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from repro.cprs.baselines import CHUNK_TOKENS
from repro.fsio import atomic_write_text
from repro.loong.scores import EvalScores, load_eval
from repro.reporting.bootstrap import is_noise
from repro.reporting.plots import plot_scores_by_set, save_png
from repro.reporting.tables import difference, difference_table, direction, format_span, stage_table

PAPER = (
    "QwenLong-CPRS (arXiv 2505.18092), with Qwen2.5-7B-Instruct reading: Ruler-128K 43.45 -> 90.24 and "
    "InfiniteBench 50.38 -> 72.33 (RAG: 85.97 / 64.69); 21.59x compression; 3.47x faster than direct prompting "
    "at 128K; compression time linear in the context length"
)
PAPER_RATIO = 21.59
LINEAR_SLACK = 1.1  # time(4n) / time(n) at most 4.4: linear, with 10% slack


def trend_lines(scores: dict[str, EvalScores], ratios: dict, timing: dict, latency: dict) -> list[str]:
    """One line per paper trend, with its numbers and whether it reproduced here."""
    lines, unsettled = [], []
    sets = sorted({s for sc in scores.values() for s in sc.length_sets()})
    if "full" in scores and "cprs" in scores and sets:
        longest = sets[-1]
        diff = difference(scores, "full", "cprs", longest)
        if diff is not None:
            if is_noise(*diff[1:3]):
                unsettled.append(f"CPRS against the full context on set {longest} ({diff[3]} items)")
            lines.append(
                f"Compressed > full context on the longest set (set {longest}): {direction(*diff[:3])} "
                f"(cprs − full = {format_span(*diff[:3])} over {diff[3]} items; paper: +46.8 on Ruler-128K)"
            )
    for method, claim, what, paper in (
        ("bm25", "at the same token budget", "BM25", "the paper's RAG keeps a fixed 16K instead"),
        (
            "bm25-fixed",
            "at a fixed budget per set (the paper's RAG: 16K tokens of 128K)",
            "BM25 at a fixed budget",
            "paper: +4.27 Ruler-128K, +7.64 InfiniteBench",
        ),
    ):
        diff = difference(scores, method, "cprs", None) if method in scores and "cprs" in scores else None
        if diff is not None:
            if is_noise(*diff[1:3]):
                unsettled.append(f"CPRS against {what} ({diff[3]} items)")
            lines.append(
                f"Compressed > BM25 {claim}: {direction(*diff[:3])} "
                f"(cprs − {method} = {format_span(*diff[:3])} over {diff[3]} items; {paper})"
            )
    lines += oracle_lines(scores)
    if ratios:
        kept = sum(r["kept_tokens"] for r in ratios.values())
        overall = sum(r["input_tokens"] for r in ratios.values()) / max(kept, 1e-9)
        lines.append(
            f"Compression ratio: {overall:.2f}x here (mean tokens in / kept over the sets; paper: {PAPER_RATIO}x on "
            "128K contexts) — not comparable in size: these contexts are 25-250x shorter"
        )
    growth = timing_growth(timing)
    if growth is not None:
        a, b, ratio = growth
        bound = LINEAR_SLACK * b / a
        verdict = "reproduced" if ratio <= bound else "not reproduced"
        lines.append(
            f"Compression time grows linearly: {verdict} (time({b:,} tokens) / time({a:,}) = {ratio:.2f} for "
            f"{b / a:.0f}x the tokens; linear = {b / a:.0f}, bound {bound:.1f} = 10% over linear)"
        )
    if latency:
        longest = max(latency, key=int)
        row = latency[longest]
        faster = row["full_s"] / row["cprs_s"] if row["cprs_s"] else math.inf
        verdict = "reproduced" if faster > 1 else "not reproduced"
        lines.append(
            f"Compress + answer faster than answering on the full context (set {longest}): {verdict} "
            f"({row['cprs_s']:.1f} s against {row['full_s']:.1f} s, {faster:.2f}x; paper: 3.47x at 128K)"
        )
    if unsettled:
        lines.append(
            f"This run cannot separate {' or '.join(unsettled)} beyond the noise: that needs more held-out items "
            "than this run has"
        )
    return lines


def oracle_lines(scores: dict[str, EvalScores]) -> list[str]:
    """How the reader does on the gold evidence alone: against the full context (can less text help this reader?)
    and against CPRS (how much a better compressor could add). No paper figure: the paper has no oracle row."""
    if "oracle" not in scores:
        return []
    parts = []
    for other in ("full", "cprs"):
        diff = difference(scores, "oracle", other, None) if other in scores else None
        if diff is not None:
            parts.append(f"{other} − oracle = {format_span(*diff[:3])} over {diff[3]} items")
    if not parts:
        return []
    return [f"The reader on the gold evidence alone (oracle, the best a compressor could keep): {'; '.join(parts)}"]


def timing_growth(timing: dict) -> tuple[int, int, float] | None:
    """(shorter length, longer length, time ratio) over the two longest timed lengths 4x apart (8K and 32K when
    timed), else the longest pair timed."""
    lengths = sorted(int(k) for k in timing)
    if len(lengths) < 2:
        return None
    pairs = [(a, b) for a in lengths for b in lengths if b == 4 * a]
    a, b = pairs[-1] if pairs else (lengths[-2], lengths[-1])
    ta, tb = timing[str(a)]["seconds"], timing[str(b)]["seconds"]
    return a, b, (tb / ta if ta else math.inf)


def context_legend(bm25_budgets: dict[int, int] | None) -> str:
    fixed = ", ".join(f"set {k}: {v:,}" for k, v in sorted(bm25_budgets.items())) if bm25_budgets else "the profile's"
    return (
        "Contexts: `full` = every document; `cprs` = the compressor's sentence-level spans for the question; "
        f"`bm25` = BM25 over {CHUNK_TOKENS}-token chunks (whole sentences) best-first, and `truncate` = the "
        "context's beginning, each at the number of tokens CPRS kept for that item (the best chunk that no longer "
        f"fits whole is cut to the tokens left); `bm25-fixed` = the same BM25 at a fixed budget per set ({fixed} "
        "tokens: 1/8 of the set's longest context, the paper's 16K of 128K); `oracle` = the gold evidence "
        "sentences alone."
    )


def span_table(spans: dict[str, tuple[float, float, float]]) -> str:
    lines = ["| Granularity | Precision | Recall | F1 |", "|---|---|---|---|"]
    lines += [f"| {g} | {p:.3f} | {r:.3f} | {f:.3f} |" for g, (p, r, f) in spans.items()]
    return "\n".join(lines) + "\n"


def ratio_table(ratios: dict) -> str:
    lines = ["| Set | Tokens in (mean) | Kept (mean) | Ratio |", "|---|---|---|---|"]
    lines += [
        f"| {s} | {r['input_tokens']:.0f} | {r['kept_tokens']:.0f} | {r['ratio']:.2f}x |" for s, r in ratios.items()
    ]
    return "\n".join(lines) + "\n"


def latency_table(latency: dict) -> str:
    lines = ["| Set | Answer on full (s) | Compress + answer (s) | Speed-up |", "|---|---|---|---|"]
    for s, row in sorted(latency.items(), key=lambda kv: int(kv[0])):
        speed = row["full_s"] / row["cprs_s"] if row["cprs_s"] else math.inf
        lines.append(f"| {s} | {row['full_s']:.2f} | {row['cprs_s']:.2f} | {speed:.2f}x |")
    return "\n".join(lines) + "\n"


def timing_table(timing: dict) -> str:
    lines = ["| Input tokens | Windows | Seconds | Tokens/s |", "|---|---|---|---|"]
    for length in sorted(timing, key=int):
        row = timing[length]
        rate = int(length) / row["seconds"] if row["seconds"] else math.inf
        lines.append(f"| {int(length):,} | {row['windows']} | {row['seconds']:.2f} | {rate:.0f} |")
    return "\n".join(lines) + "\n"


def plot_timing(timing: dict, out_png: Path) -> Path:
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    lengths = sorted(int(k) for k in timing)
    ax.plot(lengths, [timing[str(n)]["seconds"] for n in lengths], marker="o")
    ax.set_xlabel("input tokens")
    ax.set_ylabel("compression seconds")
    ax.set_title("Compression time by input length")
    return save_png(fig, out_png)


def write_cprs_report(
    out_dir: Path,
    evals: dict[str, Path],
    spans: dict[str, tuple[float, float, float]],
    ratios: dict,
    latency: dict,
    timing: dict,
    notes: list[str],
    bm25_budgets: dict[int, int] | None = None,
) -> Path:
    """Write report.md, scores_by_set.png and timing.png into out_dir; returns report.md's path."""
    out_dir = Path(out_dir)
    scores = {method: load_eval(path) for method, path in evals.items()}
    others = ("full", "bm25", "bm25-fixed", "truncate", "oracle")
    pairs = [(m, "cprs") for m in others if m in scores and "cprs" in scores]
    lines = ["# QwenLong-CPRS reproduction report", "", "## Notes", ""]
    lines += [f"- {note}" for note in notes]
    lines += ["", "## The reader's scores by context (this run)", "", stage_table(scores)]
    lines += [context_legend(bm25_budgets), ""]
    if pairs:
        lines += ["## Differences (this run)", "", difference_table(scores, pairs)]
    lines += ["## Span quality against the gold evidence", "", span_table(spans)]
    lines += ["Micro-averaged over characters: kept characters inside the gold spans / kept, / gold.", ""]
    lines += ["## Compression ratio by set", "", ratio_table(ratios)]
    lines += ["## Latency", "", latency_table(latency) if latency else "Not measured.\n"]
    lines += ["## Compression time by input length", "", timing_table(timing) if timing else "Not measured.\n"]
    lines += ["## Paper trends", ""]
    lines += [f"- {line}" for line in trend_lines(scores, ratios, timing, latency)] or ["- Nothing to check."]
    lines += ["", f"The paper's numbers: {PAPER}. Not this run's models or items: compare trends, not values.", ""]
    plot_scores_by_set(scores, out_dir / "scores_by_set.png")
    lines += ["![Score by set per context](scores_by_set.png)", ""]
    if timing:
        plot_timing(timing, out_dir / "timing.png")
        lines += ["![Compression time by length](timing.png)", ""]
    report = out_dir / "report.md"
    atomic_write_text(report, "\n".join(lines))
    return report
