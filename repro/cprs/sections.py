"""QwenLong-CPRS's recipe section `cprs`: the compressor's data, labels, loss weights, window-parallel compression."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from repro.sections import ranged, ranged_list


def _check_class_weights(value: list[float]) -> str | None:
    if len(value) != 4 or any(w <= 0 for w in value):
        return f"must be four weights > 0, one per tag B, I, O, E (BIO uses the first three), got {value}"
    return None


@dataclass
class CprsSection:
    """QwenLong-CPRS: the compressor's training data and labels, and window-parallel compression."""

    data: str = "data/loong-mini/train.jsonl"
    sets: list[int] = ranged_list(list, 1)
    tasks: list[str] = field(default_factory=list)
    limit: int | None = ranged(None, 1)
    granularities: list[Literal["keyword", "sentence", "paragraph"]] = field(
        default_factory=lambda: ["keyword", "sentence", "paragraph"]
    )
    # more distinct contexts for the same compute: each record trains one seeded granularity, not all of them
    one_granularity_per_record: bool = False
    query_agnostic_share: float = ranged(0.25, 0.0, 1.0)  # training examples without the question
    bidirectional_layers: int | None = ranged(None, 0)  # None: the top 25% (the paper's 7 of 28)
    scheme: Literal["BIOE", "BIO"] = "BIOE"
    focal_gamma: float | None = ranged(2.0, 0.0)  # None: cross-entropy for the boundary head
    # Boundary-loss class weights in the order B, I, O, E (a BIO head takes B, I, O). The released code passes a
    # class-weight vector (`bi_loss_weight`, modeling_qwen2.py) whose checkpoint is named `bi_weight_10`; the
    # vector itself is not released: read as 10 for the span tags B, I, E against 1 for O.
    boundary_class_weights: list[float] = field(
        default_factory=lambda: [10.0, 10.0, 1.0, 10.0], metadata={"check": _check_class_weights}
    )
    # weight of the word "outside" in the label-word loss (released checkpoint name: `outside_weight_0.5`)
    outside_weight: float = ranged(0.5, 0.0)
    mask_fraction: float = ranged(0.5, 0.0, 1.0)  # non-critical positions masked from the gradient per step
    max_tokens: int = ranged(2048, 16)  # training window (prompt prefix included)
    # compression
    compressor: str = ""  # a trained compressor (RUN/final of `repro cprs train`)
    window_tokens: int = ranged(2048, 16)  # w, prompt prefix included
    window_batch: int = ranged(4, 1)  # windows per forward
    fill_gaps: int = ranged(20, 0)  # gaps shorter than this inside a span are kept
    # spans shorter than this (after gap filling) are dropped; 2 = the released demo's min_keyword_len 1 (its
    # decoder keeps spans longer than min_keyword_len tokens): a lone tagged token is mostly noise, a name or a
    # value is rarely one token
    min_span_tokens: int = ranged(2, 1)
    budget_tokens: int | None = ranged(None, 1)  # keep the best spans up to this many tokens
    threshold: float | None = ranged(None, 0.0, 1.0)  # keep tokens whose keep probability reaches it
    granularity: Literal["keyword", "sentence", "paragraph"] = "sentence"
    instruction: str = ""  # what to keep when no query is given (default: the key information)
