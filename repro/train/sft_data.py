"""Warm-up SFT samples: L1 prompt (documents + question) -> reasoning trace + answer, loss on the response only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from repro.data.prompts import apply_chat, build_prompt
from repro.data.schema import Record
from repro.errors import DataError
from repro.train.logprobs import IGNORE_INDEX as IGNORE  # no loss at this position


@dataclass
class SftSample:
    id: str
    input_ids: list[int]
    labels: list[int]  # IGNORE on the prompt, the token ids on the response

    def __len__(self) -> int:
        return len(self.input_ids)


def sft_target(record: Record) -> str:
    """The response to learn: the record's reasoning trace, which ends in "Therefore, the answer is …"."""
    if not record.reasoning:
        raise DataError(f"record '{record.id}' has no reasoning trace to train on (field 'reasoning')")
    return record.reasoning


def chat_response_text(tokenizer: Any, prompt_text: str, response: str) -> str:
    """The response as the chat template writes an assistant turn (with its end-of-turn token)."""
    messages = [{"role": "user", "content": prompt_text}]
    full = tokenizer.apply_chat_template(
        messages + [{"role": "assistant", "content": response}], tokenize=False, add_generation_prompt=False
    )
    prompt = apply_chat(tokenizer, prompt_text)
    if not full.startswith(prompt):
        raise DataError("the tokenizer's chat template does not extend the prompt with the assistant turn")
    return full[len(prompt) :]


def build_sft_sample(record: Record, tokenizer: Any, max_seq_tokens: int) -> SftSample:
    """Prompt documents dropped whole until prompt + response fit `max_seq_tokens`; the prompt is masked.

    Prompt and response are tokenised separately, so no token merges across the boundary.
    """

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    target = sft_target(record)
    response_ids = tokenizer(chat_response_text(tokenizer, "", target), add_special_tokens=False)["input_ids"]
    budget = max_seq_tokens - len(response_ids) - count(apply_chat(tokenizer, ""))
    user_text, _ = build_prompt(record, style="l1", budget_tokens=max(budget, 0), count_tokens=count)
    prompt_ids = tokenizer(apply_chat(tokenizer, user_text), add_special_tokens=False)["input_ids"]
    return SftSample(
        id=record.id,
        input_ids=prompt_ids + response_ids,
        labels=[IGNORE] * len(prompt_ids) + response_ids,
    )
