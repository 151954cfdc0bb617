"""Shared-prefix attention: prompt causal once, each response on [prompt + itself], as a HF attention function."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from repro.errors import ModelError

ATTN_NAME = "prefix_grouped"

_LAYOUT: contextvars.ContextVar[PrefixLayout | None] = contextvars.ContextVar("prefix_layout", default=None)
_MISSING = object()


@dataclass(eq=False)
class PrefixLayout:
    """One row `[prompt, resp_1 … resp_G]`: the prompt's length and each (non-empty) response's length."""

    prompt_len: int
    lengths: tuple[int, ...]
    _cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.prompt_len < 1 or not self.lengths or min(self.lengths) < 1:
            raise ValueError(f"a prefix layout needs a prompt and non-empty responses, got {self}")

    @property
    def total(self) -> int:
        return self.prompt_len + sum(self.lengths)

    def position_ids(self) -> torch.Tensor:
        """[1, L]: 0 … P-1 for the prompt, then P, P+1, … again for every response."""
        parts = [torch.arange(self.prompt_len)] + [torch.arange(n) + self.prompt_len for n in self.lengths]
        return torch.cat(parts).unsqueeze(0)

    def indices(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The index tensors and mask of the response attention, built once per device and call.

        gather [G*Rmax]: the row position of each padded response slot; scatter [sum R]: the slot of each
        response token, in row order; mask [Rmax, P+Rmax]: True where a response's query may look (the whole
        prompt, its own tokens up to itself).
        """
        if device not in self._cache:
            p, r_max = self.prompt_len, max(self.lengths)
            gather, scatter, start = [], [], p
            for i, n in enumerate(self.lengths):
                # padded slots repeat the response's last token: finite values, dropped by `scatter`
                gather += [start + min(j, n - 1) for j in range(r_max)]
                scatter += [i * r_max + j for j in range(n)]
                start += n
            mask = torch.ones(r_max, p + r_max, dtype=torch.bool)
            mask[:, p:] = torch.ones(r_max, r_max, dtype=torch.bool).tril()
            self._cache[device] = (
                torch.tensor(gather, device=device),
                torch.tensor(scatter, device=device),
                mask.to(device),
            )
        return self._cache[device]


def _repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    if n_rep == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


def prefix_grouped_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The AttentionInterface signature: q [1, H, L, d], k/v [1, Hkv, L, d] in; [1, L, H, d] and no weights out.

    Two sdpa calls, neither with an [L x L] mask: the prompt's queries on the prompt's keys with is_causal (the
    kernels' fast causal path), then the responses padded to one length and batched as [G, H, Rmax, d] against
    [prompt keys + own keys] [G, Hkv, P+Rmax, d] under one [Rmax, P+Rmax] mask shared by all of them (padded
    keys sit after every real one, so the causal part of the mask hides them). The second call copies the
    prompt's keys and values once per response.
    """
    layout = _LAYOUT.get()
    if layout is None:
        raise RuntimeError(f"attention '{ATTN_NAME}' called outside grouped_logprobs (no prefix layout set)")
    if attention_mask is not None:
        raise ModelError(f"attention '{ATTN_NAME}' got a mask from the model; it builds its own")
    if kwargs.get("sliding_window") is not None or kwargs.get("softcap") is not None:
        raise ModelError("shared-prefix attention supports full-attention layers only (no sliding window, softcap)")
    batch, heads, length, head_dim = query.shape
    if batch != 1 or length != layout.total or key.shape[2] != layout.total:
        raise ModelError(f"shared-prefix attention expects one row of {layout.total} tokens, got {tuple(query.shape)}")
    n_rep = heads // key.shape[1]
    p, g, r_max = layout.prompt_len, len(layout.lengths), max(layout.lengths)
    gather, scatter, mask = layout.indices(query.device)

    prompt_out = F.scaled_dot_product_attention(
        query[:, :, :p],
        key[:, :, :p],
        value[:, :, :p],
        dropout_p=dropout,
        scale=scaling,
        is_causal=True,
        enable_gqa=n_rep > 1,
    )

    def per_response(x: torch.Tensor) -> torch.Tensor:  # [1, h, L, d] -> [G, h, Rmax, d]
        return x.index_select(2, gather).unflatten(2, (g, r_max))[0].transpose(0, 1)

    def with_prompt(x: torch.Tensor) -> torch.Tensor:  # [1, h, L, d] -> [G, h, P+Rmax, d]
        return torch.cat([x[:, :, :p].expand(g, -1, -1, -1), per_response(x)], dim=2)

    keys, values = with_prompt(key), with_prompt(value)
    # CPU kernels take GQA with a mask; CUDA ones would fall back to the math kernel, so repeat the heads there
    gqa_in_kernel = n_rep > 1 and query.device.type == "cpu"
    if n_rep > 1 and not gqa_in_kernel:
        keys, values = _repeat_kv(keys, n_rep), _repeat_kv(values, n_rep)
    resp_out = F.scaled_dot_product_attention(
        per_response(query),
        keys,
        values,
        attn_mask=mask,
        dropout_p=dropout,
        scale=scaling,
        enable_gqa=gqa_in_kernel,
    )
    resp_out = resp_out.transpose(0, 1).reshape(1, heads, g * r_max, head_dim).index_select(2, scatter)
    return torch.cat([prompt_out, resp_out], dim=2).transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface

    # Not registered with AttentionMaskInterface on purpose: for an attention function it does not know,
    # masking_utils.create_causal_mask returns None, so the model builds no [L x L] mask.
    AttentionInterface.register(ATTN_NAME, prefix_grouped_attention)


def hf_model(model: Any) -> Any:
    """The transformers PreTrainedModel under a peft wrapper (DDP / compile wrappers already removed)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@contextlib.contextmanager
def _attention_switched(model: Any, layout: PrefixLayout) -> Iterator[None]:
    token = _LAYOUT.set(layout)
    saved = model.config._attn_implementation
    try:
        model.set_attn_implementation(ATTN_NAME)
        if model.config._attn_implementation != ATTN_NAME:
            raise ModelError(
                f"{type(model).__name__} cannot switch its attention implementation at run time; "
                "set shared_prefix: false to compute its log-probs one response at a time"
            )
        yield
    finally:
        if model.config._attn_implementation != saved:
            model.set_attn_implementation(saved)
        _LAYOUT.reset(token)


def _replaying(checkpoint_func: Callable[..., Any], model: Any, layout: PrefixLayout) -> Callable[..., Any]:
    """A layer's checkpoint function whose recomputation in backward runs under the grouped attention again.

    The backward comes after `grouped_attention` has restored the model's own attention; without this the
    recomputed layers would run plain causal attention over the whole row and give wrong gradients.
    """

    def checkpoint_with_layout(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        def run(*a: Any, **k: Any) -> Any:
            if _LAYOUT.get() is layout:  # the forward itself
                return function(*a, **k)
            with _attention_switched(model, layout):
                return function(*a, **k)

        return checkpoint_func(run, *args, **kwargs)

    return checkpoint_with_layout


@contextlib.contextmanager
def grouped_attention(model: Any, layout: PrefixLayout) -> Iterator[None]:
    """Run `model` (the unwrapped HF or peft model) with shared-prefix attention for one row of `layout`.

    The layout reaches the attention function through a context variable; the model's attention
    implementation and its layers' checkpoint functions are restored on exit, error or not.
    """
    _register()
    hf = hf_model(model)
    patched: list[tuple[torch.nn.Module, Any]] = []
    try:
        for module in hf.modules():
            func = getattr(module, "_gradient_checkpointing_func", None)
            if func is not None and getattr(module, "gradient_checkpointing", False):
                patched.append((module, module.__dict__.get("_gradient_checkpointing_func", _MISSING)))
                module._gradient_checkpointing_func = _replaying(func, hf, layout)
        with _attention_switched(hf, layout):
            yield
    finally:
        for module, saved in reversed(patched):
            if saved is _MISSING:
                del module._gradient_checkpointing_func
            else:
                module._gradient_checkpointing_func = saved
