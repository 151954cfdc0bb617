"""Batched generation with a KV cache: chat-formatted prompts in, completion texts out (left padding)."""

from __future__ import annotations

from typing import Any

import torch

from repro.config import GenerationSection


@torch.no_grad()
def generate_texts(model: Any, tokenizer: Any, prompts: list[str], gen: GenerationSection) -> list[str]:
    """Completions of already chat-formatted `prompts`, one batch; greedy unless gen.do_sample."""
    device = next(model.parameters()).device
    # the chat template already wrote the special tokens: add none here
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    kwargs: dict[str, Any] = {
        "max_new_tokens": gen.max_new_tokens,
        "do_sample": gen.do_sample,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "use_cache": True,
    }
    if gen.do_sample:
        kwargs.update(temperature=gen.temperature, top_p=gen.top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    was_training = model.training
    model.eval()
    try:
        out = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs)
    finally:
        model.train(was_training)
    new_tokens = out[:, batch["input_ids"].shape[1] :]
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
