"""`repro rl` on the tiny model: the loss through the shared prefix, resume mid-phase, filtered rounds, PPO epochs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from repro.config import load_recipe
from repro.data.loong_mini import generate
from repro.data.schema import read_records, write_records
from repro.l1.phased_rl import run_rl
from repro.l1.rollout import RlSource
from repro.modeling import load_model
from repro.train.dist import DistInfo

REPO = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]


@pytest.fixture(scope="module")
def rl_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rl-data") / "train.jsonl"
    write_records(path, generate(16, seed=4, sets=(1,), tasks=["comparison", "chain_of_reasoning"]))
    return path


def rl_recipe(tmp_path: Path, model_dir: str, data: Path, *overrides: str):
    """Two phases split near the median prompt length of the tiny tokenizer (these prompts: 1110-1981 tokens)."""
    return load_recipe(
        REPO / "recipes" / "tiny" / "l1_rl.yaml",
        [
            f"model.source={model_dir}",
            "model.device=cpu",
            f"rl.data={data}",
            "rl.sets=[1]",
            "rl.group_size=4",
            "rl.prompts_per_round=2",
            "rl.generation.max_new_tokens=6",
            "rl.reward.overlong_buffer=0",
            "rl.mini_batches=1",  # one update a round unless a test asks for more
            "rl.phases=[{max_input_tokens: 1550, steps: 2}, {max_input_tokens: 4000, steps: 2}]",
            "train.checkpoint_every=1",
            "train.keep_last=10",
            f"output_dir={tmp_path}",
            *overrides,
        ],
    )


def test_the_loss_is_the_same_through_the_shared_prefix_and_per_sample(tiny_model_dir, rl_data, tmp_path):
    losses, grads = [], []
    for shared in ("true", "false"):
        recipe = rl_recipe(
            tmp_path,
            tiny_model_dir,
            rl_data,
            f"train.shared_prefix={shared}",
            "rl.kl_coef=0.05",
            "rl.phases=[{max_input_tokens: 4000, steps: 1}]",
        )
        torch.manual_seed(0)
        loaded = load_model(recipe.model)
        with torch.no_grad():  # adapters that change the output, so the reference (adapters off) differs
            for name, p in loaded.model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.02, generator=torch.Generator().manual_seed(len(name)))
        source = RlSource(recipe, loaded.tokenizer, read_records(rl_data).records[:2], None)
        prompt = next(iter(source.prompts.values()))
        responses = [torch.tensor([5, 6, 7]), torch.tensor([8]), torch.tensor([9, 10, 11, 12, 13])]
        batch = {
            "prompt": prompt,
            "responses": responses,
            "advantages": torch.tensor([1.0, -0.5, 0.25]),
            "old_logp": [torch.full((len(r),), -7.0) for r in responses],
        }
        out = source.loss(loaded.model, batch)
        out.loss_sum.backward()
        losses.append((float(out.loss_sum.detach()), out.units, out.metrics))
        grads.append({n: p.grad.clone() for n, p in loaded.model.named_parameters() if p.grad is not None})
    assert losses[0][1] == losses[1][1] == 9  # DAPO: units = response tokens, 3 + 1 + 5
    assert losses[0][0] == pytest.approx(losses[1][0], abs=1e-5)
    for key in ("clip_frac_low", "clip_frac_high", "ratio_mean", "ratio_max", "kl", "entropy"):
        assert losses[0][2][key] == pytest.approx(losses[1][2][key], abs=1e-5)
    assert losses[0][2]["kl"] > 0  # the reference really was the model without adapters
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4)


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def reward_by_text_length(predictions, records, cfg, judge=None):
    """A reward spread the tiny random model can earn: (length of the text mod 3) / 2."""
    from repro.l1.rewards import RewardResult

    return [RewardResult(rule=len(p) % 3 / 2, judge=None, total=len(p) % 3 / 2) for p in predictions]


def test_resume_mid_phase_ends_where_an_uninterrupted_run_ends(
    tiny_model_dir, rl_data, tmp_path, run_killed_after_step, monkeypatch
):
    from repro.l1 import rollout

    monkeypatch.setattr(rollout, "hybrid_rewards", reward_by_text_length)
    recipe = rl_recipe(tmp_path, tiny_model_dir, rl_data, "rl.filter_metric=score", "train.lr=5.0e-2")
    full = run_rl(recipe, tmp_path / "full", DistInfo())
    assert full.steps == 4
    # step 3 (phase 2's first round) is logged; its checkpoint never comes
    run_killed_after_step(3, run_rl, recipe, tmp_path / "cut", DistInfo())
    resumed = run_rl(recipe, tmp_path / "cut", DistInfo(), resume=True)
    assert resumed.steps == 4
    a, b = (
        load_file(d / "checkpoints" / "step-000004" / "adapter.safetensors")
        for d in (tmp_path / "full", tmp_path / "cut")
    )
    # the updates really happened, before and after the cut: B starts at zero, and every step updated
    assert all("skipped" not in r and r["groups_used"] > 0 for r in rows(tmp_path / "full"))
    assert all(a[k].abs().max() > 0 for k in a if "lora_B" in k)
    steps_3 = load_file(tmp_path / "full" / "checkpoints" / "step-000003" / "adapter.safetensors")
    assert any(not torch.equal(steps_3[k], a[k]) for k in a)  # the step after the cut moved the weights
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=0, rtol=0)
    strip = ("tokens_per_s", "peak_mem_mib", "seconds_generate", "seconds_reward", "seconds_old_logprobs")
    strip += ("seconds_round_prep", "time")
    clean = [
        [{k: v for k, v in r.items() if k not in strip} for r in rows(d)] for d in (tmp_path / "full", tmp_path / "cut")
    ]
    assert clean[0] == clean[1]
    assert [r["phase"] for r in clean[0]] == [0.0, 0.0, 1.0, 1.0]
    state = json.loads((tmp_path / "cut" / "checkpoints" / "step-000004" / "state.json").read_text())
    assert state["source"]["sampler"]["phase"] == 1 and state["source"]["sampler"]["table"]


def test_a_round_whose_groups_are_all_filtered_skips_its_update(tiny_model_dir, rl_data, tmp_path):
    """The tiny random model never answers: every reward is 0, every group has zero spread. Each round makes
    max_gen_batches generation batches, keeps nothing, and its update is skipped, never an error."""
    recipe = rl_recipe(
        tmp_path, tiny_model_dir, rl_data, "rl.max_gen_batches=2", "rl.phases=[{max_input_tokens: 4000, steps: 2}]"
    )
    result = run_rl(recipe, tmp_path / "run", DistInfo())
    assert result.steps == 2 and result.skipped_updates == 2
    for row in rows(tmp_path / "run"):
        assert row["skipped"] is True and row["loss"] is None
        assert (row["groups_generated"], row["groups_used"], row["gen_batches"]) == (4.0, 0.0, 2.0)
        assert row["filtered_share"] == 1.0 and row["reward_mean"] == 0.0


def test_ppo_epochs_start_from_ratio_one_and_use_the_sampling_policy_as_old(
    tiny_model_dir, rl_data, tmp_path, monkeypatch
):
    """With 2 PPO epochs a round makes 2 updates: old log-probs come from one no-grad pass before them, so
    the first update's ratio is exactly 1 and the second's is not (the policy moved in between)."""
    from repro.l1 import rollout

    monkeypatch.setattr(rollout, "hybrid_rewards", reward_by_text_length)
    recipe = rl_recipe(
        tmp_path,
        tiny_model_dir,
        rl_data,
        "rl.ppo_epochs=2",
        "rl.dynamic_sampling=false",
        "rl.phases=[{max_input_tokens: 4000, steps: 1}]",
        "train.lr=5.0e-2",
    )
    result = run_rl(recipe, tmp_path / "run", DistInfo())
    assert result.steps == 2
    first, second = rows(tmp_path / "run")
    assert first["reward_std"] > 0
    assert first["ratio_mean"] == pytest.approx(1.0, abs=1e-6) and first["ratio_max"] == pytest.approx(1.0, abs=1e-6)
    assert first["clip_frac_low"] == first["clip_frac_high"] == 0.0
    assert abs(second["ratio_mean"] - 1.0) > 1e-4


def test_mini_batches_make_several_updates_and_the_clip_binds_on_the_later_ones(
    tiny_model_dir, rl_data, tmp_path, monkeypatch
):
    """4 groups a round, mini_batches 2: groups 0 and 2 make the first update, 1 and 3 the second, from one
    pass of old log-probs. At a large learning rate the first update moves the policy far enough that in the
    second some ratios leave [0.8, 1.28] on the side where min() takes the clipped branch."""
    from repro.l1 import rollout

    monkeypatch.setattr(rollout, "hybrid_rewards", reward_by_text_length)
    recipe = rl_recipe(
        tmp_path,
        tiny_model_dir,
        rl_data,
        "rl.prompts_per_round=4",
        "rl.mini_batches=2",
        "rl.dynamic_sampling=false",
        "rl.phases=[{max_input_tokens: 4000, steps: 2}]",
        "train.lr=0.5",
        "train.max_grad_norm=100.0",
    )
    result = run_rl(recipe, tmp_path / "run", DistInfo())
    assert result.steps == 4  # 2 rounds x 2 updates
    logged = rows(tmp_path / "run")
    assert [r["step"] for r in logged] == [1, 2, 3, 4]
    assert "groups_used" in logged[0] and "groups_used" not in logged[1]  # round metrics: first update only
    for first, second in (logged[0:2], logged[2:4]):
        assert first["ratio_mean"] == pytest.approx(1.0, abs=1e-5)
        assert first["clip_frac_low"] == first["clip_frac_high"] == 0.0
        assert abs(second["ratio_mean"] - 1.0) > 1e-3
    assert any(r["clip_frac_low"] + r["clip_frac_high"] > 0 for r in (logged[1], logged[3]))
    assert any(r["ratio_max"] > 1.28 or r["clip_frac_low"] > 0 for r in (logged[1], logged[3]))


def test_split_into_updates_interleaves_groups_by_rank_and_pads_with_idle_micro_batches():
    from repro.l1.rollout import split_into_updates

    b = [{"g": i} for i in range(3)]
    idle = {"idle": True}
    # ranks 0, 1, 2 and 2 mini-batches: rank i -> update i mod 2
    assert split_into_updates(b, [0, 1, 2], 2, 1) == [[b[0], b[2]], [b[1]]]
    # 4 mini-batches for 3 groups: the fourth update has no group and gets an idle micro-batch
    assert split_into_updates(b, [0, 1, 2], 4, 1) == [[b[0]], [b[1]], [b[2]], [idle]]
    # 2 epochs repeat the round's updates
    assert split_into_updates(b, [0, 1, 2], 2, 2) == [[b[0], b[2]], [b[1]]] * 2
    # process 1 of 2 holds ranks 1, 3 and 5 of 6; process 0 told the gather it has 2 groups in update 0 and 1 in
    # update 1. Update 0 (ranks 0, 2, 4 over both) has none of ours: 2 idle; update 1: ours, all 3, no padding.
    def gather(counts):
        return [[2, 1], counts]

    assert split_into_updates(b, [1, 3, 5], 2, 1, gather) == [[idle, idle], [b[0], b[1], b[2]]]
    # no group at all (every group filtered): one idle micro-batch per update, so the skips stay aligned
    assert split_into_updates([], [], 2, 1) == [[idle], [idle]]


def test_the_loss_reads_log_probs_at_the_sampling_temperature(tiny_model_dir, rl_data, tmp_path):
    """old_logp is the response's log-prob at T = 0.5, computed by hand from the full logits: a loss that
    divides the logits by the batch's temperature sees ratio 1 on every token, one at T = 1 would not."""
    recipe = rl_recipe(tmp_path, tiny_model_dir, rl_data, "rl.phases=[{max_input_tokens: 4000, steps: 1}]")
    torch.manual_seed(0)
    loaded = load_model(recipe.model)
    source = RlSource(recipe, loaded.tokenizer, read_records(rl_data).records[:1], None)
    prompt = next(iter(source.prompts.values()))
    response = torch.tensor([5, 6, 7, 8])
    with torch.no_grad():
        logits = loaded.model(input_ids=torch.cat([prompt, response]).unsqueeze(0)).logits[0].float()
    p = len(prompt)
    scaled = (logits[p - 1 : p + 3] / 0.5).log_softmax(-1)
    old = scaled.gather(-1, response.unsqueeze(-1)).squeeze(-1)
    entropy = -(scaled.exp() * scaled).sum(-1).mean()
    batch = {"prompt": prompt, "responses": [response], "advantages": torch.tensor([1.0]), "old_logp": [old]}
    out = source.loss(loaded.model, {**batch, "temperature": 0.5})
    assert out.metrics["ratio_mean"] == pytest.approx(1.0, abs=1e-4)
    assert out.metrics["ratio_max"] == pytest.approx(1.0, abs=1e-4)
    assert out.metrics["entropy"] == pytest.approx(float(entropy), rel=1e-4)
    at_one = source.loss(loaded.model, {**batch, "temperature": 1.0})
    assert abs(at_one.metrics["ratio_mean"] - 1.0) > 1e-2


def test_two_processes_make_the_same_rl_run_as_one(tiny_model_dir, rl_data, tmp_path):
    """3 prompts a round over 2 processes: process 0 makes groups 0 and 2, process 1 group 1. Two mini-batches:
    the kept groups of even rank make the first update, odd rank the second, on one process or two (where a
    process without such a group runs an idle micro-batch, and names no metric). Dynamic sampling decides on
    everyone's groups, every difficulty table records every group, and each group's samples come from its own
    seed (generation.batch_size=1): the two runs must log the same rewards, filter counts, losses, ratios and
    gradient norms, and end with the same adapters."""
    overrides = [
        f"model.source={tiny_model_dir}",
        "model.device=cpu",
        f"rl.data={rl_data}",
        "rl.sets=[1]",
        "rl.group_size=4",
        "rl.prompts_per_round=3",
        "rl.max_gen_batches=2",
        "rl.generation.max_new_tokens=6",
        "rl.generation.batch_size=1",
        "rl.reward.overlong_buffer=0",
        "rl.phases=[{max_input_tokens: 1550, steps: 1}, {max_input_tokens: 4000, steps: 1}]",
        "rl.retrospective=1",
        "rl.mini_batches=2",
        "train.lr=5.0e-2",
    ]
    worker = REPO / "tests" / "rl_reward_by_length.py"
    recipe = str(REPO / "recipes" / "tiny" / "l1_rl.yaml")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    launch = {"one": [sys.executable, str(worker)], "two": [*TORCHRUN, "--nproc_per_node=2", str(worker)]}
    for name, prefix in launch.items():
        cmd = [*prefix, "rl", recipe, *overrides, "--out", str(tmp_path / name)]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
        assert res.returncode == 0, res.stderr[-3000:]
    one, two = rows(tmp_path / "one"), rows(tmp_path / "two")
    assert len(one) == len(two) == 4  # 2 rounds x 2 updates
    assert any(r.get("groups_used", 0) > 1 for r in one)  # some round trained on two updates
    assert any("skipped" not in r and abs(r["ratio_mean"] - 1) > 1e-5 for r in one[1::2])  # the second moved
    for a, b in zip(one, two, strict=True):
        round_keys = ("reward_mean", "reward_std", "groups_generated", "groups_used", "gen_batches", "response_len")
        for key in round_keys if "groups_used" in a else ():
            assert a[key] == pytest.approx(b[key], abs=1e-6), key
        for key in ("loss", "units", "grad_norm", "ratio_mean", "ratio_max", "clip_frac_low", "entropy"):
            assert (a.get(key) is None) == (b.get(key) is None), key
            if a.get(key) is not None:
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    states = [json.loads((tmp_path / n / "checkpoints" / "step-000004" / "state.json").read_text()) for n in launch]
    assert states[0]["source"]["sampler"]["table"]
    assert states[0]["source"] == states[1]["source"]  # one curriculum, one difficulty table
    # Adam moves each element by about lr whatever its gradient's size: where a gradient is near Adam's eps,
    # rounding (one thread against two processes) becomes a visible difference in that one element. So: every
    # element within 2% of one update, and the mean difference far below what any wrong scale would give.
    a, b = (load_file(tmp_path / n / "checkpoints" / "step-000004" / "adapter.safetensors") for n in launch)
    assert all(a[k].abs().max() > 0 for k in a if "lora_B" in k)  # B starts at zero: the updates happened
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=0.02 * 5e-2, rtol=0)
        assert float((a[name] - b[name]).abs().mean()) < 1e-6, name


def test_a_record_whose_only_document_does_not_fit_is_left_out(tiny_model_dir, tmp_path):
    """DocQA-RL style: one document per record. Past the last phase's length the document would be dropped,
    leaving a question without its text: such a record is left out, the others stay."""
    from repro.data.schema import Doc, Record
    from repro.l1.rollout import tokenized_prompts
    from repro.modeling import load_tokenizer

    recipe = rl_recipe(tmp_path, tiny_model_dir, Path("unused.jsonl"), "rl.phases=[{max_input_tokens: 300, steps: 1}]")
    short = Record(id="short", source="t", task="qa", docs=[Doc("a", "word " * 20)], question="q?", answer="x")
    long = Record(id="long", source="t", task="qa", docs=[Doc("b", "word " * 2000)], question="q?", answer="x")
    prompts = tokenized_prompts([short, long], recipe, load_tokenizer(recipe.model))
    assert list(prompts) == ["short"]
    assert 20 < len(prompts["short"]) <= 300
