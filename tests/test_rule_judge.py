"""Answer extraction, normalisation, the rule judge for str/list/dict answers, and the judge rating parser."""

import json

import pytest

from repro.loong.answers import extract_answer, normalize_text, parse_number, parse_structured
from repro.loong.judges import judge_prompt, parse_rating, rule_score

# --- extraction and normalisation ---------------------------------------------------------------


def test_extract_after_last_think_and_last_phrase():
    text = "<think>maybe the answer is London</think>I checked. So The Answer Is **Paris**."
    assert extract_answer(text) == "Paris"


def test_extract_without_phrase_uses_whole_post_think_text():
    assert extract_answer("<think>hmm</think>\n  Paris  ") == "Paris"
    assert extract_answer("") == ""


def test_extract_keeps_json_brackets_and_strips_wrapping_parens_quotes():
    assert extract_answer('Therefore, the answer is ["A", "B"].') == '["A", "B"]'
    assert extract_answer("Therefore, the answer is (insert: Paris)") == "insert: Paris"
    assert extract_answer('the answer is "Paris".') == "Paris"
    # The brackets of "(A) or (B)" do not wrap the whole text, so they stay.
    assert extract_answer("the answer is (A) or (B)") == "(A) or (B)"


def test_normalize_text_squad_style():
    assert normalize_text("  The Quick, brown  FOX! ") == "quick brown fox"
    assert normalize_text("an apple a day") == "apple day"
    # An item that is only an article keeps it, so list items "A", "B" stay distinct.
    assert normalize_text("A.") == "a"


def test_parse_number_formats():
    assert parse_number("1,234.50") == parse_number("$1,234.5") == parse_number("1234.5") == 1234.5
    assert parse_number("-3") == -3.0
    assert parse_number("12,34") is None  # not a valid thousands grouping
    assert parse_number("1234.5 million") is None
    assert parse_number("__import__('os')") is None


def test_parse_structured_list_forms():
    expected = ["A", "B", "C"]
    assert parse_structured('["A", "B", "C"]', "list") == expected
    assert parse_structured("['A', 'B', 'C']", "list") == expected
    assert parse_structured("A, B and C", "list") == expected
    assert parse_structured("A; B; C", "list") == expected
    assert parse_structured("1. A\n2. B\n3. C", "list") == expected
    assert parse_structured("The companies are:\n- A\n- B\n- C", "list") == expected
    # A comma inside "Co., Ltd." does not split a company name.
    assert parse_structured("Foo Co., Ltd., Bar Inc. and Baz", "list") == ["Foo Co., Ltd", "Bar Inc", "Baz"]


def test_parse_structured_dict_forms():
    assert parse_structured('{"x": ["A"]}', "dict") == {"x": ["A"]}
    assert parse_structured("{'x': 'A'}", "dict") == {"x": "A"}
    assert parse_structured("x: A, B\ny: C", "dict") == {"x": ["A", "B"], "y": "C"}
    assert parse_structured("High:\n- A\n- B\nLow:\n- C", "dict") == {"High": ["A", "B"], "Low": ["C"]}


# --- rule judge: str ----------------------------------------------------------------------------


def test_str_exact_and_normalised():
    assert rule_score("the answer is Paris", "Paris") == 100.0
    assert rule_score("The answer is: the EIFFEL tower!", "Eiffel Tower") == 100.0


def test_str_numeric_formatting():
    assert rule_score("the answer is $1,234.50.", "1234.5") == 100.0
    # Both numeric, different values: "1,234.5" must not equal "12345" even though the digits do.
    assert rule_score("the answer is 12345", "1,234.5") == 0.0


def test_str_wrong_and_alias():
    assert rule_score("the answer is London", "Paris") == 0.0
    assert rule_score("the answer is U.S.A.", "United States", aliases=["USA"]) == 100.0


# --- rule judge: list ---------------------------------------------------------------------------


def test_list_partial_unordered():
    # P = 2/2 = 1, R = 2/3, F1 = 2 * 1 * (2/3) / (1 + 2/3) = 0.8
    assert rule_score('the answer is ["A", "B"]', ["A", "B", "C"]) == 80.0


def test_list_extra_items():
    # P = 3/4, R = 1, F1 = 2 * 0.75 / 1.75 = 6/7 = 0.857142… -> 85.71
    assert rule_score('["A", "B", "C", "D"]', ["A", "B", "C"]) == 85.71


def test_list_wrong_order():
    gold = ["A", "B", "C"]
    # Unordered: all three match.
    assert rule_score('["B", "A", "C"]', gold, ordered=False) == 100.0
    # Ordered: LCS of (B, A, C) and (A, B, C) is 2, P = R = 2/3, F1 = 2/3 -> 66.67
    assert rule_score('["B", "A", "C"]', gold, ordered=True) == 66.67
    assert rule_score('["A", "B", "C"]', gold, ordered=True) == 100.0


def test_list_plain_text_equals_json():
    gold = ["A", "B", "C"]
    assert rule_score("the answer is A, B and C", gold) == rule_score('["A","B","C"]', gold) == 100.0


def test_list_multiset_and_normalised_items():
    # Pred [a, a] vs gold [A, B]: only one "a" can match; P = 1/2, R = 1/2, F1 = 0.5
    assert rule_score('["a", "a"]', ["A", "B"]) == 50.0
    assert rule_score('["the Alpha", "1,000"]', ["alpha", "1000"]) == 100.0


def test_empty_prediction_scores_zero():
    assert rule_score("", "Paris") == 0.0
    assert rule_score("   ", ["A"]) == 0.0
    assert rule_score("", {"x": "A"}) == 0.0
    assert rule_score("<think>long thoughts</think>", ["A"]) == 0.0


# --- rule judge: dict ---------------------------------------------------------------------------


def test_dict_partial_list_values():
    gold = {"High": ["A", "B"], "Low": ["C"]}
    # Pred pairs (high,a), (low,c), (low,d); gold pairs (high,a), (high,b), (low,c): 2 match,
    # P = 2/3, R = 2/3, F1 = 2/3 -> 66.67
    assert rule_score("the answer is High: A\nLow: C, D", gold) == 66.67
    assert rule_score("the answer is high: B, A\nlow: C", gold) == 100.0


def test_dict_scalar_values():
    gold = {"2019": "X Corp", "2020": "Y Corp"}
    # One of two pairs right on each side: P = R = 1/2 -> 50.0
    assert rule_score('{"2019": "X Corp", "2020": "Z Corp"}', gold) == 50.0


def test_dict_plain_value_split_when_gold_wants_a_list():
    gold = {"x": ["A", "B"]}
    assert rule_score('{"x": "A, B"}', gold) == 100.0


# --- gold as prediction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gold",
    ["Paris", ["Alpha Co., Ltd.", "Beta", "3.5%"], {"Group 1": ["A", "B"], "Group 2": "C"}, {"公司": ["甲", "乙"]}],
)
def test_gold_as_prediction_scores_100(gold):
    text = gold if isinstance(gold, str) else json.dumps(gold, ensure_ascii=False)
    assert rule_score(text, gold, ordered=True) == 100.0
    assert rule_score(f"<think>x</think>Therefore, the answer is {text}", gold) == 100.0


# --- LLM judge prompt and rating ----------------------------------------------------------------


def test_judge_prompt_contains_parts_and_format():
    prompt = judge_prompt("Which {one}?", ["A", "B"], "the answer is A")
    assert "Which {one}?" in prompt
    assert '["A", "B"]' in prompt
    assert "the answer is A" in prompt
    assert "Rating: [[score]]" in prompt
    assert "1 to 100" in prompt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Good answer.\nRating: [[85]]", 85.0),
        ("Rating: [[ 85 ]]", 85.0),
        ("Rating: [[85.5]]", 85.5),
        ("Rating: [[100]]", 100.0),
        ("First [[20]], on reflection Rating: [[90]]", 90.0),
        ("Rating: 70", 70.0),
        ("Rating: [[score]]", None),
        ("no score here", None),
        ("Rating: [[0]]", None),
        ("Rating: [[150]]", None),
        ("Rating: [[-5]]", None),
        ("operating income: 12", None),
        ("", None),
    ],
)
def test_parse_rating(text, expected):
    assert parse_rating(text) == expected
