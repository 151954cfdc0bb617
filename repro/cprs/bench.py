"""`python -m repro.bench cprs`: compression tokens/s by input length, and the window batch size's effect."""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import time
from typing import Any

import torch

from repro.benchkit import DEFAULT_MODEL, REPO, model_folder, register_case, register_command, run_worker
from repro.train.memory import peak_memory_mib, reset_peak_memory

_WORDS = ["archive", "ledger", "harbour", "council", "river", "museum", "station", "report", "budget", "survey"]


def bench_text(tokens: int, seed: int = 0) -> str:
    """Plain English-like sentences, seeded, of at least `tokens` tokens for any BPE tokenizer (a word >= 1 token)."""
    rng = random.Random(seed)
    sentences = []
    words = 0
    while words < tokens:
        n = rng.randint(8, 16)
        body = " ".join(rng.choice(_WORDS) for _ in range(n))
        sentences.append(f"The {body} was {rng.randint(10, 9999)}.")
        words += n + 3
    return " ".join(sentences)


def cprs_case(model_dir: str, tokens: int, window_batch: int, repeats: int) -> dict[str, Any]:
    """compress() on `tokens` context tokens with a fresh (untrained) critic: the same compute as a trained one."""
    from repro.config import load_recipe
    from repro.cprs.compress import compress
    from repro.cprs.train import build_critic
    from repro.modeling import load_model

    recipe = load_recipe(
        REPO / "recipes" / "tiny" / "cprs.yaml", [f"model.source={model_dir}"]
    )
    base = dataclasses.replace(recipe.model, lora=dataclasses.replace(recipe.model.lora, enabled=False))
    loaded = load_model(base, training=False)
    critic = build_critic(recipe, loaded).eval()
    ids = loaded.tokenizer(bench_text(tokens), add_special_tokens=False)["input_ids"][:tokens]
    text = loaded.tokenizer.decode(ids)
    cfg = dataclasses.replace(recipe.cprs, window_batch=window_batch, granularity="sentence")
    reset_peak_memory(loaded.device)
    query = "Which record mentions the harbour?"
    made = compress(critic, loaded.tokenizer, text, cfg, query)  # warms up allocator and kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        made = compress(critic, loaded.tokenizer, text, cfg, query)
        if loaded.device.type == "cuda":
            torch.cuda.synchronize(loaded.device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {
        "input_tokens": made.input_tokens,
        "windows": made.windows,
        "seconds": round(seconds, 3),
        "tokens_per_s": round(made.input_tokens / seconds, 1),
        "peak_mib": round(peak_memory_mib(loaded.device), 1),
    }


@register_case("cprs")
def _cprs_worker(args: list[str]) -> dict[str, Any]:
    model, *shape = args
    return cprs_case(model, *(int(x) for x in shape))


def growth(rows: list[dict], short: int, long: int, window_batch: int) -> float | None:
    """Time at `long` tokens over time at `short` (linear scaling gives long/short), at one window batch size."""
    seconds = {r["tokens"]: r["seconds"] for r in rows if r["window_batch"] == window_batch}
    if short not in seconds or long not in seconds:
        return None
    return round(seconds[long] / seconds[short], 2)


@register_command("cprs")
def cprs_main(argv: list[str]) -> int:
    """`python -m repro.bench cprs`: one JSON line per case, each in its own process, then the summary."""
    parser = argparse.ArgumentParser(prog="python -m repro.bench cprs", description=cprs_case.__doc__)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--lengths", default="2048,8192,32768", help="context tokens, e.g. 2048,8192,32768")
    parser.add_argument("--window-batch", type=int, default=4, help="the window batch size timed at every length")
    parser.add_argument("--batches", default="1,4,8", help="window batch sizes compared at --batch-length")
    parser.add_argument("--batch-length", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per case (median), after one warm-up")
    parser.add_argument("--out", default=None, help="also write the summary JSON here")
    opts = parser.parse_args(argv)
    model = model_folder(opts.model, "bench cprs")
    if model is None:
        return 2
    lengths = [int(x) for x in opts.lengths.split(",") if x.strip()]
    batches = [int(x) for x in opts.batches.split(",") if x.strip()]
    cases = [(n, opts.window_batch) for n in lengths]
    cases += [(opts.batch_length, b) for b in batches if (opts.batch_length, b) not in cases]
    rows = []
    for tokens, batch in cases:
        result = run_worker(["cprs", model, str(tokens), str(batch), str(opts.repeats)])
        rows.append({"tokens": tokens, "window_batch": batch, **result})
        print(json.dumps(rows[-1]), flush=True)
    one = {r["window_batch"]: r["seconds"] for r in rows if r["tokens"] == opts.batch_length}
    summary = {
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "model": opts.model,
        "rows": rows,
        "growth_32k_over_8k": growth(rows, 8192, 32768, opts.window_batch),
        "batch_speedup_over_one": {str(b): round(one[1] / s, 2) for b, s in one.items() if 1 in one and b != 1},
    }
    print(json.dumps(summary), flush=True)
    if opts.out:
        from repro.fsio import atomic_write_json

        atomic_write_json(opts.out, summary)
    return 0
