"""Reproduction profiles are data: recipes/profiles/<paper>.yaml, one entry a profile, read into a paper's schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml

from repro.config import build_typed
from repro.errors import ConfigError, ReproError

PROFILE_DIR = Path("recipes") / "profiles"
T = TypeVar("T")


def profile_table(paper: str) -> dict[str, dict]:
    """Every profile of a paper, as recipes/profiles/<paper>.yaml holds them."""
    path = PROFILE_DIR / f"{paper}.yaml"
    if not path.is_file():
        raise ReproError(f"{path}: profile table not found (run from the kit's folder)")
    try:
        table = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML syntax error: {exc}") from None
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        raise ConfigError(f"{path}: expected a mapping of profile names to their settings")
    return table


def load_profile(paper: str, name: str, schema: type[T]) -> T:
    """Profile `name` of `paper`, typed and checked as `schema` (a dataclass)."""
    table = profile_table(paper)
    if name not in table:
        raise ReproError(f"--profile: expected one of {', '.join(table)}, got '{name}'")
    return build_typed(schema, table[name], where=f"{PROFILE_DIR / paper}.yaml, profile '{name}'")


def stage_values(settings: dict[str, dict[str, Any]], stage: str) -> dict[str, Any]:
    """The recipe values a profile sets for one of its stages (dotted key -> value); none when it sets none."""
    return dict(settings.get(stage) or {})
