"""Context reduction baselines at a token budget: BM25 retrieval over sentence-packed chunks, and plain truncation."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from repro.cprs.labels import Span, merge_spans, sentence_spans
from repro.cprs.windows import DEFAULT_SEPARATOR, join_spans

TokenCounter = Callable[[str], int]
Cutter = Callable[[str, int], int]  # (text, n) -> chars in the longest beginning of text within n tokens
BM25_STOPWORDS = "en"
CHUNK_TOKENS = 600  # the paper's RAG baseline: 600-token chunks, top-k to a 16K-token budget


def sentence_units(text: str) -> list[Span]:
    """Consecutive char spans, one per sentence, that cover `text` exactly once.

    The text between two sentences (whitespace, newlines) starts the next unit and text after the last sentence
    ends the last unit; a text without any sentence is one unit (none when empty).
    """
    ends = [end for _, end in sentence_spans(text)]
    if not ends:
        return [(0, len(text))] if text else []
    ends[-1] = len(text)
    return list(zip([0, *ends[:-1]], ends, strict=True))


def chunk_spans(text: str, count_tokens: TokenCounter, chunk_tokens: int = CHUNK_TOKENS) -> list[Span]:
    """Consecutive char spans covering `text` exactly once, whole sentences greedily packed to <= chunk_tokens.

    A unit (a sentence with the whitespace before it, see sentence_units) joins the open chunk when the joined
    text still counts at most chunk_tokens tokens, else it opens a new chunk; a unit longer than chunk_tokens
    on its own is a chunk by itself.
    """
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    chunks: list[Span] = []
    for start, end in sentence_units(text):
        if chunks and count_tokens(text[chunks[-1][0] : end]) <= chunk_tokens:
            chunks[-1] = (chunks[-1][0], end)
        else:
            chunks.append((start, end))
    return chunks


def bm25_tokens(texts: Sequence[str]) -> list[list[str]]:
    """BM25 terms per text: lower-cased words of 2+ characters, English stopwords dropped."""
    import bm25s  # the retrieval baseline's own dependency; the rest of the kit runs without it

    return bm25s.tokenize(list(texts), stopwords=BM25_STOPWORDS, return_ids=False, show_progress=False)


def bm25_scores(passages: Sequence[str], question: str) -> list[float]:
    """The BM25 score of each passage for the question; all zero when no question term occurs in any passage.

    Scoring every passage (rather than retrieving a top k) sidesteps bm25s's limits on k and on an empty index.
    """
    corpus = bm25_tokens(passages)
    vocabulary = {term for terms in corpus for term in terms}
    query = [term for term in bm25_tokens([question])[0] if term in vocabulary]
    if not query:
        return [0.0] * len(passages)
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs a debug line per index, whatever the root level
    retriever = bm25s.BM25()
    retriever.index(corpus, show_progress=False)
    return [float(score) for score in retriever.get_scores(query)]


def bm25_select(
    text: str,
    question: str,
    budget_tokens: int,
    count_tokens: TokenCounter,
    chunk_tokens: int = CHUNK_TOKENS,
    cut: Cutter | None = None,
) -> list[Span]:
    """Char spans of the BM25-best chunks that fit the token budget, in source order, adjacent chunks merged.

    Chunks (chunk_spans) are tried from the highest score down, ties (and a question that matches nothing) in
    source order. Without `cut`, one that would push the running token count past the budget is skipped and
    smaller later ones may still fit. With `cut`, the first one that no longer fits whole is cut to the tokens
    left (its beginning, cut(chunk text, tokens left) chars) and the selection stops: the budget is filled, so a
    budget under one chunk still keeps text. Either way the chunks' summed token counts never exceed the budget.
    """
    if budget_tokens <= 0:
        return []
    chunks = chunk_spans(text, count_tokens, chunk_tokens)
    passages = [text[start:end] for start, end in chunks]
    scores = bm25_scores(passages, question)
    ranked = sorted(range(len(chunks)), key=lambda i: (-scores[i], i))
    kept, used = [], 0
    for i in ranked:
        size = count_tokens(passages[i])
        if used + size <= budget_tokens:
            kept.append(chunks[i])
            used += size
        elif cut is not None:
            start = chunks[i][0]
            kept.append((start, start + cut(passages[i], budget_tokens - used)))
            break
    return merge_spans(kept)


def token_cutter(tokenizer: Any) -> Cutter:
    """cut(text, n): the chars of the longest beginning of text that re-tokenizes to at most n tokens."""

    def cut(text: str, n: int) -> int:
        kept = truncate_to_budget(text, n, tokenizer)
        return kept[0][1] if kept else 0

    return cut


def token_offsets(tokenizer: Any, text: str) -> list[Span]:
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return [(int(a), int(b)) for a, b in encoded["offset_mapping"]]


def count_with(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def truncate_to_budget(text: str, budget_tokens: int, tokenizer: Any) -> list[Span]:
    """The longest prefix of `text` that ends at a token boundary and re-tokenizes to at most budget_tokens.

    One span [0, end) with end the end offset of the last kept token (the whole text when all tokens fit; none
    for an empty text or budget 0). A cut inside a character split over byte-level tokens, or one whose prefix
    re-tokenizes to more tokens, moves back a token at a time.
    """
    if not text or budget_tokens <= 0:
        return []
    offsets = token_offsets(tokenizer, text)
    if len(offsets) <= budget_tokens:
        return [(0, len(text))]
    for kept in range(budget_tokens, 0, -1):
        end = offsets[kept - 1][1]
        if offsets[kept][0] < end:  # the first dropped token shares a character with the kept ones
            continue
        if count_with(tokenizer, text[:end]) <= budget_tokens:
            return [(0, end)]
    return []


def reduced_text(text: str, spans: Sequence[Span], separator: str = DEFAULT_SEPARATOR) -> str:
    """The kept text handed to the downstream model: the spans joined with the separator (see join_spans)."""
    return join_spans(text, spans, separator)
