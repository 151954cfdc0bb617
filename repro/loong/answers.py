"""Answer extraction ("the answer is …" after </think>), SQuAD-style and numeric normalisation, list/dict parsing."""

from __future__ import annotations

import json
import math
import re
import string
import unicodedata
from bisect import bisect_left
from typing import Any, Literal

# Only this many characters of an answer are read. Loong gold answers are at most a few hundred characters, so a
# real answer fits many times over, and the cap bounds the work on any text a model writes.
MAX_ANSWER_CHARS = 20_000
# JSON nested deeper than this is read as plain text: answers nest two or three levels, and the cap keeps
# json.loads/json.dumps far from Python's recursion limit.
MAX_JSON_DEPTH = 50
# Longer JSON integers stay text: they are past float range (309 digits) and so compared as digits anyway, and
# Python refuses int() on more than 4,300 digits.
_MAX_INT_DIGITS = 400

# "The correct answer is (B)" is the multiple-choice form of QwenLong-L1's prompts.
ANSWER_PHRASE = re.compile(r"the\s+(?:correct\s+)?answer\s+is", re.IGNORECASE)
_FENCE_TAG = frozenset(string.ascii_letters + string.digits + "_-")
_QUOTE_PAIRS = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "`": "`"}
_QUOTE_CHARS = re.compile("[\"'\u201c\u201d\u2018\u2019`]")
_PARENS = re.compile(r"[()]")
_JSON_SYNTAX = re.compile(r'[\[\]{}"\\]')
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# An optional sign and currency symbol, digits with or without thousands commas, optional decimals and percent sign.
_NUMBER = re.compile(r"^([+-]?)\s*(?:[$€£¥]\s*)?([+-]?)((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)\s*%?$")
_BULLET = re.compile(r"^\s*(?:[-*•·+]|\(?\d{1,3}[.)、])\s+")
_LIST_SEPARATORS = re.compile(r"[,，、]")
_SEMICOLONS = re.compile(r"[;；]")
# The look-behind starts a match only at the first blank of a run, so a long run of blanks is scanned once.
_AND = re.compile(r"(?<!\s)\s+(?:and|&)\s+", re.IGNORECASE)
_LEADING_AND = re.compile(r"^(?:and|&)\s+", re.IGNORECASE)
_KEY_SEP = re.compile(r"[:：]")
# Company-name suffixes that follow a comma ("Foo Co., Ltd."): a comma before them does not end a list item.
_NAME_SUFFIXES = {"ltd", "inc", "llc", "co", "corp", "plc", "lp", "llp", "l.p", "s.a", "n.v", "ag", "gmbh", "limited"}


def _strip_span(s: str, i: int, j: int) -> tuple[int, int]:
    """The bounds of s[i:j].strip()."""
    while i < j and s[i].isspace():
        i += 1
    while j > i and s[j - 1].isspace():
        j -= 1
    return i, j


def _closing_parens(s: str) -> dict[int, int]:
    """Position of each "(" -> position of the ")" that closes it; absent when it never closes."""
    stack: list[int] = []
    closer: dict[int, int] = {}
    for m in _PARENS.finditer(s):
        if m.group() == "(":
            stack.append(m.start())
        elif stack:
            closer[stack.pop()] = m.start()
    return closer


def _quote_positions(s: str) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for m in _QUOTE_CHARS.finditer(s):
        found.setdefault(m.group(), []).append(m.start())
    return found


def _occurs(positions: dict[str, list[int]], ch: str, lo: int, hi: int) -> bool:
    """Whether ch occurs in s[lo:hi], given the sorted positions of each quote character in s."""
    found = positions.get(ch, [])
    k = bisect_left(found, lo)
    return k < len(found) and found[k] < hi


def _clean(text: str) -> str:
    """Strip whitespace, a leading colon, bold markers, code fences, one trailing period, wrapping quotes/parens.

    Repeats until nothing changes. Each layer moves two indices inwards in O(1) (or O(log n) for quotes), using
    bracket matches and quote positions found once, so many nested layers still take linear time.
    """
    s = text.replace("**", "")  # later steps only trim the ends, so no new "**" can appear
    i, j = 0, len(s)
    closer: dict[int, int] | None = None
    quotes: dict[str, list[int]] | None = None
    while True:
        before = (i, j)
        i, j = _strip_span(s, i, j)
        while i < j and s[i] in ":：":
            i += 1
        i, j = _strip_span(s, i, j)
        # A code fence: ``` and an optional language tag, the content, ```.
        if j - i >= 6 and s.startswith("```", i) and s.endswith("```", i, j):
            i, j = i + 3, j - 3
            while i < j and s[i] in _FENCE_TAG:
                i += 1
            i, j = _strip_span(s, i, j)
        if j > i and s[j - 1] == "." and not (j - i >= 2 and s[j - 2] == "."):
            i, j = _strip_span(s, i, j - 1)
        if j - i >= 2 and _QUOTE_PAIRS.get(s[i]) == s[j - 1]:
            quotes = quotes if quotes is not None else _quote_positions(s)
            if not _occurs(quotes, s[i], i + 1, j - 1) and not _occurs(quotes, s[j - 1], i + 1, j - 1):
                i, j = _strip_span(s, i + 1, j - 1)
        # Round brackets wrap the text when the first one does not close before the last character ("(A)", not
        # "(A) or (B)").
        if j - i >= 2 and s[i] == "(" and s[j - 1] == ")":
            closer = closer if closer is not None else _closing_parens(s)
            if closer.get(i, j) >= j - 1:
                i, j = i + 1, j - 1
        if (i, j) == before:
            return s[i:j]


def extract_answer(text: str) -> str:
    """The answer part of a model response: after the last </think>, then after the last "the (correct) answer is".

    At most MAX_ANSWER_CHARS are kept: those right after the phrase, or without it the end of the text.
    """
    if not text:
        return ""
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    ends = [m.end() for m in ANSWER_PHRASE.finditer(text)]
    if ends:
        text = text[ends[-1] : ends[-1] + MAX_ANSWER_CHARS]
    elif len(text) > MAX_ANSWER_CHARS:
        text = text[-MAX_ANSWER_CHARS:]
    return _clean(text)


def normalize_text(s: str) -> str:
    """SQuAD-style: lower-case, delete punctuation (ASCII and Unicode), drop articles, collapse whitespace.

    Text that is nothing but an article (an item named "A") keeps it rather than becoming empty.
    """
    s = str(s).lower()
    s = "".join(ch for ch in s if ch not in string.punctuation and not unicodedata.category(ch).startswith("P"))
    return " ".join(_ARTICLES.sub(" ", s).split()) or " ".join(s.split())


def parse_number(s: str) -> float | None:
    """The value of a plain number such as "1,234.50", "$1,234.5", "-3", "12.5%"; None for anything else."""
    m = _NUMBER.match(str(s).strip())
    if not m or (m.group(1) and m.group(2)):
        return None
    value = float(m.group(3).replace(",", ""))
    if math.isinf(value):
        # Past float range every such number would be "equal"; it is compared as text instead.
        return None
    return -value if "-" in (m.group(1) + m.group(2)) else value


def numbers_equal(a: str, b: str) -> bool:
    """True when both strings are plain numbers with the same value."""
    x, y = parse_number(a), parse_number(b)
    return x is not None and y is not None and math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)


def answers_equal(a: str, b: str) -> bool:
    """Equal as numbers when both are numbers, otherwise equal after normalize_text (and not empty)."""
    if parse_number(a) is not None and parse_number(b) is not None:
        # Both numeric: compare values only, since stripping punctuation would make "1,234.5" equal "12345".
        return numbers_equal(a, b)
    na = normalize_text(a)
    return bool(na) and na == normalize_text(b)


def item_key(value: Any) -> str:
    """A comparable form of one list item, dict key or dict value: numbers by value, text by normalize_text."""
    if isinstance(value, bool) or value is None:
        return normalize_text(json.dumps(value))
    if isinstance(value, int):
        return _int_key(value)
    if isinstance(value, float):
        return f"#{value!r}" if math.isfinite(value) else normalize_text(repr(value))
    if isinstance(value, (list, dict)):
        return normalize_text(json.dumps(value, ensure_ascii=False))
    text = _clean(str(value))
    number = parse_number(text)
    return f"#{number!r}" if number is not None else normalize_text(text)


def _int_key(value: int) -> str:
    """An int by value when a float holds it, else by its digits (as text of the same digits is)."""
    try:
        return f"#{float(value)!r}"
    except OverflowError:
        pass
    try:
        return normalize_text(str(value))
    except ValueError:  # more than 4,300 digits
        return f"#{value:x}"


def _json_candidates(s: str, kind: str) -> list[str]:
    opening, closing = ("[", "]") if kind == "list" else ("{", "}")
    found = [s]
    start, end = s.find(opening), s.rfind(closing)
    if 0 <= start < end and (start, end) != (0, len(s) - 1):
        found.append(s[start : end + 1])
    return found + [c.replace("'", '"') for c in found if "'" in c]


def _json_too_deep(s: str) -> bool:
    """Whether brackets outside JSON strings nest deeper than MAX_JSON_DEPTH: one linear scan, no recursion.

    Up to the first syntax error, where json.loads stops, this sees strings as the parser does, so its depth
    bounds the parser's.
    """
    if s.count("[") + s.count("{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    in_string = False
    escaped_at = -1
    for m in _JSON_SYNTAX.finditer(s):
        pos, ch = m.start(), m.group()
        if pos == escaped_at:
            continue
        if ch == "\\":
            escaped_at = pos + 1
        elif ch == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        else:
            depth = max(depth - 1, 0)
    return False


def _json_int(text: str) -> int | str:
    return int(text) if len(text) <= _MAX_INT_DIGITS else text


def _json_float(text: str) -> float | str:
    value = float(text)
    return value if math.isfinite(value) else text


def _try_json(s: str) -> Any:
    """The JSON value of s, or None. Numbers a float cannot hold, NaN and Infinity stay text."""
    if _json_too_deep(s):
        return None
    try:
        return json.loads(s, parse_int=_json_int, parse_float=_json_float, parse_constant=str)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return None


def _clean_item(s: str) -> str:
    return _clean(_BULLET.sub("", s, count=1))


def _merge_name_suffixes(pieces: list[str]) -> list[str]:
    merged: list[str] = []
    for piece in pieces:
        if merged and piece.strip().rstrip(".").lower() in _NAME_SUFFIXES:
            merged[-1] = f"{merged[-1]}, {piece}"
        else:
            merged.append(piece)
    return merged


def _split_line(s: str) -> list[str]:
    """Split one line of plain text into items: on semicolons, else commas (and a final "and"), else "and"."""
    s = s.strip()
    if len(s) >= 2 and s[0] == "[" and s[-1] == "]":
        s = s[1:-1]
    if _SEMICOLONS.search(s):
        pieces = _SEMICOLONS.split(s)
    elif _LIST_SEPARATORS.search(s):
        pieces = _LIST_SEPARATORS.split(s)
        pieces = pieces[:-1] + _AND.split(pieces[-1].strip())
        pieces = _merge_name_suffixes([_LEADING_AND.sub("", p.strip()) for p in pieces])
    else:
        pieces = _AND.split(s)
    return [item for item in (_clean_item(p) for p in pieces) if item]


def _split_list(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) <= 1:
        return _split_line(lines[0]) if lines else []
    bulleted = [line for line in lines if _BULLET.match(line)]
    # With bullets, a non-bulleted line is a heading ("The companies are:"), not an item.
    chosen = bulleted if bulleted else lines
    return [item for item in (_clean_item(line) for line in chosen) if item]


def _parse_plain_dict(text: str) -> dict[str, Any]:
    lines: list[str] = []
    for line in text.splitlines():
        parts = _SEMICOLONS.split(line)
        if len(parts) > 1 and sum(bool(_KEY_SEP.search(p)) for p in parts) > 1:
            lines.extend(parts)
        else:
            lines.append(line)
    result: dict[str, Any] = {}
    current: str | None = None
    for raw in lines:
        line = _BULLET.sub("", raw.replace("**", ""), count=1).strip()
        if not line:
            continue
        parts = _KEY_SEP.split(line, maxsplit=1)
        key = _clean(parts[0]) if len(parts) == 2 else ""
        if key:
            items = _split_line(parts[1])
            result[key] = items if len(items) > 1 else (items[0] if items else [])
            # A "key:" line with nothing after it heads the bullet lines below it.
            current = key if not items else None
        elif current is not None:
            result[current].extend(_split_line(line) if not _BULLET.match(raw) else [_clean(line)])
    return result


def parse_structured(text: str, kind: Literal["list", "dict"]) -> list[Any] | dict[str, Any]:
    """Read a list or dict answer written as JSON (also with single quotes) or as plain text; never evaluates code.

    Plain lists: "A, B and C", "A; B", bullet or numbered lines. Plain dicts: "key: a, b" lines, or a
    "key:" line followed by bullet lines. What cannot be read gives an empty list or dict.
    """
    if kind not in ("list", "dict"):
        raise ValueError(f"kind must be 'list' or 'dict', got {kind!r}")
    s = _clean(str(text))
    for candidate in _json_candidates(s, kind):
        value = _try_json(candidate)
        if kind == "list" and isinstance(value, list):
            return value
        if kind == "dict" and isinstance(value, dict):
            return value
        if kind == "list" and isinstance(value, str) and candidate is s:
            return _split_list(value)
    return _split_list(s) if kind == "list" else _parse_plain_dict(s)
