"""Group-relative RL pieces for QwenLong-L1: advantages, the clipped policy loss (GRPO/DAPO) and dynamic sampling.

Implements QwenLong-L1 (arXiv 2505.17667v2) Eqs. 4-6 and 8: GRPO, the group advantage, DAPO's token-level loss;
DAPO (arXiv 2503.14476) Eq. 8 with its dynamic-sampling constraint; the k3 KL of DeepSeekMath (2402.03300) Eq. 4.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import torch

Level = Literal["token", "sequence"]
LEVELS: tuple[str, ...] = ("token", "sequence")


def group_advantages(rewards: torch.Tensor, scale_std: bool = True, eps: float = 1e-6) -> torch.Tensor:
    """Group-relative advantages for rewards [n_groups, G]: (r - group mean) / (group std + eps).

    The std is `torch.std`'s unbiased estimator (as TRL and verl). `scale_std=False` drops the division
    (Dr. GRPO). A group of one response has no baseline (its unbiased std is NaN): its advantage is 0, as is
    every advantage of a group whose rewards are all equal.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [n_groups, G], got shape {tuple(rewards.shape)}")
    r = rewards if rewards.is_floating_point() else rewards.float()
    if r.shape[-1] < 2:
        return torch.zeros_like(r)
    centred = r - r.mean(dim=-1, keepdim=True)
    if not scale_std:
        return centred
    return centred / (r.std(dim=-1, keepdim=True) + eps)


@dataclass
class _TokenTerms:
    loss: torch.Tensor  # [N, T] per-token loss, 0 where masked out
    mask: torch.Tensor  # [N, T] bool
    ratio: torch.Tensor  # [N, T], 1 where masked out
    clipped_low: torch.Tensor  # [N, T] bool: ratio < 1 - eps_low, A < 0: the clipped branch is taken
    clipped_high: torch.Tensor  # [N, T] bool: ratio > 1 + eps_high, A > 0: the clipped branch is taken
    kl: torch.Tensor | None  # [N, T] k3 estimate, 0 where masked out


def _token_terms(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float,
    eps_high: float,
    ref_logp: torch.Tensor | None,
    kl_coef: float,
    entropy: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
) -> _TokenTerms:
    if logp.dim() != 2:
        raise ValueError(f"logp must be [N, T], got shape {tuple(logp.shape)}")
    shapes = [("old_logp", old_logp), ("mask", mask)] + ([("ref_logp", ref_logp)] if ref_logp is not None else [])
    shapes += [("entropy", entropy)] if entropy is not None else []
    for name, t in shapes:
        if t.shape != logp.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, logp has {tuple(logp.shape)}")
    if advantages.numel() != logp.shape[0]:
        raise ValueError(f"advantages has {advantages.numel()} values for {logp.shape[0]} sequences")
    keep = mask != 0
    # Padding is replaced (not multiplied by 0) before any exp, so garbage there cannot leak inf/NaN into
    # the loss or its gradient.
    dtype = torch.promote_types(logp.dtype, torch.float32)
    zero = torch.zeros((), dtype=dtype, device=logp.device)
    new = torch.where(keep, logp.to(dtype), zero)
    old = torch.where(keep, old_logp.detach().to(dtype), zero)
    adv = advantages.detach().to(dtype).reshape(-1, 1)
    ratio = torch.exp(new - old)
    unclipped = ratio * adv
    clipped_obj = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * adv
    per_token = -torch.minimum(unclipped, clipped_obj)
    kl = None
    if ref_logp is not None:
        diff = torch.where(keep, ref_logp.detach().to(dtype), zero) - new
        kl = torch.where(keep, torch.exp(diff) - diff - 1.0, zero)
        if kl_coef:
            per_token = per_token + kl_coef * kl
    if entropy is not None and entropy_coef:
        per_token = per_token - entropy_coef * torch.where(keep, entropy.to(dtype), zero)
    taken = keep & (clipped_obj.detach() < unclipped.detach())  # the clipped branch is the one min() takes
    return _TokenTerms(
        loss=torch.where(keep, per_token, zero),
        mask=keep,
        ratio=ratio,
        clipped_low=taken & (ratio.detach() < 1.0),
        clipped_high=taken & (ratio.detach() > 1.0),
        kl=kl,
    )


def _aggregate(values: torch.Tensor, mask: torch.Tensor, level: str) -> tuple[torch.Tensor, int]:
    """(sum over units, units) for per-token values already zeroed outside the mask."""
    if level == "token":
        return values.sum(), int(mask.sum().item())
    if level == "sequence":
        counts = mask.sum(dim=-1)
        per_seq = values.sum(dim=-1) / counts.clamp(min=1).to(values.dtype)
        return per_seq.sum(), int((counts > 0).sum().item())
    raise ValueError(f"level must be one of {LEVELS}, got {level!r}")


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float,
    eps_high: float,
    level: Level,
    ref_logp: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    entropy: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
) -> tuple[torch.Tensor, int]:
    """The clipped surrogate loss as (loss_sum, units); `loss_sum / units` is the loss.

    Per token: -min(ratio·A, clip(ratio, 1-eps_low, 1+eps_high)·A) with ratio = exp(logp - old_logp), plus
    kl_coef times the k3 estimate of KL(policy || reference) when `ref_logp` is given, minus entropy_coef times
    the token's entropy when `entropy` is given (the entropy bonus, averaged like the rest, as verl does).
    "token" (DAPO) sums over every masked token, units = masked tokens; "sequence" (GRPO) sums each sequence's
    masked-token mean, units = sequences with at least one masked token. Gradients flow through `logp` (and
    `entropy`) only. The loss sum is part of the graph even when there are no units, so every process of a DDP
    run still takes part in backward.
    """
    terms = _token_terms(logp, old_logp, advantages, mask, eps_low, eps_high, ref_logp, kl_coef, entropy, entropy_coef)
    return _aggregate(terms.loss, terms.mask, level)


def policy_loss_metrics(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float,
    eps_high: float,
    level: Level = "token",
    ref_logp: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
) -> dict[str, float]:
    """Diagnostics of `policy_loss`, as means over the same units the loss counts at `level`.

    clip_frac_low / clip_frac_high: share of tokens where the clipped branch is the one min() takes, on the
    low side (ratio < 1 - eps_low, A < 0) and the high side (ratio > 1 + eps_high, A > 0); ratio_mean: mean
    importance ratio; ratio_max: its largest value over the masked tokens (the engine takes the max over the
    step); kl: mean k3 estimate (only when `ref_logp` is given); entropy: mean entropy (only when given). At
    "token" level these are per-token means; at "sequence" level, means over sequences of each sequence's token
    mean, so the engine's weighting by units stays exact. All 0.0 when there is no unit.
    """
    with torch.no_grad():
        terms = _token_terms(logp, old_logp, advantages, mask, eps_low, eps_high, ref_logp, 0.0)
        keep = terms.mask.float()
        values = {
            "clip_frac_low": terms.clipped_low.float(),
            "clip_frac_high": terms.clipped_high.float(),
            "ratio_mean": terms.ratio * keep,
        }
        if terms.kl is not None:
            values["kl"] = terms.kl
        if entropy is not None:
            values["entropy"] = entropy.detach().to(keep.dtype) * keep
        out: dict[str, float] = {}
        for name, per_token in values.items():
            total, units = _aggregate(per_token, terms.mask, level)
            out[name] = float(total.item()) / units if units else 0.0
        out["ratio_max"] = float(terms.ratio[terms.mask].max().item()) if terms.mask.any() else 0.0
    return out


def dynamic_sampling_filter(rewards: torch.Tensor) -> torch.Tensor:
    """DAPO's dynamic sampling: a bool [n_groups] keeping the groups whose rewards are not all equal (std > 0).

    A one-response group, or one with a NaN reward, is dropped.
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [n_groups, G], got shape {tuple(rewards.shape)}")
    if rewards.shape[-1] == 0:
        return torch.zeros(rewards.shape[0], dtype=torch.bool, device=rewards.device)
    return rewards.amax(dim=-1) > rewards.amin(dim=-1)


class HasRewards(Protocol):
    rewards: torch.Tensor


GroupT = TypeVar("GroupT", bound=HasRewards)


@dataclass
class Group:
    """One prompt's G responses: their rewards [G] and whatever the trainer needs to build the update.

    `order` is the group's place in its generation batch over all processes (prompt i of the batch's draw),
    so that every process agrees on which groups fill the batch; None: its index in what make_groups returned.
    `rank` is set by fill_batch: the group's place among all the groups the batch keeps, over all processes.
    """

    rewards: torch.Tensor
    data: Any = None
    order: int | None = None
    rank: int | None = None


@dataclass
class FillStats:
    generated: int = 0  # groups generated over all batches (and all processes)
    kept: int = 0  # groups that passed the filter (may exceed `want`; the surplus is dropped)
    used: int = 0  # groups returned (by all processes together)
    batches: int = 0  # generation batches made
    gave_up: bool = False  # max_gen_batches reached with fewer than `want` groups

    @property
    def empty(self) -> bool:
        return self.used == 0


def _order(group: Any, index: int) -> int:
    order = getattr(group, "order", None)
    return index if order is None else order


def _one_process(item: Any) -> list[Any]:
    return [item]


def fill_batch(
    make_groups: Callable[[int], list[GroupT]],
    want: int,
    max_gen_batches: int,
    gather: Callable[[Any], list[Any]] = _one_process,
) -> tuple[list[GroupT], FillStats]:
    """Generate batches (`make_groups(i)` for i = 0, 1, ...) and keep the groups with a reward spread until
    `want` are kept or `max_gen_batches` batches are made; return at most `want` groups, in generation order.

    Several processes: each makes its own share of every batch and `gather` (an all-gather of one object per
    process) shares what each kept, so that all take the same decisions and together keep the first `want`
    groups in (batch, order) order, as one process making the whole batch would. Each returns its own, with
    its `rank` (place among the kept groups of every process) set where the group has that attribute.

    Running out of batches is not an error: the groups there are come back (possibly none) with
    `gave_up=True`, and the caller trains on them or skips the update.
    """
    if want < 0:
        raise ValueError(f"want must be >= 0, got {want}")
    if max_gen_batches < 1:
        raise ValueError(f"max_gen_batches must be >= 1, got {max_gen_batches}")
    stats = FillStats()
    mine: list[tuple[tuple[int, int], GroupT]] = []
    everyone: list[tuple[int, int]] = []
    while len(everyone) < want and stats.batches < max_gen_batches:
        groups = make_groups(stats.batches)
        keyed = [
            ((stats.batches, _order(g, i)), g)
            for i, g in enumerate(groups)
            if bool(dynamic_sampling_filter(g.rewards.reshape(1, -1))[0])
        ]
        mine.extend(keyed)
        for generated, keys in gather((len(groups), [key for key, _ in keyed])):
            stats.generated += generated
            everyone.extend(keys)
        stats.batches += 1
    ranks = {key: i for i, key in enumerate(sorted(everyone)[:want])}
    chosen = set(ranks)
    out = [g for key, g in sorted(mine, key=lambda kg: kg[0]) if key in chosen]
    for key, g in mine:
        if key in chosen and hasattr(g, "rank"):
            g.rank = ranks[key]
    stats.kept = len(everyone)
    stats.gave_up = stats.kept < want
    stats.used = len(chosen)
    return out, stats
