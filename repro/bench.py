"""`make bench`: SFT throughput and memory, chunked vs full log-prob memory; `bench prefix|rl|solopo|cprs`: the rest."""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results.json"
DEFAULT_MODEL = "artifacts/smollm2-135m-instruct"


def model_folder(name: str, command: str) -> str | None:
    """`name` as given, or under the repository, when it holds a model (config.json); else None, said on stderr."""
    for candidate in (Path(name), REPO / name):
        if (candidate / "config.json").is_file():
            return str(candidate)
    print(f"{command}: model folder '{name}' missing", file=sys.stderr)
    return None


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def sft_case(model_dir: str, seq: int, checkpointing: bool, steps: int) -> dict:
    """One LoRA SFT step after another on `seq` tokens; tokens/s is the median over the timed steps."""
    from repro.config import ModelSection
    from repro.modeling import load_model
    from repro.train.logprobs import chunked_cross_entropy

    loaded = load_model(ModelSection(source=model_dir, gradient_checkpointing=checkpointing))
    model, device = loaded.model, loaded.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base_mib = _peak_mib(device)
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
        "peak_mib": round(_peak_mib(device), 1),
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
    before = _peak_mib(torch.device("cpu"))
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
        "peak_mib_above_inputs": round(_peak_mib(torch.device("cpu")) - before, 1),
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
    out = {"seconds": round(statistics.median(times), 3), "peak_mib": round(_peak_mib(device), 1)}
    if generated:
        out["generated_tokens"] = generated[-1]
    return out


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
    cases = {mode: _run_worker(["prefix", model, mode, *shape]) for mode in _PREFIX_MODES}
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


_PREFIX_MODES = ("grouped", "per_sample", "sample_once", "sample_repeat")


def _first_to_kill() -> None:
    """In a worker: ask the kernel's out-of-memory killer to take this case before the run that launched it."""
    with contextlib.suppress(OSError):  # not allowed: the kernel's default choice stands
        Path("/proc/self/oom_score_adj").write_text("1000")


def worker_failure(returncode: int, stderr: str) -> str:
    """Why a worker process failed, in a few words for a report."""
    if returncode == -9:
        return "killed by the system, most likely out of memory"
    if "out of memory" in stderr.lower():
        return "out of memory"
    last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "")
    return f"exit code {returncode}" + (f": {last[:200]}" if last else "")


def _run_worker(args: list[str], *, may_fail: bool = False) -> dict:
    """One case in its own process; its last stdout line is its JSON. With `may_fail`, a failed case comes back
    as {"failed": why} (a case that does not fit in memory is a result); without, it ends the bench."""
    res = subprocess.run(
        [sys.executable, "-m", "repro.bench", "--worker", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        preexec_fn=_first_to_kill if sys.platform == "linux" else None,
    )
    if res.returncode != 0:
        if may_fail:
            return {"failed": worker_failure(res.returncode, res.stderr)}
        raise SystemExit(f"bench worker {' '.join(args)} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["prefix"]:
        return prefix_main(argv[1:])
    if argv[:1] == ["rl"]:
        from repro.bench_rl import rl_main

        return rl_main(argv[1:])
    if argv[:1] == ["solopo"]:
        from repro.bench_solopo import solopo_main

        return solopo_main(argv[1:])
    if argv[:1] == ["cprs"]:
        from repro.bench_cprs import cprs_main

        return cprs_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--steps", type=int, default=3, help="timed SFT steps per case (median)")
    parser.add_argument("--repeats", type=int, default=5, help="timed log-prob passes per case (median)")
    opts = parser.parse_args(argv)
    if opts.worker is not None:
        kind, *rest = opts.worker
        if kind == "sft":
            out = sft_case(rest[0], int(rest[1]), rest[2] == "1", int(rest[3]))
        elif kind == "prefix":
            out = prefix_case(rest[0], rest[1], *(int(x) for x in rest[2:6]))
        elif kind == "solopo":
            from repro.bench_solopo import solopo_case

            out = solopo_case(rest[0], rest[1], rest[2], *(int(x) for x in rest[3:7]))
        elif kind == "cprs":
            from repro.bench_cprs import cprs_case

            out = cprs_case(rest[0], *(int(x) for x in rest[1:4]))
        else:
            out = logprob_case(rest[0] == "1", int(rest[1]), int(rest[2]), int(rest[3]), int(rest[4]))
        print(json.dumps(out))
        return 0
    if not (REPO / opts.model / "config.json").is_file() and not Path(opts.model, "config.json").is_file():
        print(
            f"bench: model folder '{opts.model}' missing; run `repro init-model recipes/tiny/base.yaml`",
            file=sys.stderr,
        )
        return 2
    rows = []
    # each case in its own process, so its peak memory is its own
    for seq in (1024, 4096):
        for ckpt in (False, True):
            result = _run_worker(["sft", opts.model, str(seq), "1" if ckpt else "0", str(opts.steps)])
            rows.append({"case": f"SFT LoRA {seq} tokens" + (", grad. checkpointing" if ckpt else ""), **result})
            print(json.dumps(rows[-1]), flush=True)
    for chunked in (False, True):
        result = _run_worker(["logprobs", "1" if chunked else "0", "8192", "32768", "576", str(opts.repeats)])
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


def format_table(rows: list[dict]) -> str:
    lines = [f"{'case':<48} {'tokens/s':>9} {'step s':>8} {'time s':>8} {'peak MiB':>10}", "-" * 87]
    for r in rows:
        peak = r.get("peak_mib", r.get("peak_mib_above_inputs"))
        lines.append(
            f"{r['case']:<48} {r.get('tokens_per_s', '-')!s:>9} {r.get('step_s', '-')!s:>8} "
            f"{r.get('seconds', '-')!s:>8} {peak!s:>10}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
