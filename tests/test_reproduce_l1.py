"""The L1 reproduction's recipes: the DAPO arm as the recipe says, the GRPO arm as published."""

from __future__ import annotations

from repro.l1.reproduce import L1Profile, algorithm_values
from repro.pipeline.profiles import load_profile, stage_values
from repro.pipeline.stages import load_stage_recipe


def arm(name: str):
    profile = load_profile("l1", "cpu", L1Profile)
    values = {**stage_values(profile.set, "rl"), **algorithm_values(name)}
    return load_stage_recipe(profile.recipes["rl"], values, f"l1-{name}")


def test_the_grpo_arm_is_grpo_as_published_and_the_dapo_arm_the_recipe():
    dapo, grpo = arm("dapo"), arm("grpo")
    # DAPO: clip-higher, token-level averaging, dynamic sampling, overlong shaping (the tiny recipe's values)
    assert (dapo.rl.algorithm, dapo.rl.eps_low, dapo.rl.eps_high) == ("dapo", 0.2, 0.28)
    assert dapo.rl.dynamic_sampling is True and dapo.rl.reward.overlong_buffer == 32
    # GRPO: symmetric clip 0.2, sequence-level averaging, every group trains, no length penalty
    assert (grpo.rl.algorithm, grpo.rl.eps_low, grpo.rl.eps_high) == ("grpo", 0.2, 0.2)
    assert grpo.rl.dynamic_sampling is False and grpo.rl.reward.overlong_buffer == 0
    # what GRPO and DAPO share stays as the recipe says: KL, entropy bonus, updates per round, the format gate
    for key in ("kl_coef", "entropy_coef", "mini_batches", "ppo_epochs", "group_size", "prompts_per_round"):
        assert getattr(grpo.rl, key) == getattr(dapo.rl, key), key
    assert grpo.rl.reward.require_format is dapo.rl.reward.require_format is True
    assert dapo.rl.entropy_coef == 0.001 and dapo.rl.mini_batches > 1
