"""`make smoke`: every stage end to end through the real CLI, a few steps each, on the tiny random model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from repro.tiny import build_tiny_model

REPO = Path(__file__).resolve().parent.parent


def _repro(*args: str) -> None:
    started = time.time()
    cmd = [sys.executable, "-m", "repro", *args]
    print(f"$ repro {' '.join(args)}", flush=True)
    res = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, HF_HUB_OFFLINE="1"), capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stdout[-3000:] + res.stderr[-3000:])
        raise SystemExit(f"smoke: `repro {args[0]}` failed with exit code {res.returncode}")
    for line in res.stdout.strip().splitlines()[-2:]:
        print(f"  {line}")
    print(f"  ({time.time() - started:.1f} s)", flush=True)


def main() -> int:
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="repro-smoke-") as tmp:
        root = Path(tmp)
        model = build_tiny_model(root / "tiny-model")
        data = root / "data"
        _repro("data", "loong-mini", "--out", str(data), "--n", "16", "--sets", "1")
        _repro("data", "loong-mini", "--out", str(data), "--n", "8", "--split", "test", "--seed", "1")
        sft_run = root / "sft"
        _repro(
            "l1",
            "sft",
            "recipes/tiny/l1_sft.yaml",
            f"model.source={model}",
            f"sft.data={data / 'train.jsonl'}",
            "sft.tasks=[]",
            "sft.limit=8",
            "train.max_steps=3",
            "sft.max_seq_tokens=4096",
            "train.micro_batch_tokens=8192",
            "--out",
            str(sft_run),
        )
        _repro("export", str(sft_run), "--out", str(root / "sft-merged"))
        rl_run = root / "rl"
        _repro(
            "l1",
            "rl",
            "recipes/tiny/l1_rl.yaml",
            f"model.source={root / 'sft-merged'}",
            f"rl.data={data / 'train.jsonl'}",
            "rl.tasks=[]",
            "rl.group_size=4",
            "rl.prompts_per_round=2",
            "rl.generation.max_new_tokens=8",
            "rl.phases=[{max_input_tokens: 1500, steps: 1}, {max_input_tokens: 4000, steps: 1}]",
            "--out",
            str(rl_run),
        )
        _repro("export", str(rl_run), "--out", str(root / "rl-merged"))
        _repro(
            "eval",
            "loong",
            "recipes/tiny/loong_eval.yaml",
            f"model.source={root / 'rl-merged'}",
            f"eval.data={data / 'test.jsonl'}",
            "eval.generation.max_new_tokens=8",
            "--out",
            str(root / "eval"),
        )
        _solopo(root, model)
        _cprs(root, model, data)
    print(f"smoke: every stage ran in {time.time() - started:.0f} s")
    return 0


def _solopo(root: Path, model: Path) -> None:
    """SoLoPO: pairs, then a DPO step in solopo mode. The tiny random model scores 0 on every sample (no pair), so
    the step trains on its sampled rows with a fixed chosen and rejected response in their place."""
    data = root / "data-solopo"
    _repro("data", "loong-mini", "--out", str(data), "--n", "8", "--sets", "1", "--distractors", "3")
    common = [f"model.source={model}", f"solopo.data={data / 'train.jsonl'}", "solopo.limit=2", "solopo.samples=2"]
    pairs_run = root / "pairs"
    _repro("solopo", "pairs", "recipes/tiny/solopo.yaml", *common, "solopo.generation.max_new_tokens=4",
           "--out", str(pairs_run))  # fmt: skip
    rows = [json.loads(line) for line in (pairs_run / "pairs.jsonl").read_text().splitlines()]
    for row in rows:
        row["chosen"] = {"ids": [5, 6, 7], "text": "", "score": 1.0}
        row["rejected"] = {"ids": [8, 9], "text": "", "score": 0.0}
    pairs = root / "pairs-filled.jsonl"
    pairs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    _repro("solopo", "train", "recipes/tiny/solopo.yaml", *common, f"solopo.pairs={pairs}", "train.max_steps=1",
           "train.grad_accum=1", "--out", str(root / "solopo"))  # fmt: skip


def _cprs(root: Path, model: Path, data: Path) -> None:
    """CPRS: two compressor steps, then one compression of a context through the CLI."""
    common = [f"model.source={model}", "cprs.max_tokens=512", "cprs.window_tokens=384"]
    run = root / "cprs"
    _repro("cprs", "train", "recipes/tiny/cprs.yaml", *common, f"cprs.data={data / 'train.jsonl'}", "cprs.limit=2",
           "train.max_steps=2", "--out", str(run))  # fmt: skip
    context = root / "context.txt"
    context.write_text("The river is 40 km long. The bridge opened in 1931. " * 20, encoding="utf-8")
    _repro("cprs", "compress", "recipes/tiny/cprs.yaml", *common, f"cprs.compressor={run / 'final'}",
           "--input", str(context), "--query", "When did the bridge open?", "--json")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
