"""Prefill-once group sampling: the same tokens as generate(num_return_sequences=G), greedy and seeded, LoRA too."""

from __future__ import annotations

import warnings

import pytest
import torch

from repro.config import GenerationSection
from repro.generation import Sample, generate_texts, sample_groups

QUESTIONS = [
    "What is the revenue?",
    "Which company has the highest revenue in 2023? Answer with a JSON list or a short phrase.",
    "The court of appeal ruled on case number 2021-CV-0457; what was the cause of action?",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, tok


@pytest.fixture(scope="module")
def prompts(tiny) -> list[torch.Tensor]:
    _, tok = tiny
    out = []
    for q in QUESTIONS:
        text = tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        out.append(tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0])
    assert len({len(p) for p in out}) == len(out), "the prompts differ in length"
    return out


def settings(do_sample: bool, max_new_tokens: int = 8, batch_size: int = 4) -> GenerationSection:
    return GenerationSection(max_new_tokens=max_new_tokens, do_sample=do_sample, batch_size=batch_size)


def reference(model, tok, prompts, group: int, gen: GenerationSection, eos: list[int]) -> list[list[int]]:
    """generate(num_return_sequences=group) on one left-padded batch (greedy: plain generate, each row repeated);
    rows cut after their first eos."""
    batch = tok.pad({"input_ids": [p.tolist() for p in prompts]}, return_tensors="pt")
    kwargs = {"temperature": gen.temperature, "top_p": gen.top_p} if gen.do_sample else {"top_k": None}
    out = model.generate(
        **batch,
        num_return_sequences=group if gen.do_sample else 1,
        do_sample=gen.do_sample,
        max_new_tokens=gen.max_new_tokens,
        pad_token_id=tok.pad_token_id,
        eos_token_id=eos,
        **kwargs,
    )
    if not gen.do_sample:
        out = out.repeat_interleave(group, dim=0)
    rows = []
    for row in out[:, batch["input_ids"].shape[1] :].tolist():
        end = next((i for i, t in enumerate(row) if t in eos), None)
        rows.append(row if end is None else row[: end + 1])
    return rows


def flat(groups: list[list[Sample]]) -> list[list[int]]:
    return [s.token_ids for g in groups for s in g]


def test_greedy_samples_equal_the_greedy_continuation(tiny, prompts):
    model, tok = tiny
    gen = settings(do_sample=False)
    groups = sample_groups(model, tok, prompts, 3, gen)
    assert [len(g) for g in groups] == [3] * len(prompts)
    for prompt, group in zip(prompts, groups, strict=True):
        (expected,) = reference(model, tok, [prompt], 1, gen, [tok.eos_token_id])
        assert [s.token_ids for s in group] == [expected] * 3
        assert group[0].text == tok.decode(expected, skip_special_tokens=True)


def test_seeded_sampling_matches_num_return_sequences_one_prompt(tiny, prompts):
    model, tok = tiny
    gen = settings(do_sample=True)
    groups = sample_groups(model, tok, prompts[1:2], 4, gen, seed=7)
    torch.manual_seed(7)
    expected = reference(model, tok, prompts[1:2], 4, gen, [tok.eos_token_id])
    assert flat(groups) == expected
    assert len({tuple(r) for r in expected}) > 1, "the samples of a group differ"


@pytest.mark.parametrize("batch_size", [3, 2])
def test_seeded_sampling_matches_generate_on_mixed_length_batches(tiny, prompts, batch_size):
    model, tok = tiny
    gen = settings(do_sample=True, batch_size=batch_size)
    groups = sample_groups(model, tok, prompts, 3, gen, seed=11)
    torch.manual_seed(11)  # one seed, then the batches in order, as sample_groups goes
    expected = []
    for start in range(0, len(prompts), batch_size):
        expected += reference(model, tok, prompts[start : start + batch_size], 3, gen, [tok.eos_token_id])
    assert flat(groups) == expected


def test_a_prompt_does_not_depend_on_its_batch_mates(tiny, prompts):
    model, tok = tiny
    gen = settings(do_sample=False, max_new_tokens=10)
    together = sample_groups(model, tok, prompts, 2, gen)
    alone = [sample_groups(model, tok, [p], 2, gen)[0] for p in prompts]
    assert together == alone


def test_eos_ends_a_sample_and_the_limit_leaves_it_unfinished(tiny, prompts, monkeypatch):
    model, tok = tiny
    gen = settings(do_sample=True, max_new_tokens=8)
    torch.manual_seed(3)
    free = reference(model, tok, prompts[:2], 4, gen, [tok.eos_token_id])
    # a token some rows sample early and others never: declared an eos in the model's generation config
    counts = torch.bincount(torch.tensor([t for r in free for t in set(r[:-1])]))
    stop = next(int(t) for t in counts.argsort(descending=True) if 0 < counts[t] < len(free))
    eos = [tok.eos_token_id, stop]
    monkeypatch.setattr(model.generation_config, "eos_token_id", eos)
    torch.manual_seed(3)
    expected = reference(model, tok, prompts[:2], 4, gen, eos)
    samples = [s for g in sample_groups(model, tok, prompts[:2], 4, gen, seed=3) for s in g]
    assert [s.token_ids for s in samples] == expected
    finished = [s for s in samples if s.finished]
    unfinished = [s for s in samples if not s.finished]
    assert finished and unfinished
    for s in finished:
        assert s.token_ids[-1] in eos and not set(s.token_ids[:-1]) & set(eos)
        assert len(s.token_ids) <= gen.max_new_tokens
    for s in unfinished:
        assert len(s.token_ids) == gen.max_new_tokens and not set(s.token_ids) & set(eos)


def test_each_prompt_is_prefilled_once(tiny, prompts):
    model, tok = tiny
    seen: list[tuple[int, int]] = []
    hook = model.model.register_forward_hook(
        lambda _m, _args, kwargs, _out: seen.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        sample_groups(model, tok, prompts, 4, settings(do_sample=True, max_new_tokens=3), seed=0)
    finally:
        hook.remove()
    width = max(len(p) for p in prompts)
    assert seen[0] == (len(prompts), width - 1)
    assert seen[1:] == [(len(prompts) * 4, 1)] * 3


def test_uses_the_current_cache_kwarg_and_restores_mode_and_rng(tiny, prompts):
    model, tok = tiny
    model.train()
    state = torch.get_rng_state()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sample_groups(model, tok, prompts[:1], 2, settings(do_sample=True, max_new_tokens=3), seed=5)
        assert not [w for w in caught if "past_key_values" in str(w.message)]
        assert model.training, "the caller's mode comes back"
        assert torch.equal(torch.get_rng_state(), state), "a seeded call leaves the global RNG alone"
    finally:
        model.eval()


def test_lora_samples_match_generate_on_the_peft_model(tiny, prompts):
    from peft import LoraConfig, get_peft_model

    base, tok = tiny
    peft_model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear"), adapter_name="default"
    )
    try:
        with torch.no_grad():  # B starts at zero: make the adapters change the output
            for name, p in peft_model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.5)
        for do_sample in (False, True):
            gen = settings(do_sample=do_sample, batch_size=2)
            groups = sample_groups(peft_model, tok, prompts[:2], 3, gen, seed=13)
            torch.manual_seed(13)
            expected = reference(peft_model, tok, prompts[:2], 3, gen, [tok.eos_token_id])
            assert flat(groups) == expected
            with peft_model.disable_adapter():
                torch.manual_seed(13)
                assert reference(peft_model, tok, prompts[:2], 3, gen, [tok.eos_token_id]) != expected
    finally:
        peft_model.unload()


def test_generate_texts_still_decodes_a_batch(tiny):
    model, tok = tiny
    messages = [{"role": "user", "content": QUESTIONS[0]}]
    texts = [tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)]
    gen = settings(do_sample=False, max_new_tokens=5)
    (text,) = generate_texts(model, tok, texts, gen)
    ids = tok(texts[0], add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    (expected,) = reference(model, tok, [ids], 1, gen, [tok.eos_token_id])
    assert text == tok.decode(expected, skip_special_tokens=True)


def test_rejects_bad_arguments(tiny, prompts):
    model, tok = tiny
    with pytest.raises(ValueError, match="group_size"):
        sample_groups(model, tok, prompts, 0, settings(do_sample=False))
    with pytest.raises(ValueError, match="1-D"):
        sample_groups(model, tok, [torch.tensor([], dtype=torch.long)], 2, settings(do_sample=False))
