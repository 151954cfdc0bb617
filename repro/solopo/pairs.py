"""Choosing a preference pair from K scored samples of one prompt: a correct response against a wrong one."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WRONG = 0.0  # the rule reward of a wrong response: no format, or nothing of the gold named


def _values(scores: Sequence[float]) -> list[float]:
    values = [float(s) for s in scores]
    if any(math.isnan(v) for v in values):
        raise ValueError("scores must not contain NaN")
    return values


def choose_pair(scores: Sequence[float], correct: float = 1.0) -> tuple[int, int] | None:
    """(chosen, rejected): the first correct response (score >= `correct`) and the first wrong one (score 0).

    None when no response is correct or none is wrong. A score strictly between 0 and `correct` (partial credit
    on a list/dict gold) makes a response neither: it names some gold items and misses others, so it is no
    answer to imitate, and pushing it down would push down the items it got right.
    """
    if not 0.0 < correct <= 1.0:
        raise ValueError(f"correct must be in (0, 1], got {correct!r}")
    values = _values(scores)
    chosen = next((i for i, v in enumerate(values) if v >= correct), None)
    rejected = next((i for i, v in enumerate(values) if v <= WRONG), None)
    if chosen is None or rejected is None:
        return None
    return chosen, rejected


@dataclass
class PairStats:
    """Examples seen, pairs formed, and why the others gave none."""

    examples: int = 0
    pairs: int = 0
    no_correct: int = 0  # no response correct
    no_wrong: int = 0  # a correct response, but no wrong one
    too_long: int = 0  # the needed documents alone exceed solopo.max_input_tokens: not sampled

    def add(self, scores: Sequence[float], correct: float = 1.0) -> tuple[int, int] | None:
        """Count one sampled example; returns its pair as choose_pair does."""
        choice = choose_pair(scores, correct)
        self.examples += 1
        if choice is not None:
            self.pairs += 1
        elif all(v < correct for v in _values(scores)):
            self.no_correct += 1
        else:
            self.no_wrong += 1
        return choice

    def add_too_long(self) -> None:
        self.examples += 1
        self.too_long += 1

    def line(self) -> str:
        return (
            f"{self.pairs} pairs from {self.examples} examples ({self.no_correct} with no correct response, "
            f"{self.no_wrong} with no wrong one, {self.too_long} too long for solopo.max_input_tokens)"
        )
