"""QwenLong-CPRS token critic: bidirectional top layers, label-word logits, losses, masking, save/load."""

from __future__ import annotations

import json
import math

import pytest
import torch

from repro.cprs.loss import (
    boundary_weight_vector,
    critic_loss,
    drop_non_critical,
    mask_non_critical,
    mask_positions,
)
from repro.cprs.model import (
    TokenCritic,
    bidirectional_layer_indices,
    default_bidirectional_layers,
    label_word_ids,
    load_critic,
    make_top_layers_bidirectional,
    positions_from_padding,
    save_critic,
)

ATTENTIONS = ["sdpa", "eager"]


def load_tiny(model_dir: str, attention: str = "sdpa"):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation=attention, dtype=torch.float32)
    return model.eval()


def with_lora(model):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))


def hidden_states(model, input_ids, attention_mask=None):
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    with torch.no_grad():
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions_from_padding(attention_mask),
            output_hidden_states=True,
        )
    return out.hidden_states


def sample_ids(length: int = 8, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(10, 500, (1, length), generator=generator)


def with_last_token_changed(ids: torch.Tensor) -> torch.Tensor:
    changed = ids.clone()
    changed[0, -1] = ids[0, -1] + 1
    return changed


def first_token_change(model, ids: torch.Tensor) -> list[float]:
    """Per entry of hidden_states: how much token 0's state moves when only the last token changes."""
    before = hidden_states(model, ids)
    after = hidden_states(model, with_last_token_changed(ids))
    return [(a[0, 0] - b[0, 0]).abs().max().item() for a, b in zip(before, after, strict=True)]


# ---------------------------------------------------------------------------------------------
# Bidirectional top layers


def test_default_bidirectional_layers_is_a_quarter_at_least_one():
    assert default_bidirectional_layers(28) == 7
    assert default_bidirectional_layers(32) == 8
    assert default_bidirectional_layers(2) == 1
    assert default_bidirectional_layers(1) == 1


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_top_layer_sees_later_tokens_bottom_layer_does_not(tiny_model_dir, attention):
    model = load_tiny(tiny_model_dir, attention)
    ids = sample_ids()
    # hidden_states[i] is the input of layer i: [1] is layer 0's output, [2] layer 1's (the top of 2)
    assert max(first_token_change(model, ids)) == 0.0  # plain causal LM: the future never reaches token 0

    assert make_top_layers_bidirectional(model, 1) == [1]
    assert [layer.self_attn.is_causal for layer in model.model.layers] == [True, False]
    change = first_token_change(model, ids)
    assert change[0] == 0.0 and change[1] == 0.0
    assert change[2] > 1e-3


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_padded_rows_match_the_unpadded_row(tiny_model_dir, attention):
    model = load_tiny(tiny_model_dir, attention)
    make_top_layers_bidirectional(model, 1)
    ids = sample_ids(length=6, seed=1)
    pad = torch.zeros(1, 3, dtype=torch.long)
    real = torch.ones(1, 6, dtype=torch.long)
    batch = torch.cat([torch.cat([pad, ids], 1), torch.cat([ids, pad], 1)])
    mask = torch.cat([torch.cat([pad, real], 1), torch.cat([real, pad], 1)])

    reference = hidden_states(model, ids)
    padded = hidden_states(model, batch, mask)
    for ref, out in zip(reference, padded, strict=True):
        torch.testing.assert_close(out[0, 3:], ref[0], atol=1e-5, rtol=0)  # left padded
        torch.testing.assert_close(out[1, :6], ref[0], atol=1e-5, rtol=0)  # right padded


def test_peft_wrapped_model_and_reapplying_replaces_the_setting(tiny_model_dir):
    model = with_lora(load_tiny(tiny_model_dir))
    ids = sample_ids(seed=2)
    assert make_top_layers_bidirectional(model, 1) == [1]
    assert bidirectional_layer_indices(model) == [1]
    assert first_token_change(model, ids)[2] > 1e-3

    assert make_top_layers_bidirectional(model, 0) == []
    assert bidirectional_layer_indices(model) == []
    assert max(first_token_change(model, ids)) == 0.0
    with pytest.raises(ValueError, match="n_layers"):
        make_top_layers_bidirectional(model, 3)


# ---------------------------------------------------------------------------------------------
# Token critic


def test_label_word_ids_single_tokens_and_errors(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    (chain,) = tokenizer.encode(" chain", add_special_tokens=False)
    # " Question" splits in two in the tiny vocabulary, "Question" is one token: the fallback without a space
    assert len(tokenizer.encode(" Question", add_special_tokens=False)) == 2
    (question,) = tokenizer.encode("Question", add_special_tokens=False)
    assert label_word_ids(tokenizer, ["chain", "Question"]) == [chain, question]
    # a word of several tokens is scored by the first token of "word"
    pieces = tokenizer.encode("zzqx", add_special_tokens=False)
    assert len(pieces) > 1 and label_word_ids(tokenizer, ["chain", "zzqx"]) == [chain, pieces[0]]
    with pytest.raises(ValueError, match="share a token id"):
        label_word_ids(tokenizer, ["zzqx", "zzqy"])


def test_label_word_logits_equal_the_full_logits_at_the_label_words(tiny_model_dir):
    model = load_tiny(tiny_model_dir)
    word_ids = [5, 17, 300]
    critic = TokenCritic(model, scheme="BIOE", label_words=["a", "b", "c"], word_ids=word_ids)
    assert critic.bidirectional_layers == 1
    ids = torch.cat([sample_ids(5, seed=3), sample_ids(5, seed=4)])
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    with torch.no_grad():
        hidden, boundary = critic(ids, mask)
        words = critic.label_word_logits(hidden)
        full = model(input_ids=ids, attention_mask=mask, position_ids=positions_from_padding(mask)).logits
    assert hidden.shape == (2, 5, model.config.hidden_size)
    assert boundary.shape == (2, 5, 4)
    assert words.shape == (2, 5, 3)
    torch.testing.assert_close(words, full[..., word_ids], atol=1e-5, rtol=1e-5)


def test_save_and_load_round_trip(tiny_model_dir, tmp_path):
    critic = TokenCritic(with_lora(load_tiny(tiny_model_dir)), scheme="BIO", label_words=["x"], word_ids=[42])
    folder = save_critic(critic, tmp_path / "critic")
    assert (folder / "boundary_head.safetensors").is_file()
    assert (folder / "adapter_config.json").is_file()
    saved = json.loads((folder / "critic.json").read_text())
    assert saved == {"n_tags": 3, "scheme": "BIO", "bidirectional_layers": 1, "label_words": ["x"], "word_ids": [42]}

    loaded = load_critic(load_tiny(tiny_model_dir), folder)
    assert hasattr(loaded.lm, "peft_config")
    assert (loaded.scheme, loaded.n_tags, loaded.label_words, loaded.word_ids) == ("BIO", 3, ["x"], [42])
    assert bidirectional_layer_indices(loaded.lm) == [1]
    torch.testing.assert_close(loaded.boundary_head.weight, critic.boundary_head.weight, atol=0, rtol=0)
    torch.testing.assert_close(loaded.boundary_head.bias, critic.boundary_head.bias, atol=0, rtol=0)


# ---------------------------------------------------------------------------------------------
# Loss


def log_softmax_at(row: list[float], target: int) -> float:
    return row[target] - math.log(sum(math.exp(v) for v in row))


WORD_LOGITS = [[2.0, 0.0, -1.0], [0.5, 0.5, 1.5], [9.0, 9.0, 9.0], [-1.0, 3.0, 0.0]]
WORD_TARGETS = [0, 2, -100, 1]
BOUNDARY_LOGITS = [[0.0, 1.0, 0.0, -2.0], [3.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [0.2, 0.1, 2.0, -1.0]]
BOUNDARY_TARGETS = [1, 0, -100, 3]


def hand_losses(gamma: float | None) -> float:
    word = -sum(log_softmax_at(row, t) for row, t in zip(WORD_LOGITS, WORD_TARGETS, strict=True) if t != -100)
    boundary = 0.0
    for row, t in zip(BOUNDARY_LOGITS, BOUNDARY_TARGETS, strict=True):
        if t == -100:
            continue
        log_p = log_softmax_at(row, t)
        weight = 1.0 if gamma is None else (1.0 - math.exp(log_p)) ** gamma
        boundary -= weight * log_p
    return word + boundary


@pytest.mark.parametrize("gamma", [2.0, None, 0.5])
def test_critic_loss_matches_hand_computation(gamma):
    loss, units = critic_loss(
        torch.tensor([WORD_LOGITS]),
        torch.tensor([WORD_TARGETS]),
        torch.tensor([BOUNDARY_LOGITS]),
        torch.tensor([BOUNDARY_TARGETS]),
        focal_gamma=gamma,
    )
    assert units == 3
    assert loss.item() == pytest.approx(hand_losses(gamma), rel=1e-5)


def test_focal_with_gamma_zero_is_cross_entropy_and_gradients_are_finite():
    word_logits = torch.tensor([WORD_LOGITS], requires_grad=True)
    boundary_logits = torch.tensor([BOUNDARY_LOGITS], requires_grad=True)
    args = (word_logits, torch.tensor([WORD_TARGETS]), boundary_logits, torch.tensor([BOUNDARY_TARGETS]))
    focal, _ = critic_loss(*args, focal_gamma=0.0)
    ce, _ = critic_loss(*args, focal_gamma=None)
    assert focal.item() == pytest.approx(ce.item(), rel=1e-6)
    critic_loss(*args, focal_gamma=0.5)[0].backward()
    assert torch.isfinite(boundary_logits.grad).all()
    assert (boundary_logits.grad[0, 2] == 0).all() and (word_logits.grad[0, 2] == 0).all()  # the ignored position


# Class-weighted losses, as the released modelling code: 3 counted positions and one ignored. Logits are the logs
# of the probabilities, so softmax gives them back exactly. Boundary columns are the kit's tag ids O, B, I, E.
W_BOUNDARY = [[0.125, 0.5, 0.25, 0.125], [0.8, 0.1, 0.05, 0.05], [0.25, 0.25, 0.25, 0.25], [0.5, 0.125, 0.125, 0.25]]
W_TAGS = [1, 0, -100, 3]  # B (p 0.5), O (p 0.8), ignored, E (p 0.25)
W_WORDS = [[0.25, 0.75], [0.8, 0.2], [0.5, 0.5], [0.5, 0.5]]  # columns: "outside", the tag word
W_WORD_TARGETS = [1, 0, -100, 1]  # the tag word (p 0.75), outside (p 0.8), ignored, the tag word (p 0.5)
RELEASED_BIOE = [10.0, 10.0, 1.0, 10.0]  # B, I, O, E


def weighted_loss(gamma: float | None, outside_weight: float = 0.5):
    def logs(rows):
        return torch.tensor([[[math.log(p) for p in row] for row in rows]])

    return critic_loss(
        logs(W_WORDS),
        torch.tensor([W_WORD_TARGETS]),
        logs(W_BOUNDARY),
        torch.tensor([W_TAGS]),
        focal_gamma=gamma,
        class_weights=boundary_weight_vector(RELEASED_BIOE, 4),
        outside_weight=outside_weight,
    )


# word loss: torch's weighted CE mean, "outside" weighing 0.5: (ln(4/3) + 0.5 ln(1.25) + ln 2) / (1 + 0.5 + 1)
HAND_WORD = (math.log(4 / 3) + 0.5 * math.log(1.25) + math.log(2)) / 2.5


def test_boundary_weights_map_b_i_o_e_onto_tag_ids_and_bio_drops_e():
    assert boundary_weight_vector([10, 20, 1, 30], 4).tolist() == [1, 10, 20, 30]  # O, B, I, E
    assert boundary_weight_vector([10, 20, 1, 30], 3).tolist() == [1, 10, 20]  # BIO: O, B, I
    with pytest.raises(ValueError, match="B, I, O, E"):
        boundary_weight_vector([1, 1, 1], 3)


def test_weighted_cross_entropy_boundary_loss_by_hand():
    """CE weighted as torch's CrossEntropyLoss(weight=...): sum w_y * -ln p_y / sum w_y.
    B: 10 ln 2 = 6.931472; O: 1 * ln 1.25 = 0.223144; E: 10 ln 4 = 13.862944; sum 21.017560 / (10 + 1 + 10)."""
    loss, units = weighted_loss(gamma=None)
    boundary = (10 * math.log(2) + math.log(1.25) + 10 * math.log(4)) / 21
    assert boundary == pytest.approx(1.000836, abs=1e-6)
    assert units == 3
    assert loss.item() == pytest.approx(3 * (HAND_WORD + boundary), rel=1e-6)
    # the same boundary mean from torch's own weighted cross-entropy, as the released code calls it
    logits = torch.tensor([[math.log(p) for p in row] for row in W_BOUNDARY])
    torch_ce = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 10.0, 10.0, 10.0]))(logits, torch.tensor(W_TAGS))
    assert torch_ce.item() == pytest.approx(boundary, rel=1e-6)


def test_weighted_focal_boundary_loss_by_hand():
    """Focal as released: ce = w_y * -ln p_y, pt = exp(-ce) = p_y ** w_y, mean of (1 - pt)^2 * ce.
    B: ce 10 ln 2, pt 0.5^10 = 1/1024; O: ce ln 1.25, pt 0.8, (0.2)^2 = 0.04; E: ce 10 ln 4, pt 0.25^10 = 2^-20.
    Mean over the 3 counted positions: (0.998048 * 6.931472 + 0.04 * 0.223144 + 0.999998 * 13.862944) / 3."""
    loss, units = weighted_loss(gamma=2.0)
    b = (1 - 1 / 1024) ** 2 * 10 * math.log(2)
    o = 0.2**2 * math.log(1.25)
    e = (1 - 2**-20) ** 2 * 10 * math.log(4)
    boundary = (b + o + e) / 3
    assert boundary == pytest.approx(6.929928, abs=1e-6)
    assert units == 3
    assert loss.item() == pytest.approx(3 * (HAND_WORD + boundary), rel=1e-6)
    # without weights it is the old focal loss: (0.25 ln 2 + 0.04 ln 1.25 + 0.5625 ln 4) / 3, far smaller
    unweighted, _ = critic_loss(
        torch.tensor([[[math.log(p) for p in row] for row in W_WORDS]]),
        torch.tensor([W_WORD_TARGETS]),
        torch.tensor([[[math.log(p) for p in row] for row in W_BOUNDARY]]),
        torch.tensor([W_TAGS]),
        focal_gamma=2.0,
    )
    plain_word = (math.log(4 / 3) + math.log(1.25) + math.log(2)) / 3
    plain_boundary = (0.25 * math.log(2) + 0.04 * math.log(1.25) + 0.5625 * math.log(4)) / 3
    assert unweighted.item() == pytest.approx(3 * (plain_word + plain_boundary), rel=1e-6)


def test_outside_weight_scales_only_outside_targets():
    """outside_weight 1 is the plain mean (ln(4/3) + ln 1.25 + ln 2) / 3; 0 leaves the two tag-word positions."""
    boundary = (10 * math.log(2) + math.log(1.25) + 10 * math.log(4)) / 21
    plain, _ = weighted_loss(gamma=None, outside_weight=1.0)
    assert plain.item() == pytest.approx(3 * ((math.log(4 / 3) + math.log(1.25) + math.log(2)) / 3 + boundary))
    tags_only, _ = weighted_loss(gamma=None, outside_weight=0.0)
    assert tags_only.item() == pytest.approx(3 * ((math.log(4 / 3) + math.log(2)) / 2 + boundary))


# ---------------------------------------------------------------------------------------------
# Masking non-critical positions


def masking_example() -> tuple[torch.Tensor, torch.Tensor]:
    """2x8 targets: 4 critical positions, 2 ignored, 10 non-critical counted ones."""
    targets = torch.tensor([[3, 0, 0, -100, 0, 0, 1, 0], [0, 0, 2, 0, 0, -100, 0, 2]])
    critical = torch.tensor([[1, 0, 0, 0, 0, 0, 1, 0], [0, 0, 1, 0, 0, 0, 0, 1]], dtype=torch.bool)
    return targets, critical


def test_mask_drops_round_fraction_of_non_critical_only():
    targets, critical = masking_example()
    drop = mask_positions(targets, critical, fraction=0.5, step=7, seed=0)
    assert int(drop.sum()) == 5
    assert not (drop & critical).any()
    assert not (drop & (targets == -100)).any()
    assert int(mask_positions(targets, critical, fraction=0.25, step=7, seed=0).sum()) == 2  # round(2.5) = 2
    assert int(mask_positions(targets, critical, fraction=1.0, step=7, seed=0).sum()) == 10

    masked = mask_non_critical(targets, critical, fraction=0.5, step=7, seed=0)
    assert torch.equal(masked, targets.masked_fill(drop, -100))
    assert int((targets == -100).sum()) == 2  # the input is left as it was


def test_mask_is_reproducible_from_seed_and_step():
    targets, critical = masking_example()
    first = mask_positions(targets, critical, fraction=0.5, step=3, seed=11)
    assert torch.equal(first, mask_positions(targets, critical, fraction=0.5, step=3, seed=11))
    others = [mask_positions(targets, critical, fraction=0.5, step=s, seed=11) for s in range(4, 8)]
    assert any(not torch.equal(first, other) for other in others)  # C(10,5) = 252 choices: 4 repeats are unlikely


def test_drop_non_critical_masks_both_targets_alike():
    targets, critical = masking_example()
    boundary = torch.where(targets == -100, -100, 1)
    words, tags = drop_non_critical(targets, boundary, critical, fraction=0.5, step=1, seed=5)
    assert torch.equal(words == -100, tags == -100)
    assert int((words == -100).sum()) == 2 + 5


def test_recipes_carry_the_released_weights_and_reject_a_bad_vector():
    from pathlib import Path

    from repro.config import load_recipe
    from repro.errors import ConfigError

    recipes = Path(__file__).resolve().parent.parent / "recipes"
    for path in (recipes / "tiny" / "cprs.yaml", recipes / "qwen2.5-1.5b" / "cprs.yaml"):
        cfg = load_recipe(path).cprs
        assert (cfg.boundary_class_weights, cfg.outside_weight) == ([10.0, 10.0, 1.0, 10.0], 0.5)
    for bad in ("[10, 10, 1]", "[10, 10, 0, 10]"):
        with pytest.raises(ConfigError, match="one per tag B, I, O, E"):
            load_recipe(recipes / "tiny" / "cprs.yaml", [f"cprs.boundary_class_weights={bad}"])
    with pytest.raises(ConfigError, match="cprs.outside_weight"):
        load_recipe(recipes / "tiny" / "cprs.yaml", ["cprs.outside_weight=-1"])
