"""SoLoPO losses: DPO/SimPO/ORPO and SoLo-RA against worked examples computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from repro.solopo.losses import po_loss, reward, solo_ra


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def neg_logsigmoid(x: float) -> float:
    return math.log(1.0 + math.exp(-x))


def odds(a: float) -> float:
    return a - math.log(1.0 - math.exp(a))


def assert_close(actual: torch.Tensor, expected: list[float]) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), rtol=1e-6, atol=1e-9)


def test_dpo_two_pairs():
    # beta 0.1; pair 1: (-10 - -11) - (-12 - -11) = 1 + 1 = 2; pair 2: (-20 - -19) - (-18 - -19) = -1 - 1 = -2
    loss = po_loss("dpo", t(-10, -20), t(-12, -18), t(5, 5), t(5, 5), t(-11, -19), t(-11, -19), beta=0.1)
    assert_close(loss, [neg_logsigmoid(0.2), neg_logsigmoid(-0.2)])


def test_simpo_two_pairs_with_margin():
    # beta 2, gamma 0.5; pair 1: 2*(-4/4) - 2*(-10/5) - 0.5 = -2 + 4 - 0.5 = 1.5
    # pair 2: 2*(-9/3) - 2*(-6/2) - 0.5 = -6 + 6 - 0.5 = -0.5
    loss = po_loss("simpo", t(-4, -9), t(-10, -6), t(4, 3), t(5, 2), beta=2.0, gamma=0.5)
    assert_close(loss, [neg_logsigmoid(1.5), neg_logsigmoid(-0.5)])


def test_simpo_ignores_references():
    with_ref = po_loss("simpo", t(-4), t(-10), t(4), t(5), t(-100), t(3), beta=2.0)
    without = po_loss("simpo", t(-4), t(-10), t(4), t(5), beta=2.0)
    assert_close(with_ref, [without.item()])


def test_orpo_two_pairs_with_lam():
    # lam 0.2; mean log-probs: chosen -2/4 = -0.5 and -3/3 = -1; rejected -6/3 = -2 and -4/2 = -2
    # loss = -a_w + lam * -logsigmoid(odds(a_w) - odds(a_l)), odds(a) = a - log(1 - exp(a))
    loss = po_loss("orpo", t(-2, -3), t(-6, -4), t(4, 3), t(3, 2), beta=1.0, lam=0.2)
    expected = [
        0.5 + 0.2 * neg_logsigmoid(odds(-0.5) - odds(-2.0)),
        1.0 + 0.2 * neg_logsigmoid(odds(-1.0) - odds(-2.0)),
    ]
    assert_close(loss, expected)


def test_integer_lengths_accepted():
    lengths = torch.tensor([4, 3])
    loss = po_loss("simpo", t(-4, -9), t(-10, -6), lengths, torch.tensor([5, 2]), beta=2.0, gamma=0.5)
    assert_close(loss, [neg_logsigmoid(1.5), neg_logsigmoid(-0.5)])


def test_reward_per_algo():
    # DPO: 0.5 * (-3 - -4) = 0.5; SimPO: 0.5 * -3/2 = -0.75; ORPO: odds(-1.5), beta unused
    assert_close(reward("dpo", t(-3), t(2), t(-4), beta=0.5), [0.5])
    assert_close(reward("simpo", t(-3), t(2), beta=0.5), [-0.75])
    assert_close(reward("orpo", t(-3), t(2), beta=123.0), [odds(-1.5)])


@pytest.mark.parametrize(("shaping", "expected"), [("abs", [2.0, 3.0]), ("square", [2.0, 4.5])])
def test_solo_ra_dpo(shaping, expected):
    # beta 0.5, alpha 2; r_short = 0.5*[-5 - -6, -9 - -6] = [0.5, -1.5]; r_long = 0.5*[-7 - -6, -6 - -6] = [-0.5, 0]
    # gap = [1, -1.5]; abs: 2*[1, 1.5] = [2, 3]; square: 2*[1, 2.25] = [2, 4.5]
    term = solo_ra("dpo", t(-5, -9), t(-7, -6), t(9, 9), t(-6, -6), t(-6, -6), beta=0.5, alpha=2.0, shaping=shaping)
    assert_close(term, expected)


@pytest.mark.parametrize(("shaping", "expected"), [("abs", [1.0, 0.5]), ("square", [2.0, 0.5])])
def test_solo_ra_simpo(shaping, expected):
    # beta 2, alpha 0.5, len [4, 2]; r_short = 2*[-4/4, -3/2] = [-2, -3]; r_long = 2*[-8/4, -2/2] = [-4, -2]
    # gap = [2, -1]; abs: 0.5*[2, 1] = [1, 0.5]; square: 0.5*[4, 1] = [2, 0.5]
    term = solo_ra("simpo", t(-4, -3), t(-8, -2), t(4, 2), beta=2.0, alpha=0.5, shaping=shaping)
    assert_close(term, expected)


@pytest.mark.parametrize("shaping", ["abs", "square"])
def test_solo_ra_orpo(shaping):
    # len [2, 4]; short means [-1/2, -2/4] = [-0.5, -0.5]; long means [-3/2, -1/4] = [-1.5, -0.25]; alpha 1.5
    gaps = [odds(-0.5) - odds(-1.5), odds(-0.5) - odds(-0.25)]
    expected = [1.5 * (abs(g) if shaping == "abs" else g * g) for g in gaps]
    term = solo_ra("orpo", t(-1, -2), t(-3, -1), t(2, 4), beta=99.0, alpha=1.5, shaping=shaping)
    assert_close(term, expected)


def test_solo_ra_is_zero_when_contexts_agree():
    term = solo_ra("simpo", t(-4, -3), t(-4, -3), t(4, 2), beta=2.0, alpha=1.0)
    assert_close(term, [0.0, 0.0])


def test_missing_reference_raises():
    with pytest.raises(ValueError, match="ref_l"):
        po_loss("dpo", t(-1), t(-2), t(1), t(1), t(-1), None, beta=0.1)
    with pytest.raises(ValueError, match="ref_w_short"):
        solo_ra("dpo", t(-1), t(-2), t(1), None, t(-1), beta=0.1, alpha=1.0)
    with pytest.raises(ValueError, match="reference"):
        reward("dpo", t(-1), t(1), beta=0.1)


def test_unknown_algo_raises_naming_the_allowed_ones():
    with pytest.raises(ValueError, match="dpo, simpo, orpo"):
        po_loss("kto", t(-1), t(-2), t(1), t(1), beta=0.1)
    with pytest.raises(ValueError, match="dpo, simpo, orpo"):
        solo_ra("ipo", t(-1), t(-2), t(1), beta=0.1, alpha=1.0)


def test_unknown_shaping_raises():
    with pytest.raises(ValueError, match="shaping"):
        solo_ra("simpo", t(-1), t(-2), t(1), beta=0.1, alpha=1.0, shaping="huber")


def test_shape_mismatch_raises_with_names():
    with pytest.raises(ValueError, match=r"pi_w=\(2,\).*pi_l=\(3,\)"):
        po_loss("simpo", t(-1, -2), t(-1, -2, -3), t(1, 1), t(1, 1), beta=0.1)
    with pytest.raises(ValueError, match="len_w"):
        solo_ra("simpo", t(-1, -2), t(-1, -2), t(1), beta=0.1, alpha=1.0)
    with pytest.raises(ValueError, match="1-D"):
        po_loss("simpo", t(-1, -2).reshape(1, 2), t(-1, -2).reshape(1, 2), t(1, 1), t(1, 1), beta=0.1)


def test_nonpositive_length_raises():
    with pytest.raises(ValueError, match="positive"):
        po_loss("simpo", t(-1), t(-2), t(0), t(1), beta=0.1)


@pytest.mark.parametrize("pi_w", [0.0, -1e-12, -1e4])
def test_orpo_finite_at_probability_one_and_far_below(pi_w):
    chosen = torch.tensor([pi_w], requires_grad=True)
    rejected = torch.tensor([-1e4], requires_grad=True)
    loss = po_loss("orpo", chosen, rejected, torch.tensor([3]), torch.tensor([3]), beta=1.0, lam=0.1)
    loss.sum().backward()
    assert torch.isfinite(loss).all()
    assert torch.isfinite(chosen.grad).all()
    assert torch.isfinite(rejected.grad).all()


@pytest.mark.parametrize("pi_w", [0.0, -1e-12])
def test_solo_ra_orpo_finite_at_probability_one(pi_w):
    short = torch.tensor([pi_w], requires_grad=True)
    term = solo_ra("orpo", short, torch.tensor([-2.0]), torch.tensor([4]), beta=1.0, alpha=1.0, shaping="square")
    term.sum().backward()
    assert torch.isfinite(term).all()
    assert torch.isfinite(short.grad).all()


def test_low_precision_inputs_computed_in_float32():
    bf16 = torch.tensor([-4.0, -9.0], dtype=torch.bfloat16)
    fp16 = torch.tensor([-10.0, -6.0], dtype=torch.float16)
    loss = po_loss("simpo", bf16, fp16, torch.tensor([4, 3]), torch.tensor([5, 2]), beta=2.0)
    assert loss.dtype == torch.float32
    # same worked example as the SimPO test, without the margin: 2 and 0
    torch.testing.assert_close(loss, torch.tensor([neg_logsigmoid(2.0), neg_logsigmoid(0.0)]))


def test_dpo_gradient_matches_closed_form():
    # loss = -logsigmoid(beta*m) with m = (pi_w - ref_w) - (pi_l - ref_l), so d loss / d pi_w = -beta*sigmoid(-beta*m)
    # beta 0.3; m = (-10 - -11) - (-13 - -12) = 1 + 1 = 2: -0.3 / (1 + exp(0.6)); d loss / d pi_l is its negation
    beta = 0.3
    pi_w = t(-10).requires_grad_()
    pi_l = t(-13).requires_grad_()
    loss = po_loss("dpo", pi_w, pi_l, t(4), t(4), t(-11), t(-12), beta=beta)
    loss.sum().backward()
    expected = -beta / (1.0 + math.exp(beta * 2.0))
    assert pi_w.grad.item() == pytest.approx(expected, rel=1e-9)
    assert pi_l.grad.item() == pytest.approx(-expected, rel=1e-9)
    assert pi_w.grad.item() < 0  # raising the chosen log-prob lowers the loss
