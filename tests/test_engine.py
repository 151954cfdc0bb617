"""The shared optimizer step and its drivers: exact averaging by the loss's own units, metrics, skips, resume."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from repro.config import GenerationSection, LoraSection, ModelSection, TrainSection
from repro.errors import ReproError
from repro.fsio import atomic_write_text, umask_mode
from repro.generation import sample_groups
from repro.modeling import load_model
from repro.runs import check_resume_plan
from repro.train import loop
from repro.train.dist import DistInfo
from repro.train.engine import LossOutput, OptimizerStep
from repro.train.loop import OnlineRound, dropped_samples, train_online


def plain_cfg(**kw) -> TrainSection:
    base = {"lr": 0.1, "schedule": "constant", "max_grad_norm": 1e9, "warmup_steps": 0}
    return TrainSection(**(base | kw))


def scalar_model(value: float = 1.0) -> torch.nn.Module:
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(value)
    return model


def test_loss_sums_are_divided_by_the_units_the_losses_counted():
    """Two micro-batches: loss sums w*3 (2 units) and w*5 (6 units), metric means 2 and 6.

    Loss = (3 + 5) * w / (2 + 6) = 1.0 at w = 1; gradient = (3 + 5) / 8 = 1.0; metric = (2*2 + 6*6) / 8 = 5.0.
    """
    model = scalar_model()
    engine = OptimizerStep(model, plain_cfg(), DistInfo(), torch.device("cpu"), torch.float32, total_steps=1)
    batches = [{"c": 3.0, "u": 2, "m": 2.0}, {"c": 5.0, "u": 6, "m": 6.0}]

    def loss(m, batch):
        return LossOutput(m.weight.sum() * batch["c"], batch["u"], {"metric": torch.tensor(batch["m"])})

    outcome = engine.run(batches, loss, step=1)
    assert outcome.updated and outcome.units == 8
    assert outcome.loss == pytest.approx(1.0)
    assert outcome.grad_norm == pytest.approx(1.0)
    assert outcome.metrics == {"metric": pytest.approx(5.0)}
    # AdamW's first step moves by lr * g / (|g| + eps) = 0.1 * (1 - 1e-8)
    assert model.weight.item() == pytest.approx(1.0 - 0.1, abs=1e-6)


def test_max_metrics_take_the_largest_value_over_counted_micro_batches():
    """ratio_max 1.5 (2 units), 3.0 (0 units: idle, not counted) and 1.2 (6 units): the step's max is 1.5, while a
    plain metric is still unit-weighted, (2 * 1 + 6 * 3) / 8 = 2.5; a micro-batch without the key changes nothing."""
    model = scalar_model()
    engine = OptimizerStep(model, plain_cfg(), DistInfo(), torch.device("cpu"), torch.float32, total_steps=1)
    batches = [{"u": 2, "m": 1.0, "x": 1.5}, {"u": 0, "m": 9.0, "x": 3.0}, {"u": 6, "m": 3.0, "x": 1.2}, {"u": 0}]

    def loss(m, batch):
        metrics = {"metric": batch["m"], "ratio_max": batch["x"]} if "m" in batch else {}
        return LossOutput(m.weight.sum() * batch["u"], batch["u"], metrics)

    outcome = engine.run(batches, loss, step=1)
    assert outcome.metrics == {"metric": pytest.approx(2.5), "ratio_max": pytest.approx(1.5)}


def test_a_non_finite_gradient_with_a_finite_loss_skips_the_update():
    class InfGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            return grad * float("inf")

    model = scalar_model()
    engine = OptimizerStep(model, plain_cfg(), DistInfo(), torch.device("cpu"), torch.float32, total_steps=3)
    outcome = engine.run([{}], lambda m, b: LossOutput(InfGrad.apply(m.weight.sum()), 1), step=1)
    assert outcome.loss == pytest.approx(1.0)  # finite
    assert not outcome.updated and engine.skipped_updates == 1
    assert model.weight.item() == 1.0  # untouched
    assert model.weight.grad is None  # nothing carried into the next step
    assert engine.scheduler.last_epoch == 1  # the schedule still advanced with the plan
    healthy = engine.run([{}], lambda m, b: LossOutput(m.weight.sum() * 2, 1), step=2)
    assert healthy.updated and model.weight.item() < 1.0


def test_a_step_without_units_is_skipped_not_divided_by_zero():
    model = scalar_model()
    engine = OptimizerStep(model, plain_cfg(), DistInfo(), torch.device("cpu"), torch.float32, total_steps=2)
    outcome = engine.run([{}], lambda m, b: LossOutput(m.weight.sum() * 0, 0), step=1)
    assert outcome.loss is None and not outcome.updated and model.weight.item() == 1.0


def test_dropped_samples_are_counted_by_hand():
    """9 samples of 10 tokens, at most 2 per micro-batch -> 5 micro-batches (2,2,2,2,1).

    1 process, grad_accum 2: 2 steps use 4 micro-batches; the 5th (its size depends on the shuffle) is dropped.
    2 processes, grad_accum 2: 5 // 2 = 2 micro-batches each, 1 step each; 1 micro-batch dropped.
    """
    cfg = plain_cfg(micro_batch_tokens=1000, micro_batch_size=2, grad_accum=2)
    lengths = [10] * 9
    for world in (1, 2):
        batches = loop._epoch_batches(lengths, cfg, seed=0, epoch=0)
        assert [len(b) for b in sorted(batches, key=len)] == [1, 2, 2, 2, 2]
        used = [b for rank in range(world) for b in batches[rank:4:world]]
        assert dropped_samples(lengths, cfg, 0, 0, world) == 9 - sum(len(b) for b in used)
    assert dropped_samples([10] * 8, cfg, 0, 0, 1) == 0


def test_resume_refuses_a_changed_plan(tmp_path):
    from repro.config import Recipe, recipe_to_yaml

    started = Recipe()
    atomic_write_text(tmp_path / "recipe.yaml", recipe_to_yaml(started))
    check_resume_plan(tmp_path, Recipe(), ("sft",))  # the same plan: fine
    changed = Recipe()
    changed.train.grad_accum = 4
    changed.sft.limit = 7
    changed.train.lr = 1.0  # not a plan key: may change on resume
    with pytest.raises(ReproError, match=r"sft\.limit \(None -> 7\), train\.grad_accum \(1 -> 4\); resume"):
        check_resume_plan(tmp_path, changed, ("sft",))


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640 == umask_mode()
        os.umask(0o022)
        atomic_write_text(tmp_path / "b.txt", "x")
        assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


# ---------------------------------------------------------------------------------------------
# The online driver: each round is sampled from the current policy


class SampledTokensSource:
    """A toy online source: each round samples 2 completions of a fixed prompt from the current policy and
    trains on their tokens (cross-entropy). Its state counts the rounds; the sampling RNG lives in checkpoints."""

    def __init__(self, tokenizer, rounds: int) -> None:
        self.tokenizer = tokenizer
        self.rounds = rounds
        self.made = 0
        self.prompt = torch.tensor(tokenizer("The company reported revenue", add_special_tokens=False)["input_ids"])

    def total_steps(self) -> int:
        return self.rounds

    def next_round(self, policy, step: int) -> OnlineRound:
        gen = GenerationSection(max_new_tokens=4, do_sample=True, temperature=1.0, top_p=1.0)
        samples = sample_groups(policy, self.tokenizer, [self.prompt], 2, gen)[0]
        rows = [torch.cat([self.prompt, torch.tensor(s.token_ids)]) for s in samples]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id)
        labels = torch.full((len(rows), width), -100)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            labels[i, len(self.prompt) : len(r)] = r[len(self.prompt) :]
        self.made += 1
        batch = {
            "input_ids": ids,
            "attention_mask": ((labels != -100) | (torch.arange(width) < len(self.prompt))).long(),
            "labels": labels,
        }
        return OnlineRound(updates=[[batch]], metrics={"round": float(self.made)})

    def loss(self, model, batch) -> LossOutput:
        from repro.train.logprobs import chunked_cross_entropy

        total, n = chunked_cross_entropy(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
        return LossOutput(total, n)

    def state_dict(self) -> dict:
        return {"made": self.made}

    def load_state_dict(self, state: dict) -> None:
        self.made = state["made"]


def test_online_resume_after_a_kill_ends_where_an_uninterrupted_run_ends(
    tiny_model_dir, tmp_path, run_killed_after_step
):
    cfg = plain_cfg(lr=1e-2, checkpoint_every=2, keep_last=5)

    def run(out: Path, resume: bool = False):
        torch.manual_seed(0)
        loaded = load_model(ModelSection(source=tiny_model_dir, device="cpu", lora=LoraSection(r=4, dropout=0.0)))
        source = SampledTokensSource(loaded.tokenizer, rounds=5)
        result = train_online(loaded.model, source, cfg, out, DistInfo(), loaded.device, loaded.dtype, 0, resume)
        return result, source

    full, _ = run(tmp_path / "full")
    assert full.steps == 5
    run_killed_after_step(3, run, tmp_path / "cut")  # step 3 is logged, its checkpoint (every 2) never comes
    resumed, source = run(tmp_path / "cut", resume=True)
    assert resumed.steps == 5 and source.made == 5  # rounds 3-5 made again, from the restored state
    weights = [
        load_file(d / "checkpoints" / "step-000005" / "adapter.safetensors")
        for d in (tmp_path / "full", tmp_path / "cut")
    ]
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], atol=0, rtol=0)
    timings = ("time", "tokens_per_s", "peak_mem_mib")
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k not in timings}  # noqa: E731
    rows = [
        [strip(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
        for d in (tmp_path / "full", tmp_path / "cut")
    ]
    assert rows[0] == rows[1]
    assert [r.get("round") for r in rows[0]] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_the_static_driver_logs_what_it_drops(tiny_model_dir, tmp_path, caplog):
    from repro.train.loop import StaticTask, train_static

    loaded = load_model(ModelSection(source=tiny_model_dir, device="cpu", lora=LoraSection(r=4, dropout=0.0)))
    ids = torch.tensor([[5, 6, 7, 8]])

    def loss(model, batch):
        from repro.train.logprobs import chunked_cross_entropy

        return LossOutput(*chunked_cross_entropy(model, batch["input_ids"], None, batch["input_ids"]))

    task = StaticTask(lengths=[4] * 3, collate=lambda idx, step, seed: {"input_ids": ids}, loss=loss)
    cfg = plain_cfg(micro_batch_size=1, micro_batch_tokens=100, grad_accum=2, checkpoint_every=10)
    with caplog.at_level(logging.WARNING, logger="repro.train"):
        result = train_static(loaded.model, task, cfg, tmp_path / "run", DistInfo(), loaded.device, loaded.dtype, 0)
    assert result.steps == 1  # 3 micro-batches of 1 sample, grad_accum 2: one step, one sample left over
    assert "1 of 3 samples per epoch are not trained on" in caplog.text
