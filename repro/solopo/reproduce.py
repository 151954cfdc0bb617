"""`repro solopo reproduce`: SoLoPO end to end, in the order of the paper's method.

1. Default model and data (pipeline.data): Loong-mini with distractors, long = every document, short = the
   needed ones; the held-out records' short contexts beside them. Writes data/loong-mini-solopo/...
2. The policy pairs come from: the L1 warm-up SFT policy (pipeline.policy; reused from the L1 reproduction's
   folder, or trained there), or on a workstation the recipe's own model.
3. Pairs (solopo.sample): K samples per example on the short context, and for plain long-context PO on the
   long one; a correct response against a wrong one. Writes OUT/pairs-short, OUT/pairs-long.
4. Preference optimisation (solopo.train), per algorithm (DPO, SimPO, ORPO): SoLoPO (PO on short + SoLo-RA),
   plain long-context PO, and for DPO expand-long (short pairs trained on long). Writes OUT/<algo>-<mode>.
5. Evaluation of the start policy and every trained one on long and on short held-out contexts. Writes
   OUT/eval-<policy>, OUT/eval-<policy>-short.
6. Efficiency (solopo.bench): step time and peak memory of each mode at growing long lengths. OUT/efficiency.json.
7. The report (solopo.report): OUT/report.md.

Every stage is reused once complete.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from repro.config import Recipe
from repro.errors import ReproError
from repro.fsio import atomic_write_json
from repro.pipeline.data import model_and_data
from repro.pipeline.policy import warmup_sft_policy
from repro.pipeline.profiles import load_profile, stage_values
from repro.pipeline.stages import (
    StageClock,
    clear_if_redoing,
    evaluate_policy,
    load_stage_recipe,
    seed_folder,
    train_and_export,
)
from repro.runrecord import write_environment

log = logging.getLogger("repro.reproduce")

TRAIN_DATA = "data/loong-mini-solopo/train.jsonl"
TEST_DATA = "data/loong-mini-solopo/test.jsonl"
ALGO_LABELS = {"dpo": "DPO", "simpo": "SimPO", "orpo": "ORPO"}
# what `--redo` can name: pair sampling, training, evaluation, the efficiency measurement
REDO_STAGES = ("pairs", "train", "eval", "efficiency")
CPU_NOTES = [
    "Scaled down against the paper: SmolLM2-135M-Instruct after the L1 warm-up SFT instead of Qwen2.5-7B-Instruct, "
    "Loong-mini set 1 with 10 distractor documents (long prompts of 1.1-2K tokens, 3-7x the short ones) instead of "
    "MuSiQue at 1.1K/7.5K tokens, 8 samples per short context instead of 32, and a few dozen pairs instead of 5,000.",
    "Pairs are sampled at temperature 1.4, not the paper's 0.85: the warm-up SFT policy of 135M parameters is "
    "nearly deterministic, and at 0.85 most examples' 8 samples tie (no pair).",
]
WORKSTATION_NOTES = [
    "Scaled down against the paper: Qwen2.5-1.5B-Instruct (QLoRA) instead of Qwen2.5-7B-Instruct, on MuSiQue "
    "(short = supporting paragraphs, long = all), evaluated on held-out MuSiQue instead of LongBench and RULER.",
]


@dataclass
class Efficiency:
    """The efficiency stage's shape: long = ratio x short tokens; the memory cap of the longest-context fit."""

    short_tokens: int = 256
    ratios: list[int] = field(default_factory=lambda: [4, 8])
    cap_mib: float = 6144.0


@dataclass
class SoloProfile:
    """One entry of recipes/profiles/solopo.yaml."""

    budget: str
    recipe: str
    eval_recipe: str
    algorithms: list[Literal["dpo", "simpo", "orpo"]]
    set: dict[str, dict[str, Any]] = field(default_factory=dict)  # pairs, train, eval, short_eval -> values
    efficiency: Efficiency = field(default_factory=Efficiency)
    # the policy pairs are sampled from: the L1 warm-up SFT policy ("l1-sft") or the recipe's own model
    policy: Literal["l1-sft", "recipe"] = "l1-sft"
    seeds: list[int] = field(default_factory=lambda: [0])  # pairs, training and evaluation once per seed
    longer: str = ""  # what the next longer profile would add, for the report
    train_data: str = TRAIN_DATA
    test_data: str = TEST_DATA


def reproduce_solopo(
    profile_name: str,
    out: Path,
    algorithms: tuple[str, ...] | None = None,
    l1_out: Path = Path("runs/reproduce-l1"),
    seeds: tuple[int, ...] | None = None,
    redo: str | None = None,
) -> Path:
    """Run (or finish) every stage of the SoLoPO reproduction into `out`, once per training seed (the profile's
    unless given); returns report.md's path."""
    from repro.solopo.report import write_solopo_report

    profile = load_profile("solopo", profile_name, SoloProfile)
    chosen = algorithms or tuple(profile.algorithms)
    for name in chosen:
        if name not in ALGO_LABELS:
            raise ReproError(f"--algorithms: expected dpo, simpo and/or orpo, got '{name}'")
    seeds = seeds or tuple(profile.seeds)
    base = load_stage_recipe(profile.recipe, {}, "solopo")  # checked before anything runs
    out.mkdir(parents=True, exist_ok=True)
    write_environment(out, seed=list(seeds), data_files=[profile.train_data, profile.test_data])
    clock = StageClock(out, redo)

    with clock("default model and data"):
        if profile.policy == "l1-sft":
            model_and_data(base.model.source)
            _solopo_data(base)
        _short_test_file(profile.test_data)
    long_evals: dict[str, list[Path]] = {}
    short_evals: dict[str, list[Path]] = {}
    train_runs, skipped, pair_lines = {}, [], []
    long_values, short_values = stage_values(profile.set, "eval"), stage_values(profile.set, "short_eval")

    def evaluate(label: str, source: str, where: Path) -> None:
        slug = label.lower().replace(" ", "-")
        with clock(f"evaluate {label} (long, {where.name})", key="eval"):
            run = evaluate_policy(profile.eval_recipe, long_values, source, profile.test_data, where / f"eval-{slug}")
            long_evals.setdefault(label, []).append(run)
        with clock(f"evaluate {label} (short, {where.name})", key="eval"):
            short_dir = where / f"eval-{slug}-short"
            run = evaluate_policy(profile.eval_recipe, short_values, source, _short_path(profile.test_data), short_dir)
            short_evals.setdefault(label, []).append(run)

    if profile.policy != "l1-sft":  # the recipe's own model: one start policy for every seed
        evaluate("base", base.model.source, out)
    for seed in seeds:
        where = seed_folder(out, seed)
        if profile.policy == "l1-sft":
            with clock(f"warm-up SFT (L1's, seed {seed})", keep=True):
                start = warmup_sft_policy("gpu" if profile_name == "gpu" else "cpu", l1_out, seed)
            evaluate("SFT", str(start), where)
        else:
            start = Path(base.model.source)
        pairs = {}
        for context in ("short", "long"):
            with clock(f"pairs on the {context} context (seed {seed})", key="pairs"):
                pairs[context] = _pairs(profile, context, start, where, seed)
        counts = {context: _pair_count(path) for context, path in pairs.items()}
        pair_lines += [_pairs_line(where, context, seed) for context in pairs]
        for algo in chosen:
            for mode in ("solopo", "long", *(("expand_long",) if algo == "dpo" else ())):
                label = f"{ALGO_LABELS[algo]} {mode}"
                context = "long" if mode == "long" else "short"
                if counts[context] == 0:
                    skipped.append(f"{label} (seed {seed})")
                    continue
                with clock(f"train {label} (seed {seed})", key="train"):
                    recipe = _train_recipe(profile, algo, mode, pairs[context], start, counts[context], seed)
                    policy = str(_train(recipe, f"{algo}-{mode}", where))
                    train_runs.setdefault(label, where / f"{algo}-{mode}")
                evaluate(label, policy, where)
    with clock("efficiency", key="efficiency"):
        efficiency = _efficiency(profile, base.model.source, out)

    notes = [
        f"Profile `{profile_name}` ({profile.budget}); algorithms: {', '.join(chosen)}; training seeds: "
        f"{', '.join(map(str, seeds))}.",
        *clock.lines(),
        *(CPU_NOTES if profile.policy == "l1-sft" else WORKSTATION_NOTES),
        *pair_lines,
        *([f"Not trained (no pair to train on): {', '.join(skipped)}."] if skipped else []),
        *([f"What a longer profile adds: {profile.longer}"] if profile.longer else []),
    ]
    evals = (long_evals, short_evals, train_runs, efficiency)
    return write_solopo_report(out, *evals, notes, profile_name, seeds, clock.times)


def _solopo_data(base: Recipe) -> None:
    """Loong-mini with distractors at the recipe's set ranges (train, test)."""
    from repro.data.loong_mini import generate
    from repro.data.schema import write_records

    ranges = {k: (v[0], v[1]) for k, v in base.loong_mini.set_ranges.items()}
    common = {"sets": sorted(ranges), "distractors": base.loong_mini.distractors, "set_ranges": ranges}
    for path, kwargs in ((TRAIN_DATA, {"n": 600}), (TEST_DATA, {"n": 200, "split": "test", "seed": 1})):
        if not Path(path).is_file():
            write_records(path, generate(**kwargs, **common))
            log.info("Loong-mini with %d distractors -> %s", base.loong_mini.distractors, path)


def _short_path(test_data: str) -> str:
    return str(Path(test_data).with_name(Path(test_data).stem + "-short.jsonl"))


def _short_test_file(test_data: str) -> None:
    """The held-out records with only their needed documents (the short contexts), beside the test file."""
    from repro.data.schema import read_records, write_records
    from repro.solopo.sample import short_record

    if not Path(test_data).is_file():
        raise ReproError(f"{test_data} is missing: convert MuSiQue first (docs/solopo.md, 'On a workstation')")
    if not Path(_short_path(test_data)).is_file():
        records = [r for r in read_records(test_data).records if r.needed_docs is not None]
        write_records(_short_path(test_data), [short_record(r) for r in records])


def _pairs(profile: SoloProfile, context: str, policy: Path, out: Path, seed: int) -> Path:
    from repro.solopo.sample import PAIRS_FILE, make_pairs

    run_dir = out / f"pairs-{context}"
    clear_if_redoing(run_dir)
    if not (run_dir / "summary.json").is_file():
        values = {"model.source": str(policy), "solopo.data": profile.train_data, "solopo.context": context}
        values["seed"] = seed
        values.update(stage_values(profile.set, "pairs"))
        recipe = load_stage_recipe(profile.recipe, values, f"solopo-pairs-{context}")
        make_pairs(recipe, run_dir, resume=run_dir.is_dir())
    return run_dir / PAIRS_FILE


def _pair_count(pairs: Path) -> int:
    return int(json.loads((pairs.parent / "summary.json").read_text())["pairs"])


def _pairs_line(out: Path, context: str, seed: int) -> str:
    s = json.loads((out / f"pairs-{context}" / "summary.json").read_text())
    if "no_correct" not in s:  # pairs made before they were a correct against a wrong response
        return f"Pairs sampled on the {context} context (best against worst): {s['pairs']} from {s['examples']}."
    return (
        f"Pairs sampled on the {context} context, seed {seed} (a correct response against a wrong one): "
        f"{s['pairs']} from "
        f"{s['examples']} examples ({s['no_correct']} skipped: no response correct; {s['no_wrong']}: no response "
        f"wrong; {s['too_long']}: needed documents over the prompt budget)."
    )


def _train_recipe(
    profile: SoloProfile, algo: str, mode: str, pairs: Path, policy: Path, n_pairs: int, seed: int
) -> Recipe:
    values = {
        "seed": seed,
        "model.source": str(policy),
        "solopo.pairs": str(pairs),
        "solopo.algorithm": algo,
        "solopo.mode": mode,
        **stage_values(profile.set, "train"),
    }
    recipe = load_stage_recipe(profile.recipe, values, f"solopo-{algo}-{mode}")
    if n_pairs < recipe.train.micro_batch_size * recipe.train.grad_accum:  # too few pairs for one full step
        recipe.train.micro_batch_size, recipe.train.grad_accum = min(recipe.train.micro_batch_size, n_pairs), 1
    return recipe


def _train(recipe: Recipe, stage: str, out: Path) -> Path:
    from repro.solopo.train import run_solopo

    return train_and_export(stage, recipe, out, run_solopo)


def _efficiency(profile: SoloProfile, model: str, out: Path) -> dict:
    """Step time and peak memory of each mode at each long length (python -m repro.bench solopo's cases)."""
    from repro.solopo.bench import efficiency

    path = out / "efficiency.json"
    clear_if_redoing(path)
    if path.is_file():
        return json.loads(path.read_text())
    shape = profile.efficiency
    args = (shape.short_tokens, list(shape.ratios), 64, 2, shape.cap_mib)
    result = efficiency(str(Path(model).absolute()), *args)
    atomic_write_json(path, result)
    return result
