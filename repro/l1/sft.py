"""`repro sft`: QwenLong-L1's warm-up SFT on (documents, question) -> reasoning + answer, through the shared loop."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from repro.config import Recipe, recipe_to_yaml
from repro.data.schema import Record, read_records
from repro.errors import DataError
from repro.fsio import atomic_write_text, swap_folder
from repro.l1.sft_data import SftSample, build_sft_sample
from repro.progress import hf_bars
from repro.runs import check_resume_plan
from repro.train.batching import pack_batch, pad_batch
from repro.train.dist import DistInfo
from repro.train.engine import LossOutput
from repro.train.logprobs import chunked_cross_entropy
from repro.train.loop import StaticTask, TrainResult, train_static

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
    from repro.modeling import load_model

    if resume:
        check_resume_plan(run_dir, recipe, stage_keys=("sft",))
    records = select_sft_records(recipe)
    torch.manual_seed(recipe.seed)  # LoRA's initial A matrices: the same on every rank and every resume
    loaded = load_model(recipe.model, training=True)
    samples = load_sft_samples(recipe, loaded.tokenizer, records)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "recipe.yaml", recipe_to_yaml(recipe))
        n_tokens = sum(len(s) for s in samples)
        log.info("%d SFT samples, %d tokens, into %s", len(samples), n_tokens, run_dir)
    task = sft_task(samples, recipe, loaded.tokenizer.pad_token_id)
    result = train_static(
        loaded.model, task, recipe.train, run_dir, dist, loaded.device, loaded.dtype, recipe.seed, resume=resume
    )
    if dist.is_main:
        save_final(loaded.model, loaded.tokenizer, run_dir / "final")
    return result


def save_final(model: Any, tokenizer: Any, out: Path) -> None:
    """The trained adapters (or full weights) and the tokenizer, as `from_pretrained` / peft can load them."""
    tmp = out.with_name(out.name + ".tmp")
    with hf_bars(enabled=False):
        model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    swap_folder(tmp, out)
