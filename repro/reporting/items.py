"""Per-item view: for each task, the items whose scores differ most between the stages, as a markdown page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.data.jsonl import appended_lines
from repro.data.schema import Record, read_records
from repro.errors import ReproError
from repro.fsio import atomic_write_text
from repro.loong.answers import extract_answer
from repro.loong.judges import format_gold
from repro.loong.scores import eval_data_file, load_eval, task_order

ANSWER_CHARS = 200  # an extracted answer is cut here on the page and in the items
TEXT_CHARS = 300  # the question and the gold answer are cut here on the page


def shorten(text: str, limit: int = ANSWER_CHARS) -> str:
    """`text` cut to at most `limit` characters, a cut marked by a closing ellipsis."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def score_spread(scores: list[float | None]) -> float | None:
    """max − min of the parsed scores (None: unparsed, left out); None with fewer than two parsed."""
    parsed = [s for s in scores if s is not None]
    return max(parsed) - min(parsed) if len(parsed) >= 2 else None


def read_prediction_texts(path: Path) -> dict[str, str]:
    """An eval run's predictions.jsonl as id -> prediction; none when the file is missing, a torn last line ignored."""
    if not path.is_file():
        return {}
    out = {}
    for where, obj in appended_lines(path, "remove the line or rerun the evaluation"):
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str | int):
            raise ReproError(f'{where}: expected {{"id": ..., "prediction": "..."}}')
        prediction = obj.get("prediction")
        if not isinstance(prediction, str):
            raise ReproError(f"{where}: field 'prediction' must be a string (id {obj['id']})")
        out[str(obj["id"])] = prediction
    return out


def disagreement_items(stages: dict[str, str | Path], per_task: int = 3) -> list[dict[str, Any]]:
    """Per task, up to `per_task` items with the largest score spread over the stages, ties by id.

    stages: stage name -> `repro eval loong` run folder. The spread is max − min over the stages whose judgement
    of the item parsed; an item with fewer than two parsed scores, or with equal ones, is not a disagreement.
    Each item: {"task", "id", "spread", "question", "gold", "stages": {name: {"judged", "score", "answer"}}},
    where "score" is None for an unparsed judgement (or none), "answer" the extracted answer cut at
    ANSWER_CHARS (None without a prediction). Tasks in the kit's order, within a task the widest spread first.
    """
    _check_per_task(per_task)
    return _first_per_task(_ranked(stages)[1], per_task)


def _ranked(stages: dict[str, str | Path]) -> tuple[list[str], list[dict[str, Any]]]:
    """Every task the stages judged, and every item they disagree on, in the order disagreement_items gives."""
    if not stages:
        raise ReproError("no evaluation run given for the per-item view")
    scores = {name: load_eval(run) for name, run in stages.items()}
    records: dict[str, Record] = {}
    by_file: dict[str, dict[str, Record]] = {}
    for name, run in stages.items():
        data = eval_data_file(run)
        if data not in by_file:
            by_file[data] = {r.id: r for r in read_records(data).records}
        for item_id in scores[name].items:
            records.setdefault(item_id, by_file[data][item_id])
    predictions = {name: read_prediction_texts(Path(run) / "predictions.jsonl") for name, run in stages.items()}
    chosen = []
    for item_id, record in records.items():
        judged = {name: s.items[item_id].score for name, s in scores.items() if item_id in s.items}
        spread = score_spread(list(judged.values()))
        if not spread:
            continue
        per_stage = {}
        for name in stages:
            text = predictions[name].get(item_id)
            per_stage[name] = {
                "judged": name in judged,
                "score": judged.get(name),
                "answer": None if text is None else shorten(extract_answer(text)),
            }
        chosen.append(
            {
                "task": record.task,
                "id": item_id,
                "spread": spread,
                "question": record.question,
                "gold": format_gold(record.answer),
                "stages": per_stage,
            }
        )
    chosen.sort(key=lambda it: (task_order(it["task"]), -it["spread"], it["id"]))
    tasks = sorted({r.task for r in records.values()}, key=task_order)
    return tasks, chosen


def _check_per_task(per_task: int) -> None:
    if isinstance(per_task, bool) or not isinstance(per_task, int) or per_task < 1:
        raise ReproError(f"per_task must be a whole number of at least 1, got {per_task!r}")


def _first_per_task(items: list[dict[str, Any]], per_task: int) -> list[dict[str, Any]]:
    taken: dict[str, int] = {}
    out = []
    for item in items:
        if taken.get(item["task"], 0) < per_task:
            taken[item["task"]] = taken.get(item["task"], 0) + 1
            out.append(item)
    return out


def cell(text: str) -> str:
    """Text safe inside a markdown table cell: "|" escaped, line breaks as <br>."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("|", "\\|").replace("\n", "<br>")


def score_cell(score: float | None) -> str:
    """A score as the page prints it: one decimal at most ("100", "42.5")."""
    return "–" if score is None else f"{score:.1f}".removesuffix(".0")


def _stage_cells(stage: dict[str, Any]) -> list[str]:
    answer = stage["answer"]
    answer_cell = "–" if answer is None else cell(answer) if answer else "(empty)"
    if not stage["judged"]:
        return [answer_cell, "–"]
    return [answer_cell, "unparsed" if stage["score"] is None else score_cell(stage["score"])]


def write_items_page(stages: dict[str, str | Path], out_md: str | Path, per_task: int = 3) -> Path:
    """Markdown: a heading and a table per task of the items where the stages disagree most (disagreement_items)."""
    _check_per_task(per_task)
    tasks, ranked = _ranked(stages)
    items = _first_per_task(ranked, per_task)
    names = list(stages)
    lines = [
        "# Items where the stages disagree most",
        "",
        f"Per task, up to {per_task} items with the widest spread of scores (max − min over the stages whose "
        "judgement parsed; ties by id); items on which the stages agree are left out. Answers are the extracted "
        f"answers, cut at {ANSWER_CHARS} characters; questions and gold answers at {TEXT_CHARS}. \"unparsed\": the "
        "judge's output did not parse (not counted in the spread); \"–\": no prediction or not judged in that stage.",
        "",
        "Stages: " + ", ".join(f"{name} (`{run}`)" for name, run in stages.items()) + ".",
    ]
    header = ["Item", "Spread", "Question", "Gold"]
    for name in names:
        header += [f"{cell(name)} answer", f"{cell(name)} score"]
    for task in tasks:
        lines += ["", f"## {' '.join(task.split())}", ""]
        rows = [it for it in items if it["task"] == task]
        if not rows:
            lines.append("The stages' parsed scores agree on every item of this task.")
            continue
        lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for it in rows:
            cells = [
                cell(it["id"]),
                score_cell(it["spread"]),
                cell(shorten(it["question"], TEXT_CHARS)),
                cell(shorten(it["gold"], TEXT_CHARS)),
            ]
            for name in names:
                cells += _stage_cells(it["stages"][name])
            lines.append("| " + " | ".join(cells) + " |")
    atomic_write_text(out_md, "\n".join(lines) + "\n")
    return Path(out_md)
