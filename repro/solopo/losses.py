"""SoLoPO losses (arXiv 2505.11166): DPO, SimPO and ORPO preference losses and the SoLo-RA reward alignment term.

Implements DPO (arXiv 2305.18290) Eq. 7, SimPO (2405.14734) Eq. 6, ORPO (2403.07691) Eqs. 6-7, and SoLoPO's
objective with chosen-only reward alignment, L_PO(x_short) + alpha * s(|r(x_short, y_w) - r(x_long, y_w)|).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

ALGOS = ("dpo", "simpo", "orpo")
SHAPINGS = ("abs", "square")

# A mean token log-prob of exactly 0 (a response of probability 1) makes log(1 - exp(a)) = -inf. Capping a at
# -1e-6 bounds the log-odds near 13.8 (expm1 keeps full float32 precision there); above the cap the odds term has
# no gradient, which only affects responses already at probability ~1.
MAX_MEAN_LOGPROB = -1e-6


def _check_algo(algo: str) -> None:
    if algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; expected one of {', '.join(ALGOS)}")


def _check_shapes(**tensors: Tensor | None) -> None:
    given = {name: t for name, t in tensors.items() if t is not None}
    for name, t in given.items():
        if not isinstance(t, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 1:
            raise ValueError(f"{name} must be 1-D [N], got shape {tuple(t.shape)}")
    shapes = {name: tuple(t.shape) for name, t in given.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name}={shape}" for name, shape in shapes.items())
        raise ValueError(f"per-pair tensors must share one shape: {listed}")


def _require_reference(algo: str, **refs: Tensor | None) -> None:
    missing = [name for name, t in refs.items() if t is None]
    if missing:
        raise ValueError(f"{algo} needs reference log-probs; missing {', '.join(missing)}")


def _as_float(t: Tensor) -> Tensor:
    """Upcast to float32 at least (bf16/fp16 and integer token counts), keeping float64 as is."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def mean_logprob(pi: Tensor, length: Tensor) -> Tensor:
    """Length-normalised log-prob pi / len; lengths must be positive."""
    length = _as_float(length)
    if bool((length <= 0).any()):
        raise ValueError("token counts must be positive")
    return _as_float(pi) / length


def log_odds(mean_logp: Tensor) -> Tensor:
    """ORPO's log-odds a - log(1 - exp(a)) of a mean token log-prob a <= 0, stable at both ends."""
    a = mean_logp.clamp(max=MAX_MEAN_LOGPROB)
    return a - torch.log(-torch.expm1(a))


def reward(algo: str, pi: Tensor, length: Tensor, ref: Tensor | None = None, *, beta: float) -> Tensor:
    """Per-algorithm implicit reward r: DPO beta*(pi - ref), SimPO beta*pi/len, ORPO the log-odds (beta unused)."""
    _check_algo(algo)
    _check_shapes(pi=pi, length=length, ref=ref)
    if algo == "dpo":
        _require_reference(algo, ref=ref)
        return beta * (_as_float(pi) - _as_float(ref))
    if algo == "simpo":
        return beta * mean_logprob(pi, length)
    return log_odds(mean_logprob(pi, length))


def po_loss(
    algo: str,
    pi_w: Tensor,
    pi_l: Tensor,
    len_w: Tensor,
    len_l: Tensor,
    ref_w: Tensor | None = None,
    ref_l: Tensor | None = None,
    *,
    beta: float,
    gamma: float = 0.0,
    lam: float = 0.1,
) -> Tensor:
    """Per-pair preference loss [N] (no reduction) for DPO, SimPO (margin gamma) or ORPO (odds-ratio weight lam)."""
    _check_algo(algo)
    _check_shapes(pi_w=pi_w, pi_l=pi_l, len_w=len_w, len_l=len_l, ref_w=ref_w, ref_l=ref_l)
    if algo == "dpo":
        _require_reference(algo, ref_w=ref_w, ref_l=ref_l)
    r_w = reward(algo, pi_w, len_w, ref_w, beta=beta)
    r_l = reward(algo, pi_l, len_l, ref_l, beta=beta)
    if algo == "dpo":
        return -F.logsigmoid(r_w - r_l)
    if algo == "simpo":
        return -F.logsigmoid(r_w - r_l - gamma)
    nll_w = -mean_logprob(pi_w, len_w)
    return nll_w + lam * -F.logsigmoid(r_w - r_l)


def solo_ra(
    algo: str,
    pi_w_short: Tensor,
    pi_w_long: Tensor,
    len_w: Tensor,
    ref_w_short: Tensor | None = None,
    ref_w_long: Tensor | None = None,
    *,
    beta: float,
    alpha: float,
    shaping: str = "abs",
) -> Tensor:
    """SoLo-RA term [N]: alpha * s(r(x_short, y) - r(x_long, y)), s = |d| ("abs") or d**2 ("square")."""
    _check_algo(algo)
    if shaping not in SHAPINGS:
        raise ValueError(f"unknown shaping {shaping!r}; expected one of {', '.join(SHAPINGS)}")
    _check_shapes(
        pi_w_short=pi_w_short, pi_w_long=pi_w_long, len_w=len_w, ref_w_short=ref_w_short, ref_w_long=ref_w_long
    )
    if algo == "dpo":
        _require_reference(algo, ref_w_short=ref_w_short, ref_w_long=ref_w_long)
    r_short = reward(algo, pi_w_short, len_w, ref_w_short, beta=beta)
    r_long = reward(algo, pi_w_long, len_w, ref_w_long, beta=beta)
    gap = r_short - r_long
    shaped = gap.abs() if shaping == "abs" else gap.square()
    return alpha * shaped
