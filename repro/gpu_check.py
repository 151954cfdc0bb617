"""`make gpu-check`: on CUDA, load a small random model each way the kit does and time forward + backward."""

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

BATCH, SEQ, REPEATS = 4, 1024, 5


@dataclass
class Row:
    what: str
    result: str
    ms: float | None = None
    peak_mib: float | None = None


def _train_step_timing(cfg: ModelSection) -> tuple[float, float]:
    """Median ms of a forward + backward on random tokens, and the peak CUDA memory in MiB."""
    loaded = load_model(cfg, training=True)
    model = loaded.model
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (BATCH, SEQ), device=loaded.device)
    times = []
    torch.cuda.reset_peak_memory_stats()
    for i in range(REPEATS + 1):
        torch.cuda.synchronize()
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.cuda.synchronize()
        if i > 0:  # the first step warms up kernels and the allocator
            times.append((time.perf_counter() - start) * 1000)
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        if not all(g is not None and torch.isfinite(g).all() for g in grads):
            raise RuntimeError("missing or non-finite gradient in a trainable parameter")
        model.zero_grad(set_to_none=True)
    peak = torch.cuda.max_memory_allocated() / 2**20
    del model, loaded
    torch.cuda.empty_cache()
    return statistics.median(times), peak


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
        ("bf16 sdpa, full fine-tuning", section("sdpa", False, False)),
        ("bf16 sdpa + LoRA", section("sdpa", False, True)),
        ("4-bit nf4 + LoRA (QLoRA)", section("sdpa", True, True)),
        ("4-bit nf4 + LoRA + grad. checkpointing", section("sdpa", True, True, ckpt=True)),
    ]
    if flash_attn_available():
        checks.append(("bf16 flash_attention_2 + LoRA", section("flash_attention_2", False, True)))
    return [(name, lambda cfg=cfg: _train_step_timing(cfg)) for name, cfg in checks]


def sft_loop_check(model_dir: str, workdir: str) -> tuple[float, float]:
    """Warm-up SFT through the shared loop (bf16 autocast, LoRA, chunked log-probs) on a little Loong-mini."""
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
        model=ModelSection(source=model_dir, dtype="bfloat16", attention="auto"),
        sft=SftSection(data=str(data), max_seq_tokens=8192),
        train=TrainSection(
            micro_batch_tokens=32768,
            micro_batch_size=4,
            max_steps=6,
            checkpoint_every=6,
        ),
    )
    torch.cuda.reset_peak_memory_stats()
    run_dir = Path(workdir) / "sft-run"
    run_sft(recipe, run_dir, DistInfo())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    ms = statistics.median(1000 * r["tokens"] / r["tokens_per_s"] for r in rows[1:])
    return ms, torch.cuda.max_memory_allocated() / 2**20


def cprs_compress_check(model_dir: str, window_batch: int) -> tuple[float, float]:
    """compress() of 32K context tokens (1,024-token windows, a fresh critic), `window_batch` windows a forward."""
    from repro.cprs.bench import cprs_case

    row = cprs_case(model_dir, 32768, window_batch, repeats=2)
    return 1000 * row["seconds"], row["peak_mib"]


def run_checks(checks: list[tuple[str, Callable[[], tuple[float, float]]]]) -> list[Row]:
    rows = []
    for name, check in checks:
        try:
            ms, peak = check()
            rows.append(Row(name, "ok", ms, peak))
        except Exception as exc:  # a check that breaks is a row in the table, not the end of the run
            rows.append(Row(name, f"FAILED: {str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__}"))
    return rows


def format_table(rows: list[Row]) -> str:
    header = f"{'what ran':<44} {'result':<10} {'ms/step (median)':>17} {'peak MiB':>10}"
    lines = [header, "-" * len(header)]
    for r in rows:
        ms = f"{r.ms:.1f}" if r.ms is not None else "-"
        peak = f"{r.peak_mib:.0f}" if r.peak_mib is not None else "-"
        lines.append(f"{r.what:<44} {r.result:<10} {ms:>17} {peak:>10}")
    return "\n".join(lines)


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device visible; run it on a machine with an NVIDIA GPU", file=sys.stderr)
        return 2
    props = torch.cuda.get_device_properties(0)
    print(f"gpu-check on {props.name} ({props.total_memory / 2**30:.0f} GiB), torch {torch.__version__}")
    print(f"random Qwen2 (hidden 512, 8 layers), batch {BATCH} x {SEQ} tokens, median of {REPEATS} steps\n")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(build_tiny_model(tmp, hidden=512, layers=8))
        checks = model_checks(model_dir)
        checks.append(("SFT loop: bf16 autocast + LoRA, Loong-mini", lambda: sft_loop_check(model_dir, tmp)))
        for batch in (1, 8):  # the official release scores one window at a time
            name = f"CPRS compress 32K (ms/text), {batch} window{'s' if batch > 1 else ''}/fwd"
            checks.append((name, lambda batch=batch: cprs_compress_check(model_dir, batch)))
        rows = run_checks(checks)
    print(format_table(rows))
    return 1 if any(r.result != "ok" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
