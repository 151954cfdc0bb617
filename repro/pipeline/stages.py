"""Stages of a reproduction: each writes its own folder under the output root and is reused once complete."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from repro.config import Recipe, load_recipe
from repro.fsio import atomic_write_json

log = logging.getLogger("repro.reproduce")
# True inside a stage that `--redo` asked to run again (the named stage and every stage after it)
_REDOING: contextvars.ContextVar[bool] = contextvars.ContextVar("redoing", default=False)


def clear_if_redoing(*paths: Path) -> None:
    """Inside a stage being redone: delete the stage's outputs (folders or files) so it runs afresh."""
    if not _REDOING.get():
        return
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
            log.info("redo: removed %s", path)
        elif path.exists():
            path.unlink()
            log.info("redo: removed %s", path)


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
    from repro.train.dist import DistInfo

    run_dir, merged = out / stage, out / f"{stage}-merged"
    clear_if_redoing(run_dir, merged)
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
    clear_if_redoing(run_dir)
    if not (run_dir / "metrics.json").is_file():
        run_eval(recipe, run_dir)
    return run_dir


class StageClock:
    """Times each stage into OUT/timings.json (a stage that was reused keeps the time it took when it ran) and
    carries `--redo`: from the first stage whose key is `redo` on, every stage runs afresh (clear_if_redoing)."""

    REUSED_S = 30.0  # a stage this quick found its output ready

    def __init__(self, out: Path, redo: str | None = None) -> None:
        self.path = out / "timings.json"
        self.times: dict[str, float] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.redo = redo
        self.redoing = False

    @contextlib.contextmanager
    def __call__(self, name: str, key: str | None = None, keep: bool = False) -> Iterator[None]:
        """Time stage `name`; `key` is what `--redo` names it by; `keep`: never redone here (another
        reproduction's output, such as L1's SFT policy)."""
        self.redoing = self.redoing or (self.redo is not None and key == self.redo)
        token = _REDOING.set(self.redoing and not keep)
        log.info("== %s%s", name, " (redo)" if self.redoing and not keep else "")
        started = time.perf_counter()
        try:
            yield
        finally:
            _REDOING.reset(token)
        seconds = time.perf_counter() - started
        if seconds >= self.REUSED_S or name not in self.times:
            self.times[name] = seconds
            atomic_write_json(self.path, self.times)
        log.info("== %s: %.1f min", name, seconds / 60)

    def lines(self) -> list[str]:
        total = sum(self.times.values())
        parts = ", ".join(f"{name} {t / 60:.1f} min" for name, t in self.times.items())
        return [f"Time each stage took when it ran, on this machine: {total / 60:.1f} min in all ({parts})."]
