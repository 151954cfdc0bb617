"""Supervised fine-tuning on documents + question -> reasoning + answer: L1's warm-up stage, the others' start."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from repro.config import Recipe
from repro.data.schema import Record, read_records
from repro.errors import DataError
from repro.train.batching import pack_batch, pad_batch
from repro.train.dist import DistInfo
from repro.train.engine import LossOutput
from repro.train.logprobs import chunked_cross_entropy
from repro.train.loop import StaticTask, TrainResult
from repro.train.runner import Stage, run_stage
from repro.train.sft_data import SftSample, build_sft_sample

log = logging.getLogger("repro.sft")


def select_sft_records(recipe: Recipe) -> list[Record]:
    """The records the recipe trains on; read before any model loads, so a bad data file fails at once."""
    cfg = recipe.sft
    records = read_records(cfg.data).records
    records = [
        r
        for r in records
        if r.reasoning and (not cfg.sets or r.length_set in cfg.sets) and (not cfg.tasks or r.task in cfg.tasks)
    ]
    if cfg.limit is not None:
        records = records[: cfg.limit]
    if not records:
        raise DataError(f"{cfg.data}: no record with a reasoning trace to train on (field 'reasoning')")
    return records


def load_sft_samples(recipe: Recipe, tokenizer: Any, records: list[Record] | None = None) -> list[SftSample]:
    cfg = recipe.sft
    records = select_sft_records(recipe) if records is None else records
    samples, too_long = [], 0
    for record in records:
        sample = build_sft_sample(record, tokenizer, cfg.max_seq_tokens)
        if len(sample) > cfg.max_seq_tokens:
            too_long += 1  # the response alone does not fit
            continue
        samples.append(sample)
    if too_long:
        log.warning(
            "%d samples skipped: their response alone exceeds sft.max_seq_tokens=%d", too_long, cfg.max_seq_tokens
        )
    if not samples:
        raise DataError(f"{cfg.data}: no sample fits sft.max_seq_tokens={cfg.max_seq_tokens}")
    return samples


def sft_task(samples: list[SftSample], recipe: Recipe, pad_id: int) -> StaticTask:
    cfg = recipe.train

    def collate(indices: list[int], step: int, seed: int) -> dict[str, torch.Tensor]:
        seqs = [samples[i].input_ids for i in indices]
        labels = [samples[i].labels for i in indices]
        return pack_batch(seqs, labels) if cfg.pack else pad_batch(seqs, pad_id, labels, side="right")

    def loss(model: Any, batch: dict[str, torch.Tensor]) -> LossOutput:
        # units: the response tokens the cross-entropy counted
        loss_sum, n_targets = chunked_cross_entropy(
            model,
            batch["input_ids"],
            batch.get("attention_mask"),
            batch["labels"],
            chunk_size=cfg.logprob_chunk,
            position_ids=batch.get("position_ids"),
        )
        return LossOutput(loss_sum, n_targets)

    return StaticTask(lengths=[len(s) for s in samples], collate=collate, loss=loss)


def run_sft(recipe: Recipe, run_dir: Path, dist: DistInfo, resume: bool = False) -> TrainResult:
    """Warm-up SFT from recipe.model with fresh LoRA adapters on recipe.sft's records."""

    def build(loaded: Any, records: list[Record]) -> Stage:
        samples = load_sft_samples(recipe, loaded.tokenizer, records)
        task = sft_task(samples, recipe, loaded.tokenizer.pad_token_id)
        summary = f"{len(samples)} SFT samples, {sum(len(s) for s in samples)} tokens"
        return Stage(loaded.model, summary, task=task)

    return run_stage(recipe, run_dir, dist, resume, "sft", lambda: select_sft_records(recipe), build)
