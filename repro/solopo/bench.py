"""`python -m repro.bench solopo`: step time and peak memory of SoLoPO against long-context PO, side by side."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

from repro.benchkit import DEFAULT_MODEL, REPO, model_folder, register_case, register_command, run_worker
from repro.train.memory import peak_memory_mib, reset_peak_memory

# (mode, forward) cases: SoLoPO, the kit's long PO (the long prompt once per pair), and the paper's vanilla
# long PO (chosen and rejected each with the full long context, as TRL's DPOTrainer runs them)
CASES = (("solopo", "shared prefix"), ("long", "shared prefix"), ("long", "per-sample"))


def solopo_case(
    model_dir: str, mode: str, forward: str, short_tokens: int, long_tokens: int, response_tokens: int, steps: int
) -> dict[str, Any]:
    """DPO training steps (forward + backward, LoRA r16, references precomputed) on one random pair."""
    from repro.config import load_recipe
    from repro.modeling import load_model
    from repro.solopo.sample import Pair
    from repro.solopo.train import PreferenceLogprobs, forwards, preference_task

    recipe = load_recipe(
        REPO / "recipes" / "tiny" / "solopo.yaml",
        [f"model.source={model_dir}", f"solopo.mode={mode}", "solopo.algorithm=dpo"],
    )
    loaded = load_model(recipe.model)
    model, device = loaded.model, loaded.device
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size

    def tokens(n: int) -> torch.Tensor:
        return torch.randint(0, vocab, (n,), generator=gen)

    pair = Pair(
        "bench", tokens(short_tokens), tokens(long_tokens), tokens(response_tokens), tokens(response_tokens), ""
    )
    plan = forwards(mode)
    logprobs = PreferenceLogprobs(plan, shared_prefix=forward == "shared prefix", chunk_size=1024)
    ref = {f"{c}.{n}": torch.zeros(1, dtype=torch.float64) for c, names in plan.items() for n in names}
    task = preference_task(recipe, [pair], logprobs, ref)
    batch = task.collate([0], 0, 0)
    reset_peak_memory(device)  # loading the weights peaks higher than a short step: measure the steps alone
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        task.loss(model, batch).loss_sum.backward()
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i > 0:  # the first step warms up allocator and kernels
            times.append(time.perf_counter() - start)
    return {"step_s": round(statistics.median(times), 3), "peak_mib": round(peak_memory_mib(device), 1)}


@register_case("solopo")
def _solopo_worker(args: list[str]) -> dict[str, Any]:
    model, mode, forward, *shape = args
    return solopo_case(model, mode, forward, *(int(x) for x in shape))


def longest_under(cap_mib: float, points: list[tuple[int, float]]) -> int | None:
    """The long length at which peak memory reaches `cap_mib` (peak grows about linearly in tokens with LoRA and
    sdpa): on the line through the two measured (length, peak) points around the cap, or the two nearest to it
    when the cap lies outside them; None with fewer than two points or a flat or falling line."""
    points = sorted(points)
    if len(points) < 2:
        return None
    pairs = list(zip(points, points[1:], strict=False))
    around = [(a, b) for a, b in pairs if a[1] <= cap_mib <= b[1]]
    if around:
        (l1, p1), (l2, p2) = around[0]
    elif cap_mib < min(p for _, p in points):
        (l1, p1), (l2, p2) = pairs[0]
    else:
        (l1, p1), (l2, p2) = pairs[-1]
    if p2 <= p1:
        return None
    return int(l1 + (cap_mib - p1) * (l2 - l1) / (p2 - p1))


# The cases the "SoLo cheaper" claim compares (SoLoPO against the paper's vanilla long PO), measured `repeats`
# times each at the longest length both ran, each repeat in its own process: an exact test over 5 against 5 can
# reach p = 1/252, small enough to survive a Holm correction over the report's primary claims.
CLAIM_CASES = (("solopo", "shared prefix"), ("long", "per-sample"))
CLAIM_REPEATS = 5


def efficiency(
    model_dir: str,
    short_tokens: int,
    ratios: list[int],
    response_tokens: int,
    steps: int,
    cap_mib: float | None,
    repeats: int = CLAIM_REPEATS,
) -> dict[str, Any]:
    """Every case at long = ratio x short, each in its own process (its peak is its own): the report's dict.
    A case that fails (most often: it does not fit in memory) is kept as a row with a "failed" reason. Then, at
    the longest length where both of the claim's cases ran, each runs `repeats` times in all: its row keeps
    every repeat (step_s_repeats, peak_mib_repeats) and their medians as step_s and peak_mib."""
    rows = []
    shapes = {}
    for ratio in ratios:
        for mode, forward in CASES:
            shape = [str(short_tokens), str(short_tokens * ratio), str(response_tokens), str(steps)]
            shapes[(mode, forward, short_tokens * ratio)] = shape
            row = {"mode": mode, "forward": forward, "long_tokens": short_tokens * ratio, "short_tokens": short_tokens}
            rows.append({**row, **run_worker(["solopo", model_dir, mode, forward, *shape], may_fail=True)})
            print(json.dumps(rows[-1]), flush=True)
    ran = [{r["long_tokens"] for r in rows if (r["mode"], r["forward"]) == case and "failed" not in r}
           for case in CLAIM_CASES]  # fmt: skip
    both = set.intersection(*ran)
    for row in rows if both and repeats > 1 else []:
        case = (row["mode"], row["forward"])
        if case in CLAIM_CASES and row["long_tokens"] == max(both):
            args = ["solopo", model_dir, *case, *shapes[(*case, row["long_tokens"])]]
            more = [run_worker(args, may_fail=True) for _ in range(repeats - 1)]
            row.update(_merged([{k: row[k] for k in ("step_s", "peak_mib")}, *more]))
            print(json.dumps(row), flush=True)
    out: dict[str, Any] = {"device": "cuda" if torch.cuda.is_available() else "cpu", "rows": rows}
    if cap_mib is not None and len(ratios) >= 2:
        out["cap_mib"] = cap_mib
        out["max_long_tokens"] = {}
        for mode, forward in CASES:
            points = [
                (r["long_tokens"], r["peak_mib"])
                for r in rows
                if (r["mode"], r["forward"]) == (mode, forward) and "failed" not in r
            ]
            longest = longest_under(cap_mib, points)
            if longest is not None:
                out["max_long_tokens"][f"{mode} ({forward})"] = longest
        out["max_long_note"] = "fitted: the line through the measured peaks around the cap, solved for the cap"
    return out


def _merged(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from a case's repeats: the first failure if any failed, else the medians and every repeat."""
    failed = next((r for r in results if "failed" in r), None)
    if failed is not None or len(results) == 1:
        return failed or results[0]
    out = {}
    for key in ("step_s", "peak_mib"):
        values = sorted(r[key] for r in results)
        out[key] = values[len(values) // 2]
        out[f"{key}_repeats"] = [r[key] for r in results]
    return out


@register_command("solopo")
def solopo_main(argv: list[str]) -> int:
    """`python -m repro.bench solopo`: one JSON line per case, then the summary the SoLoPO report reads."""
    parser = argparse.ArgumentParser(prog="python -m repro.bench solopo", description=solopo_case.__doc__)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--short-tokens", type=int, default=256)
    parser.add_argument("--ratios", default="4,8", help="long = ratio x short, e.g. 4,8")
    parser.add_argument("--response-tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per case (median), after one warm-up")
    parser.add_argument("--cap-mib", type=float, default=None, help="memory cap for the longest trainable context")
    parser.add_argument("--out", default=None, help="also write the summary JSON here")
    opts = parser.parse_args(argv)
    model = model_folder(opts.model, "bench solopo")
    if model is None:
        return 2
    ratios = [int(x) for x in opts.ratios.split(",") if x.strip()]
    summary = efficiency(model, opts.short_tokens, ratios, opts.response_tokens, opts.steps, opts.cap_mib)
    print(json.dumps(summary), flush=True)
    if opts.out:
        from repro.fsio import atomic_write_json

        atomic_write_json(opts.out, summary)
    return 0
