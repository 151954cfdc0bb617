"""`repro solopo train`: SoLoPO (PO on the short context + SoLo-RA), long-context PO, expand-long and short-only PO."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from repro.config import Recipe
from repro.errors import ConfigError
from repro.fsio import atomic_write_bytes
from repro.progress import progress
from repro.solopo.losses import po_loss, reward, solo_ra
from repro.solopo.sample import Pair, read_pairs
from repro.solopo.sections import SoloPoSection
from repro.train.dist import DistInfo, barrier, unwrap
from repro.train.engine import LossOutput
from repro.train.loop import StaticTask, TrainResult
from repro.train.prefix import grouped_logprobs, per_sample_logprobs
from repro.train.runner import Stage, run_stage

log = logging.getLogger("repro.solopo")

REFERENCE_FILE = "reference.safetensors"
PAPER_ALPHA = {"dpo": 3.0, "simpo": 1.0, "orpo": 1.0}  # Qwen2.5-7B in the paper
# where each mode's preference pairs must have been sampled
PAIR_CONTEXT = {"solopo": "short", "short": "short", "expand_long": "short", "long": "long"}


def forwards(mode: str, align_rejected: bool = False) -> dict[str, tuple[str, ...]]:
    """The (context -> responses) forwards one pair costs in a mode: SoLoPO's only long one is the chosen response."""
    if mode == "solopo":
        return {"short": ("chosen", "rejected"), "long": ("chosen", "rejected") if align_rejected else ("chosen",)}
    if mode == "short":
        return {"short": ("chosen", "rejected")}
    if mode in ("long", "expand_long"):
        return {"long": ("chosen", "rejected")}
    raise ConfigError(f"solopo.mode: expected solopo, long, expand_long or short, got '{mode}'")


def loss_scale(cfg: SoloPoSection) -> dict[str, float]:
    """The keywords of po_loss for the recipe's algorithm, each read from its own key: DPO solopo.dpo_beta; SimPO
    solopo.simpo_beta and gamma = beta * solopo.simpo_gamma_beta_ratio; ORPO solopo.orpo_lambda (its reward,
    the log-odds, takes no beta). solo_ra takes the same beta, so SoLo-RA's r is the PO term's own reward."""
    if cfg.algorithm == "dpo":
        return {"beta": cfg.dpo_beta}
    if cfg.algorithm == "simpo":
        return {"beta": cfg.simpo_beta, "gamma": cfg.simpo_beta * cfg.simpo_gamma_beta_ratio}
    return {"beta": 1.0, "lam": cfg.orpo_lambda}


def po_context(mode: str) -> str:
    return "short" if mode in ("solopo", "short") else "long"


def check_pairs_context(mode: str, pairs: list[Pair], path: str) -> None:
    """`long` trains on pairs sampled on the long context; the other modes on pairs sampled on the short one."""
    wanted = PAIR_CONTEXT[mode]
    found = sorted({p.context for p in pairs})
    if found != [wanted]:
        raise ConfigError(
            f"solopo.pairs: mode '{mode}' trains on pairs sampled on the {wanted} context, but {path} holds "
            f"{', '.join(found)}-context pairs; make them with `repro solopo pairs RECIPE solopo.context={wanted}`"
        )


def _prompt(pair: Pair, context: str) -> torch.Tensor:
    return pair.short_prompt if context == "short" else pair.long_prompt


def pair_tokens(pair: Pair, plan: dict[str, tuple[str, ...]]) -> int:
    """Tokens one pair puts through the model in a mode (a shared-prefix row per context)."""
    return sum(len(_prompt(pair, c)) + sum(len(getattr(pair, r)) for r in rs) for c, rs in plan.items())


class PreferenceLogprobs:
    """Summed log-probs of a pair's responses under each of the mode's contexts, one forward per context."""

    def __init__(self, plan: dict[str, tuple[str, ...]], shared_prefix: bool, chunk_size: int) -> None:
        self.plan, self.chunk_size = plan, chunk_size
        self.forward = grouped_logprobs if shared_prefix else per_sample_logprobs
        self.calls: list[tuple[str, tuple[str, ...]]] = []  # (context, responses) of each forward, for tests

    def __call__(self, model: Any, pair: Pair) -> dict[tuple[str, str], torch.Tensor]:
        device = next(unwrap(model).parameters()).device
        out = {}
        for context, names in self.plan.items():
            responses = [getattr(pair, n).to(device) for n in names]
            self.calls.append((context, names))
            logps = self.forward(model, _prompt(pair, context).to(device), responses, chunk_size=self.chunk_size)
            out.update({(context, n): lp.sum() for n, lp in zip(names, logps, strict=True)})
        return out


@torch.no_grad()
def reference_logprobs(
    model: Any, pairs: list[Pair], logprobs: PreferenceLogprobs, enabled: bool = True
) -> dict[str, torch.Tensor]:
    """Every pair's summed log-probs under the reference (adapters off): {"short.chosen": [N], ...}."""
    from repro.modeling import reference_policy

    keys = [(c, n) for c, names in logprobs.plan.items() for n in names]
    values: dict[str, list[float]] = {f"{c}.{n}": [] for c, n in keys}
    bar = progress(len(pairs), "reference log-probs", "pair", enabled=enabled)
    with reference_policy(model) as reference:
        for pair in pairs:
            got = logprobs(reference, pair)
            for c, n in keys:
                values[f"{c}.{n}"].append(float(got[(c, n)]))
            bar.update(1)
    bar.close()
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()}


def cached_reference(
    run_dir: Path, model: Any, pairs: list[Pair], logprobs: PreferenceLogprobs, key: str, dist: DistInfo
) -> dict[str, torch.Tensor]:
    """Reference log-probs computed once (by the main process) and kept in RUN/reference.safetensors; reused when
    its key (pairs file, model, forwards) matches."""
    path = run_dir / REFERENCE_FILE
    if dist.is_main and not _cache_matches(path, key):
        tensors = reference_logprobs(model, pairs, logprobs)
        data = save_file_bytes(tensors, {"key": key})
        atomic_write_bytes(path, data)
    barrier()
    return load_file(path)


def _cache_matches(path: Path, key: str) -> bool:
    if not path.is_file():
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("key") == key
    except Exception:  # a torn or foreign file: compute it again
        return False


def save_file_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)


def preference_task(recipe: Recipe, pairs: list[Pair], logprobs: PreferenceLogprobs, ref: dict | None) -> StaticTask:
    """The static driver's task: micro-batches of pairs, the loss = PO term + SoLo-RA term, per pair."""
    cfg = recipe.solopo
    algo, ctx = cfg.algorithm, po_context(cfg.mode)
    alpha = PAPER_ALPHA[algo] if cfg.alpha is None else cfg.alpha
    scale = loss_scale(cfg)
    align = ["chosen", "rejected"] if cfg.align_rejected else ["chosen"]

    def collate(indices: list[int], step: int, seed: int) -> dict[str, Any]:
        batch: dict[str, Any] = {"pairs": [pairs[i] for i in indices], "index": torch.tensor(indices)}
        batch["num_tokens"] = sum(pair_tokens(pairs[i], logprobs.plan) for i in indices)
        return batch

    def refs(indices: torch.Tensor, key: str) -> torch.Tensor | None:
        return None if ref is None else ref[key][indices.cpu()].float()

    def loss(model: Any, batch: dict[str, Any]) -> LossOutput:
        got = [logprobs(model, p) for p in batch["pairs"]]
        device = got[0][(ctx, "chosen")].device
        pi = {k: torch.stack([g[k] for g in got]) for k in got[0]}
        length = {
            n: torch.tensor([len(getattr(p, n)) for p in batch["pairs"]], device=device) for n in align + ["rejected"]
        }
        idx = batch["index"]

        def r(c: str, n: str) -> torch.Tensor | None:
            value = refs(idx, f"{c}.{n}")
            return None if value is None else value.to(device)

        args = (pi[(ctx, "chosen")], pi[(ctx, "rejected")], length["chosen"], length["rejected"])
        po = po_loss(algo, *args, r(ctx, "chosen"), r(ctx, "rejected"), **scale)
        ra = torch.zeros_like(po)
        if cfg.mode == "solopo":
            for n in align:
                ra = ra + solo_ra(
                    algo, pi[("short", n)], pi[("long", n)], length[n], r("short", n), r("long", n),
                    beta=scale["beta"], alpha=alpha, shaping=cfg.shaping,
                )  # fmt: skip
        with torch.no_grad():
            r_w = reward(algo, args[0], args[2], r(ctx, "chosen"), beta=scale["beta"])
            r_l = reward(algo, args[1], args[3], r(ctx, "rejected"), beta=scale["beta"])
        n = len(batch["pairs"])
        metrics = {
            "po_loss": float(po.detach().sum()) / n,
            "ra_loss": float(ra.detach().sum()) / n,
            "margin": float((r_w - r_l).sum()) / n,
            "accuracy": float((r_w > r_l).float().sum()) / n,
        }
        return LossOutput((po + ra).sum(), n, metrics)

    return StaticTask(lengths=[pair_tokens(p, logprobs.plan) for p in pairs], collate=collate, loss=loss)


def reference_key(recipe: Recipe, plan: dict[str, tuple[str, ...]]) -> str:
    digest = hashlib.sha256(Path(recipe.solopo.pairs).read_bytes()).hexdigest()[:16]
    return f"pairs={digest};model={recipe.model.source};forwards={sorted(plan.items())}"


def run_solopo(recipe: Recipe, run_dir: Path, dist: DistInfo, resume: bool = False) -> TrainResult:
    """Preference optimisation from recipe.model with fresh LoRA adapters, in recipe.solopo.mode."""
    from repro.modeling import load_tokenizer

    cfg = recipe.solopo
    plan = forwards(cfg.mode, cfg.align_rejected)

    def read() -> list[Pair]:
        if not cfg.pairs:
            raise ConfigError("solopo.pairs is empty: name a pairs.jsonl made by `repro solopo pairs RECIPE`")
        pairs = read_pairs(cfg.pairs, load_tokenizer(recipe.model))
        check_pairs_context(cfg.mode, pairs, cfg.pairs)
        return pairs

    def build(loaded: Any, pairs: list[Pair]) -> Stage:
        logprobs = PreferenceLogprobs(plan, recipe.train.shared_prefix, recipe.train.logprob_chunk)

        def make_task() -> StaticTask:
            ref = None
            if cfg.algorithm == "dpo":  # the reference log-probs, once, by the main process
                ref = cached_reference(run_dir, loaded.model, pairs, logprobs, reference_key(recipe, plan), dist)
            return preference_task(recipe, pairs, logprobs, ref)

        scale = ", ".join(f"{k} {v:g}" for k, v in loss_scale(cfg).items())
        tokens = sum(pair_tokens(p, plan) for p in pairs)
        summary = f"{cfg.algorithm} {cfg.mode} ({scale}): {len(pairs)} pairs ({cfg.pairs}), {tokens} tokens a pass"
        return Stage(loaded.model, summary, make_task=make_task)

    return run_stage(recipe, run_dir, dist, resume, "solopo", read, build)
