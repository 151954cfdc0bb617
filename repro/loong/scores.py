"""An evaluation run's scores as the reports read them: judged items by id, with their task and length set."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from repro.data.jsonl import appended_lines
from repro.data.schema import TASKS, read_records
from repro.errors import ReproError
from repro.loong.metrics import parsed_scores


@dataclass(frozen=True)
class ItemScore:
    score: float | None  # None: the judge's output did not parse
    task: str
    length_set: int | None


@dataclass
class EvalScores:
    """One evaluation run's judged items by id, in the record file's order."""

    items: dict[str, ItemScore]
    source: str = ""

    def select(self, length_set: int | None = None, task: str | None = None) -> list[float | None]:
        return [
            it.score
            for it in self.items.values()
            if (length_set is None or it.length_set == length_set) and (task is None or it.task == task)
        ]

    def avg(self, length_set: int | None = None, task: str | None = None) -> float | None:
        """Mean of the parsed scores (unparsed ones left out, as in metrics.json); None when none is parsed."""
        scores = parsed_scores(self.select(length_set, task))
        return sum(scores) / len(scores) if scores else None

    def unparsed(self) -> int:
        """How many judgements did not parse."""
        return len(self.items) - len(parsed_scores(self.select()))

    def length_sets(self) -> list[int]:
        return sorted({it.length_set for it in self.items.values() if it.length_set is not None})

    def tasks(self) -> list[str]:
        return sorted({it.task for it in self.items.values()}, key=task_order)


def _task_order(task: str) -> tuple[int, str]:
    return (TASKS.index(task), "") if task in TASKS else (len(TASKS), task)


def task_order(task: str) -> tuple[int, str]:
    """Sort key: the kit's tasks in their own order, then any other task by name."""
    return (TASKS.index(task), "") if task in TASKS else (len(TASKS), task)


def _read_judgements(path: Path) -> dict[str, float | None]:
    if not path.is_file():
        raise ReproError(f"{path}: judgements file not found (is this a finished `repro eval` run folder?)")
    scores: dict[str, float | None] = {}
    for where, obj in appended_lines(path):
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str | int) or "score" not in obj:
            raise ReproError(f'{where}: expected {{"id": ..., "score": 0-100 or null}}')
        score = obj["score"]
        if score is not None and (not _is_number(score) or not 0 <= score <= 100):
            raise ReproError(f"{where}: 'score' must be a number in 0..100 or null, got {score!r}")
        scores[str(obj["id"])] = None if score is None else float(score)
    return scores


def eval_data_file(run_dir: str | Path) -> str:
    """The record file an evaluation run read: its recipe.yaml's eval.data."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReproError(f"{run_dir}: evaluation run folder not found")
    recipe_path = run_dir / "recipe.yaml"
    if not recipe_path.is_file():
        raise ReproError(f"{recipe_path}: recipe file not found (is this a `repro eval` run folder?)")
    try:
        recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ReproError(f"{recipe_path}: not valid YAML ({exc})") from None
    data = (
        recipe.get("eval", {}).get("data")
        if isinstance(recipe, dict) and isinstance(recipe.get("eval"), dict)
        else None
    )
    if not isinstance(data, str) or not data:
        raise ReproError(f"{recipe_path}: no eval.data key naming the record file")
    return data


def load_eval(run_dir: str | Path) -> EvalScores:
    """Per item id: score, task and length set, joined from judgements.jsonl and the recipe's eval.data records."""
    run_dir = Path(run_dir)
    data = eval_data_file(run_dir)
    scores = _read_judgements(run_dir / "judgements.jsonl")
    records = {r.id: r for r in read_records(data).records}
    unknown = [i for i in scores if i not in records]
    if unknown:
        raise ReproError(
            f"{run_dir / 'judgements.jsonl'}: id '{unknown[0]}' is not in {data} "
            f"({len(unknown)} unknown ids); was the record file changed after the run?"
        )
    items = {i: ItemScore(scores[i], r.task, r.length_set) for i, r in records.items() if i in scores}
    return EvalScores(items=items, source=str(run_dir))




def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
