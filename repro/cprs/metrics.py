"""How well kept char spans match gold evidence spans: character overlap, precision, recall and F1."""

from __future__ import annotations

from collections.abc import Sequence

from repro.cprs.labels import Span, merge_spans

SpanPair = tuple[Sequence[Span], Sequence[Span]]
PRF = tuple[float, float, float]


def total_length(spans: Sequence[Span]) -> int:
    return sum(end - start for start, end in spans)


def intersection_length(left: Sequence[Span], right: Sequence[Span]) -> int:
    """Characters inside both lists of sorted, disjoint spans (a two-pointer sweep)."""
    i = j = both = 0
    while i < len(left) and j < len(right):
        both += max(0, min(left[i][1], right[j][1]) - max(left[i][0], right[j][0]))
        if left[i][1] <= right[j][1]:
            i += 1
        else:
            j += 1
    return both


def char_overlap(pred: Sequence[Span], gold: Sequence[Span]) -> tuple[int, int, int]:
    """(characters in both, characters predicted, characters gold), each list merged first so no char counts twice."""
    pred, gold = merge_spans(pred), merge_spans(gold)
    return intersection_length(pred, gold), total_length(pred), total_length(gold)


def prf_from_counts(overlap: int, predicted: int, gold: int) -> PRF:
    """Precision, recall and F1 from character counts.

    Conventions: nothing predicted and no gold is a perfect (1, 1, 1); exactly one of them empty is (0, 0, 0),
    so predicting nothing never earns precision credit and predicting text where there is no gold never earns
    recall credit.
    """
    if predicted == 0 and gold == 0:
        return 1.0, 1.0, 1.0
    if predicted == 0 or gold == 0:
        return 0.0, 0.0, 0.0
    precision, recall = overlap / predicted, overlap / gold
    f1 = 2 * precision * recall / (precision + recall) if overlap else 0.0
    return precision, recall, f1


def span_prf(pred: Sequence[Span], gold: Sequence[Span]) -> PRF:
    """Character-level precision, recall and F1 of predicted spans against gold spans (see prf_from_counts)."""
    return prf_from_counts(*char_overlap(pred, gold))


def check_not_empty(pairs: Sequence[SpanPair]) -> None:
    if not pairs:
        raise ValueError("need at least one (pred, gold) pair to score")


def micro_prf(pairs: Sequence[SpanPair]) -> PRF:
    """Precision, recall and F1 of character counts summed over all items (long items weigh more)."""
    check_not_empty(pairs)
    counts = [char_overlap(pred, gold) for pred, gold in pairs]
    return prf_from_counts(*(sum(column) for column in zip(*counts, strict=True)))


def macro_prf(pairs: Sequence[SpanPair]) -> PRF:
    """The mean over items of each item's precision, recall and F1 (every item weighs the same)."""
    check_not_empty(pairs)
    scores = [span_prf(pred, gold) for pred, gold in pairs]
    precision, recall, f1 = (sum(column) / len(scores) for column in zip(*scores, strict=True))
    return precision, recall, f1
