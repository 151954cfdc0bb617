"""`repro reproduce l1`: QwenLong-L1 end to end — model, data, warm-up SFT, phased RL, evaluation, report.

Every stage writes its own folder under the output root and is reused when it is complete, so a second
run (or one after a kill) redoes only what is missing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro.config import Recipe, load_recipe
from repro.errors import ReproError
from repro.fsio import atomic_write_json
from repro.train.dist import DistInfo

log = logging.getLogger("repro.reproduce")

TRAIN_DATA = "data/loong-mini/train.jsonl"
TEST_DATA = "data/loong-mini/test.jsonl"
WS_TRAIN_DATA = "data/loong-mini-ws/train.jsonl"
WS_TEST_DATA = "data/loong-mini-ws/test.jsonl"
DOCQA_RL_DATA = "data/docqa-rl/train.jsonl"
DOCQA_RL_HUB = "Tongyi-Zhiwen/DocQA-RL-1.6K"
LONGBENCH_DATA = "data/longbench/test.jsonl"


@dataclass
class Profile:
    """What one profile runs: recipes, the overrides that size them, the algorithms, the data and eval sets.

    `data`: "loong-mini" (generated here, offline) or "workstation" (Loong-mini at the recipe's set ranges
    and tokenizer, DocQA-RL-1.6K from the hub through the converter, LongBench when converted beforehand).
    """

    sft_recipe: str
    rl_recipe: str
    eval_recipe: str
    algorithms: tuple[str, ...]
    sft: list[str] = field(default_factory=list)
    rl: list[str] = field(default_factory=list)
    eval: list[str] = field(default_factory=list)
    budget: str = ""
    data: str = "loong-mini"
    sft_data: str = TRAIN_DATA
    rl_data: str = TRAIN_DATA
    test_data: str = TEST_DATA


PROFILES = {
    # 2 CPU cores, <= 60 minutes from scratch: SFT ~13 min, RL ~20 min, 3 policies evaluated on sets 1-2
    "cpu": Profile(
        "recipes/tiny/l1_sft.yaml",
        "recipes/tiny/l1_rl.yaml",
        "recipes/tiny/loong_eval.yaml",
        ("dapo",),
        eval=["eval.sets=[1,2]", "eval.generation.max_new_tokens=256"],
        budget="2 CPU cores, about 60 minutes from a fresh clone",
    ),
    # 2 CPU cores, <= 3 hours: DAPO with twice the RL rounds, spotlight among the RL tasks (the 60-minute run's
    # RL forgot it: -27 points) and temperature 1.0 (more groups with a reward spread)
    "cpu-long": Profile(
        "recipes/tiny/l1_sft.yaml",
        "recipes/tiny/l1_rl.yaml",
        "recipes/tiny/loong_eval.yaml",
        ("dapo",),
        rl=[
            "rl.phases=[{max_input_tokens: 900, steps: 12}, {max_input_tokens: 1600, steps: 12}]",
            "rl.tasks=[spotlight, comparison, chain_of_reasoning]",
            "rl.generation.temperature=1.0",
        ],
        eval=["eval.sets=[1,2]", "eval.generation.max_new_tokens=256"],
        budget="2 CPU cores, about 3 hours",
    ),
    # one GPU: both algorithms, more rounds, all four sets, longer responses
    "gpu": Profile(
        "recipes/tiny/l1_sft.yaml",
        "recipes/tiny/l1_rl.yaml",
        "recipes/tiny/loong_eval.yaml",
        ("dapo", "grpo"),
        sft=["sft.tasks=[]", "sft.limit=null"],
        rl=[
            "rl.phases=[{max_input_tokens: 900, steps: 20}, {max_input_tokens: 1600, steps: 20}, "
            "{max_input_tokens: 3200, steps: 20}]",
            "rl.sets=[1,2,3]",
            "rl.generation.max_new_tokens=384",
            "rl.prompts_per_round=8",
        ],
        eval=["eval.sets=[1,2,3,4]"],
        budget="one GPU, about 10 minutes",
    ),
    # a GPU workstation with the hub: Qwen2.5-1.5B-Instruct, QLoRA, flash attention, DocQA-RL-1.6K
    "workstation": Profile(
        "recipes/qwen2.5-1.5b/l1_sft.yaml",
        "recipes/qwen2.5-1.5b/l1_rl.yaml",
        "recipes/qwen2.5-1.5b/loong_eval.yaml",
        ("dapo", "grpo"),
        budget="one 24-80 GB GPU, several hours (see README)",
        data="workstation",
        sft_data=WS_TRAIN_DATA,
        rl_data=DOCQA_RL_DATA,
        test_data=WS_TEST_DATA,
    ),
}
# GRPO as published, against the recipe's DAPO: symmetric clip 0.2, sequence-level averaging, no dynamic
# sampling, no overlong shaping; the KL coefficient, entropy bonus and the rest stay as the recipe says.
GRPO_OVERRIDES = [
    "rl.algorithm=grpo",
    "rl.eps_low=0.2",
    "rl.eps_high=0.2",
    "rl.dynamic_sampling=false",
    "rl.reward.overlong_buffer=0",
]


def reproduce_l1(profile_name: str, out: Path, algorithms: tuple[str, ...] | None = None) -> Path:
    """Run (or finish) every stage of the QwenLong-L1 reproduction into `out`; returns report.md's path."""
    if profile_name not in PROFILES:
        raise ReproError(f"--profile: expected one of {', '.join(PROFILES)}, got '{profile_name}'")
    profile = PROFILES[profile_name]
    chosen = algorithms or profile.algorithms
    for name in chosen:
        if name not in ("dapo", "grpo"):
            raise ReproError(f"--algorithms: expected dapo and/or grpo, got '{name}'")
    # every recipe is read and checked before anything runs
    sft = load_stage_recipe(profile.sft_recipe, [f"sft.data={profile.sft_data}", *profile.sft], "l1-sft")
    base_model = sft.model.source
    rl_overrides = [f"rl.data={profile.rl_data}", *profile.rl]
    rl = {a: load_stage_recipe(profile.rl_recipe, [*rl_overrides, *algorithm_overrides(a)], f"l1-{a}") for a in chosen}
    out.mkdir(parents=True, exist_ok=True)
    clock = StageClock(out)
    with clock("default model and data"):
        if profile.data == "workstation":
            _workstation_data(sft)
        else:
            model_and_data(base_model)
    with clock("warm-up SFT"):
        sft_merged = train_and_export("sft", sft, out)
    policies = {"base": base_model, "sft": str(sft_merged)}
    rl_runs = {}
    for algo, recipe in rl.items():
        with clock(f"RL ({algo})"):
            recipe.model.source = str(sft_merged)
            policies[algo] = str(train_and_export(f"rl-{algo}", recipe, out))
            rl_runs[algo.upper()] = out / f"rl-{algo}"
    evals = {}
    for stage, source in policies.items():
        with clock(f"evaluate {stage}"):
            evals[_label(stage)] = _evaluate(profile, stage, source, out, profile.test_data)
    extra = _longbench_evals(profile, policies, out, clock)
    from repro.report import write_l1_report

    notes = [
        f"Profile `{profile_name}` ({profile.budget}); algorithms: {', '.join(chosen)}.",
        *clock.lines(),
        "Scaled down against the paper: SmolLM2-135M-Instruct instead of R1-Distill-Qwen-14B/32B (about 100x "
        "fewer parameters), Loong-mini prompts of 0.25-2K tokens instead of 20-60K-token documents, a few "
        "dozen RL updates on a few hundred prompts instead of the paper's full DocQA-RL-1.6K runs, rule "
        "reward only (no LLM judge) unless the recipe turns it on.",
        *extra,
    ]
    return write_l1_report(out, evals, rl_runs, notes)


def algorithm_overrides(name: str) -> list[str]:
    """The overrides that turn the RL recipe into the arm `name` (dapo: the recipe as it is; grpo: as published)."""
    return GRPO_OVERRIDES if name == "grpo" else ["rl.algorithm=dapo"]


def _label(stage: str) -> str:
    return {"base": "base", "sft": "SFT"}.get(stage, stage.upper())


def load_stage_recipe(path: str, overrides: list[str], name: str) -> Recipe:
    recipe = load_recipe(path, overrides)
    recipe.name = name
    return recipe


def model_and_data(model_source: str) -> None:
    from repro.data.loong_mini import generate
    from repro.data.schema import write_records
    from repro.init_model import init_model

    init_model(model_source)
    for path, kwargs in ((TRAIN_DATA, {"n": 2000}), (TEST_DATA, {"n": 200, "split": "test", "seed": 1})):
        if not Path(path).is_file():
            write_records(path, generate(**kwargs))
            log.info("Loong-mini -> %s", path)


def train_and_export(stage: str, recipe: Recipe, out: Path, run: Callable[..., Any] | None = None) -> Path:
    """Train into OUT/<stage> (resuming a cut run), then merge into OUT/<stage>-merged; both reused when done.

    `run(recipe, run_dir, dist, resume=)` trains; by default warm-up SFT for "sft" and phased RL otherwise."""
    from repro.export import export_run

    run_dir, merged = out / stage, out / f"{stage}-merged"
    if (merged / "config.json").is_file():
        log.info("%s: reusing %s", stage, merged)
        return merged
    if not (run_dir / "final").is_dir():
        if run is None and stage == "sft":
            from repro.train.sft import run_sft as run
        elif run is None:
            from repro.l1.phased_rl import run_rl as run
        run(recipe, run_dir, DistInfo(), resume=run_dir.is_dir())
    return export_run(run_dir, merged)


def _workstation_data(sft: Recipe) -> None:
    """Loong-mini at the workstation recipe's set ranges (counted with its tokenizer) and DocQA-RL-1.6K."""
    from repro.data.converters import convert
    from repro.data.schema import write_records

    workstation_loong_mini(sft)
    if not Path(DOCQA_RL_DATA).is_file():
        write_records(DOCQA_RL_DATA, convert("docqa-rl", DOCQA_RL_HUB))
        log.info("%s -> %s", DOCQA_RL_HUB, DOCQA_RL_DATA)


def workstation_loong_mini(recipe: Recipe) -> None:
    """Loong-mini train and test at `recipe`'s set ranges, lengths counted with its model's tokenizer."""
    from repro.data.loong_mini import generate
    from repro.data.schema import write_records
    from repro.modeling import load_tokenizer

    if Path(WS_TRAIN_DATA).is_file() and Path(WS_TEST_DATA).is_file():
        return
    tokenizer = load_tokenizer(recipe.model)
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    ranges = {k: (v[0], v[1]) for k, v in recipe.loong_mini.set_ranges.items()}
    for path, kwargs in ((WS_TRAIN_DATA, {"n": 2000}), (WS_TEST_DATA, {"n": 200, "split": "test", "seed": 1})):
        if not Path(path).is_file():
            write_records(path, generate(**kwargs, set_ranges=ranges, count_tokens=count))
            log.info("Loong-mini (workstation lengths) -> %s", path)


def _longbench_evals(profile: Profile, policies: dict[str, str], out: Path, clock: StageClock) -> list[str]:
    """The workstation profile also scores each policy on LongBench QA when it was converted beforehand."""
    if profile.data != "workstation":
        return []
    if not Path(LONGBENCH_DATA).is_file():
        return [f"LongBench not evaluated: {LONGBENCH_DATA} is missing (see README, 'The workstation profile')."]
    lines = []
    for stage, source in policies.items():
        with clock(f"evaluate {stage} on LongBench"):
            run_dir = _evaluate(profile, f"{stage}-longbench", source, out, LONGBENCH_DATA)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        lines.append(
            f"LongBench ({LONGBENCH_DATA}, {metrics['n']} items), {_label(stage)}: avg score {metrics['avg_score']} "
            f"({metrics['n'] - metrics['n_parsed']} unparsed judgements left out)"
        )
    return lines


def _evaluate(profile: Profile, stage: str, source: str, out: Path, data: str) -> Path:
    return evaluate_policy(profile.eval_recipe, profile.eval, source, data, out / f"eval-{stage}")


def evaluate_policy(eval_recipe: str, overrides: list[str], source: str, data: str, run_dir: Path) -> Path:
    """Evaluate the model at `source` on `data` into run_dir (resuming a cut run); reused when finished."""
    from repro.loong.eval import run_eval

    recipe = load_stage_recipe(eval_recipe, [f"eval.data={data}", f"model.source={source}", *overrides], run_dir.name)
    if not (run_dir / "metrics.json").is_file():
        run_eval(recipe, run_dir)
    return run_dir


class StageClock:
    """Times each stage into OUT/timings.json; a stage that was reused keeps the time it took when it ran."""

    REUSED_S = 30.0  # a stage this quick found its output ready

    def __init__(self, out: Path) -> None:
        self.path = out / "timings.json"
        self.times: dict[str, float] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        log.info("== %s", name)
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        if seconds >= self.REUSED_S or name not in self.times:
            self.times[name] = seconds
            atomic_write_json(self.path, self.times)
        log.info("== %s: %.1f min", name, seconds / 60)

    def lines(self) -> list[str]:
        total = sum(self.times.values())
        parts = ", ".join(f"{name} {t / 60:.1f} min" for name, t in self.times.items())
        return [f"Time each stage took when it ran, on this machine: {total / 60:.1f} min in all ({parts})."]
