"""Recipes: YAML files mapped onto typed dataclasses, with `extends:` and dotted key=value overrides."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from repro.errors import ConfigError
from repro.sections import (  # noqa: F401 - the shared sections are part of this module's interface
    EvalSection,
    GenerationSection,
    LlmJudgeSection,
    LoongMiniSection,
    LoraSection,
    ModelSection,
    QuantSection,
    Recipe,
    RewardSection,
    ServerSection,
    SftSection,
    TrainSection,
)

# ---------------------------------------------------------------------------------------------
# The papers' own sections, registered by each paper's folder (repro/<paper>/paper.py)

_PAPER_SECTIONS: dict[str, type] = {}
_RENAMED_KEYS: dict[str, str] = {}
_RECIPE_TYPE: list[type] = []


def register_section(name: str, section: type, renamed: dict[str, str] | None = None) -> None:
    """Add a paper's recipe section `name` (a dataclass) to every recipe; `renamed`: old dotted key -> what to
    say when a recipe still uses it."""
    if name in {f.name for f in dataclasses.fields(Recipe)} or _PAPER_SECTIONS.get(name, section) is not section:
        raise ValueError(f"recipe section '{name}' is registered twice")
    _PAPER_SECTIONS[name] = section
    _RENAMED_KEYS.update(renamed or {})
    _RECIPE_TYPE.clear()


def recipe_type() -> type:
    """The recipe dataclass: the shared sections (Recipe) and every registered paper's section."""
    if not _RECIPE_TYPE:
        fields = [(n, cls, dataclasses.field(default_factory=cls)) for n, cls in _PAPER_SECTIONS.items()]
        _RECIPE_TYPE.append(dataclasses.make_dataclass("Recipe", fields, bases=(Recipe,)))
    return _RECIPE_TYPE[0]

# ---------------------------------------------------------------------------------------------
# Loading


def load_recipe(
    path: str | Path, overrides: list[str] | tuple[str, ...] = (), values: dict[str, Any] | None = None
) -> Recipe:
    """Read a recipe file (following `extends:`), apply `key.sub=value` overrides, then `values` (dotted key ->
    a value as YAML reads it, e.g. from a profile table), and validate."""
    path = Path(path)
    merged, origin = _load_chain(path, seen=())
    for item in overrides:
        key, value = _split_override(item)
        _check_key(key, where=f"override '{item}'")
        _set_dotted(merged, key, ("override", value))
        origin[key] = f"override '{item}'"
    for key, value in (values or {}).items():
        _check_key(key, where=f"key '{key}' given for {path}")
        _set_dotted(merged, key, value)
        origin[key] = f"the value of '{key}' given for {path}"
    merged.setdefault("name", path.stem)
    return _build(recipe_type(), merged, prefix="", origin=origin, default_where=str(path))


def recipe_to_yaml(recipe: Recipe) -> str:
    """The resolved recipe as YAML, as run folders keep it; the user:password@ of every endpoint URL (the judge's,
    each generation server's) is left out."""
    from repro.redact import redact_url

    def without_credentials(tree: Any) -> Any:
        if not isinstance(tree, dict):
            return tree
        return {
            k: redact_url(v) if k == "base_url" and isinstance(v, str) else without_credentials(v)
            for k, v in tree.items()
        }

    data = without_credentials(dataclasses.asdict(recipe))
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


def _all_keys(cls: type | None = None, prefix: str = "") -> list[str]:
    cls = cls or recipe_type()
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
    if key in _RENAMED_KEYS:  # split or renamed because its meaning changed: an old recipe stops here
        return ConfigError(f"{where}: key '{key}' is gone: {_RENAMED_KEYS[key]}")
    close = difflib.get_close_matches(key, _all_keys(), n=1, cutoff=0.6)
    if not close:
        leaf = key.rsplit(".", 1)[-1]
        close = [k for k in _all_keys() if k.rsplit(".", 1)[-1] == leaf][:1]
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"{where}: unknown key '{key}'{hint}; `repro config show RECIPE` lists every key")


def _check_key(key: str, where: str) -> None:
    if key not in _all_keys():
        raise _unknown_key_error(key, where)


def _check_keys_of(raw: dict, prefix: str, where: str, cls: type | None = None) -> None:
    hints = typing.get_type_hints(cls or recipe_type())
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


def build_typed(cls: type, raw: dict, where: str) -> Any:
    """A dataclass of `cls` from a plain mapping, with the recipe's type and range checks; unknown keys are errors."""
    known = set(typing.get_type_hints(cls))
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: unknown key '{key}'{hint}")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in raw and _required(f)]
    if missing:
        raise ConfigError(f"{where}: missing key '{missing[0]}'")
    return _build(cls, raw, prefix="", origin={}, default_where=where)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


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
    item = typing.get_args(hint)[0] if typing.get_origin(hint) is list else None
    if item is not None and dataclasses.is_dataclass(item):  # a list of sections, e.g. rl.phases
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ConfigError(f"{where}: key '{key}': expected a list of mappings (e.g. - steps: 10)")
        known = set(typing.get_type_hints(item))
        for i, v in enumerate(value):
            for name in v:
                if name not in known:
                    close = difflib.get_close_matches(str(name), sorted(known), n=1)
                    hint = f" (did you mean '{close[0]}'?)" if close else ""
                    raise ConfigError(f"{where}: unknown key '{key}[{i}].{name}'{hint}")
        return [_build(item, v, f"{key}[{i}].", origin, default_where) for i, v in enumerate(value)]
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
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise TypeError from None
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
