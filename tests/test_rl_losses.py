"""Group advantages, the clipped GRPO/DAPO loss and DAPO's dynamic sampling, against hand-worked numbers."""

from __future__ import annotations

import math
import threading

import pytest
import torch

from repro.l1.rl import (
    FillStats,
    Group,
    dynamic_sampling_filter,
    fill_batch,
    group_advantages,
    policy_loss,
    policy_loss_metrics,
)

# --- group advantages -------------------------------------------------------------------------------------


def test_group_advantages_unbiased_std_with_eps():
    adv = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]))
    # mean 0.5; unbiased std = sqrt((4 * 0.25) / 3) = sqrt(1/3) = 0.57735; 0.5 / (0.57735 + 1e-6) = 0.866024
    a = 0.5 / (math.sqrt(1.0 / 3.0) + 1e-6)
    assert a == pytest.approx(0.8660239, abs=1e-6)
    assert torch.allclose(adv, torch.tensor([[a, -a, -a, a]]), atol=1e-7, rtol=0)


def test_group_advantages_degenerate_groups_are_zero():
    adv = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 2.0]]))
    assert torch.equal(adv[1], torch.zeros(4))
    single = group_advantages(torch.tensor([[3.0], [0.0]]))  # G=1: unbiased std is NaN, advantage defined as 0
    assert torch.equal(single, torch.zeros(2, 1))
    assert torch.equal(group_advantages(torch.tensor([[3.0], [0.0]]), scale_std=False), torch.zeros(2, 1))


def test_group_advantages_without_std_scaling():
    adv = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 2.0, 3.0, 6.0]]), scale_std=False)
    assert torch.equal(adv, torch.tensor([[0.5, -0.5, -0.5, 0.5], [-2.0, -1.0, 0.0, 3.0]]))
    ints = group_advantages(torch.tensor([[1, 0, 0, 1]]), scale_std=False)  # integer rewards are fine
    assert torch.equal(ints, torch.tensor([[0.5, -0.5, -0.5, 0.5]]))


# --- policy loss ------------------------------------------------------------------------------------------
# Two sequences, eps_low 0.2 / eps_high 0.28 (clip range [0.8, 1.28]); sequence 1 has 3 tokens, A = +0.5;
# sequence 2 has 1 token, A = -2, and two padding positions holding garbage.
#   seq1 ratio 1.5 -> min(0.75, 1.28 * 0.5 = 0.64) = 0.64, clipped  -> loss -0.64
#   seq1 ratio 1.1 -> inside the range                              -> loss -0.55
#   seq1 ratio 0.5 -> min(0.25, 0.8 * 0.5 = 0.40) = 0.25, unclipped -> loss -0.25
#   seq2 ratio 0.5 -> min(-1.0, 0.8 * -2 = -1.6) = -1.6, clipped    -> loss +1.60
# token level:    (-0.64 - 0.55 - 0.25 + 1.6) = 0.16 over 4 tokens
# sequence level: (-1.44 / 3) + 1.6 = -0.48 + 1.6 = 1.12 over 2 sequences

EPS_LOW, EPS_HIGH = 0.2, 0.28


def _example(requires_grad: bool = True) -> dict[str, torch.Tensor]:
    old = torch.tensor([[-1.0, -2.0, -0.5], [-0.7, -50.0, 30.0]])
    log_ratio = torch.log(torch.tensor([[1.5, 1.1, 0.5], [0.5, 1.0, 1.0]]))
    logp = old + log_ratio
    logp[1, 1:] = torch.tensor([80.0, -90.0])  # padding: ratios e^130 and e^-120, inf/0 in float32
    return {
        "logp": logp.requires_grad_(requires_grad),
        "old_logp": old.requires_grad_(requires_grad),
        "advantages": torch.tensor([0.5, -2.0]),
        "mask": torch.tensor([[1, 1, 1], [1, 0, 0]]),
    }


def test_policy_loss_token_level():
    ex = _example()
    loss_sum, units = policy_loss(**ex, eps_low=EPS_LOW, eps_high=EPS_HIGH, level="token")
    assert units == 4
    assert loss_sum.item() == pytest.approx(0.16, abs=1e-6)
    assert (loss_sum / units).item() == pytest.approx(0.04, abs=1e-6)


def test_policy_loss_sequence_level():
    loss_sum, units = policy_loss(**_example(), eps_low=EPS_LOW, eps_high=EPS_HIGH, level="sequence")
    assert units == 2
    assert loss_sum.item() == pytest.approx(1.12, abs=1e-6)
    assert (loss_sum / units).item() == pytest.approx(0.56, abs=1e-6)


def test_policy_loss_negative_advantage_high_ratio_is_not_clipped():
    # A = -1, ratio 2.0 > 1.28: min(-2.0, -1.28) = -2.0, the unclipped term -> loss +2.0, no clip
    logp, old = torch.log(torch.tensor([[2.0]])), torch.zeros(1, 1)
    args = (logp, old, torch.tensor([-1.0]), torch.ones(1, 1), EPS_LOW, EPS_HIGH)
    loss_sum, units = policy_loss(*args, "token")
    assert (loss_sum.item(), units) == (pytest.approx(2.0), 1)
    m = policy_loss_metrics(*args)
    assert (m["clip_frac_low"], m["clip_frac_high"], m["ratio_max"]) == (0.0, 0.0, pytest.approx(2.0))


def test_policy_loss_with_k3_kl():
    # d = ref - logp: seq1 [ln2, 0, -ln2], seq2 [ln2]; k3 = e^d - d - 1:
    #   ln2 -> 1 - ln2 = 0.30685282;  0 -> 0;  -ln2 -> ln2 - 0.5 = 0.19314718
    # with kl_coef 0.1, per token: seq1 [-0.64 + 0.030685282, -0.55, -0.25 + 0.019314718] (sum -1.39),
    #                              seq2 [1.6 + 0.030685282] = 1.630685282
    ex = _example()
    d = torch.tensor([[math.log(2), 0.0, -math.log(2)], [math.log(2), 7.0, -9.0]])
    ref = ex["logp"].detach() + d
    token_sum, token_units = policy_loss(
        **ex, eps_low=EPS_LOW, eps_high=EPS_HIGH, level="token", ref_logp=ref, kl_coef=0.1
    )
    assert token_units == 4
    assert token_sum.item() == pytest.approx(-1.39 + 1.630685282, abs=1e-6)  # 0.240685282
    seq_sum, seq_units = policy_loss(
        **ex, eps_low=EPS_LOW, eps_high=EPS_HIGH, level="sequence", ref_logp=ref, kl_coef=0.1
    )
    assert seq_units == 2
    assert seq_sum.item() == pytest.approx(-1.39 / 3 + 1.630685282, abs=1e-6)  # 1.167351949
    # kl_coef 0 leaves the loss as without a reference
    plain, _ = policy_loss(**ex, eps_low=EPS_LOW, eps_high=EPS_HIGH, level="token", ref_logp=ref)
    assert plain.item() == pytest.approx(0.16, abs=1e-6)


def test_policy_loss_with_an_entropy_bonus():
    # entropies: seq1 [1.0, 2.0, 3.0], seq2 [4.0] (+ padding garbage). With entropy_coef 0.01 each token's loss
    # drops by 0.01 * H: token level 0.16 - 0.01 * (1 + 2 + 3 + 4) = 0.06 over 4 tokens;
    # sequence level 1.12 - 0.01 * (6 / 3 + 4) = 1.06 over 2 sequences.
    ex = _example()
    entropy = torch.tensor([[1.0, 2.0, 3.0], [4.0, 99.0, -99.0]], requires_grad=True)
    kw = {"eps_low": EPS_LOW, "eps_high": EPS_HIGH, "entropy": entropy}
    token_sum, _ = policy_loss(**ex, **kw, level="token", entropy_coef=0.01)
    assert token_sum.item() == pytest.approx(0.06, abs=1e-6)
    seq_sum, _ = policy_loss(**ex, **kw, level="sequence", entropy_coef=0.01)
    assert seq_sum.item() == pytest.approx(1.06, abs=1e-6)
    (g,) = torch.autograd.grad(token_sum, entropy)
    assert torch.equal(g, torch.tensor([[-0.01, -0.01, -0.01], [-0.01, 0.0, 0.0]]))
    # coefficient 0: the loss is unchanged, and the entropy is still reported
    plain, _ = policy_loss(**ex, **kw, level="token")
    assert plain.item() == pytest.approx(0.16, abs=1e-6)
    m = policy_loss_metrics(**_example(False), eps_low=EPS_LOW, eps_high=EPS_HIGH, entropy=entropy)
    assert m["entropy"] == pytest.approx(10 / 4)


def test_policy_loss_gradients_flow_through_logp_only():
    ex = _example()
    loss_sum, units = policy_loss(**ex, eps_low=EPS_LOW, eps_high=EPS_HIGH, level="token")
    g_logp, g_old = torch.autograd.grad(loss_sum / units, [ex["logp"], ex["old_logp"]], allow_unused=True)
    assert g_old is None
    # d(-ratio * A)/d logp = -ratio * A on unclipped tokens, 0 on clipped ones and padding; / 4 tokens
    expected = torch.tensor([[0.0, -0.5 * 1.1 / 4, -0.5 * 0.5 / 4], [0.0, 0.0, 0.0]])
    assert torch.isfinite(g_logp).all()
    assert torch.allclose(g_logp, expected, atol=1e-6, rtol=0)


def test_policy_loss_metrics():
    ex = _example(requires_grad=False)
    d = torch.tensor([[math.log(2), 0.0, -math.log(2)], [math.log(2), 0.0, 0.0]])
    m = policy_loss_metrics(**ex, eps_low=EPS_LOW, eps_high=EPS_HIGH, level="token", ref_logp=ex["logp"] + d)
    # high side: seq1 token 0 (ratio 1.5 > 1.28, A > 0); low side: seq2 token 0 (ratio 0.5 < 0.8, A < 0).
    # seq1 token 2 (ratio 0.5, A > 0) is below the range but min() takes the unclipped branch there: not counted.
    assert m["clip_frac_high"] == pytest.approx(1 / 4)
    assert m["clip_frac_low"] == pytest.approx(1 / 4)
    assert m["ratio_mean"] == pytest.approx((1.5 + 1.1 + 0.5 + 0.5) / 4, abs=1e-6)  # 0.9
    assert m["ratio_max"] == pytest.approx(1.5, abs=1e-6)  # the padding's e^130 is not a token
    assert m["kl"] == pytest.approx((0.30685282 + 0.0 + 0.19314718 + 0.30685282) / 4, abs=1e-6)
    seq = policy_loss_metrics(**ex, eps_low=EPS_LOW, eps_high=EPS_HIGH, level="sequence")
    assert seq["clip_frac_high"] == pytest.approx((1 / 3 + 0) / 2)
    assert seq["clip_frac_low"] == pytest.approx((0 + 1) / 2)
    assert seq["ratio_mean"] == pytest.approx(((1.5 + 1.1 + 0.5) / 3 + 0.5) / 2, abs=1e-6)
    assert seq["ratio_max"] == pytest.approx(1.5, abs=1e-6)
    assert "kl" not in seq


def test_policy_loss_without_tokens_counts_nothing_but_keeps_the_graph():
    logp = torch.zeros(2, 3, requires_grad=True)
    args = (logp, torch.zeros(2, 3), torch.ones(2), torch.zeros(2, 3), EPS_LOW, EPS_HIGH)
    for level in ("token", "sequence"):
        loss_sum, units = policy_loss(*args, level)
        assert (loss_sum.item(), units) == (0.0, 0)
        assert loss_sum.requires_grad
    zero = {"clip_frac_low": 0.0, "clip_frac_high": 0.0, "ratio_mean": 0.0, "ratio_max": 0.0}
    assert policy_loss_metrics(*args) == zero
    with pytest.raises(ValueError, match="level"):
        policy_loss(*args, "batch")


# --- dynamic sampling -------------------------------------------------------------------------------------


def test_dynamic_sampling_filter():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.0]])
    assert dynamic_sampling_filter(rewards).tolist() == [True, False, False, True]
    assert dynamic_sampling_filter(torch.tensor([[1.0], [0.0]])).tolist() == [False, False]


MIXED, SAME = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])


class _Generator:
    """Generation batches of three groups, each tagged (batch, index); records which batches were made."""

    def __init__(self, patterns: list[list[torch.Tensor]]) -> None:
        self.patterns = patterns
        self.calls: list[int] = []

    def __call__(self, i: int) -> list[Group]:
        self.calls.append(i)
        return [Group(rewards=r, data=(i, j)) for j, r in enumerate(self.patterns[i % len(self.patterns)])]


def test_fill_batch_full_after_two_generation_batches():
    gen = _Generator([[MIXED, SAME, MIXED], [MIXED, MIXED, SAME]])
    groups, stats = fill_batch(gen, want=4, max_gen_batches=5)
    assert [g.data for g in groups] == [(0, 0), (0, 2), (1, 0), (1, 1)]
    assert stats == FillStats(generated=6, kept=4, used=4, batches=2, gave_up=False)
    assert gen.calls == [0, 1]


def test_fill_batch_drops_the_surplus():
    groups, stats = fill_batch(_Generator([[MIXED, SAME, MIXED], [MIXED, MIXED, SAME]]), want=3, max_gen_batches=5)
    assert [g.data for g in groups] == [(0, 0), (0, 2), (1, 0)]
    assert (stats.kept, stats.used, stats.gave_up) == (4, 3, False)


def test_fill_batch_gives_up_with_a_partial_batch():
    gen = _Generator([[MIXED, SAME, MIXED], [SAME, MIXED, SAME]])
    groups, stats = fill_batch(gen, want=5, max_gen_batches=2)
    assert [g.data for g in groups] == [(0, 0), (0, 2), (1, 1)]
    assert stats == FillStats(generated=6, kept=3, used=3, batches=2, gave_up=True)
    assert gen.calls == [0, 1]


def test_fill_batch_all_filtered_is_empty():
    groups, stats = fill_batch(_Generator([[SAME, SAME, SAME]]), want=2, max_gen_batches=3)
    assert groups == []
    assert stats == FillStats(generated=9, kept=0, used=0, batches=3, gave_up=True)
    assert stats.empty
    groups, stats = fill_batch(lambda i: [], want=2, max_gen_batches=2)  # a batch with no group at all
    assert (groups, stats.batches, stats.gave_up) == ([], 2, True)
    groups, stats = fill_batch(_Generator([[MIXED]]), want=0, max_gen_batches=3)
    assert (groups, stats.batches, stats.gave_up) == ([], 0, False)


class _ThreadGather:
    """An all-gather for processes simulated by threads: each waits until all have put their item in."""

    def __init__(self, world: int) -> None:
        self.items: list = [None] * world
        self.barrier = threading.Barrier(world)

    def for_rank(self, rank: int):
        def gather(item):
            self.items[rank] = item
            self.barrier.wait()
            out = list(self.items)
            self.barrier.wait()  # nobody overwrites a slot before everyone has read it
            return out

        return gather


def test_fill_batch_over_two_processes_keeps_what_one_process_keeps():
    """Batches of 4 prompts; process r makes prompts r and r + 2 (orders). The whole batches:
    batch 0 = [MIXED, SAME, MIXED, MIXED] -> orders 0, 2, 3 kept; batch 1 = [MIXED, MIXED, SAME, SAME] -> 0, 1.
    want=4: one process keeps (0,0), (0,2), (0,3), (1,0) after 2 batches; 5 kept, 8 generated.
    Split: process 0 owns (0,0), (0,2), (1,0); process 1 owns (0,3) (its (1,1) is the surplus)."""
    batches = [[MIXED, SAME, MIXED, MIXED], [MIXED, MIXED, SAME, SAME]]
    one, one_stats = fill_batch(lambda i: [Group(r, (i, j), order=j) for j, r in enumerate(batches[i])], 4, 5)
    assert [g.data for g in one] == [(0, 0), (0, 2), (0, 3), (1, 0)]
    assert [g.rank for g in one] == [0, 1, 2, 3]
    gather, results = _ThreadGather(2), {}

    def process(rank: int) -> None:
        def make(i):
            return [Group(batches[i][j], (i, j), order=j) for j in range(rank, 4, 2)]

        results[rank] = fill_batch(make, 4, 5, gather=gather.for_rank(rank))

    threads = [threading.Thread(target=process, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert [g.data for g in results[0][0]] == [(0, 0), (0, 2), (1, 0)]
    assert [g.data for g in results[1][0]] == [(0, 3)]
    # each kept group's place among everyone's kept groups: the same as in the one-process run
    assert [g.rank for g in results[0][0]] == [0, 1, 3] and [g.rank for g in results[1][0]] == [2]
    expected = FillStats(generated=8, kept=5, used=4, batches=2, gave_up=False)
    assert results[0][1] == results[1][1] == one_stats == expected
