"""The one record schema every recipe reads, with validation on read and atomic JSONL writing."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro.data.fields import bad as field_error
from repro.data.jsonl import decode_line, jsonl_lines
from repro.errors import DataError
from repro.fsio import atomic_write_text

Answer = str | list | dict

TASKS = ("spotlight", "comparison", "clustering", "chain_of_reasoning", "qa", "docmath", "multiple_choice")


@dataclass
class Doc:
    title: str
    text: str


@dataclass
class Evidence:
    """A character span [start, end) of docs[doc].text that the answer needs."""

    doc: int
    start: int
    end: int


@dataclass
class Record:
    id: str
    source: str
    task: str
    docs: list[Doc]
    question: str
    answer: Answer
    instruction: str = ""
    subtask: str | None = None
    domain: str | None = None
    length_set: int | None = None
    answer_aliases: list[str] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    needed_docs: list[int] | None = None
    reasoning: str | None = None
    meta: dict = field(default_factory=dict)

    def short_docs(self) -> list[Doc]:
        """Only the documents the answer needs (SoLoPO's short context); all of them when unknown."""
        if self.needed_docs is None:
            return list(self.docs)
        return [self.docs[i] for i in self.needed_docs]

    def to_json(self) -> dict:
        return asdict(self)


_REQUIRED = {"id": str, "source": str, "task": str, "docs": list, "question": str}
_OPTIONAL_STR = ("instruction",)
_OPTIONAL_STR_OR_NONE = ("subtask", "domain", "reasoning")


def parse_record(obj: Any, where: str) -> Record:
    """Validate one decoded JSON object; `where` (file:line) starts every error message."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object per line, got {type(obj).__name__}")
    known = {f for f in Record.__dataclass_fields__}
    unknown = sorted(set(obj) - known)
    if unknown:
        raise DataError(f"{where}: unknown field '{unknown[0]}' (known: {', '.join(sorted(known))})")
    for key, typ in _REQUIRED.items():
        if key not in obj:
            raise DataError(f"{where}: field '{key}' is missing")
        if not isinstance(obj[key], typ):
            raise field_error(where, key, typ.__name__, obj[key])
    if obj["task"] not in TASKS:
        raise field_error(where, "task", "one of " + ", ".join(TASKS), obj["task"])
    if "answer" not in obj or obj["answer"] is None:
        raise DataError(f"{where}: field 'answer' is missing")
    if not isinstance(obj["answer"], (str, list, dict)):
        raise field_error(where, "answer", "str, list or dict", obj["answer"])
    docs = []
    for i, d in enumerate(obj["docs"]):
        if not isinstance(d, dict) or not isinstance(d.get("title"), str) or not isinstance(d.get("text"), str):
            raise field_error(where, f"docs[{i}]", '{"title": str, "text": str}', d)
        docs.append(Doc(title=d["title"], text=d["text"]))
    for key in _OPTIONAL_STR:
        if key in obj and not isinstance(obj[key], str):
            raise field_error(where, key, "str", obj[key])
    for key in _OPTIONAL_STR_OR_NONE:
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise field_error(where, key, "str or null", obj[key])
    length_set = obj.get("length_set")
    if length_set is not None and (not isinstance(length_set, int) or isinstance(length_set, bool)):
        raise field_error(where, "length_set", "int or null", length_set)
    aliases = obj.get("answer_aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise field_error(where, "answer_aliases", "list of str", aliases)
    evidence = []
    for i, e in enumerate(obj.get("evidence", [])):
        ok = isinstance(e, dict) and all(isinstance(e.get(k), int) for k in ("doc", "start", "end"))
        if not ok or not (0 <= e["doc"] < len(docs)) or not (0 <= e["start"] <= e["end"] <= len(docs[e["doc"]].text)):
            raise field_error(where, f"evidence[{i}]", "{doc, start, end} inside a document", e)
        evidence.append(Evidence(doc=e["doc"], start=e["start"], end=e["end"]))
    needed = obj.get("needed_docs")
    if needed is not None and (
        not isinstance(needed, list) or not all(isinstance(i, int) and 0 <= i < len(docs) for i in needed)
    ):
        raise field_error(where, "needed_docs", "list of document indices or null", needed)
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise field_error(where, "meta", "object", meta)
    return Record(
        id=obj["id"],
        source=obj["source"],
        task=obj["task"],
        docs=docs,
        question=obj["question"],
        answer=obj["answer"],
        instruction=obj.get("instruction", ""),
        subtask=obj.get("subtask"),
        domain=obj.get("domain"),
        length_set=length_set,
        answer_aliases=aliases,
        evidence=evidence,
        needed_docs=needed,
        reasoning=obj.get("reasoning"),
        meta=meta,
    )


@dataclass
class ReadResult:
    records: list[Record]
    skipped: int = 0


def read_records(path: str | Path, skip_bad: bool = False) -> ReadResult:
    """Read a JSONL file of records; a bad line raises DataError(file:line …) unless skip_bad."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a data file" if path.is_dir() else "data file not found"
        raise DataError(f"{path}: {what} (make one with `repro data loong-mini --out DIR`)")
    records, skipped = [], 0
    first_seen: dict[str, str] = {}
    for where, line in jsonl_lines(path):
        try:
            record = parse_record(decode_line(line, where), where)
            if record.id in first_seen:
                raise DataError(
                    f"{where}: duplicate id '{record.id}' (first at {first_seen[record.id]}); ids must be unique"
                )
            first_seen[record.id] = where
            records.append(record)
        except DataError:
            if not skip_bad:
                raise
            skipped += 1
    return ReadResult(records=records, skipped=skipped)


def write_records(path: str | Path, records: Iterable[Record]) -> int:
    """Write records as JSONL atomically; returns how many were written."""
    lines = [json.dumps(r.to_json(), ensure_ascii=False, sort_keys=False) for r in records]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)
