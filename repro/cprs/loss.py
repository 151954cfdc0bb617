"""Token critic losses (label-word cross-entropy + focal/CE boundary loss) and the non-critical position masking.

Implements QwenLong-CPRS (arXiv 2505.18092) §2.2, which numbers no loss equation: the released modelling code
(Qwen2ForCausalLMandBIO.forward and model_utils/focal_loss.py) is the reference for the weighting.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from repro.train.logprobs import IGNORE_INDEX as IGNORE  # no loss at this position


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


# The released modelling code (Tongyi-Zhiwen/QwenLong-CPRS, src/qwen_long_cprs/modeling_qwen2.py,
# Qwen2ForCausalLMandBIO.forward, and model_utils/focal_loss.py) weights both losses:
# - the word loss is torch's CrossEntropyLoss(weight=lm_loss_weight): a weight per target word (1, and the
#   checkpoint name's `outside_weight_0.5` for the word "outside"), averaged as sum(w_y * nll) / sum(w_y);
# - the boundary loss gets a class-weight vector (`bi_loss_weight`, in the order B, I, O, E of run_api.py's
#   bi_id_to_label). With CE it is CrossEntropyLoss(weight=...): sum(w_y * nll) / sum(w_y). Its focal loss takes
#   ce = w_y * nll per position (the weight inside), pt = exp(-ce) (so pt = p_y ** w_y, not p_y), and the plain
#   mean of (1 - pt) ** gamma * ce. That mean runs over every position of the flattened batch, ignored ones
#   included (they add 0); here it runs over the counted positions, so padding does not change the loss's scale.
# The two averages are added per forward pass. The repository holds no weight values; its checkpoint path
# (run_api.py before its last commits) names them: `bi_weight_10_outside_weight_0.5` (see CprsSection).


def boundary_weight_vector(weights_bioe: Sequence[float], n_tags: int) -> Tensor:
    """Class weights by the kit's tag ids (O=0, B=1, I=2, E=3) from weights given as B, I, O, E.

    A BIO head (3 tags) takes the B, I and O weights; the E weight is then unused.
    """
    if len(weights_bioe) != 4:
        raise ValueError(f"boundary class weights are one per tag B, I, O, E; got {list(weights_bioe)}")
    b, i, o, e = (float(w) for w in weights_bioe)
    return torch.tensor([o, b, i, e][:n_tags])


def word_weight_vector(outside_weight: float, n_words: int) -> Tensor:
    """Per label-word weights: `outside_weight` for the word "outside" (index 0), 1 for each tag word."""
    return torch.tensor([float(outside_weight)] + [1.0] * (n_words - 1))


def _weights_at(targets: Tensor, counted: Tensor, weights: Tensor | None) -> Tensor:
    """w_y per position (1 without weights), 0 where the target does not count."""
    if weights is None:
        return counted.float()
    return weights.to(targets.device).float()[targets.clamp(min=0)] * counted


def weighted_cross_entropy_terms(
    logits: Tensor, targets: Tensor, weights: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """(sum of w_y * -log p_y, sum of w_y) over counted positions; their ratio is torch's weighted CE mean."""
    log_p, counted = _target_log_probs(logits, targets)
    w = _weights_at(targets, counted, weights)
    return -(w * log_p).sum(), w.sum()


def focal_terms(logits: Tensor, targets: Tensor, gamma: float, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(sum of (1 - pt)^gamma * ce, counted positions), ce = w_y * -log p_y and pt = exp(-ce) as released."""
    log_p, counted = _target_log_probs(logits, targets)
    ce = -_weights_at(targets, counted, weights) * log_p
    # the floor keeps pow's gradient finite at pt = 1 (and at ignored positions) when gamma < 1
    modulation = (1.0 - (-ce).exp()).clamp(min=1e-12).pow(gamma)
    return (modulation * ce * counted).sum(), counted.sum().float()


def _mean(terms: tuple[Tensor, Tensor]) -> Tensor:
    total, norm = terms
    return total / norm.clamp(min=1e-12)  # no counted weight: the total is 0 too


def critic_loss(
    word_logits: Tensor,
    word_targets: Tensor,
    boundary_logits: Tensor,
    boundary_targets: Tensor,
    focal_gamma: float | None = 2.0,
    class_weights: Tensor | None = None,
    outside_weight: float = 1.0,
) -> tuple[Tensor, int]:
    """(loss_sum, units) with loss_sum / units = the released loss of this micro-batch, units = counted positions.

    The released loss: the weighted word CE (the word "outside" weighs `outside_weight`) plus the boundary loss
    (focal with `focal_gamma`, CE when None) under `class_weights` (by tag id, see boundary_weight_vector; None:
    all 1), each averaged as the released code does. Targets are class indices, -100 where a position does not
    count. Scaling by the units lets the engine average over an accumulated batch weighting each micro-batch
    by its counted positions; with one micro-batch the step's loss is exactly the released one.
    """
    _check_pair(word_logits, word_targets, "word")
    _check_pair(boundary_logits, boundary_targets, "boundary")
    word_weights = word_weight_vector(outside_weight, word_logits.shape[-1])
    word = _mean(weighted_cross_entropy_terms(word_logits, word_targets, word_weights))
    if focal_gamma is None:
        boundary = _mean(weighted_cross_entropy_terms(boundary_logits, boundary_targets, class_weights))
    else:
        boundary = _mean(focal_terms(boundary_logits, boundary_targets, focal_gamma, class_weights))
    units = int((word_targets != IGNORE).sum().item())
    return units * (word + boundary), units


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
