"""The rule reward against the released QwenLong-L1 grader's behaviour: the format gate, sub-EM both ways,
golds that carry the answer phrase, multiple-choice letters and hedges, and when the judge is asked."""

from __future__ import annotations

from typing import Any

import pytest

from repro.data.schema import Record
from repro.l1.rewards import hybrid_rewards, rule_reward
from repro.loong.verify import RewardConfig, choice_letter, reference_answer, sub_em


def rec(answer: Any, task: str = "qa") -> Record:
    return Record(id="r", source="test", task=task, docs=[], question="q?", answer=answer)


def test_a_hedge_without_the_answer_phrase_earns_nothing_by_default():
    # "london" is a whole token of the response, so sub-EM alone would pay 1.0 for naming three cities.
    hedge = "It could be Paris, Berlin or London"
    assert rule_reward(hedge, rec("London"), RewardConfig()) == 0.0
    assert rule_reward(hedge, rec("London"), RewardConfig(require_format=False)) == 1.0
    assert rule_reward("Therefore, the answer is London.", rec("London"), RewardConfig()) == 1.0


@pytest.mark.parametrize(
    ("answer", "gold", "expected"),
    [
        ("in new york city", "New York", 1.0),  # gold in answer: "new york" inside "in new york city"
        ("York", "New York", 1.0),  # answer in gold: "york" is a whole token of "new york"
        ("the Beatles", "Beatles", 1.0),  # articles are dropped on both sides
        ("a", "banana", 0.0),  # "a" is no whole token of "banana" (nor is "banana" of "a")
        ("ban", "banana", 0.0),
        ("Paris", "London", 0.0),
        (".", "London", 0.0),  # an answer that normalises to nothing never matches...
        ("", "London", 0.0),
        ("London", "...", 0.0),  # ...nor a gold that does
    ],
)
def test_sub_em_holds_either_way_on_whole_tokens(answer: str, gold: str, expected: float):
    assert sub_em(f"Therefore, the answer is {answer}", gold) == expected


def test_an_empty_answer_after_the_phrase_earns_nothing():
    # The phrase is there, so the gate passes; the answer "." normalises to "", and "" is in every string:
    # only the explicit empty check keeps it from matching as "answer in gold".
    assert rule_reward("the answer is .", rec("London"), RewardConfig()) == 0.0
    assert rule_reward("the answer is", rec("London"), RewardConfig()) == 0.0


def test_a_gold_that_carries_the_phrase_is_read_like_the_response():
    gold = "Therefore, the answer is London."
    assert reference_answer(gold) == "London"
    assert reference_answer("London") == "London"
    assert rule_reward("So the answer is London", rec(gold), RewardConfig()) == 1.0
    assert rule_reward("So the answer is Paris", rec(gold), RewardConfig()) == 0.0
    # Without reading the gold, "london" would be compared with "therefore answer is london": the answer "is"
    # would then be a whole token of the gold and earn 1.0.
    assert rule_reward("So the answer is is", rec(gold), RewardConfig()) == 0.0


@pytest.mark.parametrize("gold", ["B", "(B)", "The correct answer is (B)", "the answer is B."])
@pytest.mark.parametrize(
    "response", ["The correct answer is (B).", "the answer is B", "<think>hm</think>The correct answer is B"]
)
def test_multiple_choice_compliant_answers_earn_one(gold: str, response: str):
    assert rule_reward(response, rec(gold, task="multiple_choice"), RewardConfig()) == 1.0


@pytest.mark.parametrize(
    "response",
    [
        "The correct answer is (B) or (C).",
        "The correct answer is B or C",
        "The correct answer is (B)/(C)",
        "The correct answer is B, C",
        "The correct answer is (C).",
        "The correct answer is",
        "B",  # no phrase: the gate fails
    ],
)
def test_multiple_choice_hedges_wrong_letters_and_bare_letters_earn_nothing(response: str):
    assert rule_reward(response, rec("B", task="multiple_choice"), RewardConfig()) == 0.0


def test_choice_letter_names_one_option_or_none():
    assert choice_letter("(B) Paris") == "B"
    assert choice_letter("B. A tall man") == "B"  # the article "A" is no second option
    assert choice_letter("B and C") is None
    assert choice_letter("(B) or (C)") is None
    assert choice_letter("Option B or option C") is None
    assert choice_letter("(B) (because of (B))") == "B"  # the same letter twice is still one option


def test_require_think_wants_the_reasoning_block():
    cfg = RewardConfig(require_think=True)
    assert rule_reward("the answer is Paris", rec("Paris"), cfg) == 0.0
    assert rule_reward("<think>Paris is the capital</think>the answer is Paris", rec("Paris"), cfg) == 1.0
    # the phrase must come after the last </think>
    assert rule_reward("<think>the answer is Paris</think>Paris", rec("Paris"), cfg) == 0.0


def test_the_judge_is_asked_only_about_wrong_answers_that_pass_the_gate():
    asked: list[str] = []

    def judge(batch):
        asked.extend(chat[-1]["content"] for chat in batch)
        return ["[[YES]]"] * len(batch)

    cfg = RewardConfig(llm_judge=True)
    responses = ["the answer is Paris", "the answer is the French capital", "Paris, surely"]
    out = hybrid_rewards(responses, [rec("Paris")] * 3, cfg, judge)
    # 1: the rule pays, no judge; 2: the rule fails, the judge says YES; 3: no phrase, nobody is asked
    assert [(r.rule, r.judge, r.total) for r in out] == [(1.0, None, 1.0), (0.0, 1.0, 1.0), (0.0, None, 0.0)]
    assert len(asked) == 1 and "the French capital" in asked[0]
