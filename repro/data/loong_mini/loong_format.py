"""Writer of the official Loong layout: loong.jsonl plus the doc folder that Loong's loader resolves keys against.

Loong's loader (src/utils/prompt.py) finds a financial document with glob `*2024-{key}*.txt` (levels 1-3) or
`*{key}*.txt` (level 4) and titles it by the file stem after its last '-'; a legal one as legal.json[key], whose
content + result is the text; a paper as paper/{key}, whose first line (minus '#') is the title. Every key here
carries a ' (r<record>.<doc>)' tag, so two records that reuse an entity name with different facts never share a
file, and no key is a prefix of another (the glob stays unambiguous).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from repro.data.loong_mini.fields import DOMAINS
from repro.data.schema import Record
from repro.errors import DataError
from repro.fsio import atomic_write_text, swap_folder, umask_mode

LEVELS = {"spotlight": 1, "comparison": 2, "clustering": 3, "chain_of_reasoning": 4}
PROMPT_TEMPLATE = "{docs}\n\n{instruction}\n\n{question}"
LOONG_FILE = "loong.jsonl"
DOC_DIR = "doc"


def _layout(rec: Record, index: int) -> tuple[list[str], dict[str, str], dict[str, dict]]:
    """Doc keys of one record, the files they resolve to (path -> text) and its legal.json entries."""
    level = LEVELS.get(rec.task)
    if level is None or rec.domain not in DOMAINS:
        raise DataError(f"{rec.id}: task {rec.task!r} in domain {rec.domain!r} has no Loong level and type")
    facts = rec.meta.get("facts")
    if not isinstance(facts, list) or len(facts) != len(rec.docs):
        raise DataError(f"{rec.id}: meta['facts'] must hold one facts object per document (as loong-mini writes)")
    keys: list[str] = []
    files: dict[str, str] = {}
    legal: dict[str, dict] = {}
    for j, (doc, f) in enumerate(zip(rec.docs, facts, strict=True)):
        tag = f"(r{index}.{j})"
        if rec.domain == "financial":
            name, year = f"{f['company']} {tag}", f["year"]
            if level != 4 and year != 2024:
                raise DataError(f"{rec.id}: Loong's loader finds only 2024 reports for level {level}, got {year}")
            files[f"financial/{year}-{name}.txt"] = doc.text
            keys.append(f"{year}-{name}" if level == 4 else name)
        elif rec.domain == "legal":
            key = f"{f['case_id']} {tag}"
            cut = doc.text.rfind("\n\n") + 2 if "\n\n" in doc.text else 0  # the result is the last paragraph
            legal[key] = {"content": doc.text[:cut], "result": doc.text[cut:]}
            keys.append(key)
        else:
            key = f"{f['title']} {tag}.md"
            files[f"paper/{key}"] = f"# {f['title']}\n\n{doc.text}\n"
            keys.append(key)
    return keys, files, legal


def write_loong_format(records: Iterable[Record], out_dir: str | Path, shuffle_doc: bool = False) -> Path:
    """Write out_dir/loong.jsonl and out_dir/doc/{financial,legal,paper}; returns the jsonl path.

    Documents are already in a seeded shuffled order, so shuffle_doc defaults to False (Loong would reshuffle).
    """
    out = Path(out_dir)
    lines: list[dict] = []
    files: dict[str, str] = {}
    legal: dict[str, dict] = {}
    for i, rec in enumerate(records):
        keys, rec_files, rec_legal = _layout(rec, i)
        files |= rec_files
        legal |= rec_legal
        length = rec.meta.get("length")
        lines.append(
            {
                "id": rec.id,
                "level": LEVELS[rec.task],
                "set": rec.length_set,
                "length": length if isinstance(length, int) else None,
                "type": rec.domain,
                "language": "en",
                "question": rec.question,
                "instruction": rec.instruction,
                "prompt_template": PROMPT_TEMPLATE,
                "doc": keys,
                "answer": rec.answer,
                "shuffle_doc": shuffle_doc,
            }
        )
    out.mkdir(parents=True, exist_ok=True)
    # Build the doc tree beside its final place, then swap it in, so a reader never sees half of it.
    staging = Path(tempfile.mkdtemp(prefix=f".{DOC_DIR}.", dir=out))
    staging.chmod(umask_mode(is_dir=True))
    try:
        for sub in ("financial", "legal", "paper"):
            (staging / sub).mkdir()
        for rel, text in files.items():
            (staging / rel).write_text(text, encoding="utf-8")
        (staging / "legal" / "legal.json").write_text(json.dumps(legal, ensure_ascii=False, indent=1), "utf-8")
        swap_folder(staging, out / DOC_DIR)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    path = out / LOONG_FILE
    atomic_write_text(path, "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    return path
