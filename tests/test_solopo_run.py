"""`repro solopo pairs` and `repro solopo train` on the tiny model: pairs, resume, forwards, the loss, processes."""

from __future__ import annotations

import json
import math
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
from repro.errors import ConfigError
from repro.modeling import load_model, load_tokenizer
from repro.solopo import sample as sample_module
from repro.solopo import train as train_module
from repro.solopo.sample import context_prompts, make_pairs, read_pairs
from repro.solopo.train import PreferenceLogprobs, cached_reference, forwards, preference_task, run_solopo
from repro.train.dist import DistInfo
from repro.train.prefix import per_sample_logprobs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from first_step_capture import assert_same_first_step, load_step  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "tiny" / "solopo.yaml"


@pytest.fixture(scope="module")
def solopo_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("solopo-data") / "train.jsonl"
    records = generate(8, seed=5, sets=(1,), tasks=["spotlight", "comparison"], distractors=3)
    write_records(path, records)
    return path


def recipe_for(tmp_path: Path, model_dir: str, data: Path, *overrides: str):
    return load_recipe(
        RECIPE,
        [
            f"model.source={model_dir}",
            "model.device=cpu",
            f"solopo.data={data}",
            "solopo.samples=4",
            "solopo.limit=5",
            "solopo.generation.max_new_tokens=5",
            f"output_dir={tmp_path}",
            *overrides,
        ],
    )


def reward_by_length(text, record, cfg):  # a spread the tiny random model can earn
    return len(text) % 3 / 2


def test_pairs_take_a_correct_and_a_wrong_response_and_a_cut_run_resumes_to_the_same_file(
    tiny_model_dir, solopo_data, tmp_path, monkeypatch
):
    monkeypatch.setattr(sample_module, "verify_answer", reward_by_length)  # 0, 0.5 or 1
    recipe = recipe_for(tmp_path, tiny_model_dir, solopo_data)
    stats = make_pairs(recipe, tmp_path / "full")
    rows = [json.loads(line) for line in (tmp_path / "full" / "pairs.jsonl").read_text().splitlines()]
    assert len(rows) == stats.examples == 5 and stats.pairs + stats.no_correct + stats.no_wrong == 5
    assert stats.pairs > 0 and stats.too_long == 0
    for row in rows:
        scores = row["scores"]
        assert len(scores) == 4
        if row["chosen"] is None:
            assert 1.0 not in scores or 0.0 not in scores
            continue
        assert row["chosen"]["score"] == 1.0 and row["rejected"]["score"] == 0.0
        assert row["chosen"]["text"] != row["rejected"]["text"]
        assert row["chosen"]["ids"] and row["rejected"]["ids"]
        assert len(row["short_prompt"]) < len(row["long_prompt"])  # the distractors are in the long one only
        assert row["dropped_docs"] == []  # every document fits the tiny recipe's 2048 tokens
    # cut after the third row: chunks of 2, so the second chunk is half written
    real_append = sample_module.append_jsonl
    written = []

    def append_then_die(path, row):
        real_append(path, row)
        written.append(row["id"])
        if len(written) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(sample_module, "append_jsonl", append_then_die)
    with pytest.raises(KeyboardInterrupt):
        make_pairs(recipe, tmp_path / "cut")
    monkeypatch.setattr(sample_module, "append_jsonl", real_append)
    with (tmp_path / "cut" / "pairs.jsonl").open("a") as f:
        f.write('{"id": "torn')  # a kill mid-append
    make_pairs(recipe, tmp_path / "cut", resume=True)
    assert (tmp_path / "cut" / "pairs.jsonl").read_text() == (tmp_path / "full" / "pairs.jsonl").read_text()


def test_an_example_whose_needed_documents_do_not_fit_is_skipped_counted_and_logged(
    tiny_model_dir, solopo_data, tmp_path, caplog
):
    """A 40-token budget holds no record's needed documents (the chat template and question alone come near it):
    every example gets a too_long row and no samples, the count reaches summary.json and a warning says why."""
    recipe = recipe_for(tmp_path, tiny_model_dir, solopo_data, "solopo.max_input_tokens=40")
    with caplog.at_level("WARNING", logger="repro.solopo"):
        stats = make_pairs(recipe, tmp_path / "run")
    assert (stats.examples, stats.pairs, stats.too_long) == (5, 0, 5)
    rows = [json.loads(line) for line in (tmp_path / "run" / "pairs.jsonl").read_text().splitlines()]
    assert [row["too_long"] for row in rows] == [True] * 5 and all(row["chosen"] is None for row in rows)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["too_long"] == 5
    assert "5 of 5 examples skipped: their needed documents alone exceed solopo.max_input_tokens=40" in caplog.text
    assert make_pairs(recipe, tmp_path / "run", resume=True) == stats  # the rows count as done on resume


def write_pairs(path: Path, recipe, records, context: str = "short") -> Path:
    """Hand-made pairs: chosen [5, 6, 7], rejected [8, 9] after each record's real short and long prompts."""
    tokenizer = load_tokenizer(recipe.model)
    lines = []
    for record in records:
        prompts = context_prompts(record, recipe, tokenizer)
        row = {"id": record.id, "task": record.task, "length_set": 1, "context": context, "scores": [1.0, 0.0]}
        row.update(short_prompt=prompts.short, long_prompt=prompts.long)
        row.update(
            chosen={"ids": [5, 6, 7], "text": "a", "score": 1.0}, rejected={"ids": [8, 9], "text": "b", "score": 0.0}
        )
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_solopo_mode_never_runs_the_rejected_response_on_the_long_context(
    tiny_model_dir, solopo_data, tmp_path, monkeypatch
):
    recipe = recipe_for(tmp_path, tiny_model_dir, solopo_data)
    pairs_file = write_pairs(tmp_path / "pairs.jsonl", recipe, read_records(solopo_data).records[:3])
    recipe = recipe_for(tmp_path, tiny_model_dir, solopo_data, f"solopo.pairs={pairs_file}", "train.max_steps=1")
    tokenizer = load_tokenizer(recipe.model)
    long_lengths = {len(p.long_prompt) for p in read_pairs(pairs_file, tokenizer)}
    calls = []
    real = train_module.grouped_logprobs

    def counting(model, prompt, responses, **kwargs):
        calls.append((len(prompt), [r.tolist() for r in responses]))
        return real(model, prompt, responses, **kwargs)

    monkeypatch.setattr(train_module, "grouped_logprobs", counting)
    run_solopo(recipe, tmp_path / "run", DistInfo())
    on_long = [responses for n, responses in calls if n in long_lengths]
    on_short = [responses for n, responses in calls if n not in long_lengths]
    # 3 reference passes + 3 training passes (max_steps=1 covers the 3 pairs: micro-batches of 2, grad_accum 2)
    assert len(on_long) == len(on_short) == 6
    assert all(r == [[5, 6, 7]] for r in on_long)  # the chosen response only
    assert all(r == [[5, 6, 7], [8, 9]] for r in on_short)
    assert forwards("long") == {"long": ("chosen", "rejected")}
    assert forwards("solopo", align_rejected=True)["long"] == ("chosen", "rejected")


def test_dpo_solopo_loss_with_cached_references_equals_the_formula_on_recomputed_ones(
    tiny_model_dir, solopo_data, tmp_path
):
    """Loss of one pair = -logsigmoid(beta*((pw - rw) - (pl - rl))) on the short context
    + alpha * |beta*(pw_s - rw_s) - beta*(pw_l - rw_l)| (chosen only), with alpha = 3 (the paper's for DPO).
    The references were cached before the adapters moved; the expected value recomputes them now."""
    recipe = recipe_for(tmp_path, tiny_model_dir, solopo_data)
    pairs_file = write_pairs(tmp_path / "pairs.jsonl", recipe, read_records(solopo_data).records[:2])
    recipe = recipe_for(tmp_path, tiny_model_dir, solopo_data, f"solopo.pairs={pairs_file}", "solopo.dpo_beta=0.5")
    torch.manual_seed(0)
    loaded = load_model(recipe.model)
    pairs = read_pairs(pairs_file, loaded.tokenizer)
    logprobs = PreferenceLogprobs(forwards("solopo"), shared_prefix=True, chunk_size=64)
    (tmp_path / "run").mkdir()
    ref = cached_reference(tmp_path / "run", loaded.model, pairs, logprobs, "k", DistInfo())
    with torch.no_grad():  # adapters that change the output: policy and reference differ from here on
        for name, p in loaded.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    task = preference_task(recipe, pairs, logprobs, load_file(tmp_path / "run" / "reference.safetensors"))
    out = task.loss(loaded.model, task.collate([0, 1], 0, 0))
    out.loss_sum.backward()

    def summed(model, prompt, response) -> float:
        return float(per_sample_logprobs(model, prompt, [response])[0].sum())

    expected = 0.0
    beta, alpha = 0.5, 3.0
    for pair in pairs:
        with torch.no_grad():
            pw_s, pl_s = (
                summed(loaded.model, pair.short_prompt, pair.chosen),
                summed(loaded.model, pair.short_prompt, pair.rejected),
            )
            pw_l = summed(loaded.model, pair.long_prompt, pair.chosen)
            with loaded.model.disable_adapter():
                rw_s, rl_s = (summed(loaded.model, pair.short_prompt, r) for r in (pair.chosen, pair.rejected))
                rw_l = summed(loaded.model, pair.long_prompt, pair.chosen)
        margin = beta * ((pw_s - rw_s) - (pl_s - rl_s))
        expected += math.log1p(math.exp(-margin)) + alpha * abs(beta * (pw_s - rw_s) - beta * (pw_l - rw_l))
    assert out.units == 2
    assert float(out.loss_sum.detach()) == pytest.approx(expected, rel=1e-4)
    assert float(ref["long.chosen"][-1]) == pytest.approx(rw_l, rel=1e-5)  # the cache holds what recomputing gives
    assert out.metrics["ra_loss"] > 0 and 0.0 <= out.metrics["accuracy"] <= 1.0
    # gradients reach the adapters and nothing else
    with_grad = {n for n, p in loaded.model.named_parameters() if p.grad is not None}
    assert with_grad and all("lora_" in n for n in with_grad)
    assert all(p.requires_grad for n, p in loaded.model.named_parameters() if n in with_grad)


def test_a_mode_refuses_pairs_sampled_on_the_other_context(tiny_model_dir, solopo_data, tmp_path):
    recipe = recipe_for(tmp_path, tiny_model_dir, solopo_data)
    pairs_file = write_pairs(tmp_path / "pairs.jsonl", recipe, read_records(solopo_data).records[:2])
    recipe = recipe_for(tmp_path, tiny_model_dir, solopo_data, f"solopo.pairs={pairs_file}", "solopo.mode=long")
    with pytest.raises(ConfigError, match="mode 'long' trains on pairs sampled on the long context"):
        run_solopo(recipe, tmp_path / "run", DistInfo())


def test_two_processes_step_like_one_with_twice_the_batch(tiny_model_dir, solopo_data, tmp_path):
    """4 pairs: one process with micro-batches of 4 against two with 2 each (gloo); DPO in solopo mode
    (references cached by the main process). The first optimizer step of each is captured
    (tests/first_step_capture.py): the same loss over the same units, the same averaged gradient, and each run's
    weights Adam's update of its own gradient (see assert_same_first_step); the PO metrics agree too."""
    recipe = recipe_for(tmp_path, tiny_model_dir, solopo_data)
    pairs_file = write_pairs(tmp_path / "pairs.jsonl", recipe, read_records(solopo_data).records[:4])
    common = [
        f"model.source={tiny_model_dir}",
        "model.device=cpu",
        f"solopo.pairs={pairs_file}",
        "train.max_steps=1",
        "train.grad_accum=1",
        "train.lr=1.0e-2",
        "train.max_grad_norm=1.0e9",  # no clipping: the captured gradient is the averaged one as it is
        "train.micro_batch_tokens=65536",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    worker = [str(REPO / "tests" / "first_step_capture.py")]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    runs = {"one": ([sys.executable], "train.micro_batch_size=4"), "two": (torchrun, "train.micro_batch_size=2")}
    for name, (launch, batch) in runs.items():
        cmd = [*launch, *worker, str(tmp_path / f"{name}.pt"), "solopo", "train", str(RECIPE), *common, batch]
        res = subprocess.run([*cmd, "--out", str(tmp_path / name)], capture_output=True, text=True, env=env, cwd=REPO)
        assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads((tmp_path / n / "metrics.jsonl").read_text().splitlines()[0]) for n in runs]
    assert rows[0]["units"] == rows[1]["units"] == 4
    for key in ("po_loss", "ra_loss", "margin", "accuracy"):
        assert rows[0][key] == pytest.approx(rows[1][key], rel=1e-5, abs=1e-7), key
    one, rank0 = load_step(tmp_path / "one.pt"), load_step(tmp_path / "two-rank0.pt")
    assert_same_first_step(tmp_path / "one", tmp_path / "two", one, rank0)


