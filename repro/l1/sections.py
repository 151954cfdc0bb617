"""QwenLong-L1's recipe section `rl`: the data, the algorithm (GRPO or DAPO), rollouts, reward and curriculum."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from repro.sections import GenerationSection, RewardSection, ranged, ranged_list


@dataclass
class PhaseSection:
    """One phase of QwenLong-L1's length curriculum: prompts up to `max_input_tokens`, for `steps` updates."""

    max_input_tokens: int = ranged(1024, 1)
    steps: int = ranged(1, 1)
    temperature: float | None = ranged(None, 0.0, open_low=True)  # None: rl.generation.temperature


def _default_phases() -> list[PhaseSection]:
    return [PhaseSection(max_input_tokens=1024, steps=8)]


def _check_phases(phases: list[PhaseSection]) -> str | None:
    if not phases:
        return "give at least one phase (- max_input_tokens: N, steps: S)"
    bounds = [p.max_input_tokens for p in phases]
    if any(b >= c for b, c in zip(bounds, bounds[1:], strict=False)):
        return f"phases' max_input_tokens must increase, got {bounds}"
    return None


@dataclass
class RlSection:
    """QwenLong-L1's phased RL: the data, the algorithm (GRPO or DAPO), rollouts, reward and curriculum."""

    data: str = "data/loong-mini/train.jsonl"
    sets: list[int] = ranged_list(list, 1)
    tasks: list[str] = field(default_factory=list)
    limit: int | None = ranged(None, 1)
    prompt_style: Literal["l1", "loong"] = "l1"
    algorithm: Literal["dapo", "grpo"] = "dapo"  # dapo: token-level loss; grpo: sequence-level
    group_size: int = ranged(8, 1)  # G rollouts per prompt
    prompts_per_round: int = ranged(4, 1)  # groups kept per round (the batch)
    mini_batches: int = ranged(1, 1)  # optimizer updates per round and PPO epoch
    ppo_epochs: int = ranged(1, 1)
    eps_low: float = ranged(0.2, 0.0, 1.0)
    eps_high: float = ranged(0.28, 0.0)  # DAPO's clip-higher
    kl_coef: float = ranged(0.0, 0.0)
    scale_std: bool = True  # false: Dr. GRPO's advantages without the std
    dynamic_sampling: bool = True  # drop groups whose rewards are all equal, sample more prompts
    # what dynamic sampling looks at, before overlong shaping: acc (correct or not, reward == 1, the released
    # demo's filter_groups.metric=acc) or score (the rule/judge reward, partial credit included)
    filter_metric: Literal["acc", "score"] = "acc"
    max_gen_batches: int = ranged(3, 1)
    entropy_coef: float = ranged(0.0, 0.0)  # entropy bonus (the paper: 0.001); entropy is logged either way
    generation: GenerationSection = field(
        default_factory=lambda: GenerationSection(max_new_tokens=256, do_sample=True, temperature=0.7, top_p=0.95)
    )
    reward: RewardSection = field(default_factory=RewardSection)
    phases: list[PhaseSection] = field(default_factory=_default_phases, metadata={"check": _check_phases})
    # entering a phase carries the hardest earlier examples in: a share (< 1) or a count (>= 1)
    retrospective: float = ranged(0.25, 0.0)
