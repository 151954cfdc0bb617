"""A tiny random Qwen2 model with a small trained BPE tokenizer, saved as a real HF folder (tests, smoke)."""

from __future__ import annotations

import json
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = """
Please read the following text and answer the question below. Therefore, the answer is
The company reported revenue of 1,234.5 million dollars and a net profit of 98.7 million in 2023.
Total assets grew to 5,678 million; shares outstanding were 120 million, earnings per share 0.82.
The court of appeal ruled on case number 2021-CV-0457; the cause of action was breach of contract.
The verdict was delivered on 12 March 2022 and cited earlier cases on negligence and liability.
The paper proposes a new method evaluated on a public data set, reaching a score of 87.3 in 2024.
Question: Which company has the highest revenue? Answer with a JSON list or a short phrase.
Document 1 2 3 4 5 6 7 8 9 0 financial legal paper sector technology energy health retail bank.
first second third increase decrease trend order sequence cluster compare locate reference chain
"""


def build_tokenizer(vocab_size: int = 1024):
    """A byte-level BPE tokenizer trained on a small built-in corpus, with a ChatML chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([line for line in _CORPUS.splitlines() if line] * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(out_dir: str | Path, seed: int = 0, hidden: int = 64, layers: int = 2) -> Path:
    """Write a random Qwen2-architecture causal LM and its tokenizer to `out_dir`; returns the path."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    tokenizer = build_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "tiny_model.json").write_text(json.dumps({"kind": "tiny random qwen2", "seed": seed}) + "\n")
    return out
