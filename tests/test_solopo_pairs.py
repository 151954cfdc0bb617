"""Preference pairs: the first correct response against the first wrong one, by the format-gated rule reward."""

from __future__ import annotations

import math

import pytest

from repro.data.schema import Doc, Record
from repro.loong.verify import reward_config, verify_answer
from repro.solopo.pairs import PairStats, choose_pair
from repro.solopo.sections import SoloPoSection


@pytest.mark.parametrize(
    ("scores", "correct", "expected"),
    [
        ([0.2, 1.0, 0.0, 1.0], 1.0, (1, 2)),  # first 1.0 at index 1, first 0 at index 2; 0.2 is neither
        ([0, 0, 1], 1.0, (2, 0)),
        ([1.0, 0.0, 0.0], 1.0, (0, 1)),
        ([0.4, 0.0], 1.0, None),  # best against worst would pair them; 0.4 is not correct
        ([1.0, 0.4], 1.0, None),  # a correct response but no wrong one
        ([0.4, 0.0], 0.4, (0, 1)),  # a lower bar admits partial credit as correct
        ([0.5, 0.5, 0.5], 1.0, None),
        ([1.0], 1.0, None),
        ([], 1.0, None),
    ],
)
def test_choose_pair(scores, correct, expected):
    assert choose_pair(scores, correct) == expected


def test_choose_pair_rejects_nan_and_a_bar_outside_0_1():
    with pytest.raises(ValueError, match="NaN"):
        choose_pair([1.0, math.nan])
    with pytest.raises(ValueError, match="correct"):
        choose_pair([1.0, 0.0], correct=0.0)  # a wrong response would be correct too


def test_pair_stats_counts_why_there_is_no_pair():
    stats = PairStats()
    for scores in ([0.2, 1.0, 0.0], [0.5, 0.0], [1.0, 1.0], [0, 1], [0.3, 0.3]):
        stats.add(scores)
    stats.add_too_long()
    # pairs: [0.2, 1.0, 0.0] and [0, 1]; no correct: [0.5, 0.0] and [0.3, 0.3]; no wrong: [1.0, 1.0]
    assert stats == PairStats(examples=6, pairs=2, no_correct=2, no_wrong=1, too_long=1)
    assert stats.line() == (
        "2 pairs from 6 examples (2 with no correct response, 1 with no wrong one, 1 too long for "
        "solopo.max_input_tokens)"
    )


def _record(answer, task="spotlight", subtask=None) -> Record:
    return Record(id="r", source="t", task=task, subtask=subtask, docs=[Doc("", "x")], question="q", answer=answer)


def test_solopo_recipe_default_gates_the_format_and_asks_for_a_fully_correct_chosen():
    cfg = SoloPoSection()
    assert cfg.reward.require_format is True and cfg.correct_reward == 1.0


def test_made_up_responses_to_a_text_gold_become_chosen_and_rejected():
    """Gold "London", four responses scored by the recipe's default (format-gated) rule reward:
    0 "It could be Paris, Berlin or London."  no "the answer is": 0 (wrong, though it names London)
    1 "Therefore, the answer is London."      1 (correct) -> chosen, the first correct
    2 "Therefore, the answer is Paris."       0 (wrong)
    3 "Therefore, the answer is London."      1 (correct)
    rejected = the first wrong = the hedge at 0."""
    rewards = reward_config(SoloPoSection().reward)
    responses = [
        "It could be Paris, Berlin or London.",
        "Therefore, the answer is London.",
        "Therefore, the answer is Paris.",
        "Therefore, the answer is London.",
    ]
    scores = [verify_answer(text, _record("London"), rewards) for text in responses]
    assert scores == [0.0, 1.0, 0.0, 1.0]
    assert choose_pair(scores) == (1, 0)


def test_made_up_responses_to_a_list_gold_partial_credit_is_neither():
    """Gold ["Alice", "Bob", "Carol"] (unordered), partial credit = F1 over the items:
    0 ["Alice", "Dave"]          1 of 2 right, 1 of 3 found: P 1/2, R 1/3, F1 = 2*(1/6)/(5/6) = 0.4 -> neither
    1 ["Dave"]                   nothing right: 0 -> rejected
    2 ["Carol", "Bob", "Alice"]  all three, any order: 1.0 -> chosen
    Best against worst would have paired 0.4 with 0 had response 2 been missing; here it pairs nothing."""
    rewards = reward_config(SoloPoSection().reward)
    gold = _record(["Alice", "Bob", "Carol"], task="comparison")
    responses = [
        'Therefore, the answer is ["Alice", "Dave"].',
        'Therefore, the answer is ["Dave"].',
        'Therefore, the answer is ["Carol", "Bob", "Alice"].',
    ]
    scores = [verify_answer(text, gold, rewards) for text in responses]
    assert scores == [pytest.approx(0.4), 0.0, 1.0]
    assert choose_pair(scores) == (2, 1)
    assert choose_pair(scores[:2]) is None  # 0.4 and 0: no correct response
