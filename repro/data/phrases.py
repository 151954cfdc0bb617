"""Where a name or a value occurs in a text: ignoring case, never inside a longer word or number."""

from __future__ import annotations

import re

Span = tuple[int, int]


def _continues(text: str, at: int, step: int) -> bool:
    """Whether text[at] carries on the word or number that ends (step -1) or starts (step +1) next to it."""
    if not 0 <= at < len(text):
        return False
    if text[at].isalnum():
        return True
    # "1" in "$1,034.9" or "4" in "3.4" is part of a longer number
    beyond = at + step
    return text[at] in ".," and 0 <= beyond < len(text) and text[beyond].isdigit()


def phrase_spans(text: str, phrase: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Char spans [s, e) of text[start:end] where `phrase` (stripped) occurs, case ignored, on whole words.

    A match that a letter or digit (or a digit after "." or ",") continues on either side is not one: "Vinci"
    is found in "da Vinci," but not in "Vincible", "1" not in "$1,034.9". Offsets index `text` itself.
    """
    phrase = phrase.strip()
    if not phrase:
        return []
    end = len(text) if end is None else end
    found = []
    for match in re.compile(re.escape(phrase), re.IGNORECASE).finditer(text, start, end):
        s, e = match.span()
        if phrase[0].isalnum() and _continues(text, s - 1, -1):
            continue
        if phrase[-1].isalnum() and _continues(text, e, 1):
            continue
        found.append((s, e))
    return found
