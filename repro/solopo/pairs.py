"""Choosing a preference pair (best vs worst) from K scored samples of one prompt."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def choose_pair(scores: Sequence[float]) -> tuple[int, int] | None:
    """(chosen, rejected): the first best-scoring and the first worst-scoring index; None when there is no preference.

    No preference means fewer than two scores or all scores equal.
    """
    values = [float(s) for s in scores]
    if any(math.isnan(v) for v in values):
        raise ValueError("scores must not contain NaN")
    if len(values) < 2:
        return None
    best, worst = max(values), min(values)
    if best == worst:
        return None
    return values.index(best), values.index(worst)


@dataclass
class PairStats:
    """Counts of examples seen, pairs formed and examples skipped for lack of a preference."""

    examples: int = 0
    pairs: int = 0
    skipped_ties: int = 0

    def add(self, choice: tuple[int, int] | None) -> None:
        self.examples += 1
        if choice is None:
            self.skipped_ties += 1
        else:
            self.pairs += 1
