"""Reading JSON and JSONL with locations (unreadable, non-UTF-8, bad or too deeply nested JSON is one DataError);
writing JSONL atomically."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from repro.errors import DataError
from repro.fsio import atomic_write_text


def os_reason(exc: OSError) -> str:
    """The short reason of an OS error ("Permission denied", "Is a directory")."""
    return exc.strerror or type(exc).__name__


def write_jsonl(path: str | Path, rows: Iterable[Any], what: str) -> None:
    """`rows` as JSONL at `path`, written atomically; a path that cannot be written is one DataError naming `what`."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{what} {path}: is a folder; name a file")
    try:
        atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    except OSError as exc:
        raise DataError(f"{what} {path}: cannot write it ({os_reason(exc)})") from None


def read_text(path: Path) -> str:
    """A whole UTF-8 text file."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({os_reason(exc)})") from None


def jsonl_lines(path: Path) -> Iterator[tuple[str, str]]:
    """(file:line, text) of each non-blank line."""
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    yield f"{path}:{lineno}", line
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({os_reason(exc)})") from None


def parse_json(text: str, where: str, multiline: bool = False) -> Any:
    """json.loads with one DataError for bad JSON (its line when `multiline`), too deep nesting or huge integers."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f"{where}:{exc.lineno}" if multiline else where
        raise DataError(f"{at}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise DataError(f"{where}: JSON nested too deeply to be read") from None
    except ValueError as exc:  # e.g. an integer longer than Python's digit limit
        raise DataError(f"{where}: JSON value cannot be read ({str(exc).splitlines()[0][:120]})") from None


def decode_line(line: str, where: str) -> Any:
    return parse_json(line, where)


def appended_lines(path: Path, hint: str = "") -> list[tuple[str, Any]]:
    """(file:line, object) of each line of a JSONL file the kit appends to as work finishes.

    Blank lines are skipped and a torn last line (a kill mid-append) is ignored; any other line that is not
    JSON is one DataError naming it, followed by `hint` (what to do).
    """
    lines = read_text(path).splitlines()
    out = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append((f"{path}:{lineno}", json.loads(line)))
        except (ValueError, RecursionError):
            if lineno == len(lines):
                break
            raise DataError(f"{path}:{lineno}: not valid JSON{'; ' + hint if hint else ''}") from None
    return out
