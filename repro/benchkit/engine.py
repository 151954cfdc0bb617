"""The engine's bench cases: SFT tokens/s and memory, chunked log-probs, shared-prefix rows, prefill-once sampling."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from repro.benchkit import DEFAULT_MODEL, REPO, model_folder, register_case, register_command, run_worker
from repro.train.memory import peak_memory_mib

RESULTS = REPO / "bench" / "results.json"
PREFIX_MODES = ("grouped", "per_sample", "sample_once", "sample_repeat")


def sft_case(model_dir: str, seq: int, checkpointing: bool, steps: int) -> dict:
    """One LoRA SFT step after another on `seq` tokens; tokens/s is the median over the timed steps."""
    from repro.config import ModelSection
    from repro.modeling import load_model
    from repro.train.logprobs import chunked_cross_entropy

    loaded = load_model(ModelSection(source=model_dir, gradient_checkpointing=checkpointing))
    model, device = loaded.model, loaded.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base_mib = peak_memory_mib(device)
    ids = torch.randint(0, model.config.vocab_size, (1, seq), generator=torch.Generator().manual_seed(0)).to(device)
    mask = torch.ones_like(ids)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        loss, n = chunked_cross_entropy(model, ids, mask, ids)
        (loss / n).backward()
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i > 0:  # the first step warms up allocator and kernels
            times.append(time.perf_counter() - start)
    step_s = statistics.median(times)
    return {
        "tokens_per_s": round(seq / step_s, 1),
        "step_s": round(step_s, 3),
        "peak_mib": round(peak_memory_mib(device), 1),
        "model_mib": round(base_mib, 1),
        "steps": steps,
    }


def logprob_case(chunked: bool, tokens: int, vocab: int, hidden: int, repeats: int) -> dict:
    """Forward + backward of next-token log-probs over `tokens` positions; peak memory above the inputs."""
    from repro.train.logprobs import token_logprobs

    gen = torch.Generator().manual_seed(0)
    h = torch.randn(1, tokens, hidden, generator=gen, requires_grad=True)
    w = (torch.randn(vocab, hidden, generator=gen) * 0.02).requires_grad_()
    targets = torch.randint(0, vocab, (1, tokens), generator=gen)
    before = peak_memory_mib(torch.device("cpu"))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        if chunked:
            lp = token_logprobs(h, w, targets, chunk_size=1024)
        else:
            lp = torch.log_softmax((h @ w.T).float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        lp.sum().backward()
        h.grad = w.grad = None
        times.append(time.perf_counter() - start)
    return {
        "seconds": round(statistics.median(times), 3),
        "peak_mib_above_inputs": round(peak_memory_mib(torch.device("cpu")) - before, 1),
    }


def prefix_case(model_dir: str, mode: str, prompt_tokens: int, group: int, new_tokens: int, steps: int) -> dict:
    """One group of `group` responses to a random prompt: forward + backward of their log-probs on one shared-prefix
    row (grouped) or on one row per response with gradients accumulated (per_sample), or sampling the group with
    the prompt prefilled once (sample_once) or per sample by generate(num_return_sequences) (sample_repeat)."""
    from repro.config import GenerationSection, ModelSection
    from repro.modeling import load_model
    from repro.train.prefix import grouped_logprobs, per_sample_logprobs

    loaded = load_model(ModelSection(source=model_dir))  # LoRA r16 on all linear layers
    model, device, tokenizer = loaded.model, loaded.device, loaded.tokenizer
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    prompt = torch.randint(0, vocab, (prompt_tokens,), generator=gen)
    responses = [torch.randint(0, vocab, (new_tokens,), generator=gen) for _ in range(group)]
    sampling = GenerationSection(max_new_tokens=new_tokens, do_sample=True)
    generated: list[int] = []

    def run_once() -> None:
        if mode == "grouped":
            torch.stack([lp.sum() for lp in grouped_logprobs(model, prompt, responses)]).sum().backward()
        elif mode == "per_sample":
            for response in responses:
                per_sample_logprobs(model, prompt, [response])[0].sum().backward()
        elif mode == "sample_once":
            from repro.generation import sample_groups

            samples = sample_groups(model, tokenizer, [prompt], group, sampling, seed=0)[0]
            generated.append(sum(len(s.token_ids) for s in samples))
        else:
            from repro.generation import eos_ids

            ids = prompt.unsqueeze(0).to(device)
            model.eval()
            with torch.no_grad(), torch.random.fork_rng():
                torch.manual_seed(0)
                out = model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    num_return_sequences=group,
                    do_sample=True,
                    max_new_tokens=new_tokens,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=eos_ids(model, tokenizer),
                )
            model.train()
            eos = set(eos_ids(model, tokenizer))
            rows = out[:, ids.shape[1] :].tolist()  # a row that stopped early is padded after its eos
            generated.append(sum(next((i + 1 for i, t in enumerate(r) if t in eos), len(r)) for r in rows))
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        run_once()
        if i > 0:  # the first pass warms up allocator and kernels
            times.append(time.perf_counter() - start)
    out = {"seconds": round(statistics.median(times), 3), "peak_mib": round(peak_memory_mib(device), 1)}
    if generated:
        out["generated_tokens"] = generated[-1]
    return out


@register_command("prefix")
def prefix_main(argv: list[str]) -> int:
    """`python -m repro.bench prefix`: one JSON line, each case in its own process."""
    parser = argparse.ArgumentParser(prog="python -m repro.bench prefix", description=prefix_case.__doc__)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--prompt-tokens", type=int, default=4096)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="timed passes per case (median), after one warm-up")
    opts = parser.parse_args(argv)
    model = model_folder(opts.model, "bench prefix")
    if model is None:
        return 2
    shape = [str(opts.prompt_tokens), str(opts.group), str(opts.new_tokens), str(opts.steps)]
    cases = {mode: run_worker(["prefix", model, mode, *shape]) for mode in PREFIX_MODES}
    grouped, per_sample = cases["grouped"], cases["per_sample"]
    once, repeat = cases["sample_once"], cases["sample_repeat"]
    row = {
        "model": opts.model,
        "prompt_tokens": opts.prompt_tokens,
        "group": opts.group,
        "new_tokens": opts.new_tokens,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "grouped_s": grouped["seconds"],
        "per_sample_s": per_sample["seconds"],
        "speedup": round(per_sample["seconds"] / grouped["seconds"], 2),
        "grouped_peak_mib": grouped["peak_mib"],
        "per_sample_peak_mib": per_sample["peak_mib"],
        "sample_once_s": once["seconds"],
        "sample_repeat_s": repeat["seconds"],
        "sample_speedup": round(repeat["seconds"] / once["seconds"], 2),
        "sample_once_tokens": once["generated_tokens"],
        "sample_repeat_tokens": repeat["generated_tokens"],
    }
    print(json.dumps(row), flush=True)
    return 0


@register_command("")
def engine_main(argv: list[str]) -> int:
    """`make bench`: SFT tokens/s and memory with and without gradient checkpointing, chunked vs full log-probs."""
    parser = argparse.ArgumentParser(prog="python -m repro.bench", description=engine_main.__doc__)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--steps", type=int, default=3, help="timed SFT steps per case (median)")
    parser.add_argument("--repeats", type=int, default=5, help="timed log-prob passes per case (median)")
    opts = parser.parse_args(argv)
    model = model_folder(opts.model, "bench")
    if model is None:
        return 2
    rows = []
    # each case in its own process, so its peak memory is its own
    for seq in (1024, 4096):
        for ckpt in (False, True):
            result = run_worker(["sft", opts.model, str(seq), "1" if ckpt else "0", str(opts.steps)])
            rows.append({"case": f"SFT LoRA {seq} tokens" + (", grad. checkpointing" if ckpt else ""), **result})
            print(json.dumps(rows[-1]), flush=True)
    for chunked in (False, True):
        result = run_worker(["logprobs", "1" if chunked else "0", "8192", "32768", "576", str(opts.repeats)])
        rows.append({"case": "log-probs 8K x 32K vocab, " + ("chunked (1024)" if chunked else "full logits"), **result})
        print(json.dumps(rows[-1]), flush=True)
    meta = {
        "machine": platform.machine(),
        "cpus": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "model": opts.model,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(format_table(rows))
    print(f"written to {RESULTS.relative_to(REPO)}")
    return 0


@register_case("sft")
def _sft_worker(args: list[str]) -> dict:
    model, seq, checkpointing, steps = args
    return sft_case(model, int(seq), checkpointing == "1", int(steps))


@register_case("logprobs")
def _logprob_worker(args: list[str]) -> dict:
    chunked, tokens, vocab, hidden, repeats = args
    return logprob_case(chunked == "1", int(tokens), int(vocab), int(hidden), int(repeats))


@register_case("prefix")
def _prefix_worker(args: list[str]) -> dict:
    model, mode, *shape = args
    return prefix_case(model, mode, *(int(x) for x in shape))


def format_table(rows: list[dict]) -> str:
    lines = [f"{'case':<48} {'tokens/s':>9} {'step s':>8} {'time s':>8} {'peak MiB':>10}", "-" * 87]
    for r in rows:
        peak = r.get("peak_mib", r.get("peak_mib_above_inputs"))
        lines.append(
            f"{r['case']:<48} {r.get('tokens_per_s', '-')!s:>9} {r.get('step_s', '-')!s:>8} "
            f"{r.get('seconds', '-')!s:>8} {peak!s:>10}"
        )
    return "\n".join(lines)


