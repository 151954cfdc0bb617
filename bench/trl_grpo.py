"""TRL's GRPOTrainer on the model and settings of `python -m repro.bench rl`, for a side-by-side step time.

TRL is not a dependency of the kit: install it apart and put it on the path, e.g.
  pip install --no-deps --target /tmp/trl-site trl==1.16.0
  PYTHONPATH=/tmp/trl-site .venv/bin/python bench/trl_grpo.py --model bench/qwen2-4m --prompt-tokens 1300
Prints one JSON line: median_step_s over the timed steps (the first step warms up) and TRL's own prompt length.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time


def _text_of_length(tok, n: int, gen) -> str:
    """Random text that TRL's re-tokenisation reads as about n tokens (decoding then encoding ids shifts it)."""
    import torch

    ids = torch.randint(3, len(tok), (n,), generator=gen).tolist()
    for _ in range(8):
        text = tok.decode(ids)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= n:
            return text
        ids = ids[:n]
    return tok.decode(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="bench/qwen2-4m")
    parser.add_argument("--prompt-tokens", type=int, default=1300)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    opts = parser.parse_args()

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    tok = AutoTokenizer.from_pretrained(opts.model)
    gen = torch.Generator().manual_seed(0)
    texts = [_text_of_length(tok, opts.prompt_tokens, gen) for _ in range(opts.prompts)]
    lengths = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    rows = [{"prompt": t} for _ in range(opts.steps + 2) for t in texts]

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self.started)

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out,
            per_device_train_batch_size=opts.prompts * opts.group,
            gradient_accumulation_steps=1,
            num_generations=opts.group,
            max_completion_length=opts.new_tokens,
            generation_kwargs={"min_new_tokens": opts.new_tokens},  # every completion full length, as the kit's
            temperature=1.0,
            top_p=1.0,
            beta=0.0,
            loss_type="dapo",
            epsilon=0.2,
            epsilon_high=0.28,
            num_iterations=1,
            learning_rate=1e-5,
            max_steps=opts.steps + 1,
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            use_cpu=not torch.cuda.is_available(),
            bf16=False,
            shuffle_dataset=False,
        )
        trainer = GRPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(opts.model, dtype=torch.float32),
            reward_funcs=[lambda completions, **kw: [random.random() for _ in completions]],
            args=config,
            train_dataset=Dataset.from_list(rows),
            processing_class=tok,
            peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear"),
            callbacks=[timer],
        )
        trainer.train()
    timed = timer.times[1:]
    print(
        json.dumps(
            {
                "trl_median_step_s": round(statistics.median(timed), 3),
                "trl_prompt_tokens": lengths,
                "steps": len(timed),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
