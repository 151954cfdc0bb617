"""`repro rl`: QwenLong-L1's curriculum-guided phased RL (GRPO or DAPO) on the engine's online driver."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from repro.config import LoraSection, ModelSection, Recipe, recipe_to_yaml
from repro.data.schema import Record, read_records
from repro.errors import ConfigError, DataError
from repro.fsio import atomic_write_text
from repro.l1.rollout import RlSource
from repro.l1.sft import save_final
from repro.runs import check_resume_plan
from repro.train.dist import DistInfo
from repro.train.loop import TrainResult, train_online

log = logging.getLogger("repro.rl")


def select_rl_records(recipe: Recipe) -> list[Record]:
    """The records RL samples prompts from; read before any model loads, so a bad data file fails at once."""
    cfg = recipe.rl
    records = [
        r
        for r in read_records(cfg.data).records
        if (not cfg.sets or r.length_set in cfg.sets) and (not cfg.tasks or r.task in cfg.tasks)
    ]
    if cfg.limit is not None:
        records = records[: cfg.limit]
    if not records:
        raise DataError(f"{cfg.data}: no record matches rl.sets={cfg.sets} rl.tasks={cfg.tasks or 'all'}")
    return records


def build_judge(recipe: Recipe) -> Any:
    """The LLM judge of the hybrid reward (eval.llm_judge's backend and model), or None when it is off."""
    if not recipe.rl.reward.llm_judge:
        return None
    from repro.l1.rewards import chat_judge, hf_judge

    cfg = recipe.eval.llm_judge
    if not cfg.model:
        raise ConfigError("rl.reward.llm_judge is on but eval.llm_judge.model is empty: name the judge model")
    if cfg.backend == "openai":
        from repro.loong.llm_client import judge_client

        return chat_judge(judge_client(cfg))
    from repro.modeling import load_model

    judge = load_model(ModelSection(source=cfg.model, lora=LoraSection(enabled=False)), training=False)
    return hf_judge(judge.model, judge.tokenizer, cfg.max_new_tokens)


def run_rl(recipe: Recipe, run_dir: Path, dist: DistInfo, resume: bool = False) -> TrainResult:
    """Phased RL from recipe.model (the warm-up SFT policy, merged) with fresh LoRA adapters."""
    from repro.modeling import load_model, load_tokenizer

    if resume:
        check_resume_plan(run_dir, recipe, stage_keys=("rl",))
    records = select_rl_records(recipe)
    # prompts and phases are checked with the tokenizer alone, before the weights load
    source = RlSource(recipe, load_tokenizer(recipe.model), records, build_judge(recipe), dist)
    torch.manual_seed(recipe.seed)  # LoRA's initial A matrices: the same on every rank and every resume
    loaded = load_model(recipe.model, training=True)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "recipe.yaml", recipe_to_yaml(recipe))
        log.info(
            "RL (%s): %d prompts, %d phases, %d rounds of %d prompts x G=%d, into %s",
            recipe.rl.algorithm,
            len(records),
            len(recipe.rl.phases),
            source.sampler.total_steps,
            recipe.rl.prompts_per_round,
            recipe.rl.group_size,
            run_dir,
        )
    result = train_online(
        loaded.model, source, recipe.train, run_dir, dist, loaded.device, loaded.dtype, recipe.seed, resume=resume
    )
    if dist.is_main:
        save_final(loaded.model, loaded.tokenizer, run_dir / "final")
    return result
