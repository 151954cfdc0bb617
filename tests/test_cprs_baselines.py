"""Context reduction baselines (sentence chunks, BM25 to a budget, truncation) and span match metrics."""

from __future__ import annotations

import re

import pytest

from repro.cprs.baselines import (
    CHUNK_TOKENS,
    bm25_scores,
    bm25_select,
    chunk_spans,
    reduced_text,
    token_cutter,
    truncate_to_budget,
)
from repro.cprs.metrics import char_overlap, macro_prf, micro_prf, span_prf
from repro.tiny import build_tokenizer


def count_words(text: str) -> int:
    return len(text.split())


def assert_covers_once(text: str, spans: list[tuple[int, int]]) -> None:
    """The spans are non-empty, consecutive and together cover every char of text exactly once."""
    assert [start for start, _ in spans] == [0, *[end for _, end in spans[:-1]]]
    assert all(end > start for start, end in spans)
    assert spans[-1][1] == len(text)
    assert "".join(text[s:e] for s, e in spans) == text


# "One two three." (0, 14) 3 words, " Four five." (14, 25) 2 words, " Six seven eight nine ten eleven." (25, 58)
# 6 words, " End." (58, 63) 1 word.
WORDS = "One two three. Four five. Six seven eight nine ten eleven. End."

# Sentences of 7, 6 and 6 words: (0, 36), then (36, 77) and (77, 115) with the space before each.
FACTS = (
    "Apples grow on trees in the orchard. The violin concerto premiered in Vienna."
    " Rivers carry sediment toward the sea."
)
APPLES, VIOLIN, RIVERS = (0, 36), (36, 77), (77, 115)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


# chunk_spans


@pytest.mark.parametrize(
    "text",
    [
        WORDS,
        FACTS,
        "no sentence end here",
        "Zürich – 東京.",
        "Zürich – 東京. Tokyo is far!",
        "  Hi there.\n\nNext line  ",
    ],
)
def test_chunks_cover_every_char_exactly_once(text):
    for chunk_tokens in (1, 3, 64):
        assert_covers_once(text, chunk_spans(text, count_words, chunk_tokens))


def test_chunk_edges_of_empty_and_blank_text():
    assert chunk_spans("", count_words) == []
    assert chunk_spans("   ", count_words) == [(0, 3)]
    assert chunk_spans("no sentence end here", count_words, 2) == [(0, 20)]


def test_whitespace_between_sentences_starts_the_next_chunk():
    # sentences (2, 11) and (13, 22): the leading "  " joins the first, "\n\n" and the trailing "  " the second
    assert chunk_spans("  Hi there.\n\nNext line  ", count_words, 2) == [(0, 11), (11, 24)]


def test_chunks_pack_sentences_greedily_to_the_token_bound():
    # 3 + 2 words fit 5; the 6-word sentence is a chunk alone; " End." would make it 7, so it starts a new one
    chunks = chunk_spans(WORDS, count_words, 5)
    assert chunks == [(0, 25), (25, 58), (58, 63)]
    assert [count_words(WORDS[s:e]) for s, e in chunks] == [5, 6, 1]
    assert chunk_spans(WORDS, count_words, 64) == [(0, 63)]


def test_chunks_within_bound_unless_one_long_sentence():
    for chunk_tokens in (1, 2, 4, 6, 9):
        for start, end in chunk_spans(WORDS, count_words, chunk_tokens):
            piece = WORDS[start:end]
            assert count_words(piece) <= chunk_tokens or piece.strip().count(".") == 1


def test_chunk_tokens_must_be_positive():
    with pytest.raises(ValueError, match="chunk_tokens"):
        chunk_spans(WORDS, count_words, 0)


# bm25_select


def test_facts_chunk_one_sentence_each():
    assert chunk_spans(FACTS, count_words, 7) == [APPLES, VIOLIN, RIVERS]


def test_bm25_scores_only_the_chunk_with_the_question_words():
    scores = bm25_scores([FACTS[s:e] for s, e in (APPLES, VIOLIN, RIVERS)], "Where did the violin concerto premiere?")
    assert scores[1] > 0 and scores[0] == scores[2] == 0.0


def test_bm25_picks_the_matching_chunk_first():
    question = "Where did the violin concerto premiere?"
    assert bm25_select(FACTS, question, 6, count_words, 7) == [VIOLIN]
    # 6 then apples (7 more: 13 > 12) is skipped and rivers (6 more: 12) fits; the two adjacent chunks merge
    assert bm25_select(FACTS, question, 12, count_words, 7) == [(36, 115)]
    assert bm25_select(FACTS, question, 13, count_words, 7) == [(0, 77)]
    assert bm25_select(FACTS, question, 5, count_words, 7) == []


def test_bm25_selection_stays_within_budget_in_source_order():
    question = "Where did the violin concerto premiere?"
    for budget in range(0, 25):
        spans = bm25_select(FACTS, question, budget, count_words, 7)
        assert spans == sorted(spans)
        assert sum(count_words(FACTS[s:e]) for s, e in spans) <= budget


def test_budget_zero_keeps_nothing():
    assert bm25_select(FACTS, "violin", 0, count_words, 7) == []
    assert bm25_select(FACTS, "violin", -3, count_words, 7) == []


@pytest.mark.parametrize("question", ["What is it?", "quantum chromodynamics", ""])
def test_question_without_matching_terms_falls_back_to_source_order(question):
    assert bm25_select(FACTS, question, 13, count_words, 7) == [(0, 77)]
    # apples (7) kept, violin (13) and rivers (13) both overflow 12
    assert bm25_select(FACTS, question, 12, count_words, 7) == [APPLES]


def test_corpus_without_terms_does_not_break_bm25():
    text = "A b. C d. E f."  # single-letter words: BM25 keeps no term at all
    assert bm25_select(text, "a b c", 4, count_words, 2) == [(0, 9)]
    assert bm25_select("", "anything", 10, count_words) == []


def cut_words(text: str, n: int) -> int:
    """The chars of the first n words of text (with the whitespace before them)."""
    ends = [m.end() for m in re.finditer(r"\S+", text)]
    return ends[min(n, len(ends)) - 1] if n > 0 and ends else 0


def test_chunks_are_the_papers_600_tokens_by_default():
    # three 250-word sentences: the first two pack to 500 <= 600, the third would make 750: a new chunk
    sentence = " ".join(["word"] * 249) + " stop."
    text = " ".join([sentence] * 3)
    assert CHUNK_TOKENS == 600 and len(sentence) == 249 * 5 + 5 == 1250
    assert chunk_spans(text, count_words) == [(0, 2501), (2501, 3752)]
    assert [count_words(text[s:e]) for s, e in chunk_spans(text, count_words)] == [500, 250]


def test_bm25_fills_the_budget_by_cutting_the_next_chunk():
    question = "Where did the violin concerto premiere?"
    # violin (6 words) fits 9; apples (7 words, the tie with rivers goes to the earlier) is cut to the 3 left:
    # "Apples grow on" = (0, 14)
    assert bm25_select(FACTS, question, 9, count_words, 7, cut=cut_words) == [(0, 14), VIOLIN]
    assert bm25_select(FACTS, question, 9, count_words, 7) == [VIOLIN]  # without cutting: 3 words stay unused
    # a budget under the best chunk keeps its beginning: " The violin concerto" = (36, 56)
    assert bm25_select(FACTS, question, 3, count_words, 7, cut=cut_words) == [(36, 56)]
    assert bm25_select(FACTS, question, 3, count_words, 7) == []
    assert bm25_select(FACTS, question, 6, count_words, 7, cut=cut_words) == [VIOLIN]  # a whole fit: nothing cut
    for budget in range(0, 25):
        spans = bm25_select(FACTS, question, budget, count_words, 7, cut=cut_words)
        assert sum(count_words(FACTS[s:e]) for s, e in spans) == min(budget, 19)  # filled, never over


def test_token_cutter_is_truncation_at_a_token_boundary(tokenizer):
    cut = token_cutter(tokenizer)
    text = "The capital of France is Paris."
    for n in range(1, 6):
        assert cut(text, n) == truncate_to_budget(text, n, tokenizer)[0][1]
    assert cut(text, 0) == 0 and cut(text, 1000) == len(text)


# truncate_to_budget


def test_truncated_prefix_is_the_longest_that_fits(tokenizer):
    text = "The capital of France is Paris. Tea is hot."
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    for budget in range(1, len(offsets)):
        [(start, end)] = truncate_to_budget(text, budget, tokenizer)
        assert start == 0 and end == offsets[budget - 1][1]
        assert len(tokenizer(text[:end], add_special_tokens=False)["input_ids"]) <= budget
        one_more = text[: offsets[budget][1]]
        assert len(tokenizer(one_more, add_special_tokens=False)["input_ids"]) > budget


def test_truncation_edges(tokenizer):
    text = "Tea is hot."
    assert truncate_to_budget(text, 1000, tokenizer) == [(0, len(text))]
    assert truncate_to_budget(text, 0, tokenizer) == []
    assert truncate_to_budget("", 5, tokenizer) == []


def test_truncation_never_cuts_inside_a_character(tokenizer):
    text = "Zürich – 東京."
    # the tiny tokenizer splits "ü" into two byte tokens: "Z", "ü"(1 of 2), "ü"(2 of 2), "r", ...
    assert truncate_to_budget(text, 2, tokenizer) == [(0, 1)]
    assert truncate_to_budget(text, 3, tokenizer) == [(0, 2)]
    for budget in range(1, 20):
        [(_, end)] = truncate_to_budget(text, budget, tokenizer)
        assert len(tokenizer(text[:end], add_special_tokens=False)["input_ids"]) <= budget


# reduced_text


def test_reduced_text_joins_the_spans():
    text = "Alpha. Beta. Gamma."
    assert reduced_text(text, [(0, 6), (13, 19)]) == "Alpha.\n...\nGamma."
    assert reduced_text(text, [(0, 6), (13, 19)], separator=" | ") == "Alpha. | Gamma."
    assert reduced_text(text, []) == ""


# metrics


def test_half_overlap():
    assert char_overlap([(0, 10)], [(5, 15)]) == (5, 10, 10)
    assert span_prf([(0, 10)], [(5, 15)]) == (0.5, 0.5, 0.5)


def test_overlapping_predictions_count_once():
    # pred merges to (0, 12): overlap 4, predicted 12, gold 4 -> P 1/3, R 1, F1 2 * (1/3) / (4/3) = 1/2
    assert char_overlap([(0, 10), (5, 12)], [(0, 4)]) == (4, 12, 4)
    assert span_prf([(0, 10), (5, 12)], [(0, 4)]) == pytest.approx((1 / 3, 1.0, 0.5))


def test_several_spans_each_side():
    # overlaps (2, 4), (10, 12), (18, 20) = 6; predicted 4 + 10 = 14; gold 10 + 12 = 22
    # P 3/7, R 3/11, F1 2 * 9/77 / (54/77) = 1/3
    assert char_overlap([(0, 4), (10, 20)], [(2, 12), (18, 30)]) == (6, 14, 22)
    assert span_prf([(0, 4), (10, 20)], [(2, 12), (18, 30)]) == pytest.approx((3 / 7, 3 / 11, 1 / 3))


def test_touching_spans_do_not_overlap():
    assert span_prf([(0, 5)], [(5, 10)]) == (0.0, 0.0, 0.0)


def test_empty_side_conventions():
    assert span_prf([], []) == (1.0, 1.0, 1.0)
    assert span_prf([(3, 3)], []) == (1.0, 1.0, 1.0)  # an empty span predicts nothing
    assert span_prf([], [(0, 3)]) == (0.0, 0.0, 0.0)
    assert span_prf([(0, 3)], []) == (0.0, 0.0, 0.0)


def test_micro_sums_counts_and_macro_averages_items():
    half = ([(0, 10)], [(5, 15)])  # counts (5, 10, 10): P 1/2, R 1/2, F1 1/2
    wide = ([(0, 30)], [(0, 10)])  # counts (10, 30, 10): P 1/3, R 1, F1 1/2
    # micro: 15 / 40 = 0.375, 15 / 20 = 0.75, F1 2 * 0.375 * 0.75 / 1.125 = 0.5
    assert micro_prf([half, wide]) == pytest.approx((0.375, 0.75, 0.5))
    # macro: ((1/2 + 1/3) / 2, (1/2 + 1) / 2, (1/2 + 1/2) / 2)
    assert macro_prf([half, wide]) == pytest.approx((5 / 12, 0.75, 0.5))


def test_an_item_with_nothing_on_either_side():
    half, nothing = ([(0, 10)], [(5, 15)]), ([], [])
    assert micro_prf([half, nothing]) == pytest.approx((0.5, 0.5, 0.5))  # adds no counts
    assert macro_prf([half, nothing]) == pytest.approx((0.75, 0.75, 0.75))  # a perfect item
    assert micro_prf([nothing]) == (1.0, 1.0, 1.0)


def test_scoring_no_items_is_an_error():
    with pytest.raises(ValueError, match="pair"):
        micro_prf([])
    with pytest.raises(ValueError, match="pair"):
        macro_prf([])
