"""`repro l1 rl`: QwenLong-L1's curriculum-guided phased RL (GRPO or DAPO) on the engine's online driver."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from repro.config import LoraSection, ModelSection, Recipe
from repro.data.schema import Record, read_records
from repro.errors import ConfigError, DataError
from repro.l1.rollout import RlSource
from repro.train.dist import DistInfo
from repro.train.loop import TrainResult
from repro.train.runner import Stage, run_stage

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
    from repro.modeling import load_tokenizer

    def read() -> RlSource:
        # the data file first (no model needed), then prompts and phases with the tokenizer alone,
        # all before the weights load
        records = select_rl_records(recipe)
        tokenizer = load_tokenizer(recipe.model)
        return RlSource(recipe, tokenizer, records, build_judge(recipe), dist, run_dir)

    def build(loaded: Any, source: RlSource) -> Stage:
        cfg = recipe.rl
        summary = (
            f"RL ({cfg.algorithm}): {len(source.records)} prompts, {len(cfg.phases)} phases, "
            f"{source.sampler.total_steps} rounds of {cfg.prompts_per_round} prompts x G={cfg.group_size}, "
            f"{source.updates_per_round} updates a round"
        )
        return Stage(loaded.model, summary, task=source)

    return run_stage(recipe, run_dir, dist, resume, "rl", read, build)
