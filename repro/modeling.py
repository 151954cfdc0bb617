"""Model and tokenizer from a recipe's `model:` section: source, dtype, attention, LoRA, 4-bit, checkpointing."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from repro.config import ModelSection
from repro.errors import ModelError
from repro.hub import hub_reachable, looks_like_hub_id
from repro.progress import hf_bars

log = logging.getLogger("repro.modeling")

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: torch.device
    dtype: torch.dtype
    attention: str
    source: str


# ---------------------------------------------------------------------------------------------
# Choices the kit makes for the hardware


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def pick_device(name: str = "auto") -> torch.device:
    """`auto`: this rank's own CUDA device under torchrun/accelerate (LOCAL_RANK), else the CPU."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        if local_rank() >= torch.cuda.device_count():
            raise ModelError(
                f"process {local_rank()} has no GPU of its own ({torch.cuda.device_count()} visible): run at most "
                f"{torch.cuda.device_count()} processes per node, or model.device=cpu for CPU processes (gloo)"
            )
        return torch.device("cuda", local_rank())
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ModelError(f"model.device: '{name}' is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"model.device: '{name}' asked for, but no CUDA device is visible; use model.device=auto")
    return device


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: bf16 on CUDA that supports it, else fp16 on CUDA, fp32 on the CPU."""
    if name != "auto":
        return _DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def flash_attn_available() -> bool:
    if importlib.util.find_spec("flash_attn") is None:
        return False
    try:
        import flash_attn  # noqa: F401
    except Exception:  # a wheel built for another torch/CUDA fails at import time
        return False
    return True


def pick_attention(name: str, device: torch.device) -> str:
    """`auto`: flash_attention_2 when flash-attn imports and the device is CUDA, else sdpa."""
    if name == "auto":
        return "flash_attention_2" if device.type == "cuda" and flash_attn_available() else "sdpa"
    if name == "flash_attention_2" and not (device.type == "cuda" and flash_attn_available()):
        raise ModelError(
            "model.attention: flash_attention_2 needs a CUDA device and the flash-attn package "
            "(pip install '.[gpu]'); use model.attention=auto"
        )
    return name


# ---------------------------------------------------------------------------------------------
# Where the weights come from


def resolve_source(source: str) -> str:
    """A local folder as a path string, or a hub id after checking the hub can be reached."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"model.source: folder '{source}' has no config.json; point it at a HF model folder")
        return str(path)
    looks_local = source.startswith((".", "/", "~")) or source.count("/") != 1 or Path(source.split("/")[0]).is_dir()
    if looks_local or not looks_like_hub_id(source):
        raise ModelError(
            f"model.source: local folder '{source}' not found; run `repro init-model recipes/tiny/base.yaml` "
            "for the offline default, or give a HF model folder or hub id"
        )
    if _in_hub_cache(source) or hub_reachable():
        return source
    raise ModelError(
        f"model.source: cannot reach the hub for '{source}' (offline?) and it is not in the local cache; "
        "download it elsewhere and set model.source to its local folder, or use the offline default "
        "(`repro init-model recipes/tiny/base.yaml`)"
    )


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:
        return False


# ---------------------------------------------------------------------------------------------
# Loading


def load_tokenizer(cfg: ModelSection, source: str | None = None) -> Any:
    """Tokenizer with a pad token and left padding (generation); chat template as shipped."""
    from transformers import AutoTokenizer

    source = source or resolve_source(cfg.source)
    try:
        tok = AutoTokenizer.from_pretrained(source, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
        usable = len(tok("a b", add_special_tokens=False)["input_ids"]) > 0
    except Exception as exc:  # broken files raise many types (OSError, ValueError, JSON, tokenizers' own)
        raise ModelError(f"model.source: cannot load a tokenizer from '{source}': {_first_line(exc)}") from exc
    if not usable:
        raise ModelError(f"model.source: '{source}' has no usable tokenizer (text encodes to no tokens); add its files")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    tok.padding_side = "left"
    return tok


def load_model(cfg: ModelSection, training: bool = True) -> LoadedModel:
    """The recipe's model on this rank's device, with LoRA / 4-bit / checkpointing as asked."""
    from transformers import AutoModelForCausalLM

    source = resolve_source(cfg.source)
    device = pick_device(cfg.device)
    dtype = pick_dtype(cfg.dtype, device)
    attention = pick_attention(cfg.attention, device)
    kwargs: dict[str, Any] = {
        "revision": cfg.revision,
        "trust_remote_code": cfg.trust_remote_code,
        "attn_implementation": attention,
        "dtype": dtype,
        # Each rank places the whole model on its own device: with 4-bit + DDP, "auto" would shard
        # every rank's copy over all GPUs.
        "device_map": {"": str(device)},
    }
    if cfg.quant.load_in_4bit:
        kwargs["quantization_config"] = _bnb_config(cfg, dtype)
    tokenizer = load_tokenizer(cfg, source)
    try:
        with hf_bars(enabled=False):  # the kit logs one line per model; an error must stand alone
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except Exception as exc:  # corrupt weights or config raise many types (safetensors', JSON, recursion, …)
        raise ModelError(f"model.source: cannot load '{source}': {_first_line(exc)}") from exc
    log.info("model %s on %s, dtype %s, attention %s", source, device, str(dtype).removeprefix("torch."), attention)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model = _prepare_for_training(model, cfg) if training else model.eval()
    return LoadedModel(model, tokenizer, device, dtype, attention, source)


def _bnb_config(cfg: ModelSection, dtype: torch.dtype) -> Any:
    from transformers import BitsAndBytesConfig

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError("model.quant.load_in_4bit needs the bitsandbytes package (pip install bitsandbytes)")
    if importlib.util.find_spec("kernels") is None and not torch.cuda.is_available():
        log.info("4-bit on the CPU: bitsandbytes' own kernels (the optional `kernels` package would add faster ones)")
    compute = dtype if cfg.quant.compute_dtype == "auto" else _DTYPES[cfg.quant.compute_dtype]
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=cfg.quant.quant_type,
        bnb_4bit_use_double_quant=cfg.quant.double_quant,
        bnb_4bit_compute_dtype=compute,
    )


def _prepare_for_training(model: Any, cfg: ModelSection) -> Any:
    ckpt_kwargs = {"use_reentrant": False}
    if cfg.quant.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs=ckpt_kwargs,
        )
    elif cfg.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # the name transformers >= 5.2x uses
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=ckpt_kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=ckpt_kwargs)
        if cfg.lora.enabled:
            # frozen embeddings give checkpointed blocks inputs without grad; LoRA then gets none
            model.enable_input_require_grads()
    if cfg.lora.enabled:
        model = apply_lora(model, cfg)
    elif cfg.quant.load_in_4bit:
        raise ModelError("model.quant.load_in_4bit trains only through adapters: set model.lora.enabled=true")
    model.train()
    return model


def apply_lora(model: Any, cfg: ModelSection) -> Any:
    from peft import LoraConfig, get_peft_model

    targets = cfg.lora.target_modules
    target_arg: str | list[str] = "all-linear" if targets == ["all-linear"] else targets
    if target_arg != "all-linear":
        names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = [t for t in targets if t not in names]
        if missing:
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if _is_linear(m)} - {"lm_head"})
            raise ModelError(
                f"model.lora.target_modules: '{missing[0]}' is not a module of this model; "
                f"its linear layers are: {', '.join(linear)} (or use all-linear)"
            )
    config = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=target_arg,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def _is_linear(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def reference_policy(model: Any) -> Iterator[Any]:
    """The frozen reference: the same weights with the adapters switched off, no second copy (DDP: the inner
    module's adapters, so a loss given the DDP-wrapped policy can ask for it too)."""
    from repro.train.dist import unwrap

    model = unwrap(model)
    if not hasattr(model, "disable_adapter"):
        raise ModelError("a reference policy needs LoRA adapters (model.lora.enabled=true); full fine-tuning has none")
    with model.disable_adapter():
        yield model


def checkpointing_enabled(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return bool(getattr(base, "is_activation_checkpointing", None) or getattr(base, "is_gradient_checkpointing", False))


def trainable_parameters(model: Any) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}
