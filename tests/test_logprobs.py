"""Chunked log-probs and SFT loss: equal to the full-logits computation in value and gradient."""

from __future__ import annotations

import math

import pytest
import torch

from repro.config import LoraSection, ModelSection
from repro.errors import ModelError
from repro.modeling import load_model
from repro.train.batching import pack_batch, pad_batch
from repro.train.logprobs import (
    IGNORE_INDEX,
    chunked_cross_entropy,
    sequence_logprobs,
    shifted_targets,
    token_logprobs,
    token_logprobs_entropy,
)


def full_logprobs(hidden, weight, targets, bias=None, temperature=1.0):
    logits = hidden @ weight.T
    if bias is not None:
        logits = logits + bias
    logp = (logits / temperature).log_softmax(-1)
    picked = logp.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return torch.where(targets == IGNORE_INDEX, torch.zeros_like(picked), picked)


def random_case(dtype, seed=0, b=3, t=7, h=5, v=11):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(b, t, h, generator=gen, dtype=dtype)
    weight = torch.randn(v, h, generator=gen, dtype=dtype)
    bias = torch.randn(v, generator=gen, dtype=dtype)
    targets = torch.randint(0, v, (b, t), generator=gen)
    targets[0, 0] = targets[1, 3] = targets[2, -1] = IGNORE_INDEX
    return hidden, weight, bias, targets


def test_hand_computed_single_position():
    # h = [1, 2]; rows of W give logits [1, 2, 3]; target 2: 3 - log(e^1 + e^2 + e^3) = -log(1 + e^-1 + e^-2)
    hidden = torch.tensor([[[1.0, 2.0]]])
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    lp = token_logprobs(hidden, weight, torch.tensor([[2]]))
    assert lp.shape == (1, 1)
    assert lp.item() == pytest.approx(-0.4076059644, abs=1e-6)
    assert lp.item() == pytest.approx(-math.log(1 + math.exp(-1) + math.exp(-2)), abs=1e-6)
    # temperature 2 halves the logits to [0.5, 1, 1.5]; target 0: 0.5 - 1.5 - log(1 + e^-0.5 + e^-1)
    lp_t = token_logprobs(hidden, weight, torch.tensor([[0]]), temperature=2.0)
    assert lp_t.item() == pytest.approx(-1.0 - math.log(1 + math.exp(-0.5) + math.exp(-1)), abs=1e-6)
    # a bias of [0, 0, -2] makes the logits [1, 2, 1]; target 1: 2 - log(2e + e^2) = -log(1 + 2/e)
    lp_b = token_logprobs(hidden, weight, torch.tensor([[1]]), lm_head_bias=torch.tensor([0.0, 0.0, -2.0]))
    assert lp_b.item() == pytest.approx(-math.log(1 + 2 / math.e), abs=1e-6)


@pytest.mark.parametrize("chunk_size", [1, 4, 5, 18, 21, 1024])
def test_matches_full_logits_float64(chunk_size):
    hidden, weight, bias, targets = random_case(torch.float64)
    lp = token_logprobs(hidden, weight, targets, chunk_size=chunk_size, lm_head_bias=bias, temperature=0.7)
    assert lp.dtype == torch.float64
    expected = full_logprobs(hidden, weight, targets, bias, temperature=0.7)
    torch.testing.assert_close(lp, expected, rtol=0, atol=1e-12)
    assert (lp[targets == IGNORE_INDEX] == 0).all()
    assert (lp[targets != IGNORE_INDEX] < 0).all()


@pytest.mark.parametrize("chunk_size", [2, 7, 1024])
def test_matches_full_logits_float32(chunk_size):
    hidden, weight, _, targets = random_case(torch.float32, seed=1)
    lp = token_logprobs(hidden, weight, targets, chunk_size=chunk_size)
    assert lp.dtype == torch.float32
    torch.testing.assert_close(lp, full_logprobs(hidden, weight, targets), rtol=0, atol=1e-5)


def test_low_precision_weights_give_float32():
    hidden, weight, _, targets = random_case(torch.float32, seed=2)
    lp = token_logprobs(hidden.bfloat16(), weight.bfloat16(), targets, chunk_size=4)
    assert lp.dtype == torch.float32
    expected = full_logprobs(hidden.bfloat16().float(), weight.bfloat16().float(), targets)
    torch.testing.assert_close(lp, expected, rtol=0, atol=5e-2)  # bf16 logits carry ~3 significant digits


@pytest.mark.parametrize("chunk_size", [3, 1024])
def test_gradients_match_full_computation(chunk_size):
    hidden, weight, bias, targets = random_case(torch.float64, seed=3)
    coef = torch.randn(targets.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    grads = []
    for fn in (lambda *a: token_logprobs(*a[:3], chunk_size=chunk_size, lm_head_bias=a[3]), full_logprobs):
        leaves = [x.clone().requires_grad_(True) for x in (hidden, weight, bias)]
        (fn(leaves[0], leaves[1], targets, leaves[2]) * coef).sum().backward()
        grads.append([leaf.grad for leaf in leaves])
    for got, want in zip(*grads, strict=True):
        assert got.abs().sum() > 0
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_all_ignored_gives_zeros_and_a_usable_graph():
    hidden, weight, _, targets = random_case(torch.float32, seed=4)
    hidden.requires_grad_(True)
    lp = token_logprobs(hidden, weight, torch.full_like(targets, IGNORE_INDEX), chunk_size=4)
    assert torch.equal(lp, torch.zeros_like(lp))
    lp.sum().backward()
    assert torch.equal(hidden.grad, torch.zeros_like(hidden))


def test_shifted_targets_and_mask():
    ids = torch.tensor([[10, 11, 12, 13], [20, 21, 22, 0]])
    labels = torch.tensor([[-100, -100, 12, 13], [-100, 21, 22, -100]])
    targets, mask = shifted_targets(ids, labels)
    assert targets.tolist() == [[-100, 12, 13, -100], [21, 22, -100, -100]]
    assert mask.tolist() == [[False, True, True, False], [True, True, False, False]]
    targets, mask = shifted_targets(ids, attention_mask=torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]))
    assert targets.tolist() == [[11, 12, 13, -100], [21, 22, -100, -100]]
    assert mask.sum().item() == 5


# ---------------------------------------------------------------------------------------------
# On the tiny Qwen2 model, peft-wrapped


@pytest.fixture(scope="module")
def lora_model(tiny_model_dir):
    # float32 on the CPU whatever the machine, so the tolerances below hold on a GPU box too
    lora = LoraSection(r=4, alpha=8, dropout=0.0)
    section = ModelSection(source=tiny_model_dir, device="cpu", dtype="float32", attention="sdpa", lora=lora)
    model = load_model(section).model
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-zero adapters, so their effect and their gradients show
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model.eval()


def padded_example(vocab):
    gen = torch.Generator().manual_seed(5)
    seqs = [torch.randint(3, vocab, (n,), generator=gen).tolist() for n in (9, 6, 11)]
    labels = [[IGNORE_INDEX] * 4 + s[4:] for s in seqs]  # the first 4 tokens are the prompt
    return pad_batch(seqs, pad_id=0, labels=labels)


def reference_logprobs(model, batch):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    targets, mask = shifted_targets(batch["input_ids"], batch["labels"])
    picked = logits.log_softmax(-1).gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask


def test_sequence_logprobs_matches_full_logits(lora_model):
    batch = padded_example(lora_model.config.vocab_size)
    with torch.no_grad():
        lp, mask = sequence_logprobs(lora_model, batch["input_ids"], batch["attention_mask"], batch["labels"], 5)
        want, want_mask = reference_logprobs(lora_model, batch)
    assert torch.equal(mask, want_mask)
    assert mask.sum().item() == (9 - 4) + (6 - 4) + (11 - 4)  # every label after the 4-token prompt
    torch.testing.assert_close(lp, want, rtol=0, atol=1e-5)


def test_sft_loss_and_adapter_gradients_match_full_cross_entropy(lora_model):
    batch = padded_example(lora_model.config.vocab_size)
    trainable = [p for p in lora_model.parameters() if p.requires_grad]

    lora_model.zero_grad()
    loss_sum, n_tokens = chunked_cross_entropy(
        lora_model, batch["input_ids"], batch["attention_mask"], batch["labels"], chunk_size=4
    )
    loss_sum.backward()
    chunked = [p.grad.clone() for p in trainable]

    lora_model.zero_grad()
    logits = lora_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets, _ = shifted_targets(batch["input_ids"], batch["labels"])
    full = torch.nn.functional.cross_entropy(
        logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    full.backward()

    assert n_tokens.item() == 14
    torch.testing.assert_close(loss_sum, full, rtol=1e-6, atol=1e-5)
    assert any(g.abs().sum() > 0 for g in chunked)
    for got, p in zip(chunked, trainable, strict=True):
        torch.testing.assert_close(got, p.grad, rtol=1e-4, atol=1e-6)
    lora_model.zero_grad()


def test_packed_batch_gives_each_sample_its_own_logprobs(lora_model):
    gen = torch.Generator().manual_seed(6)
    seqs = [torch.randint(3, lora_model.config.vocab_size, (n,), generator=gen).tolist() for n in (7, 5)]
    packed = pack_batch(seqs)
    with torch.no_grad():
        lp, mask = sequence_logprobs(lora_model, packed["input_ids"], None, packed["labels"], 4, packed["position_ids"])
        alone = [sequence_logprobs(lora_model, torch.tensor([s]), None, None)[0][0] for s in seqs]
    assert mask[0].tolist() == [True] * 6 + [False] + [True] * 4 + [False]
    torch.testing.assert_close(lp[0, :7], alone[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(lp[0, 7:], alone[1], rtol=0, atol=1e-5)


def test_scaled_logits_are_refused(lora_model):
    batch = padded_example(lora_model.config.vocab_size)
    head = lora_model.get_output_embeddings()
    handle = head.register_forward_hook(lambda _m, _i, out: out * 2)
    try:
        with torch.no_grad(), pytest.raises(ModelError, match="plain linear LM heads"):
            sequence_logprobs(lora_model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    finally:
        handle.remove()


def test_entropy_by_hand_and_at_the_sampling_temperature():
    # h = [1]; W = [[0], [ln 3]]: logits [0, ln 3], p = [1/4, 3/4], H = -(1/4 ln 1/4 + 3/4 ln 3/4) = ln 4 - 3/4 ln 3
    hidden = torch.tensor([[[1.0]]], dtype=torch.float64)
    weight = torch.tensor([[0.0], [math.log(3)]], dtype=torch.float64)
    lp, ent = token_logprobs_entropy(hidden, weight, torch.tensor([[1]]))
    assert lp.item() == pytest.approx(math.log(3 / 4), abs=1e-12)
    assert ent.item() == pytest.approx(math.log(4) - 0.75 * math.log(3), abs=1e-12)
    # temperature 2: logits [0, ln 3 / 2] = [0, ln sqrt 3], p = [1, sqrt 3] / (1 + sqrt 3): flatter, more entropy
    s = math.sqrt(3)
    p = [1 / (1 + s), s / (1 + s)]
    lp_t, ent_t = token_logprobs_entropy(hidden, weight, torch.tensor([[1]]), temperature=2.0)
    assert lp_t.item() == pytest.approx(math.log(p[1]), abs=1e-12)
    assert ent_t.item() == pytest.approx(-sum(q * math.log(q) for q in p), abs=1e-12)
    assert ent_t.item() > ent.item()


@pytest.mark.parametrize("chunk_size", [1, 4, 1024])
def test_entropy_matches_full_logits_in_value_and_gradient(chunk_size):
    hidden, weight, bias, targets = random_case(torch.float64)
    hidden.requires_grad_(True)
    lp, ent = token_logprobs_entropy(hidden, weight, targets, chunk_size, bias, temperature=0.7)
    logp = ((hidden @ weight.T + bias) / 0.7).log_softmax(-1)
    full_ent = -(logp.exp() * logp).sum(-1)
    full_ent = torch.where(targets == IGNORE_INDEX, torch.zeros_like(full_ent), full_ent)
    torch.testing.assert_close(lp, full_logprobs(hidden, weight, targets, bias, 0.7))
    torch.testing.assert_close(ent, full_ent)
    (grad,) = torch.autograd.grad(ent.sum(), hidden)
    (want,) = torch.autograd.grad(full_ent.sum(), hidden)
    torch.testing.assert_close(grad, want)
