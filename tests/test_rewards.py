"""QwenLong-L1's hybrid reward: sub-EM, numbers, choices, structured answers, format, overlong shaping, LLM judge."""

from __future__ import annotations

import os
import sys
import time
import types
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from repro.data.schema import Record
from repro.errors import ConfigError
from repro.l1.rewards import (
    JUDGE_PROMPT,
    RewardResult,
    chat_judge,
    hf_judge,
    hybrid_rewards,
    judge_messages,
    overlong_penalty,
    parse_verdict,
    rule_reward,
)
from repro.loong.verify import (
    RewardConfig,
    choice_letter,
    choice_match,
    has_answer_format,
    numeric_match,
    read_number,
    structured_score,
    sub_em,
)

# A generous bound for one call on hostile input on a slow shared machine (each takes well under 0.1 s).
CALL_S = 2.0
MB = 1 << 20


def rec(answer: Any, task: str = "qa", subtask: str | None = None, aliases: tuple[str, ...] = ()) -> Record:
    return Record(
        id="r",
        source="test",
        task=task,
        docs=[],
        question="Which one?",
        answer=answer,
        subtask=subtask,
        answer_aliases=list(aliases),
    )


# --- sub-EM --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        # Articles, case and the trailing period go: "eiffel tower" in "eiffel tower".
        ("The answer is The Eiffel Tower.", "Eiffel Tower", 1.0),
        # Punctuation is deleted, not spaced: "U.S.A!" -> "usa".
        ("the answer is: U.S.A!", "USA", 1.0),
        # Gold tokens "new york" are a run inside "in new york city".
        ("The answer is in New York City", "New York", 1.0),
        ("The answer is in New York City", "York City Hall", 0.0),
        # Token boundaries: "a" is not inside "banana", "york" is not "yorkshire".
        ("the answer is banana", "a", 0.0),
        ("the answer is a", "A", 1.0),
        ("the answer is Yorkshire", "York", 0.0),
        # Empty golds and golds that normalise to nothing never match.
        ("the answer is Paris", "", 0.0),
        ("the answer is ...", "...", 0.0),
        ("", "Paris", 0.0),
        # Only the text after the last </think> counts, and there the part after the last "the answer is".
        ("<think>the answer is Paris</think> the answer is London", "Paris", 0.0),
        ("<think>the answer is Paris</think> the answer is London", "London", 1.0),
        # Decimal points and minus signs survive normalisation; thousands commas are dropped.
        ("the answer is 15", "1.5", 0.0),
        ("the answer is 1.5 million", "1.5", 1.0),
        ("the answer is 3", "-3", 0.0),
        ("the answer is -3 degrees", "-3", 1.0),
        ("the answer is 1250 units", "1,250", 1.0),
    ],
)
def test_sub_em(prediction: str, gold: str, expected: float):
    assert sub_em(prediction, gold) == expected


def test_sub_em_aliases():
    assert sub_em("the answer is the USA.", "United States") == 0.0
    assert sub_em("the answer is the USA.", "United States", aliases=["USA"]) == 1.0
    assert sub_em("the answer is the USA.", "", aliases=["", "usa"]) == 1.0


# --- numbers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        # The default tolerance is the paper's 0.15%: of 250 that is 0.375, so |250.37 - 250| = 0.37 passes and
        # 0.38 does not, on both sides.
        ("the answer is 250.37", "250", 1.0),
        ("the answer is 250.38", "250", 0.0),
        ("the answer is 249.63", "250", 1.0),
        ("the answer is 249.62", "250", 0.0),
        # Scales x100, x1000, /100, /1000: 0.125 = 12.5 / 100; 12.5 = 0.125 * 100; 1.25 = 1250 / 1000.
        ("the answer is 0.125", "12.5%", 1.0),
        ("the answer is 12.5%", "0.125", 1.0),
        ("the answer is 1.25 thousand", "1,250", 1.0),
        ("the answer is 1250", "1.25", 1.0),
        # x10 and x10000 are not scales: 12.5 vs 1.25, 12500 vs 1.25.
        ("the answer is 12.5", "1.25", 0.0),
        ("the answer is 12500", "1.25", 0.0),
        # Currency and thousands commas; a sign must agree: |-5 - 5| = 10.
        ("the answer is $1,234.50", "1234.5", 1.0),
        ("the answer is -5", "5", 0.0),
        # A gold of 0 matches only 0.
        ("the answer is 0", "0", 1.0),
        ("the answer is 0.001", "0", 0.0),
        # Only UNIT_WORDS may follow the number; text is not a number.
        ("the answer is 12 apples", "12", 0.0),
        ("the answer is twelve", "12", 0.0),
    ],
)
def test_numeric_match(prediction: str, gold: str, expected: float):
    assert numeric_match(prediction, gold) == expected


def test_numeric_tolerance_is_a_parameter():
    assert numeric_match("the answer is 250.0", "250", rel_tol=0.0) == 1.0
    assert numeric_match("the answer is 250.1", "250", rel_tol=0.0) == 0.0
    # 5% of 250 is 12.5: 262 passes.
    assert numeric_match("the answer is 262", "250", rel_tol=0.05) == 1.0
    # A negative or NaN tolerance is read as 0.
    assert numeric_match("the answer is 250.1", "250", rel_tol=-1.0) == 0.0
    assert numeric_match("the answer is 250.1", "250", rel_tol=float("nan")) == 0.0


def test_read_number():
    assert read_number("1,234.5") == 1234.5
    assert read_number("12.5 per cent") == 12.5
    assert read_number("3 Million") == 3.0
    assert read_number("3m") == 3.0
    for text in ("inf", "nan", "-inf", "1e999", "1e5", "9" * 400, "12 apples", "", "x" * 600):
        assert read_number(text) is None, text


# --- hostile text ----------------------------------------------------------------------------------------------

HOSTILE = [
    "__import__('os').system('x')",
    'the answer is __import__("os").system("ls")',
    "the answer is 1e999",
    "1e999",
    "inf",
    "the answer is nan",
    "9" * 100_000,
    "the answer is " + "9" * 100_000,
    "the answer is \x00\x00B\x00",
    "\x00" * 1000,
    "x" * (5 * MB) + " the answer is Paris",
    "the answer is " + "(" * MB + "Paris" + ")" * MB,
    "the answer is " + " " * MB + "1" + " " * MB + "million",
    "the answer is " + "[" * 10_000 + "]" * 10_000,
    "<think>" * 100_000 + "</think>" * 100_000,
]


@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_hostile_predictions_are_safe_and_fast(index: int, monkeypatch: pytest.MonkeyPatch):
    calls: list[Any] = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    prediction = HOSTILE[index]
    cfg = RewardConfig(require_format=index % 2 == 0)
    checks = [
        lambda: sub_em(prediction, "Paris", aliases=["1"]),
        lambda: numeric_match(prediction, "250"),
        lambda: numeric_match(prediction, "9" * 100_000),
        lambda: choice_match(prediction, "B"),
        lambda: structured_score(prediction, (["A", "B"], True), partial=True),
        lambda: rule_reward(prediction, rec("42", task="multiple_choice"), cfg),
        lambda: rule_reward(prediction, rec({"k": ["1", "2"]}), cfg),
        lambda: parse_verdict(prediction),
    ]
    for check in checks:
        start = time.perf_counter()
        value = check()
        assert time.perf_counter() - start < CALL_S
        assert value is None or 0.0 <= value <= 1.0
    assert calls == []


def test_non_finite_and_code_never_match():
    for text in ("inf", "nan", "1e999", "__import__('os').system('x')"):
        assert numeric_match(f"the answer is {text}", text) == 0.0
        assert numeric_match(f"the answer is {text}", "1") == 0.0
    # Huge digit strings are past float range: not numbers, never a numeric match.
    assert numeric_match("9" * 100_000, "9" * 100_000) == 0.0


_PIECES = st.sampled_from(["the answer is", "</think>", "<think>", "(", ")", "[", "]", "{", "}", '"', ",", ".", "-"])
_TEXT = st.lists(st.one_of(_PIECES, st.text(max_size=8), st.from_regex(r"-?[0-9,.]{1,12}%?", fullmatch=True)))


@settings(max_examples=150, deadline=None)
@given(parts=_TEXT, gold=st.sampled_from(["B", "250", "12.5%", "Paris", "", "a"]))
def test_any_text_gets_a_reward_in_range(parts: list[str], gold: str):
    prediction = " ".join(parts)
    cfg = RewardConfig(require_format=len(parts) % 2 == 1)
    for task in ("qa", "multiple_choice"):
        assert rule_reward(prediction, rec(gold, task=task), cfg) in (0.0, 1.0)
    assert 0.0 <= rule_reward(prediction, rec(["Paris", "250"]), cfg) <= 1.0
    assert sub_em(prediction, gold) in (0.0, 1.0)
    assert numeric_match(prediction, gold) in (0.0, 1.0)
    assert choice_match(prediction, gold) in (0.0, 1.0)


def test_non_str_predictions_are_read_as_text():
    cfg = RewardConfig(require_format=False)  # a bare number has no "the answer is"
    assert rule_reward(None, rec("Paris"), cfg) == 0.0  # type: ignore[arg-type]
    assert rule_reward(250, rec("250"), cfg) == 1.0  # type: ignore[arg-type]
    assert rule_reward(10**5000, rec("1"), cfg) == 0.0  # type: ignore[arg-type]
    assert hybrid_rewards([None], [rec("Paris")], cfg) == [RewardResult(0.0, None, 0.0)]  # type: ignore[list-item]


# --- multiple choice -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("the answer is B", "B", 1.0),
        ("The answer is (B).", "B", 1.0),
        ("the answer is B. Paris", "(B)", 1.0),
        ("the answer is Option B", "B", 1.0),
        ("the answer is b", "B", 1.0),
        ("the answer is (C) 42", "(C)", 1.0),
        ("the answer is **D**", "D.", 1.0),
        ("the answer is A", "B", 0.0),
        # "A" starting a sentence is the article; two letters are no choice; F is past E.
        ("the answer is A cat", "A", 0.0),
        ("the answer is B and C", "B", 0.0),
        ("the answer is F", "F", 0.0),
        ("the answer is B", "Paris", 0.0),
        ("the answer is B", "", 0.0),
    ],
)
def test_choice_match(prediction: str, gold: str, expected: float):
    assert choice_match(prediction, gold) == expected


def test_choice_letter():
    assert choice_letter("(e)") == "E"
    assert choice_letter("[A]") == "A"
    assert choice_letter("choice c") == "C"
    assert choice_letter("Optional") is None


# --- structured answers ----------------------------------------------------------------------------------------


def test_structured_partial_vs_binary():
    # Items A, B, D against A, B, C: 2 matched, F1 = 2 * 2 / (3 + 3) -> rule_score 200 * 2 / 6 = 66.67.
    assert structured_score("the answer is A, B, D", (["A", "B", "C"], None), partial=True) == 0.6667
    assert structured_score("the answer is A, B, D", (["A", "B", "C"], None), partial=False) == 0.0
    assert structured_score('the answer is ["A", "B", "C"]', (["A", "B", "C"], None), partial=False) == 1.0
    # Dict pairs (x, 1), (y, 3) against (x, 1), (y, 2): 1 of 2 each side -> 50.
    assert structured_score("the answer is x: 1\ny: 3", ({"x": "1", "y": "2"}, None)) == 0.5


def test_structured_record_uses_order_and_aliases():
    # Unordered: C, B, A has all 3 items -> 100. Ordered ("ordering" subtask): LCS 1 -> 200 * 1 / 6 = 33.33.
    assert structured_score("the answer is C, B, A", rec(["A", "B", "C"])) == 1.0
    assert structured_score("the answer is C, B, A", rec(["A", "B", "C"], subtask="ordering")) == 0.3333
    assert structured_score("the answer is all three", rec(["A", "B", "C"], aliases=("all three",))) == 1.0


def test_rule_reward_structured_follows_partial_credit():
    record = rec(["A", "B", "C"])
    assert rule_reward("the answer is A, B, D", record, RewardConfig()) == 0.6667
    assert rule_reward("the answer is A, B, D", record, RewardConfig(partial_credit=False)) == 0.0
    assert rule_reward("the answer is A; B; C", record, RewardConfig(partial_credit=False)) == 1.0


# --- rule reward -----------------------------------------------------------------------------------------------


def test_rule_reward_str_gold_takes_the_best_rule():
    cfg = RewardConfig()
    assert rule_reward("the answer is the city of Paris", rec("Paris"), cfg) == 1.0  # sub-EM
    assert rule_reward("the answer is 1234.50", rec("1,234.5"), cfg) == 1.0  # equal numbers
    assert rule_reward("the answer is 250.3", rec("250"), cfg) == 1.0  # 0.3 <= 0.15% of 250 = 0.375
    assert rule_reward("the answer is 250.3", rec("250"), RewardConfig(numeric_rel_tol=0.0)) == 0.0
    assert rule_reward("the answer is 252.4", rec("250"), cfg) == 0.0  # 2.4 > 0.375
    assert rule_reward("the answer is 252.4", rec("250"), RewardConfig(numeric_rel_tol=0.01)) == 1.0  # 2.4 <= 2.5
    assert rule_reward("the answer is 0.125", rec("12.5%"), cfg) == 1.0  # scale /100
    assert rule_reward("the answer is 8.2", rec("nine", aliases=("8.2",)), cfg) == 1.0  # alias
    assert rule_reward("the answer is London", rec("Paris"), cfg) == 0.0


def test_rule_reward_multiple_choice():
    cfg = RewardConfig()
    assert rule_reward("the answer is (B) Paris", rec("B", task="multiple_choice"), cfg) == 1.0
    assert rule_reward("the answer is Option C", rec("(C)", task="multiple_choice"), cfg) == 1.0
    assert rule_reward("the answer is (A) Paris", rec("B", task="multiple_choice"), cfg) == 0.0
    # Sub-EM would find the token "b" in "a or b" (the article "a" dropped): a letter gold is matched only as a
    # choice, so hedging over letters earns nothing.
    assert rule_reward("the answer is A or B", rec("B", task="multiple_choice"), cfg) == 0.0
    assert rule_reward("the answer is A B C D E", rec("B", task="multiple_choice"), cfg) == 0.0


def test_format_requirement():
    on, off = RewardConfig(), RewardConfig(require_format=False)
    assert on.require_format is True and on.require_think is False  # the released grader's gate is the default
    assert rule_reward("Paris", rec("Paris"), off) == 1.0
    assert rule_reward("Paris", rec("Paris"), on) == 0.0
    assert rule_reward("So THE ANSWER IS Paris.", rec("Paris"), on) == 1.0
    # After a </think> only the text after it counts.
    assert rule_reward("<think>the answer is Paris</think>Paris", rec("Paris"), on) == 0.0
    assert rule_reward("<think>hmm</think>Therefore, the answer is Paris.", rec("Paris"), on) == 1.0
    assert rule_reward("A, B, C", rec(["A", "B", "C"]), on) == 0.0
    assert has_answer_format("the answer is") is True
    assert has_answer_format("") is False


# --- overlong shaping ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "expected"),
    # max_len 100, buffer 20, factor 1: 0 up to 80, then -(len - 80) / 20, -1 from 100 on.
    [(0, 0.0), (80, 0.0), (81, -0.05), (90, -0.5), (99, -0.95), (100, -1.0), (120, -1.0)],
)
def test_overlong_penalty(length: int, expected: float):
    assert overlong_penalty(length, 100, 20, 1.0) == pytest.approx(expected)


def test_overlong_penalty_off_and_scaled():
    assert overlong_penalty(500, 100, 0, 1.0) == 0.0
    assert overlong_penalty(500, 100, 20, 0.0) == 0.0
    # factor 0.5 at 90: -0.5 * 10 / 20 = -0.25.
    assert overlong_penalty(90, 100, 20, 0.5) == -0.25
    assert RewardConfig().overlong_buffer == 0


def test_reward_config_checks_its_values():
    with pytest.raises(ConfigError):
        RewardConfig(overlong_buffer=-1)
    with pytest.raises(ConfigError):
        RewardConfig(numeric_rel_tol=float("nan"))
    with pytest.raises(ConfigError):
        RewardConfig(overlong_factor=-0.5)


# --- LLM judge -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[YES]]", 1.0),
        ("[[NO]]", 0.0),
        ("Verdict: [[ yes ]]", 1.0),
        ("first [[NO]], on reflection [[YES]]", 1.0),
        ("[[YES]] ... no: [[NO]]", 0.0),
        ("yes", None),
        ("[YES]", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_verdict(text: Any, expected: float | None):
    assert parse_verdict(text) == expected


def test_judge_messages_show_question_gold_and_extracted_answer():
    messages = judge_messages("<think>long reasoning</think>so the answer is Bonn.", rec("Berlin", aliases=("BER",)))
    assert [m["role"] for m in messages] == ["user"]
    content = messages[0]["content"]
    assert "Which one?" in content and "Berlin" in content and "BER" in content
    assert "Bonn" in content and "long reasoning" not in content
    assert "[[YES]]" in content and "[[NO]]" in content
    assert JUDGE_PROMPT.startswith("You are checking")
    assert '["A", "B"]' in judge_messages("x", rec(["A", "B"]))[0]["content"]


class FakeJudge:
    def __init__(self, replies: list[str | Exception] | Exception) -> None:
        self.replies = replies
        self.calls: list[list[list[dict]]] = []

    def __call__(self, batch: list[list[dict]]) -> list[str | Exception]:
        self.calls.append(batch)
        if isinstance(self.replies, Exception):
            raise self.replies
        return self.replies


def _batch() -> tuple[list[str], list[Record]]:
    predictions = [
        "the answer is Paris",  # rule 1: not asked
        "the answer is the German capital",  # rule 0
        "the answer is A, B, D",  # rule 0.6667
        "the answer is forty-two",  # rule 0
    ]
    records = [rec("Paris"), rec("Berlin"), rec(["A", "B", "C"]), rec("42")]
    return predictions, records


def test_hybrid_asks_only_below_one_in_one_call():
    predictions, records = _batch()
    judge = FakeJudge(["[[YES]]", "[[NO]]", RuntimeError("endpoint down")])
    results = hybrid_rewards(predictions, records, RewardConfig(llm_judge=True), judge)
    assert len(judge.calls) == 1
    asked = [chat[0]["content"] for chat in judge.calls[0]]
    assert len(asked) == 3
    assert "German capital" in asked[0] and "A, B, D" in asked[1] and "forty-two" in asked[2]
    assert results == [
        RewardResult(rule=1.0, judge=None, total=1.0),
        RewardResult(rule=0.0, judge=1.0, total=1.0),  # YES lifts 0 to 1
        RewardResult(rule=0.6667, judge=0.0, total=0.6667),  # NO keeps the rule's partial credit
        RewardResult(rule=0.0, judge=None, total=0.0),  # a failed reply counts as no judge
    ]


def test_hybrid_judge_failures_leave_the_rule():
    predictions, records = _batch()
    cfg = RewardConfig(llm_judge=True)
    rules = [1.0, 0.0, 0.6667, 0.0]
    for judge in (FakeJudge(RuntimeError("boom")), FakeJudge(["maybe", "", "???"]), FakeJudge(["[[YES]]"])):
        results = hybrid_rewards(predictions, records, cfg, judge)
        assert len(judge.calls) == 1
        if judge.replies == ["[[YES]]"]:
            # A short reply list: the first asked item is judged, the rest are not.
            assert [r.judge for r in results] == [None, 1.0, None, None]
            assert [r.total for r in results] == [1.0, 1.0, 0.6667, 0.0]
        else:
            assert [r.judge for r in results] == [None] * 4
            assert [r.total for r in results] == rules


def test_hybrid_without_judge_or_when_off():
    predictions, records = _batch()
    judge = FakeJudge(["[[YES]]"] * 3)
    results = hybrid_rewards(predictions, records, RewardConfig(), judge)
    assert judge.calls == []
    assert [r.total for r in results] == [1.0, 0.0, 0.6667, 0.0]
    assert hybrid_rewards(predictions, records, RewardConfig()) == results
    with pytest.raises(ValueError, match="no judge"):
        hybrid_rewards(predictions, records, RewardConfig(llm_judge=True), None)
    with pytest.raises(ValueError, match="3 predictions for 4 records"):
        hybrid_rewards(predictions[:3], records, RewardConfig())
    assert hybrid_rewards([], [], RewardConfig(llm_judge=True), judge) == []
    assert judge.calls == []


def test_hybrid_all_correct_makes_no_call_and_format_failures_are_not_asked():
    judge = FakeJudge([])
    cfg = RewardConfig(llm_judge=True, require_format=True)
    hybrid_rewards(["the answer is Paris"], [rec("Paris")], cfg, judge)
    assert judge.calls == []
    judge = FakeJudge(["[[YES]]"])
    results = hybrid_rewards(["Paris is my guess", "the answer is Lyon"], [rec("Paris"), rec("Paris")], cfg, judge)
    assert len(judge.calls) == 1 and len(judge.calls[0]) == 1
    assert "Lyon" in judge.calls[0][0][0]["content"]
    assert results == [RewardResult(0.0, None, 0.0), RewardResult(0.0, 1.0, 1.0)]


def test_chat_judge_checks_the_key_once_and_forwards_the_batch():
    class FakeClient:
        def __init__(self) -> None:
            self.checked = 0
            self.batches: list[Any] = []

        def check_key(self) -> None:
            self.checked += 1

        def complete_many(self, batch: list[Any]) -> list[str | Exception]:
            self.batches.append(batch)
            return ["[[YES]]"] * len(batch)

    client = FakeClient()
    judge = chat_judge(client)
    assert client.checked == 1
    chats = [[{"role": "user", "content": "q"}]] * 2
    assert judge(chats) == ["[[YES]]", "[[YES]]"]
    assert client.batches == [chats]


def test_hf_judge_batches_greedy_and_reports_failed_batches(monkeypatch: pytest.MonkeyPatch):
    calls: list[tuple[list[str], Any]] = []

    def generate_texts(model: Any, tokenizer: Any, prompts: list[str], gen: Any) -> list[str]:
        calls.append((prompts, gen))
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return [f"[[YES]] to {p}" for p in prompts]

    monkeypatch.setitem(sys.modules, "repro.generation", types.SimpleNamespace(generate_texts=generate_texts))

    class Tokenizer:
        chat_template = "fake"

        def apply_chat_template(self, messages: list[dict], tokenize: bool, add_generation_prompt: bool) -> str:
            return "|".join(f"{m['role']}:{m['content']}" for m in messages)

    judge = hf_judge(object(), Tokenizer(), max_new_tokens=8, batch_size=2)
    chats = [[{"role": "user", "content": str(i)}] for i in range(5)]
    replies = judge(chats)
    assert [prompts for prompts, _ in calls] == [["user:0", "user:1"], ["user:2", "user:3"], ["user:4"]]
    gen = calls[0][1]
    assert gen.do_sample is False and gen.max_new_tokens == 8
    assert replies[:2] == ["[[YES]] to user:0", "[[YES]] to user:1"] and replies[4] == "[[YES]] to user:4"
    assert all(isinstance(r, RuntimeError) for r in replies[2:4])
