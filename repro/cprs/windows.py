"""Window-parallel compression bookkeeping: windows, tags to spans, budgets and thresholds, the joined result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from repro.cprs.labels import TAG_B, TAG_E, TAG_I, TAG_O, Span, merge_spans, runs_to_tags

DEFAULT_SEPARATOR = "\n...\n"
FILL_GAPS = 20  # the paper fills gaps under 20 tokens inside a span


def split_windows(n_context_tokens: int, window_tokens: int, prefix_tokens: int) -> list[Span]:
    """Non-overlapping [start, end) ranges of context tokens, each at most window_tokens - prefix_tokens long.

    The window size counts the prompt prefix that every window repeats, as the paper's w does; together the
    ranges cover every context token exactly once, in order (none for an empty context).
    """
    per_window = window_tokens - prefix_tokens
    if per_window <= 0:
        raise ValueError(f"window of {window_tokens} tokens leaves no room after a {prefix_tokens}-token prefix")
    if n_context_tokens < 0:
        raise ValueError(f"n_context_tokens must be >= 0, got {n_context_tokens}")
    return [(s, min(s + per_window, n_context_tokens)) for s in range(0, n_context_tokens, per_window)]


def kept_runs(keep: Sequence[bool]) -> list[Span]:
    """The maximal runs [start, end) of kept positions."""
    runs, start = [], None
    for i, kept in enumerate(keep):
        if kept and start is None:
            start = i
        elif not kept and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(keep)))
    return runs


def keep_tags(probs: Sequence[Sequence[float]], scheme: str = "BIOE") -> list[int]:
    """Tags keeping every token whose rows of tag probabilities (O, B, I[, E]) give P(B)+P(I)(+P(E)) > P(O).

    Unlike the argmax over the tags, a token whose mass is split between B, I and E is kept even when O alone is
    the likeliest tag. Each run of kept tokens is one span, tagged B I .. E (B alone): which of B, I, E a kept
    token leans to does not split a run, so a run of tokens that each lean to B is one span, not many.
    """
    keep = [sum(row[TAG_B:]) > row[TAG_O] for row in probs]
    return runs_to_tags(kept_runs(keep), len(keep), scheme)


def raw_spans(tags: Sequence[int]) -> list[Span]:
    """Token spans of a BIOE or BIO tag list before gap filling.

    A span starts at B, or at I/E when no span is open (after O, after E, or at the start: a span cut by a
    window edge); it ends after E, or before the next O or B, or at the end of the list.
    """
    spans: list[Span] = []
    start: int | None = None
    for i, tag in enumerate(tags):
        if tag in (TAG_O, TAG_B):
            if start is not None:
                spans.append((start, i))
            start = i if tag == TAG_B else None
        elif tag in (TAG_I, TAG_E):
            if start is None:
                start = i
            if tag == TAG_E:
                spans.append((start, i + 1))
                start = None
        else:
            raise ValueError(f"tag {tag!r} at position {i} is not one of O=0, B=1, I=2, E=3")
    if start is not None:
        spans.append((start, len(tags)))
    return spans


def fill_short_gaps(spans: Sequence[Span], max_gap: int) -> list[Span]:
    """Merge consecutive spans whose gap of outside tokens is shorter than max_gap tokens."""
    merged: list[Span] = []
    for start, end in spans:
        if merged and start - merged[-1][1] < max_gap:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def drop_short_spans(spans: Sequence[Span], min_tokens: int) -> list[Span]:
    """The spans of at least min_tokens tokens."""
    return [(s, e) for s, e in spans if e - s >= min_tokens]


def tags_to_spans(
    tags: Sequence[int] | None,
    probs: Sequence[Sequence[float]] | None = None,
    fill_gaps: int = FILL_GAPS,
    min_span_tokens: int = 1,
) -> list[Span]:
    """Token spans [start, end) from boundary tags: gaps under `fill_gaps` tokens filled, then the spans shorter
    than `min_span_tokens` dropped (the released decoder's order: correct_tag_pred, then min_keyword_len).

    Pass `tags` (tag ids), or None with `probs` (per-token rows of tag probabilities) to decode them by keep_tags.
    """
    if tags is None:
        if probs is None:
            raise ValueError("tags_to_spans needs tags or probs")
        tags = keep_tags(probs)
    return drop_short_spans(fill_short_gaps(raw_spans(tags), fill_gaps), min_span_tokens)


def spans_to_chars(token_spans: Sequence[Span], offsets: Sequence[Span]) -> list[Span]:
    """Char spans (sorted, merged, non-overlapping) covered by token spans, from the tokens' char offsets.

    A span reaches from its first token's start to its last token's end; tokens without chars (special tokens,
    (0, 0)) are skipped. A multi-byte character split over byte-level tokens gives each of them the whole
    character's offsets, so the char spans always slice the source text at character boundaries.
    Tokenizers whose tokens carry their leading space (" Net") bring that space along at a span's start.
    """
    chars = []
    for start, end in token_spans:
        covered = [offsets[i] for i in range(start, end) if offsets[i][1] > offsets[i][0]]
        if covered:
            chars.append((min(a for a, _ in covered), max(b for _, b in covered)))
    return merge_spans(chars)


def join_spans(text: str, char_spans: Sequence[Span], separator: str = DEFAULT_SEPARATOR) -> str:
    """The kept text: separator.join(text[s:e] for s, e in char_spans); spans must be sorted, disjoint, in text."""
    previous_end = 0
    for start, end in char_spans:
        if not previous_end <= start <= end <= len(text):
            raise ValueError(f"char span ({start}, {end}) is out of order or outside a text of {len(text)} chars")
        previous_end = end
    return separator.join(text[s:e] for s, e in char_spans)


def span_score(token_scores: Sequence[float], span: Span) -> float:
    """Mean keep-probability over the span's tokens."""
    start, end = span
    return sum(token_scores[start:end]) / (end - start)


def select_by_budget(token_scores: Sequence[float], spans: Sequence[Span], budget_tokens: int) -> list[Span]:
    """The highest-scoring spans whose tokens fit the budget, in source order.

    Spans are tried from the highest mean score down (ties: the earlier span first); one that would overflow
    the budget is skipped and smaller later ones may still fit, so the budget is never exceeded.
    """
    candidates = [s for s in spans if s[1] > s[0]]
    ranked = sorted(candidates, key=lambda s: (-span_score(token_scores, s), s[0]))
    kept, used = [], 0
    for span in ranked:
        size = span[1] - span[0]
        if used + size <= budget_tokens:
            kept.append(span)
            used += size
    return sorted(kept)


def threshold_tags(keep_probs: Sequence[float], threshold: float, scheme: str = "BIOE") -> list[int]:
    """Tags keeping every token whose keep probability is >= threshold, each kept run as B I .. E (B alone)."""
    return runs_to_tags(kept_runs([p >= threshold for p in keep_probs]), len(keep_probs), scheme)


def compression_ratio(input_tokens: int, kept_tokens: int) -> float:
    """How many times smaller the kept text is (input / kept); a result that keeps nothing counts as 1 kept token."""
    return input_tokens / max(kept_tokens, 1)


@dataclass
class Compression:
    """A compressed context: the joined text, its char spans in the source, sizes, windows and wall time."""

    text: str
    spans: list[Span]
    separator: str
    input_tokens: int
    kept_tokens: int
    ratio: float
    windows: int
    seconds: float

    def to_json(self) -> dict:
        return {
            "text": self.text,
            "spans": [[s, e] for s, e in self.spans],
            "separator": self.separator,
            "input_tokens": self.input_tokens,
            "kept_tokens": self.kept_tokens,
            "ratio": self.ratio,
            "windows": self.windows,
            "seconds": self.seconds,
        }
