"""`repro export`: merge a run's LoRA adapters into the unquantised base and save a plain HF folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from repro.config import load_recipe
from repro.errors import ReproError
from repro.fsio import swap_folder
from repro.progress import hf_bars


def export_run(run_dir: str | Path, out: str | Path, dtype: str = "auto") -> Path:
    """Load the run's base model in full precision (a 4-bit base is loaded unquantised, i.e. dequantised),
    apply its adapters from RUN/final, merge them and save a folder that `from_pretrained` and vLLM load."""
    from transformers import AutoTokenizer

    run_dir, out = Path(run_dir), Path(out)
    final = run_dir / "final"
    if not (run_dir / "recipe.yaml").is_file() or not final.is_dir():
        raise ReproError(f"{run_dir}: not a finished training run (needs recipe.yaml and final/); train it first")
    recipe = load_recipe(run_dir / "recipe.yaml")
    torch_dtype = _export_dtype(dtype, recipe.model.dtype)
    with hf_bars(enabled=False):  # one line per export, not a bar per shard
        model = _merged_model(final, recipe, torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(final)
        tmp = out.with_name(out.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    swap_folder(tmp, out)
    return out


def _merged_model(final: Path, recipe: Any, torch_dtype: torch.dtype) -> Any:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from repro.modeling import resolve_source

    if not (final / "adapter_config.json").is_file():  # full fine-tuning: final/ already is the model
        return AutoModelForCausalLM.from_pretrained(final, dtype=torch_dtype)
    source = resolve_source(recipe.model.source)
    base = AutoModelForCausalLM.from_pretrained(
        source, dtype=torch_dtype, revision=recipe.model.revision, trust_remote_code=recipe.model.trust_remote_code
    )
    return PeftModel.from_pretrained(base, final).merge_and_unload()


def _export_dtype(requested: str, recipe_dtype: str) -> torch.dtype:
    name = recipe_dtype if requested == "auto" else requested
    return {"auto": torch.float32, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
