"""Batched generation with a KV cache: completion texts for the eval, prefill-once group sampling for rollouts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from repro.config import GenerationSection


@dataclass
class Sample:
    """One completion: the generated ids (through the eos when one came), its text, whether it ended on eos, and
    the per-token log-probs a server reported (None from the local model, which recomputes its own)."""

    token_ids: list[int]
    text: str
    finished: bool
    logprobs: list[float] | None = None


def _decode_kwargs(
    gen: GenerationSection, pad_token_id: int | None, eos_token_id: int | list[int] | None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "max_new_tokens": gen.max_new_tokens,
        "do_sample": gen.do_sample,
        "pad_token_id": pad_token_id,
        "eos_token_id": eos_token_id,
        "use_cache": True,
    }
    if gen.do_sample:
        kwargs.update(temperature=gen.temperature, top_p=gen.top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@torch.no_grad()
def generate_texts(model: Any, tokenizer: Any, prompts: list[str], gen: GenerationSection) -> list[str]:
    """Completions of already chat-formatted `prompts`, one batch; greedy unless gen.do_sample."""
    device = next(model.parameters()).device
    # the chat template already wrote the special tokens: add none here
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    kwargs = _decode_kwargs(gen, tokenizer.pad_token_id, tokenizer.eos_token_id)
    with _eval_mode(model):
        out = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)
    new_tokens = out[:, batch["input_ids"].shape[1] :]
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """The tokenizer's eos plus any the model's generation config lists (Qwen-style chat models stop on both)."""
    ids: list[int] = []
    config = getattr(model, "generation_config", None)
    for source in (tokenizer.eos_token_id, getattr(config, "eos_token_id", None)):
        for i in [source] if isinstance(source, int) else source or []:
            if i not in ids:
                ids.append(int(i))
    return ids


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed the CPU generator and, on CUDA, the model device's generator (as torch.manual_seed does for them).

    The caller's RNG state for those generators is saved and restored (torch.random.fork_rng), so sampling
    under a seed neither consumes nor resets it.
    """
    if seed is None:
        yield
        return
    if device.type in ("cpu", "cuda"):
        on_cuda = device.type == "cuda"
        with torch.random.fork_rng(devices=[device] if on_cuda else [], device_type="cuda"):
            torch.random.default_generator.manual_seed(seed)
            if on_cuda:
                with torch.cuda.device(device):
                    torch.cuda.manual_seed(seed)
            yield
    else:
        with torch.random.fork_rng(device_type=device.type):
            torch.manual_seed(seed)
            yield


def _left_pad(prompts: list[torch.Tensor], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = p
        mask[row, width - len(p) :] = 1
    return ids.to(device), mask.to(device)


def _supports_logits_to_keep(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    check = getattr(base, "_supports_logits_to_keep", None)
    return bool(check and check())


def _prefill_repeated(model: Any, ids: torch.Tensor, mask: torch.Tensor, group_size: int) -> Any:
    """A DynamicCache of all but the last prompt column, computed once per prompt, then repeated per group row.

    Positions follow generate's rule (cumsum of the mask - 1, padding at 0), so the cached keys are the ones
    generate itself would have computed for these tokens.
    """
    from transformers import DynamicCache

    config = model.config.get_text_config(decoder=True)
    cache = DynamicCache(config=config)
    prefix, prefix_mask = ids[:, :-1], mask[:, :-1]
    if prefix.shape[1] > 0:
        positions = (prefix_mask.cumsum(-1) - 1).masked_fill(prefix_mask == 0, 0)
        extra = {"logits_to_keep": 1} if _supports_logits_to_keep(model) else {}
        # the DynamicCache fills in place; the one-position logits are not needed
        model(
            input_ids=prefix, attention_mask=prefix_mask, position_ids=positions, cache=cache, use_cache=True, **extra
        )
    cache.batch_repeat_interleave(group_size)
    return cache


def _check_adapters(model: Any) -> None:
    config = getattr(model, "active_peft_config", None)
    if config is not None and getattr(config, "is_prompt_learning", False):
        # prompt learning prepends virtual tokens inside generate: a cache prefilled outside it would miss them
        raise ValueError("sample_groups supports weight adapters (LoRA and the like), not prompt-learning adapters")


def _to_sample(row: list[int], eos: set[int], tokenizer: Any) -> Sample:
    # generate pads a row after its eos: keep the ids through the first eos
    end = next((i for i, t in enumerate(row) if t in eos), None)
    ids = row if end is None else row[: end + 1]
    return Sample(ids, tokenizer.decode(ids, skip_special_tokens=True), end is not None)


@torch.no_grad()
def sample_groups(
    model: Any,
    tokenizer: Any,
    prompt_ids: list[torch.LongTensor],
    group_size: int,
    gen: GenerationSection,
    seed: int | None = None,
    full_length: bool = False,
) -> list[list[Sample]]:
    """`group_size` completions for each tokenised prompt, each prompt's prefill computed once, not per sample.

    Prompts go `gen.batch_size` at a time, in the given order, left-padded; the decode batch is then
    batch_size * group_size rows (prompt-major: a prompt's samples are adjacent), the same rows and RNG
    order as `model.generate(num_return_sequences=group_size)` on that batch, so a seed gives the same tokens.
    `seed` seeds the global CPU (and model-device CUDA) generator once, before the first batch, inside
    torch.random.fork_rng; without it the global RNG is used and advanced as generate would.
    Generation stops on the tokenizer's eos or any eos of the model's generation config (`full_length`: not before
    max_new_tokens, for benchmarks).
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    if any(p.dim() != 1 or p.numel() == 0 for p in prompt_ids):
        raise ValueError("prompt_ids must be non-empty 1-D token id tensors")
    _check_adapters(model)
    device = next(model.parameters()).device
    eos = eos_ids(model, tokenizer)
    eos_set = set(eos)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(eos), None)
    if pad_id is None:
        raise ValueError("sample_groups needs a pad or an eos token id to left-pad the prompts")
    kwargs = _decode_kwargs(gen, pad_id, eos or None)
    if full_length:  # benchmarks: every sample exactly max_new_tokens long, eos suppressed until then
        kwargs["min_new_tokens"] = gen.max_new_tokens
    step = max(1, gen.batch_size)
    groups: list[list[Sample]] = []
    with _eval_mode(model), _seeded(seed, device):
        for start in range(0, len(prompt_ids), step):
            ids, mask = _left_pad([p.cpu() for p in prompt_ids[start : start + step]], pad_id, device)
            cache = _prefill_repeated(model, ids, mask, group_size)
            # generate sees the full prompts and feeds only the columns the cache lacks (the last one)
            out = model.generate(
                input_ids=ids.repeat_interleave(group_size, dim=0),
                attention_mask=mask.repeat_interleave(group_size, dim=0),
                cache=cache,
                **kwargs,
            )
            del cache
            rows = out[:, ids.shape[1] :].tolist()
            samples = [_to_sample(row, eos_set, tokenizer) for row in rows]
            groups.extend(samples[i : i + group_size] for i in range(0, len(samples), group_size))
    return groups
