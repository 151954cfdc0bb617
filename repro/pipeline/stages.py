"""Stages of a reproduction: each writes its own folder under the output root and is reused once complete."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from repro.config import Recipe, load_recipe
from repro.fsio import atomic_write_json
from repro.train.dist import DistInfo

log = logging.getLogger("repro.reproduce")


def load_stage_recipe(path: str, values: dict[str, Any], name: str, overrides: list[str] | None = None) -> Recipe:
    """A stage's recipe: the file, the profile's `values`, then `overrides` (key=value strings), named `name`."""
    recipe = load_recipe(path, overrides or [], values)
    recipe.name = name
    return recipe


def seed_folder(out: Path, seed: int) -> Path:
    """Where a training seed's stages go in a reproduction's folder: OUT/seed-<seed>/."""
    return out / f"seed-{seed}"


def train_and_export(stage: str, recipe: Recipe, out: Path, run: Callable[..., Any]) -> Path:
    """Train into OUT/<stage> with `run(recipe, run_dir, dist, resume=)` (resuming a cut run), then merge into
    OUT/<stage>-merged; both reused when done."""
    from repro.export import export_run

    run_dir, merged = out / stage, out / f"{stage}-merged"
    if (merged / "config.json").is_file():
        log.info("%s: reusing %s", stage, merged)
        return merged
    if not (run_dir / "final").is_dir():
        run(recipe, run_dir, DistInfo(), resume=run_dir.is_dir())
    return export_run(run_dir, merged)


def evaluate_policy(eval_recipe: str, values: dict[str, Any], source: str, data: str, run_dir: Path) -> Path:
    """Evaluate the model at `source` on `data` into run_dir (resuming a cut run); reused when finished."""
    from repro.loong.eval import run_eval

    values = {**values, "eval.data": data, "model.source": source}
    recipe = load_stage_recipe(eval_recipe, values, run_dir.name)
    if not (run_dir / "metrics.json").is_file():
        run_eval(recipe, run_dir)
    return run_dir


class StageClock:
    """Times each stage into OUT/timings.json; a stage that was reused keeps the time it took when it ran."""

    REUSED_S = 30.0  # a stage this quick found its output ready

    def __init__(self, out: Path) -> None:
        self.path = out / "timings.json"
        self.times: dict[str, float] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        log.info("== %s", name)
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        if seconds >= self.REUSED_S or name not in self.times:
            self.times[name] = seconds
            atomic_write_json(self.path, self.times)
        log.info("== %s: %.1f min", name, seconds / 60)

    def lines(self) -> list[str]:
        total = sum(self.times.values())
        parts = ", ".join(f"{name} {t / 60:.1f} min" for name, t in self.times.items())
        return [f"Time each stage took when it ran, on this machine: {total / 60:.1f} min in all ({parts})."]
