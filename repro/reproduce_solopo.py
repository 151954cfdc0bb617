"""`repro reproduce solopo`: SoLoPO end to end — data, SFT policy, pairs, DPO/SimPO/ORPO per mode, evals, report.

Every stage writes its own folder under the output root and is reused when complete; the warm-up SFT policy
is the QwenLong-L1 reproduction's (reused from its folder when `reproduce l1` made it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from repro.config import Recipe
from repro.errors import ReproError
from repro.fsio import atomic_write_json

log = logging.getLogger("repro.reproduce")

TRAIN_DATA = "data/loong-mini-solopo/train.jsonl"
TEST_DATA = "data/loong-mini-solopo/test.jsonl"
MUSIQUE_TRAIN = "data/musique/train.jsonl"
MUSIQUE_TEST = "data/musique/test.jsonl"
ALGO_LABELS = {"dpo": "DPO", "simpo": "SimPO", "orpo": "ORPO"}
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
class SoloProfile:
    """What one profile runs: the recipes, the overrides that size each stage, the algorithms, the bench shape."""

    recipe: str
    eval_recipe: str
    algorithms: tuple[str, ...]
    pairs: list[str] = field(default_factory=list)
    train: list[str] = field(default_factory=list)
    eval: list[str] = field(default_factory=list)
    short_eval: list[str] = field(default_factory=list)
    # efficiency: long = ratio x short tokens, each mode measured in its own process; memory cap for the fit
    bench_short_tokens: int = 256
    bench_ratios: tuple[int, ...] = (4, 8)
    bench_cap_mib: float = 6144.0
    budget: str = ""
    # the policy pairs are sampled from: the L1 warm-up SFT policy ("l1-sft") or the recipe's own model
    policy: str = "l1-sft"
    train_data: str = TRAIN_DATA
    test_data: str = TEST_DATA


_EVAL = ["eval.sets=[1]", "eval.tasks=[spotlight, comparison]", "eval.generation.max_new_tokens=128"]
PROFILES = {
    # 2 CPU cores, about 60 minutes with the L1 SFT policy reused
    "cpu": SoloProfile(
        "recipes/tiny/solopo.yaml",
        "recipes/tiny/loong_eval.yaml",
        ("dpo", "simpo", "orpo"),
        pairs=["solopo.limit=28", "solopo.generation.temperature=1.4"],
        train=["train.max_steps=5"],
        eval=[*_EVAL, "eval.limit=24"],
        short_eval=[*_EVAL, "eval.limit=24"],
        budget="2 CPU cores, about 60 minutes with the L1 warm-up SFT reused",
    ),
    # 2 CPU cores, about 90 minutes: DPO and SimPO (ORPO separated at `cpu`), twice the pairs trained for
    # one full epoch each, three times the long-context evaluation items
    "cpu-long": SoloProfile(
        "recipes/tiny/solopo.yaml",
        "recipes/tiny/loong_eval.yaml",
        ("dpo", "simpo"),
        pairs=["solopo.limit=56", "solopo.generation.temperature=1.4"],
        eval=[*_EVAL, "eval.limit=72"],
        short_eval=[*_EVAL, "eval.limit=24"],
        bench_ratios=(4, 8, 16),
        budget="2 CPU cores, about 90 minutes with the L1 warm-up SFT reused",
    ),
    # one GPU: more pairs and samples, longer contexts measured
    "gpu": SoloProfile(
        "recipes/tiny/solopo.yaml",
        "recipes/tiny/loong_eval.yaml",
        ("dpo", "simpo", "orpo"),
        pairs=["solopo.limit=256", "solopo.samples=16", "solopo.generation.temperature=1.4"],
        train=["train.epochs=2"],
        eval=[*_EVAL, "eval.limit=200"],
        short_eval=[*_EVAL, "eval.limit=200"],
        bench_short_tokens=1024,
        bench_ratios=(4, 8, 16),
        bench_cap_mib=40960.0,
        budget="one GPU, about 10 minutes",
    ),
    # a GPU workstation: Qwen2.5-1.5B-Instruct itself as the policy, MuSiQue (converted beforehand), QLoRA
    "workstation": SoloProfile(
        "recipes/qwen2.5-1.5b/solopo.yaml",
        "recipes/qwen2.5-1.5b/loong_eval.yaml",
        ("dpo", "simpo", "orpo"),
        eval=["eval.limit=500", "eval.max_input_tokens=16384", "eval.generation.max_new_tokens=256"],
        short_eval=["eval.limit=500", "eval.max_input_tokens=16384", "eval.generation.max_new_tokens=256"],
        bench_short_tokens=1024,
        bench_ratios=(4, 8, 16),
        bench_cap_mib=20480.0,
        budget="one 24-80 GB GPU, several hours (see README)",
        policy="recipe",
        train_data=MUSIQUE_TRAIN,
        test_data=MUSIQUE_TEST,
    ),
}


def reproduce_solopo(
    profile_name: str, out: Path, algorithms: tuple[str, ...] | None = None, l1_out: Path = Path("runs/reproduce-l1")
) -> Path:
    """Run (or finish) every stage of the SoLoPO reproduction into `out`; returns report.md's path."""
    from repro.reproduce import PROFILES as L1_PROFILES
    from repro.reproduce import StageClock, load_stage_recipe, model_and_data

    if profile_name not in PROFILES:
        raise ReproError(f"--profile: expected one of {', '.join(PROFILES)}, got '{profile_name}'")
    profile = PROFILES[profile_name]
    chosen = algorithms or profile.algorithms
    for name in chosen:
        if name not in ALGO_LABELS:
            raise ReproError(f"--algorithms: expected dpo, simpo and/or orpo, got '{name}'")
    base = load_stage_recipe(profile.recipe, [], "solopo")  # checked before anything runs
    l1 = L1_PROFILES["gpu" if profile_name == "gpu" else "cpu"]
    out.mkdir(parents=True, exist_ok=True)
    clock = StageClock(out)
    with clock("default model and data"):
        if profile.policy == "l1-sft":
            model_and_data(base.model.source)
            _solopo_data(base)
        _short_test_file(profile.test_data)
    if profile.policy == "l1-sft":
        with clock("warm-up SFT (L1's)"):
            sft_policy, start = l1_sft_policy(l1, l1_out), "SFT"
    else:
        sft_policy, start = base.model.source, "base"
    pairs = {}
    for context in ("short", "long"):
        with clock(f"pairs on the {context} context"):
            pairs[context] = _pairs(profile, context, sft_policy, out)
    counts = {context: _pair_count(path) for context, path in pairs.items()}
    skipped = []
    policies = {start: str(sft_policy)}
    train_runs = {}
    for algo in chosen:
        for mode in ("solopo", "long", *(("expand_long",) if algo == "dpo" else ())):
            label = f"{ALGO_LABELS[algo]} {mode}"
            context = "long" if mode == "long" else "short"
            if counts[context] == 0:
                skipped.append(label)
                continue
            with clock(f"train {label}"):
                recipe = _train_recipe(profile, algo, mode, pairs[context], sft_policy, counts[context])
                policies[label] = str(_train(recipe, f"{algo}-{mode}", out))
                train_runs[label] = out / f"{algo}-{mode}"
    long_evals, short_evals = {}, {}
    for label, source in policies.items():
        slug = label.lower().replace(" ", "-")
        with clock(f"evaluate {label} (long)"):
            long_dir = out / f"eval-{slug}"
            long_evals[label] = _evaluate(profile.eval_recipe, profile.eval, source, profile.test_data, long_dir)
        with clock(f"evaluate {label} (short)"):
            short_dir = out / f"eval-{slug}-short"
            short_data = _short_path(profile.test_data)
            short_evals[label] = _evaluate(profile.eval_recipe, profile.short_eval, source, short_data, short_dir)
    with clock("efficiency"):
        efficiency = _efficiency(profile, base.model.source, out)
    from repro.solopo.report import write_solopo_report

    notes = [
        f"Profile `{profile_name}` ({profile.budget}); algorithms: {', '.join(chosen)}.",
        *clock.lines(),
        *(CPU_NOTES if profile.policy == "l1-sft" else WORKSTATION_NOTES),
        *(_pairs_line(out, context) for context in pairs),
        *([f"Not trained (no pair to train on): {', '.join(skipped)}."] if skipped else []),
    ]
    return write_solopo_report(out, long_evals, short_evals, train_runs, efficiency, notes)


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
        raise ReproError(f"{test_data} is missing: convert MuSiQue first (README, 'SoLoPO on a workstation')")
    if not Path(_short_path(test_data)).is_file():
        records = [r for r in read_records(test_data).records if r.needed_docs is not None]
        write_records(_short_path(test_data), [short_record(r) for r in records])


def l1_sft_policy(l1, l1_out: Path) -> Path:
    """The L1 warm-up SFT policy (merged): reused from the L1 reproduction's folder, or trained there."""
    from repro.reproduce import TRAIN_DATA as L1_TRAIN
    from repro.reproduce import load_stage_recipe, train_and_export

    recipe = load_stage_recipe(l1.sft_recipe, [f"sft.data={L1_TRAIN}", *l1.sft], "l1-sft")
    l1_out.mkdir(parents=True, exist_ok=True)
    return train_and_export("sft", recipe, l1_out)


def _pairs(profile: SoloProfile, context: str, policy: Path, out: Path) -> Path:
    from repro.reproduce import load_stage_recipe
    from repro.solopo.sample import PAIRS_FILE, make_pairs

    run_dir = out / f"pairs-{context}"
    if not (run_dir / "summary.json").is_file():
        overrides = [f"model.source={policy}", f"solopo.data={profile.train_data}", f"solopo.context={context}"]
        overrides += profile.pairs
        recipe = load_stage_recipe(profile.recipe, overrides, f"solopo-pairs-{context}")
        make_pairs(recipe, run_dir, resume=run_dir.is_dir())
    return run_dir / PAIRS_FILE


def _pair_count(pairs: Path) -> int:
    return int(json.loads((pairs.parent / "summary.json").read_text())["pairs"])


def _pairs_line(out: Path, context: str) -> str:
    s = json.loads((out / f"pairs-{context}" / "summary.json").read_text())
    if "no_correct" not in s:  # pairs made before they were a correct against a wrong response
        return f"Pairs sampled on the {context} context (best against worst): {s['pairs']} from {s['examples']}."
    return (
        f"Pairs sampled on the {context} context (a correct response against a wrong one): {s['pairs']} from "
        f"{s['examples']} examples ({s['no_correct']} skipped: no response correct; {s['no_wrong']}: no response "
        f"wrong; {s['too_long']}: needed documents over the prompt budget)."
    )


def _train_recipe(profile: SoloProfile, algo: str, mode: str, pairs: Path, policy: Path, n_pairs: int) -> Recipe:
    from repro.reproduce import load_stage_recipe

    overrides = [
        f"model.source={policy}",
        f"solopo.pairs={pairs}",
        f"solopo.algorithm={algo}",
        f"solopo.mode={mode}",
        *profile.train,
    ]
    recipe = load_stage_recipe(profile.recipe, overrides, f"solopo-{algo}-{mode}")
    if n_pairs < recipe.train.micro_batch_size * recipe.train.grad_accum:  # too few pairs for one full step
        recipe.train.micro_batch_size, recipe.train.grad_accum = min(recipe.train.micro_batch_size, n_pairs), 1
    return recipe


def _train(recipe: Recipe, stage: str, out: Path) -> Path:
    from repro.reproduce import train_and_export
    from repro.solopo.train import run_solopo

    return train_and_export(stage, recipe, out, run_solopo)


def _evaluate(eval_recipe: str, overrides: list[str], source: str, data: str, run_dir: Path) -> Path:
    from repro.reproduce import evaluate_policy

    return evaluate_policy(eval_recipe, overrides, source, data, run_dir)


def _efficiency(profile: SoloProfile, model: str, out: Path) -> dict:
    """Step time and peak memory of each mode at each long length (python -m repro.bench solopo's cases)."""
    from repro.bench_solopo import efficiency

    path = out / "efficiency.json"
    if path.is_file():
        return json.loads(path.read_text())
    args = (profile.bench_short_tokens, list(profile.bench_ratios), 64, 2, profile.bench_cap_mib)
    result = efficiency(str(Path(model).absolute()), *args)
    atomic_write_json(path, result)
    return result
