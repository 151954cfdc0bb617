"""Preference pair selection: first best vs first worst, no pair without a preference."""

from __future__ import annotations

import math

import pytest

from repro.solopo.pairs import PairStats, choose_pair


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([0.2, 1.0, 0.0, 1.0], (1, 2)),  # best 1.0 first at index 1, worst 0.0 at index 2
        ([0, 0, 1], (2, 0)),  # worst 0 first at index 0
        ([1.0, 0.0, 0.0], (0, 1)),
        ((3, 7), (1, 0)),
        ([0.5, 0.5, 0.5], None),  # all equal: no preference
        ([1.0], None),
        ([], None),
    ],
)
def test_choose_pair(scores, expected):
    assert choose_pair(scores) == expected


def test_choose_pair_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        choose_pair([1.0, math.nan])


def test_pair_stats_counts():
    stats = PairStats()
    for scores in ([0.2, 1.0, 0.0], [0.5, 0.5], [0, 1], [1.0]):
        stats.add(choose_pair(scores))
    assert stats == PairStats(examples=4, pairs=2, skipped_ties=2)
