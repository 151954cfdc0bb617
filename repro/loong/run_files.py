"""The files of an evaluation run: predictions and judgements appended as they finish, read back to resume."""

from __future__ import annotations

from pathlib import Path

from repro.data.jsonl import appended_lines, decode_line, jsonl_lines
from repro.errors import DataError


def read_done(
    path: Path, key: str = "id", hint: str = "remove the line or start a fresh run folder"
) -> dict[str, dict]:
    """Lines already written to a run's JSONL file, by id; a torn last line (a kill mid-write) is ignored."""
    if not path.is_file():
        return {}
    return {str(obj[key]): obj for _, obj in appended_lines(path, hint)}


def drop_torn_tail(path: Path) -> None:
    """Cut a last line without its newline (left by a kill), so appends start on a fresh line."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def read_predictions(path: str | Path, known_ids: set[str]) -> dict[str, str]:
    """A user's predictions file: JSONL lines {"id", "prediction"}; bad JSON or an unknown id fails with file:line."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a predictions file" if path.is_dir() else "predictions file not found"
        raise DataError(f"{path}: {what}")
    preds: dict[str, str] = {}
    first_seen: dict[str, str] = {}
    for where, line in jsonl_lines(path):
        obj = decode_line(line, where)
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str | int):
            raise DataError(f'{where}: expected {{"id": ..., "prediction": "..."}}')
        item_id = str(obj["id"])
        if not isinstance(obj.get("prediction"), str):
            raise DataError(f"{where}: field 'prediction' must be a string (id {item_id})")
        if item_id not in known_ids:
            raise DataError(f"{where}: unknown id '{item_id}' (not among the selected evaluation items)")
        if item_id in first_seen:
            raise DataError(
                f"{where}: duplicate prediction for id '{item_id}' (first at {first_seen[item_id]}); keep one per id"
            )
        first_seen[item_id] = where
        preds[item_id] = obj["prediction"]
    return preds
