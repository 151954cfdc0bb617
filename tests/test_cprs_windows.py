"""CPRS window bookkeeping: windows, tags to spans with gap filling, char spans, budgets, thresholds, results."""

from __future__ import annotations

import json
import math

import pytest

from repro.cprs.labels import TAG_B, TAG_E, TAG_I, TAG_O
from repro.cprs.windows import (
    Compression,
    compression_ratio,
    join_spans,
    keep_tags,
    select_by_budget,
    spans_to_chars,
    split_windows,
    tags_to_spans,
    threshold_tags,
)

O, B, I, E = TAG_O, TAG_B, TAG_I, TAG_E  # noqa: E741 (short names keep the hand-written tag lists readable)


def test_split_windows_by_hand():
    assert split_windows(10, 5, 2) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert split_windows(9, 5, 2) == [(0, 3), (3, 6), (6, 9)]
    assert split_windows(2, 10, 4) == [(0, 2)]
    assert split_windows(0, 10, 4) == []


@pytest.mark.parametrize("n", [0, 1, 5, 6, 7, 99, 100, 101, 1000])
@pytest.mark.parametrize(("window", "prefix"), [(8, 2), (7, 0), (64, 63), (300, 44)])
def test_split_windows_covers_every_token_exactly_once(n, window, prefix):
    windows = split_windows(n, window, prefix)
    covered = [t for s, e in windows for t in range(s, e)]
    assert covered == list(range(n))
    assert all(0 < e - s <= window - prefix for s, e in windows)


def test_split_windows_rejects_a_prefix_that_fills_the_window():
    with pytest.raises(ValueError, match="no room"):
        split_windows(10, 4, 4)
    with pytest.raises(ValueError, match="no room"):
        split_windows(10, 4, 9)
    with pytest.raises(ValueError):
        split_windows(-1, 4, 1)


def test_tags_to_spans_bioe_without_gap_filling():
    assert tags_to_spans([O, B, I, E, O], fill_gaps=0) == [(1, 4)]
    # I at the start (a span cut by a window edge), B closed by O, E after O, I after E
    assert tags_to_spans([I, E, O, O, B, O, E, I], fill_gaps=0) == [(0, 2), (4, 5), (6, 7), (7, 8)]
    assert tags_to_spans([B, B, E, B], fill_gaps=0) == [(0, 1), (1, 3), (3, 4)]
    assert tags_to_spans([O, O], fill_gaps=0) == []
    assert tags_to_spans([], fill_gaps=0) == []


def test_tags_to_spans_fills_gaps_shorter_than_the_limit():
    tags = [I, E, O, O, B, O, E, I]
    assert tags_to_spans(tags, fill_gaps=1) == [(0, 2), (4, 5), (6, 8)]  # only the touching spans join
    assert tags_to_spans(tags, fill_gaps=2) == [(0, 2), (4, 8)]  # the 1-token gap is filled, the 2-token one not
    assert tags_to_spans(tags, fill_gaps=3) == [(0, 8)]
    assert tags_to_spans(tags) == [(0, 8)]  # default: gaps under 20
    long_gap = [B, E] + [O] * 20 + [B] + [O] * 19 + [B]
    assert tags_to_spans(long_gap) == [(0, 2), (22, 43)]


def test_tags_to_spans_bio_and_probabilities():
    assert tags_to_spans([B, I, B, O, I], fill_gaps=0) == [(0, 2), (2, 3), (4, 5)]
    probs = [[0.7, 0.1, 0.1, 0.1], [0.1, 0.6, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4], [0.9, 0.0, 0.1, 0.0]]
    assert tags_to_spans(None, probs, fill_gaps=0) == [(1, 3)]
    with pytest.raises(ValueError):
        tags_to_spans(None)
    with pytest.raises(ValueError, match="not one of"):
        tags_to_spans([O, 7])


def softmax_rows(logits: list[list[float]]) -> list[list[float]]:
    rows = []
    for row in logits:
        total = sum(math.exp(v) for v in row)
        rows.append([math.exp(v) / total for v in row])
    return rows


def log_rows(probs: list[list[float]]) -> list[list[float]]:
    """Logits whose softmax is exactly the given rows (each sums to 1)."""
    return [[math.log(p) for p in row] for row in probs]


# columns O, B, I, E; 12 positions
HAND_PROBS = [
    [0.7, 0.1, 0.1, 0.1],  # 0: O
    [0.4, 0.3, 0.2, 0.1],  # 1: argmax O, but B+I+E = 0.6 > 0.4: kept
    [0.1, 0.1, 0.7, 0.1],  # 2: I
    [0.1, 0.1, 0.1, 0.7],  # 3: E
    [0.7, 0.1, 0.1, 0.1],  # 4: O
    [0.5, 0.2, 0.2, 0.1],  # 5: B+I+E = 0.5, not above P(O) = 0.5: O
    [0.1, 0.7, 0.1, 0.1],  # 6: B
    [0.1, 0.1, 0.1, 0.7],  # 7: E
    [0.7, 0.1, 0.1, 0.1],  # 8: O
    [0.7, 0.1, 0.1, 0.1],  # 9: O
    [0.7, 0.1, 0.1, 0.1],  # 10: O
    [0.1, 0.7, 0.1, 0.1],  # 11: B alone, a one-token span
]


def test_keep_rule_gap_fill_and_short_spans_from_hand_made_logits():
    probs = softmax_rows(log_rows(HAND_PROBS))
    assert keep_tags(probs) == [O, B, I, E, O, O, B, E, O, O, O, B]
    # the argmax over the four tags would drop position 1: its span would start at 2
    assert [max(range(4), key=row.__getitem__) for row in probs][:4] == [O, O, I, E]
    # raw spans (1, 4), (6, 8), (11, 12)
    assert tags_to_spans(None, probs, fill_gaps=0) == [(1, 4), (6, 8), (11, 12)]
    # the 2-token gap 4-5 is filled when gaps under 3 are; the 3-token gap 8-10 stays
    assert tags_to_spans(None, probs, fill_gaps=3) == [(1, 8), (11, 12)]
    # the lone B at 11 is shorter than 2 tokens: dropped after gap filling
    assert tags_to_spans(None, probs, fill_gaps=3, min_span_tokens=2) == [(1, 8)]
    # a gap limit of 4 joins it first (the released order: fill, then drop), so it stays
    assert tags_to_spans(None, probs, fill_gaps=4, min_span_tokens=2) == [(1, 12)]
    # minimum 4 drops the 3-token (1, 4) and the 2-token (6, 8) when no gap is filled
    assert tags_to_spans(None, probs, fill_gaps=0, min_span_tokens=3) == [(1, 4)]


def test_keep_rule_for_bio_rows_and_runs_that_lean_to_b():
    # columns O, B, I: B + I against O; 0.5 is not above 0.5, 0.8 and 0.66 are
    probs = [[0.5, 0.3, 0.2], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.34, 0.33, 0.33], [0.9, 0.05, 0.05]]
    assert keep_tags(probs, "BIO") == [O, O, B, I, O]
    # three kept tokens that each lean to B make one 3-token span, not three 1-token ones
    leaning = [[0.4, 0.3, 0.2, 0.1]] * 3 + [[0.9, 0.04, 0.03, 0.03]]
    assert keep_tags(leaning) == [B, I, E, O]
    assert tags_to_spans(None, leaning, fill_gaps=0, min_span_tokens=2) == [(0, 3)]


def test_threshold_rule_then_gap_fill_and_minimum():
    keep = [0.2, 0.6, 0.7, 0.5, 0.1, 0.9, 0.4, 0.3, 0.2, 0.1, 0.55]
    tags = threshold_tags(keep, 0.5)  # kept: 1-3, 5, 10
    assert tags == [O, B, I, E, O, B, O, O, O, O, B]
    assert tags_to_spans(tags, fill_gaps=0) == [(1, 4), (5, 6), (10, 11)]
    assert tags_to_spans(tags, fill_gaps=2, min_span_tokens=2) == [(1, 6)]  # the 1-token gap at 4 filled
    assert tags_to_spans(tags, fill_gaps=0, min_span_tokens=2) == [(1, 4)]


TEXT = "Zürich – 東京 is far."
# byte-level style offsets: every byte token of a multi-byte character carries the whole character
OFFSETS = [
    (0, 1), (1, 2), (1, 2), (2, 6),  # Z, ü (2 bytes), rich
    (6, 7), (7, 8), (7, 8), (7, 8), (8, 9),  # space, – (3 bytes), space
    (9, 10), (9, 10), (9, 10), (10, 11), (10, 11), (10, 11),  # 東, 京 (3 bytes each)
    (11, 14), (14, 18), (18, 19),  # " is", " far", "."
]  # fmt: skip


def test_spans_to_chars_maps_back_to_exact_unicode_text():
    assert spans_to_chars([(0, 4)], OFFSETS) == [(0, 6)]
    assert spans_to_chars([(9, 15)], OFFSETS) == [(9, 11)]
    assert spans_to_chars([(10, 12)], OFFSETS) == [(9, 10)]  # part of a character's bytes keeps the character
    chars = spans_to_chars([(9, 15), (0, 4), (15, 16)], OFFSETS)  # out of order; 東京 and " is" touch
    assert chars == [(0, 6), (9, 14)]
    assert [TEXT[s:e] for s, e in chars] == ["Zürich", "東京 is"]
    assert join_spans(TEXT, chars) == "Zürich\n...\n東京 is"


def test_spans_to_chars_skips_special_tokens_and_merges_overlaps():
    offsets = [(0, 0), (0, 3), (3, 6), (0, 0)]
    assert spans_to_chars([(0, 1)], offsets) == []
    assert spans_to_chars([(0, 2), (1, 4)], offsets) == [(0, 6)]


def test_join_spans_invariant_through_a_real_tokenizer():
    from repro.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    text = "Revenue in Zürich – 東京 was 5.2 million.\nThe court ruled on case 2021-CV-0457 in 2022."
    offsets = [
        tuple(o) for o in tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    ]
    n = len(offsets)
    for token_spans in ([(0, n)], [(3, 9), (12, 15)], [(n - 4, n), (0, 2), (1, 5)], [(i, i + 1) for i in range(n)]):
        chars = spans_to_chars(token_spans, offsets)
        assert all(s < e for s, e in chars)
        assert all(e < s for (_, e), (s, _) in zip(chars, chars[1:], strict=False))  # sorted, apart
        for separator in ("\n...\n", " | ", ""):
            assert join_spans(text, chars, separator) == separator.join(text[s:e] for s, e in chars)
    assert spans_to_chars([(0, n)], offsets) == [(0, len(text))]
    assert join_spans(text, spans_to_chars([(i, i + 1) for i in range(n)], offsets)) == text


def test_join_spans_rejects_unordered_or_outside_spans():
    assert join_spans("abcdef", []) == ""
    with pytest.raises(ValueError):
        join_spans("abcdef", [(3, 4), (1, 2)])
    with pytest.raises(ValueError):
        join_spans("abcdef", [(2, 9)])


# C (0, 1) mean 0.25 size 1; A (1, 4) mean 0.875 size 3; B (4, 8) mean 0.75 size 4; D (8, 10) mean 0.25 size 2
# (binary-exact values, so the C/D tie is a real tie)
SCORES = [0.25, 0.875, 1.0, 0.75, 0.75, 0.75, 0.75, 0.75, 0.125, 0.375]
SPANS = [(0, 1), (1, 4), (4, 8), (8, 10)]


def test_select_by_budget_by_hand():
    assert select_by_budget(SCORES, SPANS, 0) == []
    assert select_by_budget(SCORES, SPANS, 3) == [(1, 4)]
    # B (size 4) would overflow after A; C (tie with D, earlier) still fits
    assert select_by_budget(SCORES, SPANS, 4) == [(0, 1), (1, 4)]
    assert select_by_budget(SCORES, SPANS, 6) == [(0, 1), (1, 4), (8, 10)]
    assert select_by_budget(SCORES, SPANS, 7) == [(1, 4), (4, 8)]
    assert select_by_budget(SCORES, SPANS, 8) == [(0, 1), (1, 4), (4, 8)]
    assert select_by_budget(SCORES, SPANS, 100) == SPANS
    for budget in range(12):
        assert sum(e - s for s, e in select_by_budget(SCORES, SPANS, budget)) <= budget


def test_threshold_tags_keep_exactly_the_tokens_at_or_above_it():
    probs = [0.2, 0.6, 0.7, 0.5, 0.1, 0.9, 0.5]
    tags = threshold_tags(probs, 0.5)
    assert tags == [O, B, I, E, O, B, E]
    assert all((t != O) == (p >= 0.5) for t, p in zip(tags, probs, strict=True))
    assert tags_to_spans(tags, fill_gaps=0) == [(1, 4), (5, 7)]
    assert threshold_tags([0.9, 0.1, 0.95], 0.5) == [B, O, B]
    assert threshold_tags(probs, 0.5, scheme="BIO") == [O, B, I, I, O, B, I]
    assert threshold_tags(probs, 1.1) == [O] * 7
    assert threshold_tags([], 0.5) == []


def test_compression_to_json_has_exactly_its_fields():
    result = Compression(
        text="Zürich\n...\n東京",
        spans=[(0, 6), (9, 11)],
        separator="\n...\n",
        input_tokens=40,
        kept_tokens=8,
        ratio=compression_ratio(40, 8),
        windows=2,
        seconds=0.25,
    )
    data = result.to_json()
    assert set(data) == {"text", "spans", "separator", "input_tokens", "kept_tokens", "ratio", "windows", "seconds"}
    assert data["spans"] == [[0, 6], [9, 11]] and data["ratio"] == 5.0
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data
    assert compression_ratio(10, 0) == 10.0
