"""The parts every reproduction report adds the same way: the claims' forest plot and the per-item page."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from repro.reporting.claims import Result, forest_rows
from repro.reporting.items import write_items_page
from repro.reporting.plots import forest_plot

FOREST_PNG = "claims.png"
ITEMS_MD = "items.md"


def claims_figure(results: Sequence[Result], out_dir: Path) -> list[str]:
    """claims.png (each score claim's difference, its interval and the paper's effect) and its markdown line."""
    forest_plot(forest_rows(results), out_dir / FOREST_PNG)
    return [f"![Each claim's difference with its interval; the paper's effect as a diamond]({FOREST_PNG})", ""]


def items_section(stages: dict[str, Sequence[Path]], out_dir: Path, per_task: int = 3) -> list[str]:
    """items.md (per task, the items whose scores differ most between the stages, first seed) and its link."""
    write_items_page({name: paths[0] for name, paths in stages.items()}, out_dir / ITEMS_MD, per_task)
    return [
        f"[{ITEMS_MD}]({ITEMS_MD}): per task, the {per_task} items whose scores differ most between the stages "
        "(question, gold, each stage's extracted answer and score), to see what changed.",
        "",
    ]
