"""Raw rows from a local .json/.jsonl/.parquet file, a folder of them, or a hub dataset id, each with its location."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.data.jsonl import decode_line, jsonl_lines, parse_json, read_text
from repro.errors import DataError
from repro.hub import hub_reachable, looks_like_hub_id

Row = tuple[str, dict]

SUFFIXES = (".jsonl", ".json", ".parquet")
# Keys under which a .json file may hold its list of rows when it is an object rather than a list.
_LIST_KEYS = ("data", "rows", "records", "examples", "items", "instances")


def read_rows(src: str, split: str | None = None) -> list[Row]:
    """Rows of `src` with a location for error messages ("file:line" for JSONL, "file:row N" otherwise).

    `src` is a local file, a local folder (every .jsonl/.json/.parquet under it, sorted; with `split`, only
    files whose path mentions it when any does), or a hub dataset id `org/name` read through
    `datasets.load_dataset` (`split` defaults to "train").
    """
    path = Path(src)
    if path.is_file():
        return _read_file(path)
    if path.is_dir():
        return _read_dir(path, split)
    # "org/name" is a hub id unless it names a suffix we read or its first part is a local folder (a typo)
    if looks_like_hub_id(src) and not src.endswith(SUFFIXES) and not Path(src.split("/")[0]).is_dir():
        return _read_hub(src, split or "train")
    raise DataError(f"{src}: data file not found (give a .jsonl, .json or .parquet file, or a hub id org/name)")


def _read_file(path: Path) -> list[Row]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    raise DataError(f"{path}: unsupported file type '{suffix or path.name}' (use .jsonl, .json or .parquet)")


def _read_dir(path: Path, split: str | None) -> list[Row]:
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if split:
        matching = [p for p in files if split in p.relative_to(path).as_posix()]
        files = matching or files
    if not files:
        raise DataError(f"{path}: folder holds no .jsonl, .json or .parquet file")
    rows: list[Row] = []
    for f in files:
        rows.extend(_read_file(f))
    return rows


def _as_row(obj: Any, where: str) -> dict:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _read_jsonl(path: Path) -> list[Row]:
    return [(where, _as_row(decode_line(line, where), where)) for where, line in jsonl_lines(path)]


def _read_json(path: Path) -> list[Row]:
    obj = parse_json(read_text(path), str(path), multiline=True)
    if isinstance(obj, dict):
        lists = [k for k, v in obj.items() if isinstance(v, list)]
        preferred = [k for k in _LIST_KEYS if k in lists]
        key = preferred[0] if preferred else (lists[0] if len(lists) == 1 else None)
        if key is None:
            raise DataError(f"{path}: expected a JSON list of rows, or an object with one list under a key like 'data'")
        obj = obj[key]
    if not isinstance(obj, list):
        raise DataError(f"{path}: expected a JSON list of rows, got {type(obj).__name__}")
    return [(f"{path}:row {i}", _as_row(o, f"{path}:row {i}")) for i, o in enumerate(obj, start=1)]


def _read_parquet(path: Path) -> list[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: cannot read parquet ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None
    return [(f"{path}:row {i}", row) for i, row in enumerate(table.to_pylist(), start=1)]


def _read_hub(dataset_id: str, split: str) -> list[Row]:
    import datasets

    local_hint = "download it elsewhere and pass the local .parquet/.jsonl path"
    if not hub_reachable():
        raise DataError(f"cannot reach the hub for dataset '{dataset_id}' (offline?): {local_hint}")
    try:
        ds = datasets.load_dataset(dataset_id, split=split)
    except (ConnectionError, TimeoutError) as exc:
        raise DataError(f"cannot reach the hub for dataset '{dataset_id}' (offline?): {local_hint}") from exc
    except datasets.exceptions.DatasetNotFoundError as exc:
        raise DataError(f"hub has no dataset '{dataset_id}' (or it is gated): check the id, or {local_hint}") from exc
    except Exception as exc:  # datasets raises many types; the user needs one line, not a traceback
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "offline" in first.lower() or "couldn't reach" in first.lower():
            raise DataError(f"cannot reach the hub for dataset '{dataset_id}' (offline?): {local_hint}") from exc
        raise DataError(f"cannot load dataset '{dataset_id}' split '{split}' from the hub: {first}") from exc
    if isinstance(ds, datasets.DatasetDict):  # only when split is None, which the caller never passes
        raise DataError(f"dataset '{dataset_id}': name a split")
    return [(f"{dataset_id}[{split}]:row {i}", dict(row)) for i, row in enumerate(ds, start=1)]
