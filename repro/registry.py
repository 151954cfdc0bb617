"""What a paper's folder registers: its recipe sections, CLI app, reproduction and bench cases (see repro/papers.py)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from repro.config import register_section


@dataclass(frozen=True)
class Paper:
    """One paper of the kit. `cli` and `bench` are "module:attribute" / "module" paths, imported only when used,
    so registering a paper costs no heavy import."""

    name: str  # the CLI group (`repro NAME ...`) and `repro reproduce NAME`
    title: str
    sections: dict[str, type] = field(default_factory=dict)  # recipe sections the paper adds
    renamed_keys: dict[str, str] = field(default_factory=dict)  # old dotted key -> what to say instead
    cli: str = ""  # the paper's Typer app, e.g. "repro.l1.cli:app"; its command "reproduce" is also aliased
    bench: str = ""  # the module that registers the paper's bench cases (repro.benchkit) when imported


_PAPERS: dict[str, Paper] = {}


def register(paper: Paper) -> Paper:
    """Record a paper and add its recipe sections; a paper's paper.py calls this once."""
    if paper.name in _PAPERS:
        if _PAPERS[paper.name] is not paper:
            raise ValueError(f"paper '{paper.name}' is registered twice")
        return paper
    for name, section in paper.sections.items():
        register_section(name, section, paper.renamed_keys)
    _PAPERS[paper.name] = paper
    return paper


def papers() -> list[Paper]:
    """The registered papers, in registration order."""
    return list(_PAPERS.values())


def resolve(path: str) -> Any:
    """The object at "module:attribute" (or the module itself without ":")."""
    module, _, attribute = path.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attribute) if attribute else loaded
