"""QwenLong-L1's hybrid reward: rule-based verification, an optional LLM judge on top, DAPO overlong shaping.

Implements QwenLong-L1 (arXiv 2505.17667v2) Eqs. 12-14 (reward = max(rule, judge)) and Eq. 7 (overlong shaping).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from repro.data.schema import Record
from repro.loong.answers import extract_answer
from repro.loong.judges import as_text, format_gold
from repro.loong.verify import RewardConfig, passes_format, reference_answer, verify_answer

log = logging.getLogger("repro.rewards")

Messages = list[dict[str, str]]
Judge = Callable[[list[Messages]], list[str | Exception]]


@dataclass(frozen=True)
class RewardResult:
    """rule in [0, 1]; judge 1.0 / 0.0, or None when not asked or its reply failed; total = max(rule, judge or 0)."""

    rule: float
    judge: float | None
    total: float


def rule_reward(prediction: str, record: Record, cfg: RewardConfig) -> float:
    """The rule-based reward in [0, 1] of one response: verify_answer (repro/loong/verify.py), the released
    grader's format gate, sub-EM both ways, numbers within cfg.numeric_rel_tol, option letters, and Loong-mini
    lists and dicts with cfg.partial_credit."""
    return verify_answer(prediction, record, cfg)


def overlong_penalty(length: int, max_len: int, buffer: int, factor: float) -> float:
    """DAPO's soft overlong punishment: 0 up to max_len - buffer, then linear down to -factor at max_len.

    -factor * (length - (max_len - buffer)) / buffer for max_len - buffer < length <= max_len, -factor beyond;
    0 when buffer <= 0 or factor is 0 (shaping off). Added by the caller to RewardResult.total.
    """
    if buffer <= 0 or not math.isfinite(factor) or factor <= 0:
        return 0.0
    start = max_len - buffer
    if length <= start:
        return 0.0
    if length >= max_len:
        return -float(factor)
    return -factor * (length - start) / buffer


# --- LLM judge -------------------------------------------------------------------------------------------------

JUDGE_PROMPT = """You are checking whether a predicted answer to a question means the same as the gold answer.

[Question]
{question}

[Gold Answer]
{gold}

[Predicted Answer: start]
{prediction}
[Predicted Answer: end]

Treat the gold answer as correct. The prediction is equivalent when it states the same answer: the same \
entities, numbers (allowing rounding and units such as percent vs fraction), items and, where the question \
needs it, order. Differences of wording or format do not matter; a missing or wrong part, or hedging between \
several answers, does.

Reply with [[YES]] if the prediction is equivalent to the gold answer and [[NO]] if it is not. Write nothing else."""

_VERDICT = re.compile(r"\[\[\s*(YES|NO)\s*\]\]", re.IGNORECASE)


def judge_messages(prediction: str, record: Record) -> Messages:
    """The judge chat for one response: JUDGE_PROMPT with the question, gold (and aliases) and extracted answer."""
    gold = format_gold(reference_answer(record.answer) if isinstance(record.answer, str) else record.answer)
    if record.answer_aliases:
        gold += "\n(also accepted: " + "; ".join(record.answer_aliases) + ")"
    prompt = JUDGE_PROMPT.format(question=record.question, gold=gold, prediction=extract_answer(as_text(prediction)))
    return [{"role": "user", "content": prompt}]


def parse_verdict(text: str) -> float | None:
    """1.0 when the last [[YES]] / [[NO]] (any case, blanks inside allowed) is YES, 0.0 when NO, None without one."""
    if not isinstance(text, str):
        return None
    found = _VERDICT.findall(text)
    if not found:
        return None
    return 1.0 if found[-1].upper() == "YES" else 0.0


def hybrid_rewards(
    predictions: list[str], records: list[Record], cfg: RewardConfig, judge: Judge | None = None
) -> list[RewardResult]:
    """QwenLong-L1's reward per response: max(rule_reward, LLM judge verdict).

    The judge is asked only when cfg.llm_judge is on, and only about the responses whose rule reward is below
    1.0 and that pass the format gate (passes_format), all in one call of `judge` with their chats in
    order. A reply that is an exception or has no verdict, or a judge call that raises, leaves judge None and
    total = rule. The overlong penalty is not included: the caller adds overlong_penalty() to total, since it
    needs token lengths that only the trainer knows.
    """
    if len(predictions) != len(records):
        raise ValueError(f"{len(predictions)} predictions for {len(records)} records")
    if cfg.llm_judge and judge is None:
        raise ValueError("cfg.llm_judge is on but no judge was given (see chat_judge and hf_judge)")
    texts = [as_text(p) for p in predictions]
    rules = [rule_reward(t, r, cfg) for t, r in zip(texts, records, strict=True)]
    verdicts: list[float | None] = [None] * len(texts)
    if cfg.llm_judge and judge is not None:
        asked = [
            i for i, rule in enumerate(rules) if rule < 1.0 and passes_format(texts[i], cfg)
        ]
        if asked:
            replies = _ask(judge, [judge_messages(texts[i], records[i]) for i in asked])
            for i, reply in zip(asked, replies, strict=False):
                if isinstance(reply, Exception):
                    log.warning("judge failed on item %d: %s", i, reply)
                else:
                    verdicts[i] = parse_verdict(reply)
    return [
        RewardResult(rule=rule, judge=verdict, total=max(rule, verdict or 0.0))
        for rule, verdict in zip(rules, verdicts, strict=True)
    ]


def _ask(judge: Judge, batch: list[Messages]) -> list[str | Exception]:
    try:
        replies = list(judge(batch))
    except Exception as exc:
        log.warning("judge call failed for %d chats: %s", len(batch), exc)
        return []
    if len(replies) != len(batch):
        log.warning("judge answered %d of %d chats; the missing ones count as not judged", len(replies), len(batch))
    return replies


def chat_judge(client: Any) -> Judge:
    """A judge backed by an OpenAI-compatible ChatClient (build it with temperature=0, its default).

    A missing API key fails here, once, rather than as a failed reply per chat.
    """
    client.check_key()

    def ask(batch: list[Messages]) -> list[str | Exception]:
        return client.complete_many(batch)

    return ask


def hf_judge(model: Any, tokenizer: Any, max_new_tokens: int, batch_size: int = 4) -> Judge:
    """A judge backed by a local HF chat model, greedy (temperature 0), `batch_size` chats per generate call.

    Each chat is one user turn, optionally after a system turn. A batch that fails gives its exception for each
    of its chats, so the other batches still count.
    """
    from repro.config import GenerationSection
    from repro.data.prompts import apply_chat
    from repro.generation import generate_texts

    gen = GenerationSection(max_new_tokens=max_new_tokens, do_sample=False, batch_size=batch_size)

    def ask(batch: list[Messages]) -> list[str | Exception]:
        out: list[str | Exception] = []
        for start in range(0, len(batch), max(1, batch_size)):
            chunk = batch[start : start + max(1, batch_size)]
            try:
                prompts = [_chat_text(tokenizer, messages, apply_chat) for messages in chunk]
                out.extend(generate_texts(model, tokenizer, prompts, gen))
            except Exception as exc:
                out.extend([exc] * len(chunk))
        return out

    return ask


def _chat_text(tokenizer: Any, messages: Messages, apply_chat: Callable[..., str]) -> str:
    system = next((m["content"] for m in messages if m.get("role") == "system"), None)
    return apply_chat(tokenizer, messages[-1]["content"], system=system)
