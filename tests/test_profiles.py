"""Reproduction profiles are data: every profile of every paper reads into its schema, and every value it sets
is a key of the recipe it sets it on."""

from __future__ import annotations

import pytest

from repro.cprs.reproduce import CprsProfile
from repro.errors import ConfigError, ReproError
from repro.l1.reproduce import L1Profile
from repro.pipeline import profiles
from repro.pipeline.profiles import load_profile, profile_table, stage_values
from repro.pipeline.stages import load_stage_recipe
from repro.solopo.reproduce import SoloProfile

SCHEMAS = {"l1": L1Profile, "solopo": SoloProfile, "cprs": CprsProfile}


def stage_recipes(paper: str, profile) -> dict[str, str]:
    """Each stage the profile sets values for -> the recipe those values apply to."""
    if paper == "l1":
        return dict(profile.recipes)
    if paper == "solopo":
        return {"pairs": profile.recipe, "train": profile.recipe, "eval": profile.eval_recipe,
                "short_eval": profile.eval_recipe}  # fmt: skip
    return {"train": profile.recipe, "eval": profile.eval_recipe}


@pytest.mark.parametrize(("paper", "name"), [(p, n) for p in SCHEMAS for n in profile_table(p)])
def test_every_profile_reads_and_sets_only_keys_its_recipes_have(paper, name):
    profile = load_profile(paper, name, SCHEMAS[paper])
    recipes = stage_recipes(paper, profile)
    assert set(profile.set) <= set(recipes), f"{paper}/{name}: a stage without a recipe"
    for stage, recipe in recipes.items():
        load_stage_recipe(recipe, stage_values(profile.set, stage), f"{paper}-{stage}")


def test_the_cpu_l1_profile_sizes_its_stages_as_its_table_says():
    profile = load_profile("l1", "cpu", L1Profile)
    assert (profile.algorithms, profile.data) == (["dapo"], "loong-mini")
    evaluation = load_stage_recipe(profile.recipes["eval"], stage_values(profile.set, "eval"), "eval")
    assert evaluation.eval.sets == [1, 2] and evaluation.eval.generation.max_new_tokens == 256
    # spotlight among RL's tasks (the recipe alone trains comparison and chain of reasoning), one training seed
    rl = load_stage_recipe(profile.recipes["rl"], stage_values(profile.set, "rl"), "rl")
    assert rl.rl.tasks == ["spotlight", "comparison", "chain_of_reasoning"] and profile.seeds == [0]
    assert load_profile("l1", "cpu-long", L1Profile).seeds == [0, 1]


def test_a_profile_name_or_key_that_does_not_exist_is_one_clear_error(tmp_path, monkeypatch):
    with pytest.raises(ReproError, match="--profile: expected one of cpu, cpu-long, gpu, workstation, got 'fast'"):
        load_profile("l1", "fast", L1Profile)
    (tmp_path / "l1.yaml").write_text(
        "cpu:\n  budget: x\n  recipes: {}\n  algorithms: [dapo]\n  algorithm: [grpo]\n", encoding="utf-8"
    )
    monkeypatch.setattr(profiles, "PROFILE_DIR", tmp_path)
    with pytest.raises(ConfigError, match=r"l1.yaml, profile 'cpu': unknown key 'algorithm' \(did you mean"):
        load_profile("l1", "cpu", L1Profile)
    (tmp_path / "l1.yaml").write_text("cpu:\n  budget: x\n  recipes: {}\n  algorithms: [ppo]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="key 'algorithms'"):
        load_profile("l1", "cpu", L1Profile)
    (tmp_path / "l1.yaml").write_text("cpu:\n  recipes: {}\n  algorithms: [dapo]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="missing key 'budget'"):
        load_profile("l1", "cpu", L1Profile)


def test_redo_clears_the_named_stage_and_every_later_one_but_never_a_kept_one(tmp_path):
    from repro.pipeline.stages import StageClock, clear_if_redoing

    outputs = {name: tmp_path / name for name in ("sft", "rl", "l1-policy", "eval")}
    for path in outputs.values():
        (path / "sub").mkdir(parents=True)
    clock = StageClock(tmp_path, redo="rl")
    stages = (("sft", "sft", False), ("rl", "rl", False), ("l1-policy", None, True), ("eval", "eval", False))
    for name, key, keep in stages:
        with clock(name, key=key, keep=keep):
            clear_if_redoing(outputs[name])
    # before the named stage: kept; the named one and the later ones: cleared; a kept stage: never
    assert [outputs[n].exists() for n in ("sft", "rl", "l1-policy", "eval")] == [True, False, True, False]
    clear_if_redoing(outputs["sft"])  # outside any stage nothing is redone
    assert outputs["sft"].exists()
