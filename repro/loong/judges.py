"""Loong judges: a deterministic rule score (0-100) and the LLM-judge prompt with its rating parser."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from repro.loong.answers import answers_equal, extract_answer, item_key, parse_structured

Gold = str | list | dict
# Loong-mini subtasks whose list answers are sequences: order counts in the rule judge.
ORDERED_SUBTASKS = {"sequential_enumeration", "ordering", "temporal_trend", "citation_chain"}

# An ordered score compares at most this many items of each list, since the longest common subsequence costs
# O(n * m / 64); Loong lists hold tens of items. Items past the cap count as unmatched.
MAX_ORDERED_ITEMS = 1_000


def _f1_score(matched: int, n_pred: int, n_gold: int) -> float:
    """100 * F1 with P = matched/n_pred and R = matched/n_gold, i.e. 200 * matched / (n_pred + n_gold)."""
    if n_pred == 0 and n_gold == 0:
        return 100.0
    if matched == 0:
        return 0.0
    score = 200.0 * matched / (n_pred + n_gold)
    if matched == n_pred == n_gold:
        return 100.0
    # Only a fully correct answer may show 100, however long the lists are.
    return min(round(score, 2), 99.99)


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Allison-Dix / Hyyro): O(len(a) * len(b) / 64).

    Bit j of `v` is 0 where the LCS row gains 1 at column j, so the LCS length is the number of 0 bits.
    """
    a, b = a[:MAX_ORDERED_ITEMS], b[:MAX_ORDERED_ITEMS]
    masks: dict[str, int] = {}
    for j, y in enumerate(b):
        masks[y] = masks.get(y, 0) | 1 << j
    full = (1 << len(b)) - 1
    v = full
    for x in a:
        u = v & masks.get(x, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def _keys(items: Iterable[Any]) -> list[str]:
    return [k for k in (item_key(v) for v in items) if k]


def _list_score(answer: str, gold: list, ordered: bool) -> float:
    pred = _keys(parse_structured(answer, "list"))
    ref = _keys(gold)
    matched = _lcs_length(pred, ref) if ordered else sum((Counter(pred) & Counter(ref)).values())
    return _f1_score(matched, len(pred), len(ref))


def _pairs(key: str, value: Any, gold_value: Any = None) -> list[tuple[str, str]]:
    if isinstance(gold_value, list) and isinstance(value, str):
        # The gold wants several items here: read a plain "a, b" value as a list.
        value = parse_structured(value, "list")
    items = value if isinstance(value, list) else [value]
    return [(key, k) for k in _keys(items)]


def _dict_score(answer: str, gold: dict) -> float:
    pred = parse_structured(answer, "dict")
    gold_by_key = {item_key(k): v for k, v in gold.items()}
    ref = [pair for k, v in gold_by_key.items() for pair in _pairs(k, v)]
    got = []
    for k, v in pred.items():
        nk = item_key(k)
        got.extend(_pairs(nk, v, gold_by_key.get(nk)))
    matched = sum((Counter(got) & Counter(ref)).values())
    return _f1_score(matched, len(got), len(ref))


def as_text(prediction: object) -> str:
    """Model output as a string: itself, or its str() ("" where even that fails)."""
    if isinstance(prediction, str):
        return prediction
    try:
        return str(prediction)
    except ValueError:  # an int past Python's 4,300-digit conversion limit
        return ""


def rule_score(prediction: str, gold: Gold, ordered: bool | None = None, aliases: Iterable[str] = ()) -> float:
    """Deterministic 0-100 score of a model response against the gold answer.

    str gold: 100 when the extracted answer equals the gold or an alias (normalised text, or equal numbers).
    list gold: 100 * F1 over normalised items, unordered (multiset) unless `ordered`, where matches are the
    longest common subsequence. dict gold: 100 * F1 over (key, item) pairs. 100 only when fully correct.

    Any text gets a score in linear time and nothing is raised (a non-str prediction is read as its str()): only
    MAX_ANSWER_CHARS of the answer are read, JSON deeper than MAX_JSON_DEPTH is read as plain text, and an ordered
    score compares at most MAX_ORDERED_ITEMS items.
    """
    prediction = as_text(prediction)
    if not prediction or prediction.isspace():
        return 0.0
    answer = extract_answer(prediction)
    if not answer:
        return 0.0
    if isinstance(gold, str):
        return 100.0 if any(answers_equal(answer, g) for g in (gold, *aliases)) else 0.0
    if answer in (json.dumps(gold), json.dumps(gold, ensure_ascii=False)):
        return 100.0
    if any(answers_equal(answer, a) for a in aliases):
        return 100.0
    if isinstance(gold, list):
        return _list_score(answer, gold, bool(ordered))
    if isinstance(gold, dict):
        return _dict_score(answer, gold)
    raise TypeError(f"gold answer must be str, list or dict, got {type(gold).__name__}")


LOONG_JUDGE_PROMPT = """You are grading an AI assistant's answer to a question about a set of documents.

[Question]
{question}

[Gold Answer]
{gold}

[Assistant's Answer: start]
{prediction}
[Assistant's Answer: end]

Treat the gold answer as correct. Judge the assistant's answer on two criteria:
- Accuracy, no hallucination: it must mean the same as the gold answer; numbers, names and any required \
order must be right, and it must not add claims that the gold answer contradicts.
- Completeness: it must contain every key point of the gold answer; extra explanation is neither needed \
nor rewarded.

Give the answer an overall score from 1 to 100, higher being better. An answer that fully meets both \
criteria gets 100. Be impartial; the length of the answer is no reason for a higher or lower score.

First write a short rationale (at most 100 words). Then write the score on its own last line, exactly in \
this form, with the number inside double square brackets:
Rating: [[score]]"""


def format_gold(gold: Gold) -> str:
    """The gold answer as the judge sees it: text as is, lists and dicts as JSON."""
    return gold if isinstance(gold, str) else json.dumps(gold, ensure_ascii=False)


def judge_prompt(question: str, gold: Gold, prediction: str) -> str:
    """The LLM-judge prompt for one item (Loong protocol: question, gold answer and prediction, score 1-100)."""
    return LOONG_JUDGE_PROMPT.format(question=question, gold=format_gold(gold), prediction=prediction)


_NUM = r"[+-]?(?:\d+(?:\.\d+)?|\.\d+)"
_DOUBLE_BRACKETED = re.compile(rf"\[\[\s*({_NUM})\s*\]\]")
# Each optional marker takes its own trailing blanks, so a long run of blanks is not split many ways on a miss.
_AFTER_RATING = re.compile(rf"\brating\s*(?:[:：]\s*)?(?:\*+\s*)?(?:\[\s*)?({_NUM})\s*\]?", re.IGNORECASE)


def parse_rating(text: str) -> float | None:
    """The judge's score: the last [[number]]; failing that, a number right after the last "Rating:".

    None when there is none or it lies outside 1..100 (an unparsed judgement).
    """
    if not text:
        return None
    found = _DOUBLE_BRACKETED.findall(text) or _AFTER_RATING.findall(text)
    if not found:
        return None
    value = float(found[-1])
    return value if 1.0 <= value <= 100.0 else None
