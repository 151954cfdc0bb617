"""Warm-up SFT through the shared loop: loss mask, resume, 2 processes = 1, 4-bit, NaN guard, export."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from repro.config import load_recipe
from repro.data.loong_mini import generate
from repro.data.schema import Doc, Record, write_records
from repro.modeling import load_tokenizer
from repro.runrecord import sha256_file
from repro.train import sft as sft_module
from repro.train.dist import DistInfo
from repro.train.engine import TrainingDiverged
from repro.train.sft import run_sft
from repro.train.sft_data import IGNORE, build_sft_sample

sys.path.insert(0, str(Path(__file__).resolve().parent))
from first_step_capture import assert_same_first_step, capture_first_step, load_step  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def train_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sft-data") / "train.jsonl"
    write_records(path, generate(8, seed=2, sets=(1,)))
    return path


def sft_recipe(tmp_path, model_dir, data, *overrides):
    path = tmp_path / "sft.yaml"
    path.write_text(
        f"seed: 0\nmodel:\n  source: {model_dir}\n  device: cpu\n  lora:\n    r: 4\n    alpha: 8\n    dropout: 0.0\n"
        f"sft:\n  data: {data}\n  limit: 4\n  max_seq_tokens: 4096\ntrain:\n  micro_batch_tokens: 16384\n"
        "  micro_batch_size: 2\n  lr: 1.0e-3\n  schedule: constant\n  checkpoint_every: 1\n  keep_last: 10\n"
    )
    return load_recipe(path, list(overrides))


def adapter_weights(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "checkpoints" / f"step-{step:06d}" / "adapter.safetensors")


def test_loss_mask_covers_the_response_only(tiny_model_dir):
    tok = load_tokenizer(load_recipe(REPO / "recipes/tiny/base.yaml", [f"model.source={tiny_model_dir}"]).model)
    record = Record(
        id="r1",
        source="hand",
        task="spotlight",
        docs=[Doc("Report", "Acme revenue was 12.")],
        question="What was Acme's revenue?",
        answer="12",
        reasoning="Acme's report gives 12. Therefore, the answer is 12.",
    )
    sample = build_sft_sample(record, tok, max_seq_tokens=512)
    prompt_text = (
        "<|im_start|>user\nPlease read the following text and answer the question below.\n\n"
        "<text>\nAcme revenue was 12.\n</text>\n\nWhat was Acme's revenue?\n\n"
        'Format your response as follows: "Therefore, the answer is (insert answer here)".<|im_end|>\n'
        "<|im_start|>assistant\n"
    )
    n_prompt = len(tok(prompt_text, add_special_tokens=False)["input_ids"])
    assert sample.labels[:n_prompt] == [IGNORE] * n_prompt
    assert all(label != IGNORE for label in sample.labels[n_prompt:])
    assert sample.labels[n_prompt:] == sample.input_ids[n_prompt:]
    assert tok.decode(sample.input_ids[n_prompt:]) == "Acme's report gives 12. Therefore, the answer is 12.<|im_end|>\n"
    assert tok.decode(sample.input_ids[:n_prompt]) == prompt_text


def test_resume_after_a_kill_ends_where_an_uninterrupted_run_ends(
    tiny_model_dir, train_data, tmp_path, run_killed_after_step
):
    recipe = sft_recipe(
        tmp_path, tiny_model_dir, train_data, "sft.limit=8", "train.epochs=2", "train.checkpoint_every=3"
    )
    full = run_sft(recipe, tmp_path / "full", DistInfo())
    assert full.steps == 8  # 8 samples / 2 per micro-batch, 2 epochs
    # the run record: the seed, and the training data and the resolved recipe by their hashes
    env = json.loads((tmp_path / "full" / "environment.json").read_text())
    recipe_text = (tmp_path / "full" / "recipe.yaml").read_text()
    assert env["seed"] == recipe.seed and env["data_sha256"] == {str(train_data): sha256_file(train_data)}
    assert env["recipe_sha256"] == hashlib.sha256(recipe_text.encode()).hexdigest()

    # step 4 is logged, but its checkpoint (every 3 steps here) never comes
    run_killed_after_step(4, run_sft, recipe, tmp_path / "cut", DistInfo())
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir())[-1] == "step-000003"
    resumed = run_sft(recipe, tmp_path / "cut", DistInfo(), resume=True)
    assert resumed.steps == 8
    a, b = adapter_weights(tmp_path / "full", 8), adapter_weights(tmp_path / "cut", 8)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=0, rtol=0)
    full_log = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    cut_log = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    timings = ("time", "tokens_per_s", "peak_mem_mib")  # the wall clock and timings differ, the rest must not

    def strip(line: str) -> dict:
        return {k: v for k, v in json.loads(line).items() if k not in timings}

    assert [strip(x) for x in cut_log] == [strip(x) for x in full_log]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", json.loads(x)["time"]) for x in full_log)


def test_a_run_killed_before_its_first_checkpoint_logs_each_step_once_on_resume(
    tiny_model_dir, train_data, tmp_path, run_killed_after_step
):
    recipe = sft_recipe(tmp_path, tiny_model_dir, train_data, "sft.limit=8", "train.checkpoint_every=3")
    run_killed_after_step(2, run_sft, recipe, tmp_path / "cut", DistInfo())  # steps 1-2 logged, no checkpoint
    assert not list((tmp_path / "cut").glob("checkpoints/*"))
    resumed = run_sft(recipe, tmp_path / "cut", DistInfo(), resume=True)
    assert resumed.steps == 4  # 8 samples / 2 per micro-batch
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_two_processes_step_like_one_with_twice_the_batch(tiny_model_dir, train_data, tmp_path):
    """One process with micro-batches of 4 samples against two processes with 2 each (gloo), the first
    optimizer step of each captured (tests/first_step_capture.py): see assert_same_first_step."""
    common = [
        f"model.source={tiny_model_dir}",
        "model.device=cpu",  # gloo processes, also on a machine with fewer GPUs than processes
        f"sft.data={train_data}",
        "sft.tasks=[]",
        "sft.limit=4",
        "train.max_steps=1",
        "train.lr=1.0e-2",
        "train.max_grad_norm=1.0e9",  # no clipping: the captured gradient is the averaged one as it is
        "model.lora.dropout=0.0",
        "sft.max_seq_tokens=4096",
        "train.micro_batch_tokens=65536",
    ]
    recipe = REPO / "recipes" / "tiny" / "l1_sft.yaml"
    worker = [str(REPO / "tests" / "first_step_capture.py")]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    runs = {"one": ([sys.executable], "train.micro_batch_size=4"), "two": (torchrun, "train.micro_batch_size=2")}
    for name, (launch, batch) in runs.items():
        cmd = [*launch, *worker, str(tmp_path / f"{name}.pt"), "sft", str(recipe), *common, batch]
        res = subprocess.run([*cmd, "--out", str(tmp_path / name)], capture_output=True, text=True, env=env, cwd=REPO)
        assert res.returncode == 0, res.stderr[-2000:]
    one = load_step(tmp_path / "one.pt")
    rank0, rank1 = load_step(tmp_path / "two-rank0.pt"), load_step(tmp_path / "two-rank1.pt")
    # DDP leaves the same averaged gradient on both processes, and they make the same update
    for key in ("grads", "before", "after"):
        assert all(torch.equal(x, y) for x, y in zip(rank0[key], rank1[key], strict=True)), key
    assert_same_first_step(tmp_path / "one", tmp_path / "two", one, rank0)


def first_steps(tmp_path: Path, recipes: dict) -> dict[str, dict]:
    """Train each recipe in this process into tmp_path/<name>, its first optimizer step captured."""
    steps = {}
    for name, recipe in recipes.items():
        hooks = capture_first_step(tmp_path / f"{name}.pt")
        try:
            run_sft(recipe, tmp_path / name, DistInfo())
        finally:
            for hook in hooks:
                hook.remove()
        steps[name] = load_step(tmp_path / f"{name}.pt")
    return steps


def test_grad_accum_2_steps_like_one_micro_batch_twice_as_large(tiny_model_dir, train_data, tmp_path):
    common = ("sft.tasks=[]", "sft.limit=4", "train.max_steps=1", "train.lr=1.0e-2", "sft.max_seq_tokens=4096")
    common += ("train.micro_batch_tokens=65536", "train.max_grad_norm=1.0e9")
    one = sft_recipe(tmp_path, tiny_model_dir, train_data, *common, "train.micro_batch_size=4")
    two = sft_recipe(tmp_path, tiny_model_dir, train_data, *common, "train.micro_batch_size=2", "train.grad_accum=2")
    steps = first_steps(tmp_path, {"one": one, "two": two})
    assert_same_first_step(tmp_path / "one", tmp_path / "two", steps["one"], steps["two"])


def test_a_4bit_lora_sft_step_on_cpu(tiny_model_dir, train_data, tmp_path):
    recipe = sft_recipe(tmp_path, tiny_model_dir, train_data, "model.quant.load_in_4bit=true", "train.max_steps=2")
    result = run_sft(recipe, tmp_path / "run", DistInfo())
    assert result.steps == 2 and result.final_loss is not None and torch.isfinite(torch.tensor(result.final_loss))
    first, second = adapter_weights(tmp_path / "run", 1), adapter_weights(tmp_path / "run", 2)
    assert any(not torch.equal(first[k], second[k]) for k in first), "the second step changed the adapters"


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_model_dir, train_data, tmp_path, monkeypatch):
    recipe = sft_recipe(tmp_path, tiny_model_dir, train_data, "train.max_steps=3")
    real_task = sft_module.sft_task
    calls = {"n": 0}

    def task_with_a_nan(*args, **kwargs):
        task = real_task(*args, **kwargs)
        real_loss = task.loss

        def loss(model, batch):
            calls["n"] += 1
            out = real_loss(model, batch)
            if calls["n"] == 2:
                out.loss_sum = out.loss_sum * float("nan")
            return out

        task.loss = loss
        return task

    monkeypatch.setattr(sft_module, "sft_task", task_with_a_nan)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 2.*step-000001"):
        run_sft(recipe, tmp_path / "run", DistInfo())
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["step-000001"]
    assert all(torch.isfinite(t).all() for t in adapter_weights(tmp_path / "run", 1).values())


def test_export_merges_to_the_adapter_models_logits(tiny_model_dir, train_data, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from repro.export import export_run

    recipe = sft_recipe(tmp_path, tiny_model_dir, train_data, "train.max_steps=2", "train.lr=5.0e-2")
    run_sft(recipe, tmp_path / "run", DistInfo())
    merged_dir = export_run(tmp_path / "run", tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    adapted = PeftModel.from_pretrained(base, tmp_path / "run" / "final").eval()
    ids = torch.randint(0, merged.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        merged_logits, adapter_logits = merged(input_ids=ids).logits, adapted(input_ids=ids).logits
        with adapted.disable_adapter():
            base_logits = adapted(input_ids=ids).logits
    assert (adapter_logits - base_logits).abs().max() > 1e-4, "training moved the model"
    torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-4, rtol=1e-4)
    assert not any(name.startswith("base_model") for name in merged.state_dict())


def test_packed_rows_train_like_padded_ones(tiny_model_dir, train_data, tmp_path):
    """The same 4 samples in one micro-batch: packed into one row (position ids restart per sample, a
    block-diagonal mask on sdpa) or padded into 4 rows, the step's loss, units and gradient are the same."""
    common = ("sft.tasks=[]", "sft.limit=4", "train.max_steps=1", "train.micro_batch_size=4")
    common += ("train.micro_batch_tokens=65536", "train.lr=1.0e-2", "train.max_grad_norm=1.0e9")
    recipes = {
        name: sft_recipe(tmp_path, tiny_model_dir, train_data, *common, f"train.pack={pack}")
        for name, pack in (("padded", "false"), ("packed", "true"))
    }
    steps = first_steps(tmp_path, recipes)
    assert_same_first_step(tmp_path / "padded", tmp_path / "packed", steps["padded"], steps["packed"])


def test_resuming_a_finished_run_trains_nothing_and_says_so(tiny_model_dir, train_data, tmp_path, capsys):
    from repro.cli import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model:\n  source: {tiny_model_dir}\n  device: cpu\n  lora:\n    r: 4\nsft:\n  data: {train_data}\n"
        "  limit: 2\n  tasks: []\n  max_seq_tokens: 4096\ntrain:\n  micro_batch_tokens: 16384\n  max_steps: 1\n"
    )
    for extra in ([], ["--resume"]):
        with pytest.raises(SystemExit) as done:
            main(["sft", str(recipe), "--out", str(tmp_path / "run"), *extra])
        assert done.value.code in (0, None)
    out = capsys.readouterr().out
    assert "nothing left to train: the run had finished its 1 steps" in out


@pytest.mark.skipif(not torch.cuda.is_available(), reason="resume on CUDA needs a CUDA device")
def test_resume_on_cuda_ends_within_rounding_of_an_uninterrupted_run(
    tiny_model_dir, train_data, tmp_path, run_killed_after_step
):
    """What resume promises on CUDA: the same plan and state, so the same weights up to the rounding of
    kernels that are not deterministic (atomics in backward): within 1e-5 after 4 steps."""
    recipe = sft_recipe(tmp_path, tiny_model_dir, train_data, "model.device=cuda", "train.checkpoint_every=2")
    run_sft(recipe, tmp_path / "full", DistInfo())
    run_killed_after_step(3, run_sft, recipe, tmp_path / "cut", DistInfo())
    run_sft(recipe, tmp_path / "cut", DistInfo(), resume=True)
    last = max(int(p.name.split("-")[1]) for p in (tmp_path / "full" / "checkpoints").iterdir())
    a, b = adapter_weights(tmp_path / "full", last), adapter_weights(tmp_path / "cut", last)
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=0)
