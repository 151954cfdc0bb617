"""The warm-up SFT policy the reproductions share: L1 trains it, SoLoPO samples pairs from it, CPRS reads with it."""

from __future__ import annotations

from pathlib import Path

from repro.pipeline.data import TRAIN_DATA
from repro.pipeline.profiles import profile_table, stage_values
from repro.pipeline.stages import load_stage_recipe, seed_folder, train_and_export

SFT_STAGE = "sft"


def warmup_sft_policy(l1_profile: str, l1_out: Path, seed: int = 0) -> Path:
    """The merged warm-up SFT policy of the L1 profile `l1_profile` (recipes/profiles/l1.yaml) and training
    seed: reused from l1_out/seed-<seed>/sft-merged, or trained there as `repro l1 reproduce` would."""
    from repro.train.sft import run_sft

    entry = profile_table("l1")[l1_profile]
    values = {"sft.data": entry.get("sft_data", TRAIN_DATA), **stage_values(entry.get("set") or {}, "sft")}
    recipe = load_stage_recipe(entry["recipes"]["sft"], {**values, "seed": seed}, "l1-sft")
    where = seed_folder(l1_out, seed)
    where.mkdir(parents=True, exist_ok=True)
    return train_and_export(SFT_STAGE, recipe, where, run_sft)
