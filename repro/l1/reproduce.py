"""`repro l1 reproduce`: QwenLong-L1 end to end, in the order of the paper's method.

1. Default model and data (pipeline.data): the embedded SmolLM2-135M-Instruct and Loong-mini train/test
   (workstation: Loong-mini at the model's lengths and DocQA-RL-1.6K). Writes data/..., artifacts/...
   The base model is evaluated once (OUT/eval-base): greedy decoding does not depend on a seed.
Then for each training seed, into OUT/seed-<seed>/:
2. Warm-up SFT (train.sft): the base model learns to read the documents and answer with a reasoning trace.
   Writes sft (the run) and sft-merged (the policy); SoLoPO and CPRS reuse this policy.
3. Curriculum-guided phased RL (l1.phased_rl) from the SFT policy, once per algorithm: DAPO as the recipe
   says, GRPO as published. Writes rl-<algo> and rl-<algo>-merged.
4. Evaluation (loong.eval) of SFT and each RL policy on held-out Loong-mini. Writes eval-<stage>
   (and eval-<stage>-longbench on a workstation when LongBench was converted).
5. The report (l1.report): OUT/report.md and OUT/summary.json: the paper's claims judged over items x seeds,
   the stage table, exploratory differences, training curves.

Every stage is reused once complete, so a second run (or one after a kill) redoes only what is missing;
OUT/timings.json keeps how long each took when it ran.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from repro.errors import ReproError
from repro.pipeline.data import TEST_DATA, TRAIN_DATA, model_and_data, workstation_loong_mini
from repro.pipeline.profiles import load_profile, stage_values
from repro.pipeline.stages import StageClock, evaluate_policy, load_stage_recipe, seed_folder, train_and_export
from repro.runrecord import write_environment

log = logging.getLogger("repro.reproduce")

DOCQA_RL_DATA = "data/docqa-rl/train.jsonl"
DOCQA_RL_HUB = "Tongyi-Zhiwen/DocQA-RL-1.6K"
LONGBENCH_DATA = "data/longbench/test.jsonl"
ALGORITHMS = ("dapo", "grpo")
# what `--redo` can name, in the order they run: the base evaluation, SFT, RL, the policies' evaluations
REDO_STAGES = ("base", "sft", "rl", "eval")
# GRPO as published, against the recipe's DAPO: symmetric clip 0.2, sequence-level averaging, no dynamic
# sampling, no overlong shaping; the KL coefficient, entropy bonus and the rest stay as the recipe says.
GRPO_VALUES = {
    "rl.algorithm": "grpo",
    "rl.eps_low": 0.2,
    "rl.eps_high": 0.2,
    "rl.dynamic_sampling": False,
    "rl.reward.overlong_buffer": 0,
}


@dataclass
class L1Profile:
    """One entry of recipes/profiles/l1.yaml."""

    budget: str
    recipes: dict[str, str]  # sft, rl, eval
    algorithms: list[Literal["dapo", "grpo"]]
    set: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage (sft, rl, eval) -> recipe values
    seeds: list[int] = field(default_factory=lambda: [0])  # training seeds: SFT and RL once per seed
    scale_note: str = ""  # how the profile scales the paper down, for the report
    longer: str = ""  # what the next longer profile would add, for the report
    data: Literal["loong-mini", "workstation"] = "loong-mini"
    sft_data: str = TRAIN_DATA
    rl_data: str = TRAIN_DATA
    test_data: str = TEST_DATA


def algorithm_values(name: str) -> dict[str, Any]:
    """The recipe values that turn the RL recipe into the arm `name` (dapo: the recipe as it is; grpo: as published)."""
    return GRPO_VALUES if name == "grpo" else {"rl.algorithm": "dapo"}


def reproduce_l1(
    profile_name: str,
    out: Path,
    algorithms: tuple[str, ...] | None = None,
    seeds: tuple[int, ...] | None = None,
    redo: str | None = None,
) -> Path:
    """Run (or finish) every stage of the QwenLong-L1 reproduction into `out`, once per training seed (the
    profile's seeds unless given); `redo` (one of REDO_STAGES) runs that stage and every later one afresh.
    Returns report.md's path."""
    from repro.l1.phased_rl import run_rl
    from repro.l1.report import write_l1_report
    from repro.train.sft import run_sft

    profile = load_profile("l1", profile_name, L1Profile)
    chosen = algorithms or tuple(profile.algorithms)
    for name in chosen:
        if name not in ALGORITHMS:
            raise ReproError(f"--algorithms: expected dapo and/or grpo, got '{name}'")
    seeds = seeds or tuple(profile.seeds)
    # every recipe is read and checked before anything runs
    sft_values = {"sft.data": profile.sft_data, **stage_values(profile.set, "sft")}
    sft = {s: load_stage_recipe(profile.recipes["sft"], {**sft_values, "seed": s}, "l1-sft") for s in seeds}
    rl_values = {"rl.data": profile.rl_data, **stage_values(profile.set, "rl")}
    rl = {
        (s, a): load_stage_recipe(profile.recipes["rl"], {**rl_values, **algorithm_values(a), "seed": s}, f"l1-{a}")
        for s in seeds
        for a in chosen
    }
    base_model = sft[seeds[0]].model.source
    out.mkdir(parents=True, exist_ok=True)
    write_environment(out, seed=list(seeds), data_files=[profile.sft_data, profile.rl_data, profile.test_data])
    clock = StageClock(out, redo)

    with clock("default model and data"):
        if profile.data == "workstation":
            _workstation_data(sft[seeds[0]])
        else:
            model_and_data(base_model)
    evals: dict[str, list[Path]] = {"base": []}
    with clock("evaluate base", key="base"):
        evals["base"].append(_evaluate(profile, "base", base_model, out, profile.test_data))
    rl_runs = {}
    policies: dict[str, str] = {"base": base_model}
    for seed in seeds:
        where = seed_folder(out, seed)
        with clock(f"warm-up SFT (seed {seed})", key="sft"):
            sft_merged = train_and_export("sft", sft[seed], where, run_sft)
        policies["sft"] = str(sft_merged)
        for algo in chosen:
            with clock(f"RL ({algo}, seed {seed})", key="rl"):
                rl[(seed, algo)].model.source = str(sft_merged)
                policies[algo] = str(train_and_export(f"rl-{algo}", rl[(seed, algo)], where, run_rl))
                rl_runs.setdefault(algo.upper(), where / f"rl-{algo}")
        for stage in ("sft", *chosen):
            with clock(f"evaluate {stage} (seed {seed})", key="eval"):
                run = _evaluate(profile, stage, policies[stage], where, profile.test_data)
                evals.setdefault(_label(stage), []).append(run)
    extra = _longbench_evals(profile, policies, out, clock)

    notes = [
        f"Profile `{profile_name}` ({profile.budget}); algorithms: {', '.join(chosen)}; training seeds: "
        f"{', '.join(map(str, seeds))} (base is evaluated once: greedy decoding does not depend on a seed).",
        *clock.lines(),
        profile.scale_note,
        *([f"What a longer profile adds: {profile.longer}"] if profile.longer else []),
        *extra,
    ]
    sft_run = seed_folder(out, seeds[0]) / "sft"
    return write_l1_report(out, evals, rl_runs, notes, profile_name, seeds, clock.times, sft_run)


def _label(stage: str) -> str:
    return {"base": "base", "sft": "SFT"}.get(stage, stage.upper())


def _workstation_data(sft: Any) -> None:
    """Loong-mini at the workstation recipe's set ranges (counted with its tokenizer) and DocQA-RL-1.6K."""
    from repro.data.converters import convert
    from repro.data.schema import write_records

    workstation_loong_mini(sft)
    if not Path(DOCQA_RL_DATA).is_file():
        write_records(DOCQA_RL_DATA, convert("docqa-rl", DOCQA_RL_HUB))
        log.info("%s -> %s", DOCQA_RL_HUB, DOCQA_RL_DATA)


def _longbench_evals(profile: L1Profile, policies: dict[str, str], out: Path, clock: StageClock) -> list[str]:
    """The workstation profile also scores each policy on LongBench QA when it was converted beforehand."""
    if profile.data != "workstation":
        return []
    if not Path(LONGBENCH_DATA).is_file():
        return [f"LongBench not evaluated: {LONGBENCH_DATA} is missing (see docs/l1.md, 'The workstation profile')."]
    lines = []
    for stage, source in policies.items():
        with clock(f"evaluate {stage} on LongBench", key="eval"):
            run_dir = _evaluate(profile, f"{stage}-longbench", source, out, LONGBENCH_DATA)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        lines.append(
            f"LongBench ({LONGBENCH_DATA}, {metrics['n']} items), {_label(stage)}: avg score {metrics['avg_score']} "
            f"({metrics['n'] - metrics['n_parsed']} unparsed judgements left out)"
        )
    return lines


def _evaluate(profile: L1Profile, stage: str, source: str, out: Path, data: str) -> Path:
    values = stage_values(profile.set, "eval")
    return evaluate_policy(profile.recipes["eval"], values, source, data, out / f"eval-{stage}")
