"""The papers the kit reproduces, one folder each; a fifth paper is its folder plus its name on the line below."""

from __future__ import annotations

import importlib

from repro.registry import Paper, papers

PAPERS: tuple[str, ...] = ("l1", "solopo", "cprs")


def load_papers() -> list[Paper]:
    """Import each paper's registration (repro/<name>/paper.py); returns the registered papers."""
    for name in PAPERS:
        importlib.import_module(f"repro.{name}.paper")
    return papers()
