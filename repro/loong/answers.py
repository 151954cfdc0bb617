"""Answer extraction ("the answer is …" after </think>), SQuAD-style and numeric normalisation, list/dict parsing."""

from __future__ import annotations

import json
import math
import re
import string
import unicodedata
from typing import Any, Literal

_ANSWER_PHRASE = re.compile(r"the answer is", re.IGNORECASE)
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)
_QUOTE_PAIRS = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "`": "`"}
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# An optional sign and currency symbol, digits with or without thousands commas, optional decimals and percent sign.
_NUMBER = re.compile(r"^([+-]?)\s*(?:[$€£¥]\s*)?([+-]?)((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)\s*%?$")
_BULLET = re.compile(r"^\s*(?:[-*•·+]|\(?\d{1,3}[.)、])\s+")
_LIST_SEPARATORS = re.compile(r"[,，、]")
_SEMICOLONS = re.compile(r"[;；]")
_AND = re.compile(r"\s+(?:and|&)\s+", re.IGNORECASE)
_LEADING_AND = re.compile(r"^(?:and|&)\s+", re.IGNORECASE)
_KEY_SEP = re.compile(r"[:：]")
# Company-name suffixes that follow a comma ("Foo Co., Ltd."): a comma before them does not end a list item.
_NAME_SUFFIXES = {"ltd", "inc", "llc", "co", "corp", "plc", "lp", "llp", "l.p", "s.a", "n.v", "ag", "gmbh", "limited"}


def _strip_wrapping_parens(s: str) -> str:
    """Drop one pair of round brackets when the first one closes at the very end ("(A)" but not "(A) or (B)")."""
    if len(s) < 2 or s[0] != "(" or s[-1] != ")":
        return s
    depth = 0
    for i, ch in enumerate(s):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(s) - 1:
            return s
    return s[1:-1]


def _clean(s: str) -> str:
    """Strip whitespace, a leading colon, bold markers, code fences, one trailing period, wrapping quotes/parens."""
    while True:
        before = s
        s = s.replace("**", "").strip()
        s = s.lstrip(":：").strip()
        fence = _FENCE.match(s)
        if fence:
            s = fence.group(1).strip()
        if s.endswith(".") and not s.endswith(".."):
            s = s[:-1].rstrip()
        if len(s) >= 2 and _QUOTE_PAIRS.get(s[0]) == s[-1] and s[0] not in s[1:-1] and s[-1] not in s[1:-1]:
            s = s[1:-1].strip()
        s = _strip_wrapping_parens(s)
        if s == before:
            return s


def extract_answer(text: str) -> str:
    """The answer part of a model response: after the last </think>, then after the last "the answer is"."""
    if not text:
        return ""
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    ends = [m.end() for m in _ANSWER_PHRASE.finditer(text)]
    if ends:
        text = text[ends[-1] :]
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
    if isinstance(value, (int, float)):
        return f"#{float(value)!r}"
    if isinstance(value, (list, dict)):
        return normalize_text(json.dumps(value, ensure_ascii=False))
    text = _clean(str(value))
    number = parse_number(text)
    return f"#{number!r}" if number is not None else normalize_text(text)


def _json_candidates(s: str, kind: str) -> list[str]:
    opening, closing = ("[", "]") if kind == "list" else ("{", "}")
    found = [s]
    start, end = s.find(opening), s.rfind(closing)
    if 0 <= start < end and (start, end) != (0, len(s) - 1):
        found.append(s[start : end + 1])
    return found + [c.replace("'", '"') for c in found if "'" in c]


def _try_json(s: str) -> Any:
    try:
        return json.loads(s)
    except (json.JSONDecodeError, RecursionError):
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
