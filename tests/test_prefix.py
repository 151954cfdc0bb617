"""Shared-prefix log-probs: equal to one forward per [prompt, response] row in value and LoRA gradient."""

from __future__ import annotations

import pytest
import torch

from repro.config import LoraSection, ModelSection
from repro.modeling import load_model, trainable_parameters
from repro.train import prefix_attention
from repro.train.prefix import grouped_logprobs, grouped_logprobs_batch, per_sample_logprobs, response_stats
from repro.train.prefix_attention import PrefixLayout

ATOL = 1e-5


def lora_model(model_dir: str, checkpointing: bool = False):
    cfg = ModelSection(
        source=model_dir,
        dtype="float32",
        attention="sdpa",
        gradient_checkpointing=checkpointing,
        lora=LoraSection(r=4, alpha=8, dropout=0.0),
    )
    model = load_model(cfg).model
    with torch.no_grad():  # B starts at zero: make the adapters change the output and get gradients in A
        gen = torch.Generator().manual_seed(1)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return lora_model(tiny_model_dir)


def tokens(vocab: int, n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed))


def group(vocab: int, prompt_len: int, lengths: list[int], seed: int = 0):
    return tokens(vocab, prompt_len, seed), [tokens(vocab, n, seed + 1 + i) for i, n in enumerate(lengths)]


def reference(model, prompt: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """Full logits of the row [prompt, response], log_softmax, the response tokens' entries."""
    logits = model(input_ids=torch.cat([prompt, response]).unsqueeze(0), use_cache=False).logits[0].float()
    p = len(prompt)
    return logits[p - 1 : p - 1 + len(response)].log_softmax(-1).gather(-1, response.unsqueeze(-1)).squeeze(-1)


def assert_close_lists(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == torch.float32 and g.shape == w.shape
        torch.testing.assert_close(g, w, atol=ATOL, rtol=0)


@pytest.mark.parametrize("lengths", [[6], [5, 1, 3, 7]], ids=["G=1", "G=4"])
def test_logprobs_equal_the_per_sample_forward(model, lengths):
    prompt, resps = group(model.config.vocab_size, 9, lengths)
    with torch.no_grad():
        want = [reference(model, prompt, r) for r in resps]
        assert_close_lists(grouped_logprobs(model, prompt, resps), want)
        assert_close_lists(grouped_logprobs(model, prompt, resps, chunk_size=3), want)
        assert_close_lists(per_sample_logprobs(model, prompt, resps), want)


@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "grad-checkpointing"])
def test_lora_gradients_equal_the_per_sample_backward(tiny_model_dir, checkpointing):
    model = lora_model(tiny_model_dir, checkpointing)
    prompt, resps = group(model.config.vocab_size, 11, [4, 1, 6, 3], seed=5)
    params = trainable_parameters(model)
    lps = grouped_logprobs(model, prompt, resps)
    assert all(lp.requires_grad for lp in lps)
    torch.stack([lp.sum() for lp in lps]).sum().backward()
    grouped = {name: p.grad.clone() for name, p in params.items()}
    model.zero_grad(set_to_none=True)
    for r in resps:  # one row at a time, gradients accumulated
        reference(model, prompt, r).sum().backward()
    for name, p in params.items():
        assert grouped[name].abs().sum() > 0, name
        torch.testing.assert_close(grouped[name], p.grad, atol=ATOL, rtol=0, msg=name)
    assert model.base_model.model.config._attn_implementation == "sdpa"


def test_ddp_wrapped_model(tiny_model_dir, tmp_path):
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group is already set up in this process")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        model = lora_model(tiny_model_dir)
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
        prompt, resps = group(model.config.vocab_size, 7, [3, 2, 5], seed=70)
        lps = grouped_logprobs(wrapped, prompt, resps)
        torch.stack([lp.sum() for lp in lps]).sum().backward()
        grads = {name: p.grad.clone() for name, p in trainable_parameters(model).items()}
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            assert_close_lists(lps, [reference(model, prompt, r) for r in resps])
        for r in resps:
            reference(model, prompt, r).sum().backward()
        for name, p in trainable_parameters(model).items():
            torch.testing.assert_close(grads[name], p.grad, atol=ATOL, rtol=0, msg=name)
    finally:
        dist.destroy_process_group()


def test_batch_of_groups_with_different_prompt_lengths(model):
    vocab = model.config.vocab_size
    groups = [group(vocab, 3, [2, 5], seed=10), group(vocab, 12, [1, 1, 4], seed=20), group(vocab, 1, [3, 2], seed=30)]
    with torch.no_grad():
        shared = grouped_logprobs_batch(model, groups)
        separate = grouped_logprobs_batch(model, groups, shared_prefix=False)
        for (prompt, resps), got, alone in zip(groups, shared, separate, strict=True):
            want = [reference(model, prompt, r) for r in resps]
            assert_close_lists(got, want)
            assert_close_lists(alone, want)


def test_each_response_sees_the_prompt_and_itself_only(model):
    vocab = model.config.vocab_size
    prompt, resps = group(vocab, 8, [4, 5, 3], seed=40)
    with torch.no_grad():
        base = grouped_logprobs(model, prompt, resps)
        # response 2 (index 1) changed: responses 1 and 3, before and after it in the row, stay exactly as they were
        changed = [resps[0], (resps[1] + 7) % vocab, resps[2]]
        after = grouped_logprobs(model, prompt, changed)
        torch.testing.assert_close(after[0], base[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(after[2], base[2], atol=1e-6, rtol=0)
        assert not torch.allclose(after[1], base[1], atol=1e-4)
        # a changed prompt token (the first: no response token sits at its position) changes every response
        new_prompt = prompt.clone()
        new_prompt[0] = (new_prompt[0] + 1) % vocab
        moved = grouped_logprobs(model, new_prompt, resps)
        for m, b in zip(moved, base, strict=True):
            assert not torch.allclose(m, b, atol=1e-4)
        # a response's later tokens do not change its earlier log-probs (causal within the response)
        tail = [resps[0], torch.cat([resps[1][:3], (resps[1][3:] + 1) % vocab]), resps[2]]
        torch.testing.assert_close(grouped_logprobs(model, prompt, tail)[1][:3], base[1][:3], atol=1e-6, rtol=0)


def test_no_mask_over_the_whole_row(model, monkeypatch):
    prompt, resps = group(model.config.vocab_size, 10, [3, 6, 2], seed=50)
    row_len = len(prompt) + sum(len(r) for r in resps)
    calls: list[tuple[tuple[int, ...], tuple[int, ...] | None, bool]] = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(query, key, value, attn_mask=None, *args, is_causal=False, **kwargs):
        calls.append((tuple(query.shape), None if attn_mask is None else tuple(attn_mask.shape), is_causal))
        return sdpa(query, key, value, attn_mask, *args, is_causal=is_causal, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    lps = grouped_logprobs(model, prompt, resps)
    sum(lp.sum() for lp in lps).backward()
    model.zero_grad(set_to_none=True)
    layers = model.config.num_hidden_layers
    assert len(calls) == 2 * layers
    assert all(mask is None or mask[-2:] != (row_len, row_len) for _, mask, _ in calls)
    assert calls.count(((1, 4, 10, 16), None, True)) == layers, "the prompt runs on sdpa's causal path"
    assert calls.count(((3, 4, 6, 16), (6, 16), False)) == layers, "responses padded to 6, keys 10 + 6"


def test_attention_and_checkpointing_restored_after_an_error(tiny_model_dir):
    model = lora_model(tiny_model_dir, checkpointing=True)
    hf = model.base_model.model
    layer = hf.model.layers[0]
    ckpt_func = layer._gradient_checkpointing_func
    prompt = torch.tensor([1, 2, 3])
    with pytest.raises(IndexError):  # a token id past the vocabulary fails inside the forward
        grouped_logprobs(model, prompt, [torch.tensor([4]), torch.tensor([hf.config.vocab_size + 5])])
    assert hf.config._attn_implementation == "sdpa"
    assert layer._gradient_checkpointing_func is ckpt_func
    assert prefix_attention._LAYOUT.get() is None


def test_plain_model_empty_responses_and_bad_input(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    prompt, resps = group(plain.config.vocab_size, 5, [2, 3], seed=60)
    with torch.no_grad():
        got = grouped_logprobs(plain, prompt, [resps[0], torch.tensor([], dtype=torch.long), resps[1]])
        assert got[1].shape == (0,)
        assert_close_lists([got[0], got[2]], [reference(plain, prompt, r) for r in resps])
        assert grouped_logprobs(plain, prompt, []) == []
    with pytest.raises(ValueError, match="non-empty 1-D"):
        grouped_logprobs(plain, torch.tensor([], dtype=torch.long), resps)
    with pytest.raises(ValueError, match="responses\\[0\\]"):
        grouped_logprobs(plain, prompt, [resps[0].unsqueeze(0)])


def test_layout_positions_and_indices():
    layout = PrefixLayout(3, (2, 1))
    assert layout.position_ids().tolist() == [[0, 1, 2, 3, 4, 3]]
    gather, scatter, mask = layout.indices(torch.device("cpu"))
    assert gather.tolist() == [3, 4, 5, 5]  # response 2 padded with its last token
    assert scatter.tolist() == [0, 1, 2]
    assert mask.int().tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    with pytest.raises(ValueError):
        PrefixLayout(0, (1,))


@pytest.mark.parametrize("shared_prefix", [True, False])
def test_response_stats_give_full_logit_logprobs_and_entropies_at_a_temperature(model, shared_prefix):
    vocab = model.get_input_embeddings().weight.shape[0]
    prompt, responses = group(vocab, 9, [3, 0, 5], seed=7)
    logps, ents = response_stats(model, prompt, responses, shared_prefix, chunk_size=4, temperature=0.7)
    p = len(prompt)
    for resp, lp, ent in zip(responses, logps, ents, strict=True):
        if not len(resp):
            assert lp.shape == ent.shape == (0,)
            continue
        logits = model(input_ids=torch.cat([prompt, resp]).unsqueeze(0), use_cache=False).logits[0].float()
        logq = (logits[p - 1 : p - 1 + len(resp)] / 0.7).log_softmax(-1)
        torch.testing.assert_close(lp, logq.gather(-1, resp.unsqueeze(-1)).squeeze(-1), atol=ATOL, rtol=0)
        torch.testing.assert_close(ent, -(logq.exp() * logq).sum(-1), atol=ATOL, rtol=0)
