"""Token critic losses (label-word cross-entropy + focal/CE boundary loss) and the non-critical position masking."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE = -100


def _check_pair(logits: Tensor, targets: Tensor, name: str) -> None:
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(
            f"{name}: logits must be [B,L,C] and targets [B,L]; got {tuple(logits.shape)} and {tuple(targets.shape)}"
        )


def _target_log_probs(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """(log p of each target [B,L] in float32, counted [B,L]); ignored positions get log p = 0."""
    counted = targets != IGNORE
    log_probs = F.log_softmax(logits.float(), dim=-1)
    picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * counted, counted


def cross_entropy_sum(logits: Tensor, targets: Tensor) -> Tensor:
    """Sum over counted positions of -log p(target)."""
    log_p, _ = _target_log_probs(logits, targets)
    return -log_p.sum()


def focal_loss_sum(logits: Tensor, targets: Tensor, gamma: float) -> Tensor:
    """Sum over counted positions of -(1 - p_t)^gamma * log p_t."""
    log_p, counted = _target_log_probs(logits, targets)
    # the floor keeps pow's gradient finite at p_t = 1 (and at ignored positions) when gamma < 1
    weight = (1.0 - log_p.exp()).clamp(min=1e-12).pow(gamma)
    return -(weight * log_p * counted).sum()


def critic_loss(
    word_logits: Tensor,
    word_targets: Tensor,
    boundary_logits: Tensor,
    boundary_targets: Tensor,
    focal_gamma: float | None = 2.0,
) -> tuple[Tensor, int]:
    """(loss_sum, units): label-word CE plus the boundary loss (focal with `focal_gamma`, CE when None), summed.

    Targets are class indices with -100 for positions that do not count; units = positions whose word target
    counts. Sums, not means, so the caller can normalise over a whole accumulated batch.
    """
    _check_pair(word_logits, word_targets, "word")
    _check_pair(boundary_logits, boundary_targets, "boundary")
    word_loss = cross_entropy_sum(word_logits, word_targets)
    if focal_gamma is None:
        boundary_loss = cross_entropy_sum(boundary_logits, boundary_targets)
    else:
        boundary_loss = focal_loss_sum(boundary_logits, boundary_targets, focal_gamma)
    units = int((word_targets != IGNORE).sum().item())
    return word_loss + boundary_loss, units


# ---------------------------------------------------------------------------------------------
# Masking non-critical positions from the gradient (labels are sparse: most positions are "outside")


def _generator(seed: int, step: int) -> torch.Generator:
    # one stream per (seed, step); 2**61 - 1 is prime, so distinct small pairs give distinct seeds
    return torch.Generator(device="cpu").manual_seed((seed * 1_000_003 + step) % (2**61 - 1))


def mask_positions(word_targets: Tensor, critical: Tensor, fraction: float, step: int, seed: int) -> Tensor:
    """Bool [B,L]: the positions to drop, round(fraction * count) of the `count` non-critical counted positions.

    Chosen without replacement over the whole batch from a generator seeded by (seed, step), so the same step and
    seed give the same mask; `round` is Python's (halves to even). Critical positions are never dropped.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if critical.shape != word_targets.shape:
        raise ValueError(f"critical {tuple(critical.shape)} and targets {tuple(word_targets.shape)} differ in shape")
    candidates = ((word_targets != IGNORE) & ~critical.bool()).flatten().cpu().nonzero().squeeze(-1)
    n_drop = round(fraction * candidates.numel())
    order = torch.randperm(candidates.numel(), generator=_generator(seed, step))
    drop = torch.zeros(word_targets.numel(), dtype=torch.bool)
    drop[candidates[order[:n_drop]]] = True
    return drop.view(word_targets.shape).to(word_targets.device)


def mask_non_critical(word_targets: Tensor, critical: Tensor, fraction: float, step: int, seed: int) -> Tensor:
    """A copy of `word_targets` with the positions of `mask_positions` set to -100."""
    return word_targets.masked_fill(mask_positions(word_targets, critical, fraction, step, seed), IGNORE)


def drop_non_critical(
    word_targets: Tensor, boundary_targets: Tensor, critical: Tensor, fraction: float, step: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Copies of both target tensors with the same dropped positions set to -100."""
    drop = mask_positions(word_targets, critical, fraction, step, seed)
    return word_targets.masked_fill(drop, IGNORE), boundary_targets.masked_fill(drop, IGNORE)
