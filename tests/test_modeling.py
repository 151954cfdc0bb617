"""Model loading: LoRA, the adapter-free reference, 4-bit on the CPU, attention choice, clear errors."""

from __future__ import annotations

import pytest
import torch

from repro.config import LoraSection, ModelSection, QuantSection
from repro.errors import ModelError
from repro.modeling import (
    checkpointing_enabled,
    load_model,
    pick_attention,
    pick_dtype,
    reference_policy,
    resolve_source,
    trainable_parameters,
)


def section(source, **kw) -> ModelSection:
    """These tests check the CPU paths (4-bit on the CPU among them): the model stays there on a GPU machine too."""
    lora = kw.pop("lora", LoraSection(r=4, alpha=8, dropout=0.0))
    quant = kw.pop("quant", QuantSection())
    kw.setdefault("device", "cpu")
    return ModelSection(source=source, lora=lora, quant=quant, **kw)


def token_batch(vocab: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (2, 12), generator=gen)


def test_lora_leaves_only_adapters_trainable(tiny_model_dir):
    model = load_model(section(tiny_model_dir)).model
    names = list(trainable_parameters(model))
    assert names, "LoRA adds trainable parameters"
    assert all("lora_A" in n or "lora_B" in n for n in names)
    # all-linear: every projection of every layer carries an adapter, the LM head does not
    wrapped = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names}
    assert wrapped == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_disabled_adapters_give_the_base_logits_exactly(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    peft_model = load_model(section(tiny_model_dir)).model.eval()
    with torch.no_grad():  # make the adapters non-trivial: B starts at zero
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    ids = token_batch(base.config.vocab_size)
    with torch.no_grad():
        base_logits = base(input_ids=ids).logits
        adapted = peft_model(input_ids=ids).logits
        with reference_policy(peft_model) as ref:
            ref_logits = ref(input_ids=ids).logits
        after = peft_model(input_ids=ids).logits
    assert not torch.allclose(adapted, base_logits, atol=1e-3), "the adapters change the output"
    assert torch.equal(ref_logits, base_logits)
    assert torch.equal(after, adapted), "adapters come back on after the context"


def test_reference_policy_needs_adapters(tiny_model_dir):
    model = load_model(section(tiny_model_dir, lora=LoraSection(enabled=False))).model
    with pytest.raises(ModelError, match="needs LoRA adapters"), reference_policy(model):
        pass


def test_4bit_on_cpu_gives_bnb_layers_and_adapter_only_grads(tiny_model_dir):
    import bitsandbytes as bnb

    cfg = section(tiny_model_dir, quant=QuantSection(load_in_4bit=True), gradient_checkpointing=True)
    loaded = load_model(cfg)
    model = loaded.model
    assert checkpointing_enabled(model)
    four_bit = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(four_bit) == 2 * 7  # 2 layers x 7 projections
    assert four_bit[0].weight.quant_state.quant_type == "nf4"
    ids = token_batch(model.config.vocab_size)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == set(trainable_parameters(model))
    assert all("lora_" in n for n in with_grad)
    assert all(torch.isfinite(p.grad).all() for n, p in model.named_parameters() if n in with_grad)
    # lora_B starts at zero, so only A's gradient can be zero; B's must carry signal
    assert any(p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)


def test_gradient_checkpointing_with_lora_gives_the_same_grads(tiny_model_dir):
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = load_model(section(tiny_model_dir, gradient_checkpointing=ckpt)).model
        assert checkpointing_enabled(model) is ckpt
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.fill_(0.01)
        ids = token_batch(model.config.vocab_size)
        model(input_ids=ids, labels=ids).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5)


def test_sdpa_and_eager_agree(tiny_model_dir):
    logits = []
    for attention in ("sdpa", "eager"):
        loaded = load_model(section(tiny_model_dir, attention=attention), training=False)
        assert loaded.model.config._attn_implementation == attention
        with torch.no_grad():
            logits.append(loaded.model(input_ids=token_batch(loaded.model.config.vocab_size)).logits)
    assert (logits[0] - logits[1]).abs().max().item() < 1e-5


def test_auto_choices_on_cpu():
    cpu = torch.device("cpu")
    assert pick_attention("auto", cpu) == "sdpa"
    assert pick_attention("eager", cpu) == "eager"
    assert pick_dtype("auto", cpu) == torch.float32
    assert pick_dtype("bfloat16", cpu) == torch.bfloat16
    with pytest.raises(ModelError, match="flash_attention_2 needs a CUDA device"):
        pick_attention("flash_attention_2", cpu)


def test_tokenizer_pads_left_and_has_a_chat_template(tiny_model_dir):
    tok = load_model(section(tiny_model_dir), training=False).tokenizer
    assert tok.padding_side == "left" and tok.pad_token is not None
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    batch = tok(["a", "a b c d"], padding=True, return_tensors="pt")
    assert batch["attention_mask"][0, 0] == 0 and batch["attention_mask"][0, -1] == 1


def test_missing_local_folder_is_one_clear_error(tmp_path):
    with pytest.raises(ModelError, match=r"local folder '.*nowhere' not found; run `repro init-model"):
        resolve_source(str(tmp_path / "nowhere"))
    with pytest.raises(ModelError, match="has no config.json"):
        resolve_source(str(tmp_path))


def test_unreachable_hub_id_is_one_clear_error():
    # HF_HUB_OFFLINE=1 (conftest) stands for a machine without the hub; nothing is downloaded.
    with pytest.raises(ModelError, match=r"cannot reach the hub for 'Qwen/Qwen2.5-1.5B-Instruct'"):
        resolve_source("Qwen/Qwen2.5-1.5B-Instruct")


def test_missing_lora_target_names_the_module(tiny_model_dir):
    cfg = section(tiny_model_dir, lora=LoraSection(target_modules=["q_proj", "qkv"]))
    with pytest.raises(ModelError, match=r"'qkv' is not a module of this model; its linear layers are: down_proj"):
        load_model(cfg)


def test_4bit_without_lora_is_refused(tiny_model_dir):
    cfg = section(tiny_model_dir, lora=LoraSection(enabled=False), quant=QuantSection(load_in_4bit=True))
    with pytest.raises(ModelError, match="trains only through adapters"):
        load_model(cfg)


def test_more_processes_than_gpus_is_one_clear_error(monkeypatch):
    """A 1-GPU machine asked for 2 processes: rank 1 has no GPU of its own (checked without a GPU by faking
    what torch reports); pinned to the CPU, the same processes are fine (gloo)."""
    from repro.commands import check_gpus_for
    from repro.errors import ReproError
    from repro.modeling import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ModelError, match=r"process 1 has no GPU of its own \(1 visible\)"):
        pick_device("auto")
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ReproError, match=r"--nproc 2: only 1 GPU\(s\) visible"):
        check_gpus_for(2, on_cpu=False)
    check_gpus_for(2, on_cpu=True)
    check_gpus_for(1, on_cpu=False)
