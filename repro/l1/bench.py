"""`python -m repro.bench rl`: one RL step of the kit (prefill-once rollouts, shared-prefix DAPO update), timed.

Settings match bench/trl_grpo.py, TRL's GRPOTrainer on the same model: LoRA r16 on all linear layers, DAPO's
token-level loss, beta 0, one PPO epoch, every completion exactly --new-tokens long, random rewards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from repro.benchkit import register_command
from repro.tiny import build_tiny_model

BENCH_MODEL = Path("bench") / "qwen2-4m"  # a random Qwen2, hidden 256, 4 layers, the tiny BPE tokenizer


def rl_steps(model_dir: str, prompt_tokens: int, prompts: int, group: int, new_tokens: int, steps: int) -> dict:
    """`steps` + 1 RL steps (the first warms up); the median step time and its split over the timed steps."""
    from repro.config import GenerationSection, LoraSection, ModelSection, TrainSection
    from repro.generation import sample_groups
    from repro.l1.rl import group_advantages, policy_loss
    from repro.modeling import load_model
    from repro.train.dist import DistInfo
    from repro.train.engine import LossOutput, OptimizerStep
    from repro.train.prefix import grouped_logprobs

    loaded = load_model(ModelSection(source=model_dir, device="cpu" if not torch.cuda.is_available() else "auto",
                                     lora=LoraSection(r=16, alpha=32, dropout=0.0)))  # fmt: skip
    model, tok = loaded.model, loaded.tokenizer
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    prompt_ids = [torch.randint(0, vocab, (prompt_tokens,), generator=gen) for _ in range(prompts)]
    sampling = GenerationSection(
        max_new_tokens=new_tokens, do_sample=True, temperature=1.0, top_p=1.0, batch_size=prompts
    )
    engine = OptimizerStep(model, TrainSection(lr=1e-5), DistInfo(), loaded.device, loaded.dtype, total_steps=steps + 1)

    def loss(policy, batch):
        logps = grouped_logprobs(
            policy, batch["prompt"].to(loaded.device), [r.to(loaded.device) for r in batch["responses"]]
        )
        logp = torch.stack(logps)  # every completion has the same length
        mask = torch.ones_like(logp, dtype=torch.bool)
        return LossOutput(*policy_loss(logp, logp.detach(), batch["advantages"], mask, 0.2, 0.28, "token"))

    rows = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        groups = sample_groups(model, tok, prompt_ids, group, sampling, full_length=True)
        t1 = time.perf_counter()
        rewards = torch.rand((prompts, group), generator=gen)
        advantages = group_advantages(rewards)
        batches = [
            {"prompt": p, "responses": [torch.tensor(s.token_ids) for s in g], "advantages": a}
            for p, g, a in zip(prompt_ids, groups, advantages, strict=True)
        ]
        engine.run(batches, loss, step=1)
        t2 = time.perf_counter()
        assert all(len(s.token_ids) == new_tokens for g in groups for s in g)
        rows.append({"step_s": t2 - t0, "generate_s": t1 - t0, "update_s": t2 - t1})
    timed = rows[1:]
    return {
        "median_step_s": round(statistics.median(r["step_s"] for r in timed), 3),
        "median_generate_s": round(statistics.median(r["generate_s"] for r in timed), 3),
        "median_update_s": round(statistics.median(r["update_s"] for r in timed), 3),
        "steps": steps,
    }


@register_command("rl")
def rl_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.bench rl", description=__doc__)
    parser.add_argument("--model", default=None, help="an HF model folder (default: a random Qwen2 of ~4M parameters)")
    parser.add_argument("--prompt-tokens", type=int, default=1300)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (median), after one warm-up step")
    opts = parser.parse_args(argv)
    model = opts.model
    if model is None:
        if not (BENCH_MODEL / "config.json").is_file():
            build_tiny_model(BENCH_MODEL, hidden=256, layers=4)
        model = str(BENCH_MODEL)
    out = rl_steps(model, opts.prompt_tokens, opts.prompts, opts.group, opts.new_tokens, opts.steps)
    shape = {"model": model, "prompt_tokens": opts.prompt_tokens, "prompts": opts.prompts, "group": opts.group,
             "new_tokens": opts.new_tokens}  # fmt: skip
    print(json.dumps({**shape, **out}), flush=True)
    return 0
