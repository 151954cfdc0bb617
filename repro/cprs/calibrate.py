"""The critic's keep threshold chosen on validation contexts: the grid value whose spans best match the gold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from repro.cprs.labels import Span
from repro.cprs.metrics import micro_prf
from repro.cprs.sections import CprsSection
from repro.cprs.windows import spans_to_chars, tags_to_spans, threshold_tags

THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95


@dataclass
class ValidationContext:
    """One validation context: per token its keep probability and character offsets; the gold character spans."""

    keep: Sequence[float]
    offsets: Sequence[Span]
    gold: Sequence[Span]


def threshold_table(
    contexts: Sequence[ValidationContext], cfg: CprsSection, grid: Sequence[float] = THRESHOLD_GRID
) -> list[dict[str, float]]:
    """Per threshold: micro precision, recall and F1 of the kept characters against the gold, and the share of
    tokens kept, decoding as `compress` does with cfg.threshold set (gap filling and short-span dropping included)."""
    rows = []
    for threshold in grid:
        pairs, kept, total = [], 0, 0
        for context in contexts:
            tags = threshold_tags(context.keep, threshold, cfg.scheme)
            spans = tags_to_spans(tags, fill_gaps=cfg.fill_gaps, min_span_tokens=cfg.min_span_tokens)
            pairs.append((spans_to_chars(spans, context.offsets), list(context.gold)))
            kept += sum(end - start for start, end in spans)
            total += len(context.keep)
        precision, recall, f1 = micro_prf(pairs)
        rows.append({"threshold": threshold, "precision": precision, "recall": recall, "f1": f1,
                     "kept_share": kept / max(total, 1)})  # fmt: skip
    return rows


def best_threshold(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """The row with the highest F1; on a tie the lowest threshold (it keeps more, so loses less evidence)."""
    if not rows:
        raise ValueError("no thresholds to choose from")
    return max(rows, key=lambda row: (row["f1"], -row["threshold"]))
