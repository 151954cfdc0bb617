"""The L1 reproduction's recipes: the DAPO arm as the recipe says, the GRPO arm as published."""

from __future__ import annotations

from pathlib import Path

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


def test_two_seeds_train_and_evaluate_each_and_the_summary_holds_its_contract(tmp_path, monkeypatch):
    """The L1 reproduction's stages with the heavy work replaced: base evaluated once, SFT and RL per seed into
    OUT/seed-<s>/, one report and a summary.json that passes its schema check. Made-up scores per item (24 items,
    ids i0..i23): base 10; SFT 60 in seed 0 and 50 in seed 1; DAPO = SFT + 5 on even items, SFT - 5 on odd ones.
    So SFT > base is +45 on average (every item up: reproduced) and DAPO − SFT averages 0 (inconclusive)."""
    import json

    import yaml

    from repro.data.schema import Doc, Record, write_records
    from repro.l1 import reproduce
    from repro.reporting.summary import check_summary

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").symlink_to(repo / "recipes")
    records = [Record(f"i{k}", "t", "spotlight" if k % 2 else "comparison", [Doc("d", "x")], "q?", "a",
                      length_set=1 + k % 2) for k in range(24)]  # fmt: skip

    def fake_data(_model):
        write_records("data/loong-mini/test.jsonl", records)

    trained = []

    def fake_train(stage, recipe, out, run):
        trained.append((stage, recipe.seed, str(out)))
        (out / stage).mkdir(parents=True, exist_ok=True)
        (out / stage / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0, "reward_mean": 0.5}\n')
        return out / f"{stage}-merged"

    def score(stage: str, seed: int, k: int) -> float:
        sft = 60.0 if seed == 0 else 50.0
        return {"base": 10.0, "sft": sft, "dapo": sft + (5 if k % 2 == 0 else -5)}[stage]

    def fake_eval(eval_recipe, values, source, data, run_dir):
        stage = run_dir.name.removeprefix("eval-")
        seed = int(run_dir.parent.name.removeprefix("seed-")) if run_dir.parent.name.startswith("seed-") else 0
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "recipe.yaml").write_text(yaml.safe_dump({"eval": {"data": data}}))
        judged = [{"id": r.id, "score": score(stage, seed, k)} for k, r in enumerate(records)]
        (run_dir / "judgements.jsonl").write_text("".join(json.dumps(j) + "\n" for j in judged))
        return run_dir

    monkeypatch.setattr(reproduce, "model_and_data", fake_data)
    monkeypatch.setattr(reproduce, "train_and_export", fake_train)
    monkeypatch.setattr(reproduce, "evaluate_policy", fake_eval)
    report = reproduce.reproduce_l1("cpu", tmp_path / "out", seeds=(0, 1))
    out = tmp_path / "out"
    assert trained == [("sft", 0, str(out / "seed-0")), ("rl-dapo", 0, str(out / "seed-0")),
                       ("sft", 1, str(out / "seed-1")), ("rl-dapo", 1, str(out / "seed-1"))]  # fmt: skip
    assert (out / "eval-base").is_dir() and not (out / "seed-1" / "eval-base").exists()
    assert (out / "seed-1" / "eval-sft").is_dir() and (out / "seed-1" / "eval-dapo").is_dir()
    summary = json.loads((out / "summary.json").read_text())
    assert check_summary(summary) == []
    assert (summary["paper"], summary["profile"], summary["seeds"]) == ("l1", "cpu", [0, 1])
    # the base run counts once per seed; SFT pools both seeds: (60 * 24 + 50 * 24) / 48 = 55
    assert summary["scores"]["base"]["n"] == 48 and summary["scores"]["SFT"]["overall"] == 55.0
    trends = {t["claim"]: t for t in summary["trends"]}
    assert trends["SFT > base"]["verdict"] == "reproduced" and trends["SFT > base"]["mean"] == 45.0
    assert trends["RL > SFT (DAPO)"]["verdict"] == "inconclusive" and trends["RL > SFT (DAPO)"]["mean"] == 0.0
    text = report.read_text()
    assert "training seeds: 0, 1" in text and "per seed: +50.0, +40.0" in text  # SFT − base, each seed
    assert (out / "environment.json").is_file() and (out / "items.md").is_file() and (out / "claims.png").is_file()
