"""Log-probs of a group of responses to one prompt from one shared-prefix row (Prefix Grouper), or per sample."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from repro.train.dist import unwrap
from repro.train.logprobs import check_plain_head, final_hidden, token_stats
from repro.train.prefix_attention import PrefixLayout, grouped_attention

Group = tuple[torch.Tensor, Sequence[torch.Tensor]]


def grouped_logprobs(
    model: Any,
    prompt_ids: torch.Tensor,
    responses: Sequence[torch.Tensor],
    chunk_size: int = 1024,
    temperature: float = 1.0,
) -> list[torch.Tensor]:
    """log p(responses[i][t] | prompt, responses[i][:t]) for each i, as float32 tensors [len(responses[i])].

    One forward over the row [prompt, resp_1 … resp_G]: each response sees the prompt and itself only (causally),
    with positions P, P+1, … after a prompt of P tokens, so the prompt's forward and backward run once for the
    group. The first token of every response is predicted from the prompt's last position, the others from the
    response's own positions; only those positions are projected onto the vocabulary, in chunks
    (`token_logprobs`). `model` is a HF causal LM, plain, peft-wrapped or DDP-wrapped. Empty responses get
    empty tensors.
    """
    return [t[0] for t in _grouped_stats(model, prompt_ids, responses, chunk_size, temperature, entropy=False)]


def _grouped_stats(
    model: Any,
    prompt_ids: torch.Tensor,
    responses: Sequence[torch.Tensor],
    chunk_size: int,
    temperature: float,
    entropy: bool,
) -> list[torch.Tensor]:
    """Per response, [K, len] of log-probs (and entropies with `entropy`) through the shared-prefix row."""
    prompt, resps = _checked(prompt_ids, responses)
    kept = [r for r in resps if len(r)]
    if len(kept) < 2:  # one response: the row is a plain causal sequence
        return _per_sample_stats(model, prompt, resps, chunk_size, temperature, entropy)
    p = len(prompt)
    layout = PrefixLayout(p, tuple(len(r) for r in kept))
    sources, start = [], p
    for n in layout.lengths:
        sources += [p - 1, *range(start, start + n - 1)]
        start += n
    device = _device(model)
    row = torch.cat([prompt, *kept]).to(device).unsqueeze(0)
    with grouped_attention(unwrap(model), layout):
        hidden, last_logits = final_hidden(model, row, None, layout.position_ids().to(device))
    stats = _picked_stats(model, hidden, last_logits, sources, torch.cat(kept), chunk_size, temperature, entropy)
    return _split(stats, resps)


def per_sample_logprobs(
    model: Any,
    prompt_ids: torch.Tensor,
    responses: Sequence[torch.Tensor],
    chunk_size: int = 1024,
    temperature: float = 1.0,
) -> list[torch.Tensor]:
    """The same log-probs as `grouped_logprobs` from G separate rows [prompt, resp_i], one forward each.

    The path for `shared_prefix: false`. Every row's graph stays alive until the caller's backward; to hold one
    row's activations at a time, call it with one response and backpropagate before the next.
    """
    return [t[0] for t in _per_sample_stats(model, prompt_ids, responses, chunk_size, temperature, entropy=False)]


def response_stats(
    model: Any,
    prompt_ids: torch.Tensor,
    responses: Sequence[torch.Tensor],
    shared_prefix: bool = True,
    chunk_size: int = 1024,
    temperature: float = 1.0,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(log-probs, entropies) of each response: `grouped_logprobs` (or `per_sample_logprobs` when `shared_prefix`
    is off) and, from the same vocabulary chunks, the entropy of the next-token distribution at each position."""
    fn = _grouped_stats if shared_prefix else _per_sample_stats
    stats = fn(model, prompt_ids, responses, chunk_size, temperature, True)
    return [t[0] for t in stats], [t[1] for t in stats]


def _per_sample_stats(
    model: Any,
    prompt_ids: torch.Tensor,
    responses: Sequence[torch.Tensor],
    chunk_size: int,
    temperature: float,
    entropy: bool,
) -> list[torch.Tensor]:
    prompt, resps = _checked(prompt_ids, responses)
    device, p = _device(model), len(prompt)
    k = 2 if entropy else 1
    out = []
    for resp in resps:
        if not len(resp):
            out.append(torch.zeros(k, 0, device=device))
            continue
        row = torch.cat([prompt, resp]).to(device).unsqueeze(0)
        hidden, last_logits = final_hidden(model, row, None, None)
        sources = list(range(p - 1, p + len(resp) - 1))
        out.append(_picked_stats(model, hidden, last_logits, sources, resp, chunk_size, temperature, entropy))
    return out


def grouped_logprobs_batch(
    model: Any,
    groups: Sequence[Group],
    shared_prefix: bool = True,
    chunk_size: int = 1024,
    temperature: float = 1.0,
) -> list[list[torch.Tensor]]:
    """`grouped_logprobs` (or `per_sample_logprobs` when `shared_prefix` is off) for each (prompt, responses) group.

    One group, one row, one forward at a time: rows of groups with different prompt lengths would need padding
    and a layout per row, and a long prompt's row already fills the device. All groups' graphs stay attached
    until the caller's backward.
    """
    fn = grouped_logprobs if shared_prefix else per_sample_logprobs
    return [fn(model, prompt, responses, chunk_size, temperature) for prompt, responses in groups]


def _picked_stats(
    model: Any,
    hidden: torch.Tensor,
    last_logits: torch.Tensor,
    sources: list[int],
    targets: torch.Tensor,
    chunk_size: int,
    temperature: float,
    entropy: bool,
) -> torch.Tensor:
    """[K, len(targets)]: log p(targets[k]) (and the entropy) from the final hidden state at row position
    sources[k], for k = 0 … len(targets) - 1."""
    head = unwrap(model).get_output_embeddings()
    weight, bias = head.weight, getattr(head, "bias", None)
    check_plain_head(hidden[:, -1], weight, bias, last_logits)
    picked = hidden.index_select(1, torch.tensor(sources, device=hidden.device))
    targets = targets.to(hidden.device).unsqueeze(0)
    return token_stats(picked, weight, targets, chunk_size, bias, temperature, entropy)[:, 0]


def _split(stats: torch.Tensor, responses: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Cut the concatenated [K, total] stats of the non-empty responses back into one [K, len] per response."""
    pieces = iter(stats.split([len(r) for r in responses if len(r)], dim=1))
    return [next(pieces) if len(r) else stats.new_zeros(stats.shape[0], 0) for r in responses]


def _checked(prompt_ids: torch.Tensor, responses: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    prompt = torch.as_tensor(prompt_ids, dtype=torch.long)
    if prompt.ndim != 1 or len(prompt) == 0:
        raise ValueError(f"prompt_ids must be a non-empty 1-D tensor of token ids, got shape {tuple(prompt.shape)}")
    resps = [torch.as_tensor(r, dtype=torch.long).to(prompt.device) for r in responses]
    for i, r in enumerate(resps):
        if r.ndim != 1:
            raise ValueError(f"responses[{i}] must be a 1-D tensor of token ids, got shape {tuple(r.shape)}")
    return prompt, resps


def _device(model: Any) -> torch.device:
    return unwrap(model).get_input_embeddings().weight.device
