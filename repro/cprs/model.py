"""QwenLong-CPRS compressor: bidirectional top layers on a causal LM and the token critic (label words, boundaries)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

SCHEMES = {"BIOE": 4, "BIO": 3}
BIDIRECTIONAL_FRACTION = 0.25  # the paper: the top 7 of Qwen2-7B's 28 layers
HEAD_FILE = "boundary_head.safetensors"
CONFIG_FILE = "critic.json"


def default_bidirectional_layers(num_layers: int) -> int:
    """How many top layers become bidirectional by default: a quarter of them, at least one."""
    return max(1, round(num_layers * BIDIRECTIONAL_FRACTION))


# ---------------------------------------------------------------------------------------------
# Bidirectional top layers


def base_causal_lm(model: Any) -> Any:
    """The HF causal LM under a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_stack(model: Any) -> Any:
    """The decoder module that owns `.layers` (e.g. Qwen2Model / LlamaModel inside *ForCausalLM)."""
    base = base_causal_lm(model)
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else getattr(base, "model", base)
    if not hasattr(decoder, "layers"):
        raise ValueError(f"{type(base).__name__}: cannot find the decoder layers (no `.layers` on its decoder)")
    return decoder


@dataclass
class _BidirectionalState:
    """The current call's 2-D padding mask, shared by the decoder's pre-hook and the top layers' pre-hooks."""

    config: Any
    layer_indices: list[int]
    padding_mask: Tensor | None = None
    mask_given: bool = False  # False when the call's mask was not a 2-D padding mask (4-D, dict)
    built_mask: Any = None
    built: bool = False
    handles: list[Any] = field(default_factory=list)


def _argument(args: tuple, kwargs: dict, name: str, position: int) -> Any:
    return kwargs[name] if name in kwargs else (args[position] if len(args) > position else None)


def _record_padding_mask(state: _BidirectionalState):
    def hook(_module, args, kwargs):
        mask = _argument(args, kwargs, "attention_mask", 1)
        state.mask_given = mask is None or (isinstance(mask, Tensor) and mask.dim() == 2)
        state.padding_mask = mask if state.mask_given else None
        state.built_mask, state.built = None, False

    return hook


def _bidirectional_mask(state: _BidirectionalState, hidden_states: Tensor) -> Any:
    """The mask the attention implementation expects for full attention over the real tokens.

    sdpa: a [B,1,L,L] bool mask, eager: a [B,1,L,L] additive mask, flash_attention_2: the 2-D padding mask; each
    is None when nothing is padded. Built once per forward call and reused by every bidirectional layer.
    """
    if not state.mask_given:
        raise ValueError(
            "bidirectional layers need a 2-D padding mask (or none); this call passed a prepared 4-D mask or dict"
        )
    if not state.built:
        from transformers.masking_utils import create_bidirectional_mask

        state.built_mask = create_bidirectional_mask(
            config=state.config, inputs_embeds=hidden_states, attention_mask=state.padding_mask
        )
        state.built = True
    return state.built_mask


def _replace_layer_mask(state: _BidirectionalState):
    # A pre-hook, not a wrapped forward: gradient checkpointing wraps `forward` only, so the replaced mask is an
    # input of the checkpointed call and the backward recompute sees the same mask.
    def hook(_module, args, kwargs):
        hidden_states = _argument(args, kwargs, "hidden_states", 0)
        mask = _bidirectional_mask(state, hidden_states)
        if "attention_mask" in kwargs or len(args) < 2:
            return args, {**kwargs, "attention_mask": mask}
        return (args[0], mask, *args[2:]), kwargs

    return hook


def _remove_bidirectional(decoder: Any) -> None:
    state: _BidirectionalState | None = getattr(decoder, "_cprs_bidirectional", None)
    if state is None:
        return
    for handle in state.handles:
        handle.remove()
    for index in state.layer_indices:
        decoder.layers[index].self_attn.is_causal = True
    del decoder._cprs_bidirectional


def make_top_layers_bidirectional(model: Any, n_layers: int) -> list[int]:
    """Let the top `n_layers` decoder layers attend both ways (padding mask only); the rest stay causal.

    Works on a HF causal LM or a peft wrapper of one. Each top layer's `self_attn.is_causal` is set to False (what
    sdpa without a mask and flash attention read), and a forward pre-hook hands it a bidirectional mask built from
    the call's 2-D padding mask, which a pre-hook on the decoder records. Calling it again replaces the earlier
    setting. Returns the indices of the bidirectional layers.
    """
    decoder = decoder_stack(model)
    num_layers = len(decoder.layers)
    if not 0 <= n_layers <= num_layers:
        raise ValueError(f"n_layers must be in 0..{num_layers} for this model, got {n_layers}")
    _remove_bidirectional(decoder)
    indices = list(range(num_layers - n_layers, num_layers))
    if not indices:
        return []
    state = _BidirectionalState(config=base_causal_lm(model).config, layer_indices=indices)
    state.handles.append(decoder.register_forward_pre_hook(_record_padding_mask(state), with_kwargs=True))
    for index in indices:
        layer = decoder.layers[index]
        layer.self_attn.is_causal = False
        state.handles.append(layer.register_forward_pre_hook(_replace_layer_mask(state), with_kwargs=True))
    decoder._cprs_bidirectional = state
    return indices


def bidirectional_layer_indices(model: Any) -> list[int]:
    """The indices made bidirectional by `make_top_layers_bidirectional` (empty when none)."""
    state = getattr(decoder_stack(model), "_cprs_bidirectional", None)
    return list(state.layer_indices) if state is not None else []


def positions_from_padding(attention_mask: Tensor) -> Tensor:
    """Position ids that start at 0 on each row's first real token (left padding included); pads get 0."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


# ---------------------------------------------------------------------------------------------
# Token critic


def label_word_ids(tokenizer: Any, words: Sequence[str]) -> list[int]:
    """One token id per label word: its single token (" word" first, then "word"), else the first token of
    "word" (a small vocabulary splits some words); two words may not share an id."""
    ids = []
    for word in words:
        pieces = [tokenizer.encode(text, add_special_tokens=False) for text in (" " + word, word)]
        single = next((p for p in pieces if len(p) == 1), None)
        if single is None and not pieces[1]:
            raise ValueError(f"label word {word!r} encodes to no token")
        ids.append(int((single or pieces[1])[0]))
    if len(set(ids)) < len(ids):
        clash = [w for w, i in zip(words, ids, strict=True) if ids.count(i) > 1]
        raise ValueError(f"label words {clash} share a token id in this tokenizer; choose words that differ")
    return ids


class TokenCritic(nn.Module):
    """A causal LM whose LM head scores label words at each position (no shift), plus a boundary-tag head."""

    def __init__(
        self,
        lm: Any,
        scheme: str = "BIOE",
        bidirectional_layers: int | None = None,
        label_words: Sequence[str] = (),
        word_ids: Sequence[int] = (),
    ) -> None:
        super().__init__()
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
        if len(label_words) != len(word_ids):
            raise ValueError(f"{len(label_words)} label words but {len(word_ids)} word ids")
        self.lm = lm
        self.scheme = scheme
        self.label_words = list(label_words)
        self.word_ids = [int(i) for i in word_ids]
        num_layers = len(decoder_stack(lm).layers)
        count = default_bidirectional_layers(num_layers) if bidirectional_layers is None else bidirectional_layers
        self.bidirectional_layers = len(make_top_layers_bidirectional(lm, count))
        embeddings = base_causal_lm(lm).get_output_embeddings().weight
        hidden = base_causal_lm(lm).config.hidden_size
        # float32 head whatever the LM's dtype: it is tiny, and 4-bit LMs have no float dtype of their own to copy
        self.boundary_head = nn.Linear(hidden, SCHEMES[scheme], device=embeddings.device, dtype=torch.float32)

    @property
    def n_tags(self) -> int:
        return SCHEMES[self.scheme]

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(hidden [B,L,H] after the final norm, boundary logits [B,L,n_tags] in float32)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        # The decoder alone: the causal LM's forward would build [B,L,vocab] logits, far too big for long inputs.
        output = decoder_stack(self.lm)(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions_from_padding(attention_mask),
            use_cache=False,
        )
        hidden = output.last_hidden_state
        boundary_logits = self.boundary_head(hidden.to(self.boundary_head.weight.dtype))
        return hidden, boundary_logits

    def label_word_logits(self, hidden: Tensor, word_ids: Sequence[int] | Tensor | None = None) -> Tensor:
        """[B,L,W]: the LM head's logits of the label words only (its rows of the head weight, plus bias if any)."""
        ids = self.word_ids if word_ids is None else word_ids
        head = base_causal_lm(self.lm).get_output_embeddings()
        index = torch.as_tensor(ids, dtype=torch.long, device=head.weight.device)
        weight = head.weight.index_select(0, index).to(hidden.dtype)
        logits = hidden @ weight.T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias.index_select(0, index).to(hidden.dtype)
        return logits

    def config_dict(self) -> dict[str, Any]:
        return {
            "n_tags": self.n_tags,
            "scheme": self.scheme,
            "bidirectional_layers": self.bidirectional_layers,
            "label_words": self.label_words,
            "word_ids": self.word_ids,
        }


def save_critic(critic: TokenCritic, folder: str | Path) -> Path:
    """Write the boundary head (safetensors), critic.json and, for a peft LM, its adapter into `folder`."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if hasattr(critic.lm, "peft_config"):
        critic.lm.save_pretrained(out)
    state = {name: t.detach().contiguous().cpu() for name, t in critic.boundary_head.state_dict().items()}
    save_file(state, str(out / HEAD_FILE))
    (out / CONFIG_FILE).write_text(json.dumps(critic.config_dict(), indent=2) + "\n")
    return out


def load_critic(model: Any, folder: str | Path, is_trainable: bool = False) -> TokenCritic:
    """A TokenCritic on `model` with the boundary head, scheme, label words and layer count saved in `folder`.

    A plain causal LM gets the folder's peft adapter when there is one; a peft model is used as given.
    """
    src = Path(folder)
    if not (src / CONFIG_FILE).is_file() or not (src / HEAD_FILE).is_file():
        raise FileNotFoundError(f"{src}: no saved critic ({CONFIG_FILE} and {HEAD_FILE} expected)")
    config = json.loads((src / CONFIG_FILE).read_text())
    if (src / "adapter_config.json").is_file() and not hasattr(model, "peft_config"):
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(src), is_trainable=is_trainable)
    critic = TokenCritic(
        model,
        scheme=config["scheme"],
        bidirectional_layers=config["bidirectional_layers"],
        label_words=config["label_words"],
        word_ids=config["word_ids"],
    )
    head = critic.boundary_head
    state = load_file(str(src / HEAD_FILE), device=str(head.weight.device))
    head.load_state_dict({name: t.to(head.weight.dtype) for name, t in state.items()})
    return critic
