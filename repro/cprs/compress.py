"""Window-parallel compression: split the context into windows, tag them in batches, keep the tagged spans."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from repro.cprs.labels import TAG_WORDS, Span, system_prompt
from repro.cprs.model import TokenCritic
from repro.cprs.sections import CprsSection
from repro.cprs.windows import (
    DEFAULT_SEPARATOR,
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
from repro.data.prompts import apply_chat
from repro.errors import ConfigError

DEFAULT_INSTRUCTION = "Keep the key information of the context."


def window_prefix(tokenizer: Any, cfg: CprsSection, tag_word: str, query: str | None) -> list[int]:
    """The token ids every window starts with: the system prompt, then the query (or the instruction)."""
    system = system_prompt(cfg.granularity, tag_word, query_aware=bool(query))
    text = apply_chat(tokenizer, query or cfg.instruction or DEFAULT_INSTRUCTION, system=system)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def score_windows(
    critic: TokenCritic, prefix: list[int], context_ids: list[int], windows: list[tuple[int, int]], batch: int, tag: int
) -> tuple[list[list[float]], list[float]]:
    """Per context token: the boundary tag probabilities and the keep probability (the tag word against
    "outside"), scoring `batch` windows per forward, each window right-padded to the longest of its batch."""
    device = next(critic.parameters()).device
    tag_probs: list[list[float]] = []
    keep: list[float] = []
    for first in range(0, len(windows), batch):
        group = windows[first : first + batch]
        rows = [prefix + context_ids[s:e] for s, e in group]
        width = max(len(r) for r in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        hidden, boundary = critic(ids.to(device), mask.to(device))
        words = critic.label_word_logits(hidden, [critic.word_ids[0], critic.word_ids[tag]]).float().softmax(-1)
        boundary = boundary.float().softmax(-1)
        for i, (s, e) in enumerate(group):
            part = slice(len(prefix), len(prefix) + e - s)
            tag_probs.extend(boundary[i, part].tolist())
            keep.extend(words[i, part, 1].tolist())
    return tag_probs, keep


@dataclass
class ScoredContext:
    """One context scored by the critic: its tokens' ids and character offsets, the windows, and per token the
    boundary tag probabilities (O, B, I[, E]) and the keep probability."""

    context_ids: list[int]
    offsets: list[Span]
    windows: list[Span]
    tag_probs: list[list[float]]
    keep: list[float]


def score_context(critic: TokenCritic, tokenizer: Any, text: str, cfg: CprsSection, query: str | None) -> ScoredContext:
    """Split `text` into windows after the prompt prefix and score every token at cfg.granularity."""
    words = critic.label_words
    tag_word = TAG_WORDS[cfg.granularity]
    if tag_word not in words:
        raise ValueError(f"the compressor was not trained for cprs.granularity={cfg.granularity} (its words: {words})")
    prefix = window_prefix(tokenizer, cfg, tag_word, query)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    context_ids, offsets = encoded["input_ids"], [tuple(o) for o in encoded["offset_mapping"]]
    try:
        windows = split_windows(len(context_ids), cfg.window_tokens, len(prefix))
    except ValueError as exc:  # the prompt prefix alone fills the window
        raise ConfigError(f"cprs.window_tokens: {exc}; raise it") from None
    tag_probs, keep = score_windows(critic, prefix, context_ids, windows, cfg.window_batch, words.index(tag_word))
    return ScoredContext(context_ids, offsets, windows, tag_probs, keep)


def compress(critic: TokenCritic, tokenizer: Any, text: str, cfg: CprsSection, query: str | None = None) -> Compression:
    """Compress `text` (for `query`, or cfg.instruction): the tokens where P(B)+P(I)+P(E) beats P(O), or whose keep
    probability reaches cfg.threshold; gaps under cfg.fill_gaps tokens filled; spans under cfg.min_span_tokens
    dropped; with cfg.budget_tokens, the best-scoring spans that fit the budget. Spans come back in source order
    as character offsets into `text`."""
    started = time.perf_counter()
    if not text:
        return Compression("", [], DEFAULT_SEPARATOR, 0, 0, 0.0, 0, 0.0)
    scored = score_context(critic, tokenizer, text, cfg, query)
    if cfg.threshold is not None:
        tags = threshold_tags(scored.keep, cfg.threshold, cfg.scheme)
    else:
        tags = keep_tags(scored.tag_probs, cfg.scheme)
    spans = tags_to_spans(tags, fill_gaps=cfg.fill_gaps, min_span_tokens=cfg.min_span_tokens)
    if cfg.budget_tokens is not None:
        spans = select_by_budget(scored.keep, spans, cfg.budget_tokens)
    chars = spans_to_chars(spans, scored.offsets)
    kept = sum(e - s for s, e in spans)
    n_tokens = len(scored.context_ids)
    return Compression(
        text=join_spans(text, chars, DEFAULT_SEPARATOR),
        spans=chars,
        separator=DEFAULT_SEPARATOR,
        input_tokens=n_tokens,
        kept_tokens=kept,
        ratio=compression_ratio(n_tokens, kept),
        windows=len(scored.windows),
        seconds=time.perf_counter() - started,
    )


def load_compressor(recipe: Any) -> tuple[TokenCritic, Any]:
    """The trained compressor named by cprs.compressor on recipe.model's base weights, ready to score."""
    import dataclasses
    from pathlib import Path

    from repro.cprs.model import load_critic
    from repro.modeling import load_model

    folder = Path(recipe.cprs.compressor)
    if not recipe.cprs.compressor or not (folder / "critic.json").is_file():
        raise ConfigError(
            f"cprs.compressor: '{recipe.cprs.compressor}' is not a trained compressor (RUN/final of `repro cprs train`)"
        )
    base = dataclasses.replace(recipe.model, lora=dataclasses.replace(recipe.model.lora, enabled=False))
    loaded = load_model(base, training=False)
    critic = load_critic(loaded.model, folder).eval()
    return critic, loaded.tokenizer
