"""`make gpu-check`: every hot path of the kit once on CUDA, on random weights of a small Qwen2, a table row a path."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from repro.config import LoraSection, ModelSection, QuantSection
from repro.modeling import flash_attn_available, load_model
from repro.tiny import build_tiny_model
from repro.train.memory import peak_memory_mib, reset_peak_memory

BATCH, SEQ, REPEATS = 4, 1024, 5
LOGPROB_TOLERANCE = 1e-3  # grouped against per-sample log-probs, bf16 on a GPU


@dataclass
class Row:
    what: str
    result: str
    ms: float | None = None
    peak_mib: float | None = None

    @property
    def passed(self) -> bool:
        return self.result.startswith("ok")


@dataclass(frozen=True)
class Shape:
    """The sizes the checks run at: the GPU's, or a CPU's few seconds."""

    device: str = "cuda"
    dtype: str = "bfloat16"
    prompt_tokens: int = 2048
    group: int = 8
    new_tokens: int = 128
    steps: int = 3


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median ms of fn() over `repeats` calls after one warm-up call."""
    times = []
    for i in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        if i > 0:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _train_step_timing(cfg: ModelSection) -> tuple[float, float]:
    """Median ms of a forward + backward on random tokens, and the peak memory in MiB."""
    loaded = load_model(cfg, training=True)
    model, device = loaded.model, loaded.device
    ids = torch.randint(0, model.config.vocab_size, (BATCH, SEQ), device=device)
    reset_peak_memory(device)

    def step() -> None:
        model(input_ids=ids, labels=ids).loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        if not all(g is not None and torch.isfinite(g).all() for g in grads):
            raise RuntimeError("missing or non-finite gradient in a trainable parameter")
        model.zero_grad(set_to_none=True)

    ms = _timed(step, device, REPEATS)
    return ms, peak_memory_mib(device)


def model_checks(model_dir: str) -> list[tuple[str, Callable[[], tuple[float, float]]]]:
    def section(attention: str, four_bit: bool, lora: bool, ckpt: bool = False) -> ModelSection:
        return ModelSection(
            source=model_dir,
            dtype="bfloat16",
            attention=attention,
            gradient_checkpointing=ckpt,
            lora=LoraSection(enabled=lora),
            quant=QuantSection(load_in_4bit=four_bit),
        )

    checks = [
        ("load bf16 sdpa, full fine-tuning", section("sdpa", False, False)),
        ("load bf16 sdpa + LoRA", section("sdpa", False, True)),
        ("load 4-bit nf4 + LoRA (QLoRA)", section("sdpa", True, True)),
        ("load 4-bit nf4 + LoRA + grad. checkpointing", section("sdpa", True, True, ckpt=True)),
    ]
    if flash_attn_available():
        checks.append(("load bf16 flash_attention_2 + LoRA", section("flash_attention_2", False, True)))
    return [(name, lambda cfg=cfg: _train_step_timing(cfg)) for name, cfg in checks]


def sft_loop_check(model_dir: str, workdir: str, shape: Shape = Shape()) -> tuple[float, float]:
    """Warm-up SFT through the shared loop (autocast, LoRA, chunked log-probs) on a little Loong-mini."""
    import json
    from pathlib import Path

    from repro.config import Recipe, SftSection, TrainSection
    from repro.data.loong_mini import generate
    from repro.data.schema import write_records
    from repro.train.dist import DistInfo
    from repro.train.sft import run_sft

    data = Path(workdir) / "train.jsonl"
    write_records(data, generate(32, seed=0, sets=(1,)))
    recipe = Recipe(
        name="gpu-check-sft",
        model=ModelSection(source=model_dir, dtype=shape.dtype, attention="auto", device=shape.device),
        sft=SftSection(data=str(data), max_seq_tokens=8192),
        train=TrainSection(
            micro_batch_tokens=32768, micro_batch_size=4, max_steps=2 * shape.steps, checkpoint_every=50
        ),
    )
    device = torch.device(shape.device)
    reset_peak_memory(device)
    run_dir = Path(workdir) / "sft-run"
    run_sft(recipe, run_dir, DistInfo())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    ms = statistics.median(1000 * r["tokens"] / r["tokens_per_s"] for r in rows[1:])
    return ms, peak_memory_mib(device)


def _lora_model(model_dir: str, shape: Shape):
    loaded = load_model(
        ModelSection(source=model_dir, dtype=shape.dtype, device=shape.device, lora=LoraSection(r=16, dropout=0.0))
    )
    with torch.no_grad():  # B starts at zero: let the adapters change the output
        gen = torch.Generator().manual_seed(0)
        for name, p in loaded.model.named_parameters():
            if "lora_B" in name:
                p.copy_((torch.randn(p.shape, generator=gen) * 0.02).to(p.dtype))
    return loaded


def logprob_checks(model_dir: str, shape: Shape = Shape()) -> list[tuple[str, Callable[[], tuple[float, float]]]]:
    """grouped_logprobs (one shared-prefix row) against per-sample rows: equal within LOGPROB_TOLERANCE, each
    timed with its backward."""
    from repro.train.prefix import grouped_logprobs, per_sample_logprobs

    state: dict = {}

    def setup():
        if not state:
            loaded = _lora_model(model_dir, shape)
            vocab = loaded.model.config.vocab_size
            gen = torch.Generator().manual_seed(1)
            prompt = torch.randint(0, vocab, (shape.prompt_tokens,), generator=gen)
            responses = [torch.randint(0, vocab, (shape.new_tokens,), generator=gen) for _ in range(shape.group)]
            state.update(loaded=loaded, prompt=prompt, responses=responses)
        return state["loaded"], state["prompt"], state["responses"]

    def run(grouped: bool) -> tuple[float, float]:
        loaded, prompt, responses = setup()
        model, device = loaded.model, loaded.device
        with torch.no_grad():
            a = grouped_logprobs(model, prompt, responses)
            b = per_sample_logprobs(model, prompt, responses)
        gap = max(float((x.float() - y.float()).abs().max()) for x, y in zip(a, b, strict=True))
        if gap > LOGPROB_TOLERANCE:
            raise RuntimeError(f"grouped and per-sample log-probs differ by {gap:.2e} > {LOGPROB_TOLERANCE:g}")

        def step() -> None:
            if grouped:
                torch.stack([lp.sum() for lp in grouped_logprobs(model, prompt, responses)]).sum().backward()
            else:
                for response in responses:
                    per_sample_logprobs(model, prompt, [response])[0].sum().backward()
            model.zero_grad(set_to_none=True)

        reset_peak_memory(device)
        return _timed(step, device, shape.steps), peak_memory_mib(device)

    size = f"{shape.prompt_tokens} + {shape.group} x {shape.new_tokens}"
    return [
        (f"log-probs, one shared-prefix row ({size}), = per-sample", lambda: run(True)),
        (f"log-probs, {shape.group} per-sample rows ({size})", lambda: run(False)),
    ]


def sampling_checks(model_dir: str, shape: Shape = Shape()) -> list[tuple[str, Callable[[], tuple[float, float]]]]:
    """sample_groups (the prompt prefilled once) against generate(num_return_sequences=G)."""
    from repro.config import GenerationSection
    from repro.generation import eos_ids, sample_groups

    def run(once: bool) -> tuple[float, float]:
        loaded = _lora_model(model_dir, shape)
        model, tokenizer, device = loaded.model, loaded.tokenizer, loaded.device
        prompt = torch.randint(0, model.config.vocab_size, (shape.prompt_tokens,), generator=torch.Generator())
        gen = GenerationSection(max_new_tokens=shape.new_tokens, do_sample=True)
        ids = prompt.unsqueeze(0).to(device)

        def sample() -> None:
            if once:
                groups = sample_groups(model, tokenizer, [prompt], shape.group, gen, seed=0)
                if len(groups[0]) != shape.group:
                    raise RuntimeError(f"{len(groups[0])} samples for a group of {shape.group}")
                return
            with torch.no_grad():
                model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), num_return_sequences=shape.group,
                               do_sample=True, max_new_tokens=shape.new_tokens, pad_token_id=tokenizer.pad_token_id,
                               eos_token_id=eos_ids(model, tokenizer))  # fmt: skip

        reset_peak_memory(device)
        return _timed(sample, device, shape.steps), peak_memory_mib(device)

    return [
        (f"sample_groups, prefill once (G={shape.group})", lambda: run(True)),
        (f"generate(num_return_sequences={shape.group})", lambda: run(False)),
    ]


def training_checks(model_dir: str, shape: Shape = Shape()) -> list[tuple[str, Callable[[], tuple[float, float]]]]:
    """One RL round (rollouts + a DAPO update), one SoLoPO step, each on the engine as the stages run them."""
    from repro.l1.bench import rl_steps
    from repro.solopo.bench import solopo_case

    def rl() -> tuple[float, float]:
        device = torch.device(shape.device)
        reset_peak_memory(device)
        row = rl_steps(model_dir, shape.prompt_tokens // 2, 2, shape.group, shape.new_tokens // 2, shape.steps)
        return 1000 * row["median_step_s"], peak_memory_mib(device)

    def solopo() -> tuple[float, float]:
        short = shape.prompt_tokens // 8
        row = solopo_case(model_dir, "solopo", "shared prefix", short, 8 * short, shape.new_tokens // 2, shape.steps)
        return 1000 * row["step_s"], row["peak_mib"]

    return [("RL round: 2 prompts x G rollouts + DAPO update", rl), ("SoLoPO step (DPO, solopo mode, 8x)", solopo)]


def cprs_compress_check(model_dir: str, window_batch: int) -> tuple[float, float]:
    """compress() of 32K context tokens (1,024-token windows, a fresh critic), `window_batch` windows a forward."""
    from repro.cprs.bench import cprs_case

    row = cprs_case(model_dir, 32768, window_batch, repeats=2)
    return 1000 * row["seconds"], row["peak_mib"]


def two_processes_check() -> tuple[None, None]:
    """`--nproc 2` on a machine with one GPU is refused in one line (each process needs a GPU of its own)."""
    from repro.commands import check_gpus_for
    from repro.errors import ReproError

    gpus = torch.cuda.device_count()
    if gpus != 1:
        raise RuntimeError(f"needs exactly one visible GPU to check the refusal (here: {gpus})")
    try:
        check_gpus_for(2, on_cpu=False)
    except ReproError as exc:
        if "only 1 GPU(s) visible" in str(exc) and "\n" not in str(exc):
            return None, None
        raise RuntimeError(f"refused, but not in one clear line: {exc}") from None
    raise RuntimeError("2 processes on 1 GPU were not refused")


def run_checks(checks: list[tuple[str, Callable[[], tuple[float | None, float | None]]]]) -> list[Row]:
    """Each check on its own: a check that breaks is a failed row, never the end of the run."""
    rows = []
    for name, check in checks:
        try:
            ms, peak = check()
            rows.append(Row(name, "ok", ms, peak))
        except Exception as exc:
            rows.append(Row(name, f"FAILED: {str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__}"))
    return rows


def format_table(rows: list[Row]) -> str:
    header = f"{'what ran':<56} {'result':<10} {'ms (median)':>12} {'peak MiB':>10}"
    lines = [header, "-" * len(header)]
    for r in rows:
        ms = f"{r.ms:.1f}" if r.ms is not None else "-"
        peak = f"{r.peak_mib:.0f}" if r.peak_mib is not None else "-"
        lines.append(f"{r.what:<56} {r.result:<10} {ms:>12} {peak:>10}")
    lines.append(f"{sum(r.passed for r in rows)} of {len(rows)} checks passed")
    return "\n".join(lines)


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device visible; run it on a machine with an NVIDIA GPU", file=sys.stderr)
        return 2
    props = torch.cuda.get_device_properties(0)
    print(f"gpu-check on {props.name} ({props.total_memory / 2**30:.0f} GiB), torch {torch.__version__}")
    print(f"random Qwen2 (hidden 512, 8 layers); training steps: batch {BATCH} x {SEQ} tokens, median of {REPEATS}\n")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_tiny_model(tmp, hidden=512, layers=8))
        checks = model_checks(model_dir)
        checks.append(("SFT loop: bf16 autocast + LoRA, Loong-mini", lambda: sft_loop_check(model_dir, tmp)))
        checks += logprob_checks(model_dir) + sampling_checks(model_dir) + training_checks(model_dir)
        for batch in (1, 8):  # the official release scores one window at a time
            name = f"CPRS compress 32K (ms/text), {batch} window{'s' if batch > 1 else ''}/fwd"
            checks.append((name, lambda batch=batch: cprs_compress_check(model_dir, batch)))
        checks.append(("2 processes on 1 GPU refused in one line", two_processes_check))
        rows = run_checks(checks)
    print(format_table(rows))
    return 1 if not all(r.passed for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
