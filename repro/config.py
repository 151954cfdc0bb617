"""Recipes: YAML files mapped onto typed dataclasses, with `extends:` and dotted key=value overrides."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from repro.errors import ConfigError


def _ranged(
    default: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> Any:
    """A field whose number (or each item of its list) must lie in [low, high]; open_* makes a bound strict."""
    return field(default=default, metadata={"check": _range_check(low, high, open_low, open_high)})


def _ranged_list(factory: Any, low: float | None = None, high: float | None = None) -> Any:
    return field(default_factory=factory, metadata={"check": _range_check(low, high, False, False)})


def _range_check(low: float | None, high: float | None, open_low: bool, open_high: bool) -> Any:
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if open_low else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if open_high else '<='} {high:g}")
    wanted = "must be " + " and ".join(bounds)

    def check(value: Any) -> str | None:
        for v in value if isinstance(value, list) else [value]:
            if v is None:
                continue
            too_low = low is not None and (v <= low if open_low else v < low)
            too_high = high is not None and (v >= high if open_high else v > high)
            if too_low or too_high:
                return f"{wanted}, got {v!r}"
        return None

    return check


def _check_set_ranges(value: dict[int, list[int]]) -> str | None:
    for key, span in value.items():
        if key < 1 or len(span) != 2 or not 1 <= span[0] < span[1]:
            return f"each set needs [low, high] token counts with 1 <= low < high, got {key}: {span}"
    return None


@dataclass
class LoraSection:
    enabled: bool = True
    r: int = _ranged(16, 1)
    alpha: int = _ranged(32, 1)
    dropout: float = _ranged(0.05, 0.0, 1.0, open_high=True)
    # "all-linear" = every linear layer but the LM head (peft's shortcut); else module name suffixes.
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])


@dataclass
class QuantSection:
    load_in_4bit: bool = False
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"


@dataclass
class ModelSection:
    source: str = "artifacts/smollm2-135m-instruct"
    revision: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    attention: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    device: str = "auto"
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    lora: LoraSection = field(default_factory=LoraSection)
    quant: QuantSection = field(default_factory=QuantSection)


@dataclass
class SftSection:
    """Warm-up SFT's data: which records, and how long a sample may be."""

    data: str = "data/loong-mini/train.jsonl"
    sets: list[int] = _ranged_list(list, 1)  # Loong length sets to train on (empty: all)
    tasks: list[str] = field(default_factory=list)  # tasks to train on (empty: all)
    limit: int | None = _ranged(None, 1)
    max_seq_tokens: int = _ranged(1024, 1)  # a sample's prompt documents are dropped whole until it fits


@dataclass
class TrainSection:
    """The loop and optimizer knobs every training stage shares."""

    micro_batch_tokens: int = _ranged(4096, 1)  # token budget of one micro-batch (padded size, or packed length)
    micro_batch_size: int = _ranged(4, 1)  # at most this many samples in a micro-batch
    grad_accum: int = _ranged(1, 1)  # micro-batches per optimizer step and process
    epochs: int = _ranged(1, 1)
    max_steps: int | None = _ranged(None, 1)  # stop after this many optimizer steps (None: the epochs' worth)
    lr: float = _ranged(2e-4, 0.0, open_low=True)
    weight_decay: float = _ranged(0.0, 0.0)
    warmup_steps: int = _ranged(0, 0)
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = _ranged(0.1, 0.0, 1.0)
    max_grad_norm: float = _ranged(1.0, 0.0, open_low=True)
    checkpoint_every: int = _ranged(50, 1)
    keep_last: int = _ranged(2, 1)
    logprob_chunk: int = _ranged(1024, 1)
    pack: bool = False  # one row per micro-batch, position_ids restart per sample (flash-attention's path)
    # groups and pairs that share a prompt run as one row, the prompt once (RL, PO); false: one row per response
    shared_prefix: bool = True
    tensorboard: bool = False


@dataclass
class LoongMiniSection:
    # token range per length set; CPU default (Loong's own: 10-50K, 50-100K, 100-200K, 200-250K)
    set_ranges: dict[int, list[int]] = field(
        default_factory=lambda: {1: [250, 500], 2: [500, 1000], 3: [1000, 2000], 4: [2000, 4000]},
        metadata={"check": _check_set_ranges},
    )
    # words: a word-count proxy (1.3 tokens a word); model: the recipe model's tokenizer
    count_tokens: Literal["words", "model"] = "words"
    distractors: int = _ranged(0, 0)


@dataclass
class GenerationSection:
    max_new_tokens: int = _ranged(256, 1)
    do_sample: bool = False
    temperature: float = _ranged(0.7, 0.0, open_low=True)
    top_p: float = _ranged(0.95, 0.0, 1.0, open_low=True)
    batch_size: int = _ranged(4, 1)


@dataclass
class LlmJudgeSection:
    # hf: a local HF model (model = folder or hub id); openai: an OpenAI-compatible chat endpoint
    backend: Literal["hf", "openai"] = "hf"
    model: str = ""
    base_url: str = ""
    api_key_env: str | None = None
    timeout_s: float = _ranged(60.0, 0.0, open_low=True)
    max_retries: int = _ranged(4, 0)
    concurrency: int = _ranged(4, 1)
    max_new_tokens: int = _ranged(256, 1)


@dataclass
class EvalSection:
    data: str = "data/loong-mini/test.jsonl"
    judge: Literal["rule", "llm"] = "rule"
    sets: list[int] = _ranged_list(lambda: [1, 2, 3, 4], 1)
    tasks: list[str] = field(default_factory=list)  # empty: every task
    limit: int | None = _ranged(None, 1)
    max_input_tokens: int = _ranged(8192, 1)
    prompt_style: Literal["loong", "l1"] = "loong"
    shuffle_docs: bool = False
    generation: GenerationSection = field(default_factory=GenerationSection)
    llm_judge: LlmJudgeSection = field(default_factory=LlmJudgeSection)


@dataclass
class Recipe:
    name: str = ""
    seed: int = _ranged(0, 0)
    output_dir: str = "runs"
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainSection = field(default_factory=TrainSection)
    sft: SftSection = field(default_factory=SftSection)
    loong_mini: LoongMiniSection = field(default_factory=LoongMiniSection)
    eval: EvalSection = field(default_factory=EvalSection)


# ---------------------------------------------------------------------------------------------
# Loading


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe file (following `extends:`), apply `key.sub=value` overrides, and validate."""
    path = Path(path)
    merged, origin = _load_chain(path, seen=())
    for item in overrides:
        key, value = _split_override(item)
        _check_key(key, where=f"override '{item}'")
        _set_dotted(merged, key, ("override", value))
        origin[key] = f"override '{item}'"
    merged.setdefault("name", path.stem)
    return _build(Recipe, merged, prefix="", origin=origin, default_where=str(path))


def recipe_to_yaml(recipe: Recipe) -> str:
    """The resolved recipe as YAML, as run folders keep it; a judge URL's user:password@ is left out."""
    from repro.redact import redact_url

    data = dataclasses.asdict(recipe)
    data["eval"]["llm_judge"]["base_url"] = redact_url(recipe.eval.llm_judge.base_url)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def _load_chain(path: Path, seen: tuple[Path, ...]) -> tuple[dict, dict[str, str]]:
    """Merged raw dict of a file and its `extends:` parents, plus which file set each dotted key."""
    resolved = path.resolve()
    if resolved in seen:
        raise ConfigError(f"{path}: `extends` loops back to this file; remove the cycle")
    raw = _read_yaml(path)
    parent_name = raw.pop("extends", None)
    _check_keys_of(raw, prefix="", where=str(path))
    merged: dict = {}
    origin: dict[str, str] = {}
    if parent_name is not None:
        if not isinstance(parent_name, str):
            raise ConfigError(f"{path}: `extends` must be a file name, got {parent_name!r}")
        parent = (path.parent / parent_name) if not Path(parent_name).is_absolute() else Path(parent_name)
        merged, origin = _load_chain(parent, seen + (resolved,))
    _deep_merge(merged, raw)
    for key in _dotted_leaves(raw):
        origin[key] = str(path)
    return merged, origin


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping (plain YAML lets the later one win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                continue  # an unhashable key fails in the base constructor with its own message
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' is given twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        what = "is a folder, not a recipe file" if path.is_dir() else "recipe file not found"
        raise ConfigError(f"{path}: {what} (recipes live in recipes/, e.g. recipes/tiny/base.yaml)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save the recipe as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the recipe ({exc.strerror or exc})") from None
    if not text.strip() or all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()):
        raise ConfigError(f"{path}: recipe file is empty; give at least `extends: base.yaml` or one key")
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply to be a recipe") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: YAML syntax error: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML syntax error: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of keys to values, got {type(data).__name__}")
    return data


def _deep_merge(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def _dotted_leaves(raw: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        keys.extend(_dotted_leaves(value, dotted + ".") if isinstance(value, dict) else [dotted])
    return keys


# ---------------------------------------------------------------------------------------------
# Schema walking


def _section_type(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def _all_keys(cls: type = Recipe, prefix: str = "") -> list[str]:
    keys = []
    for name, hint in typing.get_type_hints(cls).items():
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        if dataclasses.is_dataclass(hint):
            keys.extend(_all_keys(hint, dotted + "."))
    return keys


# keys that moved to another section: named in the error, so an old recipe is quick to fix
MOVED_KEYS = {f"train.{k}": f"sft.{k}" for k in ("data", "sets", "tasks", "limit", "max_seq_tokens")}


def _unknown_key_error(key: str, where: str) -> ConfigError:
    if key in MOVED_KEYS:
        return ConfigError(f"{where}: key '{key}' is now '{MOVED_KEYS[key]}' (the stage's own section); rename it")
    close = difflib.get_close_matches(key, _all_keys(), n=1, cutoff=0.6)
    if not close:
        leaf = key.rsplit(".", 1)[-1]
        close = [k for k in _all_keys() if k.rsplit(".", 1)[-1] == leaf][:1]
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"{where}: unknown key '{key}'{hint}; `repro config show RECIPE` lists every key")


def _check_key(key: str, where: str) -> None:
    if key not in _all_keys():
        raise _unknown_key_error(key, where)


def _check_keys_of(raw: dict, prefix: str, where: str, cls: type = Recipe) -> None:
    hints = typing.get_type_hints(cls)
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in hints:
            raise _unknown_key_error(dotted, where)
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            _check_keys_of(value, dotted + ".", where, hints[key])


def _split_override(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{item}': expected key.sub=value (e.g. model.lora.r=8)")
    return key.strip(), value


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


# ---------------------------------------------------------------------------------------------
# Typed construction


def _build(cls: type, raw: dict, prefix: str, origin: dict[str, str], default_where: str) -> Any:
    hints = typing.get_type_hints(cls)
    checks = {f.name: f.metadata.get("check") for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, hint in hints.items():
        if name not in raw:
            continue
        dotted = f"{prefix}{name}"
        where = origin.get(dotted, default_where)
        value = _coerce(raw[name], hint, dotted, where, origin, default_where)
        problem = checks[name](value) if checks[name] else None
        if problem:
            raise ConfigError(f"{where}: key '{dotted}': {problem}")
        kwargs[name] = value
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str, where: str, origin: dict[str, str], default_where: str) -> Any:
    from_override = isinstance(value, tuple) and len(value) == 2 and value[0] == "override"
    text = value[1] if from_override else None
    if from_override:
        value = _parse_override_value(text, hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key '{key}' is a section; give its keys (e.g. {key}.<key>: value)")
        return _build(hint, value, key + ".", origin, default_where)
    try:
        return _convert(value, hint)
    except (TypeError, ValueError):
        shown = text if from_override else value
        raise ConfigError(f"{where}: key '{key}': expected {_type_name(hint)}, got {shown!r}") from None


def _parse_override_value(text: str, hint: Any) -> Any:
    if hint is str:
        return text
    try:
        return yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        return text


def _convert(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg)
            except (TypeError, ValueError):
                continue
        raise TypeError
    if origin is Literal:
        if value in args:
            return value
        raise ValueError
    if origin is list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise TypeError
        return [_convert(v, args[0]) for v in value] if args else list(value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise TypeError
        if not args:
            return dict(value)
        return {_convert(k, args[0]): _convert(v, args[1]) for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError
        return float(value)
    if hint is str:
        if isinstance(value, (dict, list)) or value is None:
            raise TypeError
        return str(value)
    if hint is Any:
        return value
    raise TypeError


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if hint is float:
        return "a finite number"
    return getattr(hint, "__name__", str(hint))
