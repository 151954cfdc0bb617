"""The rule judge on hostile text: it never raises, scores in [0, 100] and stays fast; regressions for found bugs."""

from __future__ import annotations

import inspect
import re
import sys
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repro.loong.answers import MAX_ANSWER_CHARS, MAX_JSON_DEPTH, _clean, extract_answer, parse_number, parse_structured
from repro.loong.judges import MAX_ORDERED_ITEMS, _lcs_length, parse_rating, rule_score

# Bound for one call on a large input, generous for a slow 2-core machine (these calls take ~0.05 s on a laptop).
BIG_CALL_S = 2.0
# Bound for one call in the property tests.
CALL_S = 1.0
MB = 1 << 20


def _timed(prediction: Any, gold: Any, **kwargs: Any) -> tuple[float, float]:
    start = time.perf_counter()
    score = rule_score(prediction, gold, **kwargs)
    return score, time.perf_counter() - start


# --- huge numbers (int() refuses more than 4,300 digits; floats overflow) --------------------------------------


def test_4301_digit_number_against_list_and_dict_golds():
    big = "9" * 4301
    # One item, the digits themselves (past float range, so compared as text): no match with 1 or 2.
    assert rule_score(f"the answer is [{big}]", ["1", "2"]) == 0.0
    assert rule_score(big, ["1", "2"]) == 0.0
    # Items 1 and 9…9 against 1 and 2: 1 match, P = R = 1/2, F1 = 0.5.
    assert rule_score(f"[1, {big}]", ["1", "2"]) == 50.0
    # Pairs (a, 9…9), (b, 2) against (a, 1), (b, 2): 1 of 2 on each side -> 50.
    assert rule_score(f'{{"a": {big}, "b": "2"}}', {"a": "1", "b": "2"}) == 50.0
    # The same digits are the same answer.
    assert rule_score(f"the answer is {big}", big) == 100.0


def test_number_past_float_range_is_compared_by_digits():
    # Both used to read as inf, so any two such numbers were equal.
    assert parse_number("9" * 400) is None
    assert rule_score("9" * 400, "8" * 400) == 0.0
    assert rule_score("9" * 400, "9" * 400) == 100.0
    # A 400-digit JSON int used to overflow float(); items 1 and 9…9 against 1 and 2 -> 50.
    assert rule_score(f"[{'9' * 400}]", ["1", "2"]) == 0.0
    assert rule_score(f"[1, {'9' * 400}]", ["1", "2"]) == 50.0


def test_nan_infinity_and_overflowing_floats_are_text():
    # NaN, Infinity, -Infinity and 1e400 stay text: keys nan, infinity, infinity, 1e400 and #1.0 against #1.0 and
    # nan: 2 matches, F1 = 200 * 2 / (5 + 2) = 57.142… -> 57.14.
    assert rule_score("[NaN, Infinity, -Infinity, 1e400, 1]", ["1", "nan"]) == 57.14
    assert parse_structured('{"x": NaN}', "dict") == {"x": "NaN"}


def test_non_str_predictions_and_keys():
    assert rule_score(1234.5, "1,234.5") == 100.0
    assert rule_score(None, "Paris") == 0.0
    # str() of this int raises ValueError (over 4,300 digits): read as no answer.
    assert rule_score(10**5000, "1") == 0.0
    # Keys 1 and 2 equal "1" and "2" by value; true and null equal "true" and None as text.
    assert rule_score('{"1": true, "2": null}', {1: "true", 2: None}) == 100.0
    assert rule_score("[true, false]", ["true", "yes"]) == 50.0


# --- deep nesting --------------------------------------------------------------------------------------------


def test_deeply_nested_json_is_read_as_plain_text():
    deep = '{"a":' * 972 + "1" + "}" * 972
    # Too deep for JSON: the "key: value" reader sees key '{"a"' (normalised: a) and a value that normalises to
    # "a a … 1", not 1 -> no match.
    assert rule_score(deep, {"a": "1"}) == 0.0
    # Pairs (x, 1) and (y, a a … 1) against (x, 1) and (y, 2): 1 of 2 on each side -> 50.
    assert rule_score(f"x: 1\ny: {deep}", {"x": "1", "y": "2"}) == 50.0
    # Nesting within the cap is still JSON: the {...} part is the whole answer and has only key "a" -> 0.
    shallow = '{"a":' * 40 + "1" + "}" * 40
    assert rule_score(f"x: 1\ny: {shallow}", {"x": "1", "y": "2"}) == 0.0


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH - 10, MAX_JSON_DEPTH + 10, 972, 100_000])
def test_correct_list_with_a_deep_extra_item(depth):
    # As JSON, or split at commas as plain text (also when cut at 20,000 characters), the items are A, B and a
    # run of brackets that normalises to "" and is dropped: A, B against A, B -> 100.
    nested = "[" * depth + "]" * depth
    score, seconds = _timed(f'the answer is ["A", "B", {nested}]', ["A", "B"])
    assert score == 100.0
    assert seconds < BIG_CALL_S


def test_deep_json_needs_no_deep_stack():
    prediction = '{"x": 1, "y": ' + '{"a":' * 972 + "1" + "}" * 972 + "}"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + 150)
    try:
        # Too deep for JSON. The plain reader splits at the first colon: key {"x" (normalised: x) with items 1 and
        # '"y": {"a":…1}}' (normalised: y a … 1). Pairs (x, 1), (x, y a … 1) against (x, 1): P = 1/2, R = 1,
        # F1 = 2/3 -> 66.67.
        assert rule_score(prediction, {"x": "1"}) == 66.67
    finally:
        sys.setrecursionlimit(limit)


# --- nested brackets, fences, periods and long runs of blanks (were quadratic) ----------------------------------


def test_nested_parens_are_stripped_in_linear_time():
    layers = (MAX_ANSWER_CHARS - 1) // 2
    score, seconds = _timed("(" * layers + "x" + ")" * layers, "x")
    assert score == 100.0
    assert seconds < BIG_CALL_S
    # 40 KB: only the last 20,000 characters are read, all ")" -> nothing left that could equal x.
    score, seconds = _timed("(" * 20_000 + "x" + ")" * 20_000, "x")
    assert score == 0.0
    assert seconds < BIG_CALL_S
    score, seconds = _timed("(" * (5 * MB // 2) + ")" * (5 * MB // 2), ["x"])
    assert score == 0.0
    assert seconds < BIG_CALL_S


def test_unbalanced_parens_keep_their_meaning():
    # The first "(" never closes before the end, so the outer pair is dropped, once.
    assert extract_answer("((x)") == "(x"
    assert extract_answer("(a)(b)") == "(a)(b)"
    assert extract_answer("(((x)))") == "x"


def test_many_fences_periods_and_quotes():
    assert rule_score("```\n" * 2_000 + "x" + "\n```" * 2_000, "x") == 100.0
    assert rule_score("the answer is x" + " ." * 9_000, "x") == 100.0
    # The outer "(" pair goes, then “ cannot (it occurs inside); what is left is x among punctuation, which
    # normalisation drops.
    score, seconds = _timed("the answer is " + "(“" * 3_000 + "x" + "”)" * 3_000, "x")
    assert score == 100.0
    assert seconds < BIG_CALL_S
    assert extract_answer("(“(x)”)") == "x"


def test_long_runs_of_blanks():
    blanks = " " * (MAX_ANSWER_CHARS - 10)
    # Split on " and ": items A and B -> 100.
    score, seconds = _timed(f"A{blanks}and B", ["A", "B"])
    assert score == 100.0
    assert seconds < BIG_CALL_S
    # No separator, so one item "A … B", normalised to "b" (the article "a" goes): P = 1, R = 1/2 -> 66.67.
    # Searching for " and " used to rescan the blanks from every one of them.
    score, seconds = _timed(f"A{blanks}B", ["A", "B"])
    assert score == 66.67
    assert seconds < BIG_CALL_S


# --- huge answers --------------------------------------------------------------------------------------------


def test_correct_answer_followed_by_a_megabyte_of_junk():
    junk = " lorem ipsum" * (MB // 12)
    # The JSON list inside the first 20,000 characters is read: A, B against A, B, C: P = 1, R = 2/3 -> 80.
    score, seconds = _timed(f'the answer is ["A", "B"]{junk}', ["A", "B", "C"])
    assert score == 80.0
    assert seconds < BIG_CALL_S
    # A text answer with junk after it is not the gold text.
    score, seconds = _timed(f"the answer is Paris.{junk}", "Paris")
    assert score == 0.0
    assert seconds < BIG_CALL_S


def test_five_megabytes_without_the_phrase_reads_the_end():
    # No "the answer is": the last 20,000 characters, whose bullet lines are A, B, C -> 100.
    reasoning = "blah " * (5 * MB // 5)
    score, seconds = _timed(f"{reasoning}\n- A\n- B\n- C", ["A", "B", "C"])
    assert score == 100.0
    assert seconds < BIG_CALL_S


def test_five_megabytes_of_phrases_and_digits():
    score, seconds = _timed("the answer is A. " * (5 * MB // 17), "A")
    assert score == 100.0
    assert seconds < BIG_CALL_S
    # 20,000 ones are no number and not the text "1".
    score, seconds = _timed("the answer is " + "1" * (5 * MB), "1")
    assert score == 0.0
    assert seconds < BIG_CALL_S


def test_nul_surrogates_and_unicode():
    # A NUL is neither blank nor punctuation, so "Paris\x00" is not "Paris".
    assert rule_score("the answer is Paris\x00", "Paris") == 0.0
    # Items A, \ud800, B against A, B: P = 2/3, R = 1, F1 = 0.8.
    assert rule_score('["A", "\ud800", "B"]', ["A", "B"]) == 80.0
    assert rule_score('["A", "\\ud800", "B"]', ["A", "B"]) == 80.0
    assert rule_score("the answer is \ud800", "\ud800") == 100.0
    assert rule_score("\x00" * MB, {"a": "1"}) == 0.0


# --- ordered lists ---------------------------------------------------------------------------------------------


def test_ordered_score_compares_at_most_the_cap():
    gold = [str(i) for i in range(MAX_ORDERED_ITEMS)]
    # 3,000 items whose first 1,000 are the gold in order: LCS 1,000, F1 = 200 * 1000 / 4000 = 50.
    score, seconds = _timed(", ".join(str(i) for i in range(3 * MAX_ORDERED_ITEMS)), gold, ordered=True)
    assert score == 50.0
    assert seconds < BIG_CALL_S
    # The gold items come after the cap: in order they count as unmatched, unordered all 1,000 match:
    # F1 = 200 * 1000 / (2000 + 1000) = 66.67.
    late = ", ".join(str(i) for i in [*range(1000, 2000), *range(1000)])
    assert rule_score(late, gold, ordered=True) == 0.0
    assert rule_score(late, gold, ordered=False) == 66.67


def _reference_lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from("abcd"), max_size=40), st.lists(st.sampled_from("abcd"), max_size=40))
def test_bit_parallel_lcs_equals_dynamic_programming(a, b):
    assert _lcs_length(a, b) == _reference_lcs(a, b)


def test_lcs_worked_example():
    # ABCBDAB and BDCABA share BCBA (length 4).
    assert _lcs_length(list("ABCBDAB"), list("BDCABA")) == 4


# --- the linear _clean agrees with the layer-by-layer definition -------------------------------------------------

_REF_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)
_REF_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "`": "`"}


def _reference_clean(s: str) -> str:
    """One layer per pass, rescanning the whole text each time (quadratic)."""
    while True:
        before = s
        s = s.replace("**", "").strip().lstrip(":：").strip()
        fence = _REF_FENCE.match(s)
        if fence:
            s = fence.group(1).strip()
        if s.endswith(".") and not s.endswith(".."):
            s = s[:-1].rstrip()
        if len(s) >= 2 and _REF_QUOTES.get(s[0]) == s[-1] and s[0] not in s[1:-1] and s[-1] not in s[1:-1]:
            s = s[1:-1].strip()
        if len(s) >= 2 and s[0] == "(" and s[-1] == ")":
            depth = 0
            closes_early = False
            for i, ch in enumerate(s):
                depth += (ch == "(") - (ch == ")")
                closes_early = closes_early or (depth == 0 and i < len(s) - 1)
            s = s if closes_early else s[1:-1]
        if s == before:
            return s


# Single characters, then longer pieces.
_CLEAN_PIECES = [*"()\"'`*.:： \nx\u201c\u201d\u2018\u2019", "```", "```py\n", "**", "..", "ab"]


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(_CLEAN_PIECES), max_size=30).map("".join))
def test_clean_equals_reference(text):
    assert _clean(text) == _reference_clean(text)


# --- property: any text, any gold ------------------------------------------------------------------------------

_GOLDS: list[Any] = [
    "Paris",
    "1,234.5",
    ["A", "B", "C"],
    ["1", "2", "3.5%"],
    {"High": ["A", "B"], "Low": "C"},
    {"2019": "X Corp", "x": ["1", "2"]},
]
_FRAGMENTS = [
    *"()[]{}\"'`,;:\n \t.-$\\\x00\u200b\u201c\u201d\ud800\udfff",
    *["```", "```json\n", "**", " and ", "- ", "1. ", "x: ", "\\u", "\\ud800", "the answer is ", "The Answer Is:"],
    *["</think>", "<think>", "A", "B", "C", "Paris", "High", "NaN", "Infinity", "1e400", "1,234", "3.5%"],
    *["true", "null"],
]
_DIGITS = st.integers(1, 6_000).map(lambda n: "9" * n)
_PIECE = st.sampled_from(_FRAGMENTS) | _DIGITS | st.text(st.characters(exclude_categories=()), max_size=4)
_REPEATED = st.tuples(st.lists(_PIECE, min_size=1, max_size=4).map("".join), st.integers(1, 30_000)).map(
    lambda unit_count: unit_count[0] * min(unit_count[1], 60_000 // max(len(unit_count[0]), 1))
)
_HOSTILE = st.lists(_PIECE | _REPEATED, max_size=12).map("".join)
_ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=300)
_PROPERTY = settings(
    max_examples=250,
    deadline=2_000,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _check_total(prediction: str, gold: Any, ordered: bool) -> None:
    score, seconds = _timed(prediction, gold, ordered=ordered)
    assert isinstance(score, float)
    assert 0.0 <= score <= 100.0
    assert seconds < CALL_S


@_PROPERTY
@given(_HOSTILE, st.sampled_from(_GOLDS), st.booleans())
def test_hostile_text_scores_in_range_quickly(prediction, gold, ordered):
    _check_total(prediction, gold, ordered)


@_PROPERTY
@given(_ANY_TEXT, st.sampled_from(_GOLDS), st.booleans())
def test_any_unicode_scores_in_range_quickly(prediction, gold, ordered):
    _check_total(prediction, gold, ordered)


@_PROPERTY
@given(_HOSTILE | _ANY_TEXT)
def test_parsers_never_raise(text):
    assert isinstance(parse_structured(text[:MAX_ANSWER_CHARS], "list"), list)
    assert isinstance(parse_structured(text[:MAX_ANSWER_CHARS], "dict"), dict)
    start = time.perf_counter()
    rating = parse_rating(text)
    assert rating is None or 1.0 <= rating <= 100.0
    assert time.perf_counter() - start < CALL_S


def test_parse_rating_long_blank_runs():
    # Used to try every split of the blanks among four optional parts: 34 s for 400 blanks.
    start = time.perf_counter()
    assert parse_rating("rating" + " " * 5_000 + "x") is None
    assert parse_rating("Rating:" + " " * 5_000 + "x") is None
    assert parse_rating("Rating:" + " " * 5_000 + "85") == 85.0
    assert parse_rating("Rating: **" + " " * 5_000 + "[ 70 ]") == 70.0
    assert time.perf_counter() - start < BIG_CALL_S
