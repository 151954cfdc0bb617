"""Typed field access for the converters: each failure is a DataError naming the row's location and the field."""

from __future__ import annotations

import json
from typing import Any

from repro.errors import DataError

_MISSING = object()


def shown(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def bad(where: str, key: str, expected: str, got: Any) -> DataError:
    return DataError(f"{where}: field '{key}': expected {expected}, got {shown(got)}")


def _absent(row: dict, key: str) -> bool:
    return not isinstance(row, dict) or row.get(key) is None


def get(row: dict, key: str, where: str, name: str | None = None, default: Any = _MISSING) -> Any:
    """row[key]; a missing or null value fails unless a default is given. `name` is the field as shown."""
    if _absent(row, key):
        if default is not _MISSING:
            return default
        raise DataError(f"{where}: field '{name or key}' is missing")
    return row[key]


def get_str(row: dict, key: str, where: str, name: str | None = None, default: Any = _MISSING) -> str:
    if default is not _MISSING and _absent(row, key):
        return default
    value = get(row, key, where, name)
    if not isinstance(value, str):
        raise bad(where, name or key, "a string", value)
    return value


def get_list(row: dict, key: str, where: str, name: str | None = None, default: Any = _MISSING) -> list:
    if default is not _MISSING and _absent(row, key):
        return default
    value = get(row, key, where, name)
    if not isinstance(value, (list, tuple)):
        raise bad(where, name or key, "a list", value)
    return list(value)


def get_dict(row: dict, key: str, where: str, name: str | None = None, default: Any = _MISSING) -> dict:
    if default is not _MISSING and _absent(row, key):
        return default
    value = get(row, key, where, name)
    if not isinstance(value, dict):
        raise bad(where, name or key, "an object", value)
    return value


def get_int(row: dict, key: str, where: str, name: str | None = None, default: Any = _MISSING) -> int:
    """An int, also accepted as a whole-number string ("3") since some releases store numbers as text."""
    if default is not _MISSING and _absent(row, key):
        return default
    value = get(row, key, where, name)
    if isinstance(value, bool):
        raise bad(where, name or key, "an integer", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise bad(where, name or key, "an integer", value)


def str_list(values: list, where: str, name: str) -> list[str]:
    """A list of answers as strings; numbers are turned into text, anything else fails."""
    out = []
    for i, v in enumerate(values):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(str(v))
        else:
            raise bad(where, f"{name}[{i}]", "a string", v)
    return out
