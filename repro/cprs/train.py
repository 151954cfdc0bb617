"""`repro cprs train`: the token critic trained on multi-granularity evidence labels, on the static driver."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import torch

from repro.config import Recipe
from repro.cprs.labels import IGNORE, OUTSIDE_WORD, TAG_WORDS, build_example
from repro.cprs.loss import boundary_weight_vector, critic_loss, drop_non_critical
from repro.cprs.model import SCHEMES as TAG_COUNT
from repro.cprs.model import TokenCritic, label_word_ids, save_critic
from repro.data.schema import Record, read_records
from repro.errors import ConfigError, DataError
from repro.train.dist import DistInfo, unwrap
from repro.train.engine import LossOutput
from repro.train.loop import StaticTask, TrainResult
from repro.train.runner import Stage, run_stage, save_final

log = logging.getLogger("repro.cprs")


def label_words(granularities: list[str]) -> list[str]:
    """The critic's label vocabulary: "outside", then each granularity's tag word."""
    return [OUTSIDE_WORD, *dict.fromkeys(TAG_WORDS[g] for g in granularities)]


def select_cprs_records(recipe: Recipe) -> list[Record]:
    """Records with evidence spans (the labels' source), read before any model loads."""
    cfg = recipe.cprs
    records = [
        r
        for r in read_records(cfg.data).records
        if r.evidence and (not cfg.sets or r.length_set in cfg.sets) and (not cfg.tasks or r.task in cfg.tasks)
    ]
    if cfg.limit is not None:
        records = records[: cfg.limit]
    if not records:
        raise DataError(
            f"{cfg.data}: no record with evidence spans matches cprs.sets={cfg.sets} cprs.tasks={cfg.tasks}"
        )
    return records


def cprs_examples(records: list[Record], recipe: Recipe, tokenizer: Any) -> list[dict]:
    """One example per record and granularity (or, with cprs.one_granularity_per_record, per record at a seeded
    granularity); a seeded share of them query-agnostic (an instruction, no question)."""
    cfg = recipe.cprs
    words = label_words(cfg.granularities)
    examples = []
    for record in records:
        granularities = cfg.granularities
        if cfg.one_granularity_per_record:
            granularities = [random.Random(f"{recipe.seed}:{record.id}").choice(cfg.granularities)]
        for granularity in granularities:
            draw = random.Random(f"{recipe.seed}:{record.id}:{granularity}").random()
            try:
                example = build_example(
                    record,
                    tokenizer,
                    granularity,
                    query_aware=draw >= cfg.query_agnostic_share,
                    max_tokens=cfg.max_tokens,
                    tag_word=TAG_WORDS[granularity],
                    scheme=cfg.scheme,
                )
            except ValueError as exc:  # the prompt prefix alone fills the window
                raise ConfigError(f"cprs.max_tokens: {exc}; raise it") from None
            tag_index = words.index(example["tag_word"])
            example["word_targets"] = [t if t in (IGNORE, 0) else tag_index for t in example["word_targets"]]
            examples.append(example)
    return examples


def cprs_task(examples: list[dict], recipe: Recipe, pad_id: int) -> StaticTask:
    cfg = recipe.cprs
    class_weights = boundary_weight_vector(cfg.boundary_class_weights, TAG_COUNT[cfg.scheme])

    def collate(indices: list[int], step: int, seed: int) -> dict[str, torch.Tensor]:
        rows = [examples[i] for i in indices]
        width = max(len(r["input_ids"]) for r in rows)

        def padded(key: str, fill: int) -> torch.Tensor:
            return torch.tensor([r[key] + [fill] * (width - len(r[key])) for r in rows], dtype=torch.long)

        mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows])
        words, tags = padded("word_targets", IGNORE), padded("tags", IGNORE)
        critical = padded("critical_mask", 0).bool()
        # the masked positions depend on the step, the seed and the micro-batch (its first sample) alone
        words, tags = drop_non_critical(words, tags, critical, cfg.mask_fraction, step, seed * 100_003 + indices[0])
        return {"input_ids": padded("input_ids", pad_id), "attention_mask": mask, "words": words, "tags": tags}

    def loss(model: Any, batch: dict[str, torch.Tensor]) -> LossOutput:
        hidden, boundary = model(batch["input_ids"], batch["attention_mask"])
        word_logits = unwrap(model).label_word_logits(hidden)
        loss_sum, units = critic_loss(
            word_logits, batch["words"], boundary, batch["tags"], cfg.focal_gamma, class_weights, cfg.outside_weight
        )
        counted = batch["tags"] != IGNORE
        with torch.no_grad():
            right = (boundary.argmax(-1) == batch["tags"]) & counted
            inside = counted & (batch["tags"] != 0)
            found = right & inside
        metrics = {
            "tag_acc": float(right.sum()) / max(int(counted.sum()), 1),
            "span_recall": float(found.sum()) / max(int(inside.sum()), 1),
        }
        return LossOutput(loss_sum, units, metrics)

    return StaticTask(lengths=[len(e["input_ids"]) for e in examples], collate=collate, loss=loss)


def build_critic(recipe: Recipe, loaded: Any) -> TokenCritic:
    words = label_words(recipe.cprs.granularities)
    ids = label_word_ids(loaded.tokenizer, words)
    return TokenCritic(loaded.model, recipe.cprs.scheme, recipe.cprs.bidirectional_layers, words, ids)


def run_cprs(recipe: Recipe, run_dir: Path, dist: DistInfo, resume: bool = False) -> TrainResult:
    """Train the compressor from recipe.model: LoRA on the LM, a fresh boundary head, the top layers bidirectional."""

    def build(loaded: Any, records: list[Record]) -> Stage:
        critic = build_critic(recipe, loaded)
        examples = cprs_examples(records, recipe, loaded.tokenizer)
        summary = (
            f"compressor: {len(examples)} examples from {len(records)} records "
            f"({', '.join(recipe.cprs.granularities)}), top {critic.bidirectional_layers} layers bidirectional"
        )
        task = cprs_task(examples, recipe, loaded.tokenizer.pad_token_id)
        return Stage(critic, summary, task=task, save=lambda out: save_compressor(critic, loaded.tokenizer, out))

    return run_stage(recipe, run_dir, dist, resume, "cprs", lambda: select_cprs_records(recipe), build)


def save_compressor(critic: TokenCritic, tokenizer: Any, out: Path) -> None:
    """The adapter, boundary head, critic.json and tokenizer in one folder (`cprs.compressor` loads it)."""
    save_final(critic, tokenizer, out, save_model=save_critic)
