"""The rule answer check the papers share, read as QwenLong-L1's released grader reads answers: the format
gate, sub-EM both ways, numbers within a tolerance, multiple-choice letters, Loong-mini lists and dicts."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from repro.data.schema import Record
from repro.errors import ConfigError
from repro.loong.answers import ANSWER_PHRASE, extract_answer, normalize_text, parse_number
from repro.loong.judges import ORDERED_SUBTASKS, as_text, rule_score

Gold = str | list | dict


@dataclass
class RewardConfig:
    partial_credit: bool = True  # list/dict golds earn rule_score / 100 rather than all-or-nothing
    # the released grader (docqa.py): no "the answer is" after the last </think>, reward 0 and no judge is asked
    require_format: bool = True
    require_think: bool = False  # a reasoning model's recipe: no </think> in the response, reward 0
    numeric_rel_tol: float = 0.0015  # the paper's 0.15%
    overlong_buffer: int = 0  # 0: no overlong shaping
    overlong_factor: float = 1.0
    llm_judge: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.numeric_rel_tol) and self.numeric_rel_tol >= 0):
            raise ConfigError(f"numeric_rel_tol must be a number >= 0, got {self.numeric_rel_tol!r}")
        if self.overlong_buffer < 0:
            raise ConfigError(f"overlong_buffer must be >= 0, got {self.overlong_buffer!r}")
        if not (math.isfinite(self.overlong_factor) and self.overlong_factor >= 0):
            raise ConfigError(f"overlong_factor must be a number >= 0, got {self.overlong_factor!r}")


# --- sub-exact match -------------------------------------------------------------------------------------------

# Kept through normalize_text, which deletes punctuation: "1.5" must not become "15", nor "-3" become "3".
_DECIMAL_MARK = "\ue000"
_MINUS_MARK = "\ue001"
_DECIMAL_POINT = re.compile(r"(?<=\d)\.(?=\d)")
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_MINUS = re.compile(r"(?<![\w.])-(?=\.?\d)")


def _tokens(text: str) -> str:
    text = _THOUSANDS_COMMA.sub("", text)
    text = _DECIMAL_POINT.sub(_DECIMAL_MARK, text)
    return normalize_text(_MINUS.sub(_MINUS_MARK, text))


def _sub_em_answer(answer: str, golds: Iterable[str]) -> float:
    answer_tokens = _tokens(answer)
    if not answer_tokens:
        return 0.0
    haystack = f" {answer_tokens} "
    for gold in golds:
        needle = _tokens(as_text(gold))
        if needle and (f" {needle} " in haystack or haystack in f" {needle} "):
            return 1.0
    return 0.0


def sub_em(prediction: str, gold: str, aliases: Iterable[str] = ()) -> float:
    """1.0 when the gold (or an alias) occurs in the extracted answer, or the answer in the gold, as a run of
    whole tokens, else 0.0 (the released grader's sub-EM, both ways).

    Both sides are normalised with normalize_text (lower case, punctuation and articles deleted, whitespace
    collapsed) after two number-preserving steps: a thousands comma between digits is dropped ("1,250" ->
    "1250"), and a decimal point between digits and a leading minus sign survive, so "1.5" never matches "15"
    nor "-3" match "3". One side, split on whitespace, must appear as a contiguous sequence of tokens of the
    other: "a" does not match inside "banana", "new york" matches "in new york city" and "york" matches gold
    "new york". A side that normalises to nothing (empty, only punctuation) never matches. The answer is
    extract_answer(prediction): after the last </think>, after the last "the answer is"; the gold is read the
    same way when it carries the phrase (reference_answer).
    """
    golds = [reference_answer(g) for g in (gold, *aliases)]
    return _sub_em_answer(extract_answer(as_text(prediction)), golds)


def reference_answer(gold: str) -> str:
    """The gold as the released grader reads it: the text after its last "the answer is" when it has one
    ("Therefore, the answer is London." -> "London"), else the gold unchanged."""
    gold = as_text(gold)
    return extract_answer(gold) if ANSWER_PHRASE.search(gold) else gold


# --- numbers ---------------------------------------------------------------------------------------------------

# Words that may follow a number and are ignored: the scale factors below absorb percent vs fraction and
# thousands vs millions, so a unit word is read as a label, never as a multiplier.
UNIT_WORDS = frozenset(
    {"percent", "per cent", "thousand", "thousands", "million", "millions", "billion", "billions", "trillion"}
    | {"k", "m", "mn", "bn", "dollars", "usd", "eur", "euros", "yuan", "rmb", "cny", "points"}
)
_TRAILING_UNIT = re.compile(r"^(.{1,400}?)\s*([a-z]+(?: [a-z]+)?)$", re.IGNORECASE | re.DOTALL)
SCALES = (1.0, 100.0, 1000.0, 0.01, 0.001)


def read_number(text: str) -> float | None:
    """A finite number in a plain number ("1,234.5", "$12", "12.5%"), optionally followed by a UNIT_WORDS word.

    None for anything else, including "inf", "nan", exponents ("1e999") and numbers past float range.
    """
    text = as_text(text).strip()
    if len(text) > 500:
        return None
    value = parse_number(text)
    if value is None:
        m = _TRAILING_UNIT.match(text)
        if m and m.group(2).lower() in UNIT_WORDS:
            value = parse_number(m.group(1))
    return value if value is not None and math.isfinite(value) else None


def _numbers_close(pred: float, gold: float, rel_tol: float) -> bool:
    for scale in SCALES:
        target = gold * scale
        if math.isfinite(target) and abs(pred - target) <= rel_tol * abs(target):
            return True
    return False


def numeric_match(prediction: str, gold: str, rel_tol: float = 0.0015) -> float:
    """1.0 when the extracted answer and the gold read as numbers (read_number) that agree, else 0.0.

    They agree when |pred - gold * s| <= rel_tol * |gold * s| for a scale s in 1, 100, 1000, 1/100, 1/1000
    (percent vs fraction, thousands vs millions). The tolerance is relative to the gold alone, so a gold of 0
    matches only 0; a negative or non-finite rel_tol counts as 0.
    """
    tol = rel_tol if isinstance(rel_tol, (int, float)) and math.isfinite(rel_tol) and rel_tol > 0 else 0.0
    pred = read_number(extract_answer(as_text(prediction)))
    ref = read_number(reference_answer(gold))
    return 1.0 if pred is not None and ref is not None and _numbers_close(pred, ref, tol) else 0.0


# --- multiple choice -------------------------------------------------------------------------------------------

# A capital letter at the start followed by ")", ".", ":" or the end ("B", "(B) Paris", "B. Paris", "Option B");
# a lower-case one only alone, since "a" at the start of a sentence is usually the article.
_CHOICE = re.compile(r"(?:(?i:option|choice)\s+)?[(\[]?([A-E])(?:[)\].:]|$)")
_CHOICE_ALONE = re.compile(r"(?:(?i:option|choice)\s+)?[(\[]?\s*([A-E])\s*[)\]]?\.?", re.IGNORECASE)
# Another option named in the same answer: "(C)" anywhere, or a letter after "or", "and", "/", "," or "&"
# ("B or C", "(B) or (C)", "B/C"). A hedge over two letters names no single option.
_OTHER_CHOICE = re.compile(
    r"\(([A-E])\)|(?:\b(?i:or|and)\b|[/,&])\s*(?:(?i:option|choice)\s+)?\(?([A-E])\b(?![\w'])"
)


def choice_letter(text: str) -> str | None:
    """The one option letter A-E that text names first, upper-cased; None when it names none, or more than one."""
    text = as_text(text).strip()[:200]
    m = _CHOICE_ALONE.fullmatch(text) or _CHOICE.match(text)
    if not m:
        return None
    letter = m.group(1).upper()
    others = {a or b for a, b in _OTHER_CHOICE.findall(text)} - {letter}
    return None if others else letter


def choice_match(prediction: str, gold: str) -> float:
    """1.0 when the extracted answer names the gold's option letter and no other (gold "B", "(B)", "B. text"
    or "The correct answer is (B)"); "(B) or (C)" names two and earns 0."""
    want = choice_letter(reference_answer(gold))
    return 1.0 if want is not None and choice_letter(extract_answer(as_text(prediction))) == want else 0.0


# --- structured answers and the rule reward --------------------------------------------------------------------


def structured_score(prediction: str, target: Record | tuple[Gold, bool | None], partial: bool = True) -> float:
    """Loong's rule_score mapped to [0, 1]: rule_score / 100 with partial credit, else 1.0 only at 100.

    target is a Record (its answer and aliases; lists of an ORDERED_SUBTASKS subtask are scored in order) or a
    (gold, ordered) pair. Gold str, list or dict as rule_score takes it.
    """
    if isinstance(target, Record):
        gold: Gold = target.answer
        ordered = target.subtask in ORDERED_SUBTASKS if isinstance(gold, list) else None
        aliases: Sequence[str] = target.answer_aliases
    else:
        gold, ordered = target
        aliases = ()
    score = rule_score(as_text(prediction), gold, ordered=ordered, aliases=aliases)
    if partial:
        return round(score / 100.0, 4)
    return 1.0 if score == 100.0 else 0.0


def has_answer_format(prediction: str) -> bool:
    """Whether the response says "the answer is" (or "the correct answer is"; any case) after its last </think>."""
    text = as_text(prediction)
    return bool(ANSWER_PHRASE.search(text.rsplit("</think>", 1)[-1]))


def passes_format(prediction: str, cfg: RewardConfig) -> bool:
    """The format gate: cfg.require_think wants a </think>, cfg.require_format the answer phrase after it."""
    text = as_text(prediction)
    if cfg.require_think and "</think>" not in text:
        return False
    return not cfg.require_format or has_answer_format(text)


def verify_answer(prediction: str, record: Record, cfg: RewardConfig) -> float:
    """The rule-based reward in [0, 1] of one response.

    The format gate first (passes_format): a response that fails it earns 0. str gold (read by
    reference_answer, so a gold that itself says "the answer is X" means X): 1.0 when any of rule_score's exact
    match (normalised text or equal numbers), sub-EM both ways, or a numeric match within cfg.numeric_rel_tol
    (at a scale of 1, 100, 1000, 1/100 or 1/1000) holds against the gold or an alias, else 0.0. For task
    "multiple_choice" with a gold that names an option letter only the letter counts (choice_match): sub-EM would
    reward hedging ("A or B" holds the token "b"). list/dict gold: structured_score with cfg.partial_credit.
    """
    text = as_text(prediction)
    if not passes_format(text, cfg):
        return 0.0
    gold = record.answer
    if not isinstance(gold, str):
        return structured_score(text, record, cfg.partial_credit)
    golds = [reference_answer(g) for g in (gold, *record.answer_aliases)]
    letter = choice_letter(golds[0]) if record.task == "multiple_choice" else None
    if letter is not None:
        return choice_match(text, golds[0])
    if rule_score(text, golds[0], aliases=golds[1:]) == 100.0:
        return 1.0
    answer = extract_answer(text)
    if _sub_em_answer(answer, golds):
        return 1.0
    pred = read_number(answer)
    if pred is not None:
        tol = cfg.numeric_rel_tol
        if any(ref is not None and _numbers_close(pred, ref, tol) for ref in map(read_number, golds)):
            return 1.0
    return 0.0


def reward_config(section) -> RewardConfig:
    """A recipe's reward section (rl.reward, solopo.reward) as a RewardConfig."""
    return RewardConfig(
        partial_credit=section.partial_credit,
        require_format=section.require_format,
        require_think=section.require_think,
        numeric_rel_tol=section.numeric_rel_tol,
        overlong_buffer=section.overlong_buffer,
        overlong_factor=section.overlong_factor,
        llm_judge=section.llm_judge,
    )
