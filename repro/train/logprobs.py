"""Per-token log-probabilities and the SFT loss without a full [tokens x vocab] float32 logits tensor."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from repro.errors import ModelError
from repro.train.dist import unwrap

IGNORE_INDEX = -100


def token_logprobs(
    hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int = 1024,
    lm_head_bias: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """log p(targets[b, t]) from final hidden states [B, T, H] and the output embedding [V, H]; 0 where ignored.

    Only positions whose target is not IGNORE_INDEX are projected onto the vocabulary, `chunk_size` of them at
    a time; each chunk's logits are recomputed in backward (activation checkpointing), so neither pass holds
    more than one [chunk_size x V] block. The logits are divided by `temperature` first (the distribution a
    rollout was sampled from). The result is float32 (float64 when the weight is float64).
    """
    return token_stats(hidden, lm_head_weight, targets, chunk_size, lm_head_bias, temperature, entropy=False)[0]


def token_logprobs_entropy(
    hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int = 1024,
    lm_head_bias: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`token_logprobs` and, from the same chunks, the entropy of each position's next-token distribution
    (-sum_v p_v log p_v at the same temperature), both [B, T] and 0 where ignored; both carry gradients."""
    stats = token_stats(hidden, lm_head_weight, targets, chunk_size, lm_head_bias, temperature, entropy=True)
    return stats[0], stats[1]


def token_stats(
    hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int,
    lm_head_bias: torch.Tensor | None,
    temperature: float,
    entropy: bool,
) -> torch.Tensor:
    """[K, B, T]: log-probs (k = 0) and, with `entropy`, entropies (k = 1), computed chunk by chunk."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if hidden.shape[:-1] != targets.shape:
        raise ValueError(f"hidden {tuple(hidden.shape)} and targets {tuple(targets.shape)} disagree on [B, T]")
    out_dtype = torch.promote_types(lm_head_weight.dtype, torch.float32)
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])
    flat_targets = targets.reshape(-1)
    keep = (flat_targets != IGNORE_INDEX).nonzero().squeeze(-1)
    kept_hidden = flat_hidden.index_select(0, keep)
    kept_targets = flat_targets.index_select(0, keep)

    needs_grad = torch.is_grad_enabled() and (
        hidden.requires_grad
        or lm_head_weight.requires_grad
        or (lm_head_bias is not None and lm_head_bias.requires_grad)
    )
    pieces = []
    # at least one (possibly empty) chunk, so the result stays attached to the graph when nothing is kept
    for start in range(0, max(len(keep), 1), chunk_size):
        args = (
            kept_hidden[start : start + chunk_size],
            lm_head_weight,
            lm_head_bias,
            kept_targets[start : start + chunk_size],
            temperature,
            out_dtype,
            entropy,
        )
        if needs_grad:
            pieces.append(checkpoint(_chunk_stats, *args, use_reentrant=False))
        else:
            pieces.append(_chunk_stats(*args))
    kept_stats = torch.cat(pieces, dim=1)
    out = torch.zeros((kept_stats.shape[0], flat_targets.shape[0]), dtype=out_dtype, device=hidden.device)
    return out.index_copy(1, keep, kept_stats).view(-1, *targets.shape)


def _chunk_stats(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    temperature: float,
    out_dtype: torch.dtype,
    entropy: bool,
) -> torch.Tensor:
    logits = hidden.to(weight.dtype) @ weight.T
    if bias is not None:
        logits = logits + bias
    logits = logits.to(out_dtype)
    if temperature != 1.0:
        logits = logits / temperature
    norm = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - norm
    if not entropy:
        return picked.unsqueeze(0)
    # H = log Z - sum_v p_v z_v, with p = softmax(z)
    ent = norm - (torch.softmax(logits, dim=-1) * logits).sum(dim=-1)
    return torch.stack([picked, ent])


def shifted_targets(
    input_ids: torch.Tensor,
    labels: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token targets [B, T] (targets[:, t] = labels[:, t + 1], IGNORE_INDEX at the last position) and a mask.

    `labels` defaults to `input_ids`; IGNORE_INDEX in labels (prompt tokens, padding) and zeros in
    `attention_mask` mask the position that would predict that token.
    """
    source = input_ids if labels is None else labels
    if attention_mask is not None:
        source = source.masked_fill(attention_mask == 0, IGNORE_INDEX)
    targets = torch.full_like(source, IGNORE_INDEX)
    targets[:, :-1] = source[:, 1:]
    return targets, targets != IGNORE_INDEX


def sequence_logprobs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    labels: torch.Tensor | None,
    chunk_size: int = 1024,
    position_ids: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each next token [B, T] under a HF causal LM (plain or peft-wrapped) and its mask [B, T].

    The model runs with `logits_to_keep=1`, so it projects only the last position onto the vocabulary; the
    final hidden states come from a hook on its decoder and go through `token_logprobs` with the output
    embedding. Packed batches (see `repro.train.batching.pack_batch`) pass `position_ids` and no mask.
    """
    targets, mask = shifted_targets(input_ids, labels, attention_mask)
    hidden, last_logits = final_hidden(model, input_ids, attention_mask, position_ids)
    head = unwrap(model).get_output_embeddings()
    weight, bias = head.weight, getattr(head, "bias", None)
    check_plain_head(hidden[:, -1], weight, bias, last_logits)
    return token_logprobs(hidden, weight, targets, chunk_size, bias, temperature), mask


def chunked_cross_entropy(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    labels: torch.Tensor | None,
    chunk_size: int = 1024,
    position_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The SFT loss as (sum of -log p over unmasked target tokens, their count as an int64 tensor).

    The caller divides by the count summed over micro-batches and processes, which keeps gradient
    accumulation and multi-process averaging exact whatever the number of tokens in each micro-batch.
    """
    token_lp, mask = sequence_logprobs(model, input_ids, attention_mask, labels, chunk_size, position_ids)
    return -(token_lp * mask).sum(), mask.sum()


def final_hidden(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    inner = unwrap(model)
    if not hasattr(inner, "get_decoder"):
        raise ModelError(f"{type(inner).__name__} has no get_decoder(); a HF causal LM is needed for log-probs")
    captured: list[torch.Tensor] = []

    def grab(_module: Any, _args: Any, output: Any) -> None:
        if not captured:  # a recomputation in backward must not replace the forward's tensor
            captured.append(output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0])

    handle = inner.get_decoder().register_forward_hook(grab)
    try:
        # the call goes through the outer wrapper so DDP's and peft's forward logic still runs
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
            logits_to_keep=1,
        )
    finally:
        handle.remove()
    if not captured:
        raise ModelError(f"{type(inner).__name__}: its decoder did not run; cannot read the final hidden states")
    return captured[0], out.logits[:, -1]


def check_plain_head(
    last_hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, last_logits: torch.Tensor
) -> None:
    """Refuse models whose logits are not a plain linear map of the decoder output (logit scaling, softcapping)."""
    with torch.no_grad():
        mine = torch.nn.functional.linear(last_hidden.to(weight.dtype), weight, bias).float()
        theirs = last_logits.float()
        scale = max(1.0, theirs.abs().max().item())
        # two matmuls of different shapes may round apart by a few units in the last place (or TF32's error)
        tol = max(8 * torch.finfo(weight.dtype).eps, 2e-3) * scale
        diff = (mine - theirs).abs().max().item()
    if diff > tol:
        raise ModelError(
            f"the model's logits differ from hidden @ output_embedding.T by {diff:.3g} (scaled or capped logits, "
            "or an adapter on the LM head?); chunked log-probs support plain linear LM heads only"
        )
