"""Loong (loong.jsonl plus its docs folder) to records, resolving document keys the way the Loong code does."""

from __future__ import annotations

import re
from pathlib import Path

from repro.data.fields import bad, get, get_int, get_list, get_str, str_list
from repro.data.jsonl import parse_json, read_text
from repro.data.readers import read_rows
from repro.data.schema import Doc, Record, parse_record
from repro.errors import DataError

LEVEL_TASKS = {1: "spotlight", 2: "comparison", 3: "clustering", 4: "chain_of_reasoning"}
DOMAINS = ("financial", "legal", "paper")
# Level-4 legal items whose instruction hands over the verdicts show only the case text (Loong's rule).
LEGAL_RESULTS_GIVEN = "阅读以上判决文书，我将给你若干份判决结果："
_YEAR_PREFIX = re.compile(r"^\d{4}[-_]")
_FORM_SUFFIX = re.compile(r"-[A-Za-z]$")


class LoongDocs:
    """Looks documents up by key in a Loong docs folder (financial/*.txt, legal/legal.json, paper/*.md).

    Results are cached, so a document shared by many items is read once and its text shared.
    """

    def __init__(self, root: Path):
        self.root = root
        self._cache: dict[tuple[str, str, int, bool], Doc | None] = {}
        self._financial: list[Path] | None = None
        self._legal: dict[str, dict] | None = None
        self._papers: list[Path] | None = None
        self._paper_titles: dict[str, Path] | None = None

    def folder(self, domain: str) -> Path:
        return self.root / domain

    def find(self, domain: str, key: str, level: int, content_only: bool = False) -> Doc | None:
        """The document for `key`, or None when no file matches."""
        cache_key = (domain, key, level if domain == "financial" else 0, content_only)
        if cache_key not in self._cache:
            if domain == "financial":
                doc = self._find_financial(key, level)
            elif domain == "legal":
                doc = self._find_legal(key, content_only)
            else:
                doc = self._find_paper(key)
            self._cache[cache_key] = doc
        return self._cache[cache_key]

    def _find_financial(self, key: str, level: int) -> Doc | None:
        """A .txt report whose name holds the company key, e.g. "2024-Acme Corp-j.txt" for "Acme Corp".

        Loong globs "*2024-{key}*.txt" below level 4 and "*{key}*.txt" at level 4, taking the first hit; here
        the 2024 report is preferred below level 4, then a name equal to the key once the leading year (and a
        trailing one-letter form tag) is removed, then the first name in sorted order, so the choice is stable.
        """
        if self._financial is None:
            self._financial = sorted(self.folder("financial").glob("*.txt"))
        found = [p for p in self._financial if key in p.stem]
        if level != 4:
            found = [p for p in found if p.name.startswith("2024")] or found
        exact = [
            p
            for p in found
            if key in (_YEAR_PREFIX.sub("", p.stem), _FORM_SUFFIX.sub("", _YEAR_PREFIX.sub("", p.stem)))
        ]
        found = exact or found
        return Doc(title=key, text=read_text(found[0])) if found else None

    def _find_legal(self, key: str, content_only: bool) -> Doc | None:
        """A case in legal/legal.json: an object keyed by case id, or a list of cases with an "id" field.

        The text is content + result (the verdict), as Loong builds it, or content alone when asked.
        """
        if self._legal is None:
            self._legal = self._load_legal()
        case = self._legal.get(key)
        if case is None:
            return None
        where = f"{self.folder('legal') / 'legal.json'} case '{key}'"
        content = get_str(case, "content", where)
        result = get_str(case, "result", where, default="")
        return Doc(title=key, text=content if content_only else content + result)

    def _load_legal(self) -> dict[str, dict]:
        path = self.folder("legal") / "legal.json"
        if not path.is_file():
            return {}
        data = parse_json(read_text(path), str(path), multiline=True)
        if isinstance(data, dict):
            return {str(k): v for k, v in data.items() if isinstance(v, dict)}
        if isinstance(data, list):
            cases = {}
            for i, case in enumerate(data, start=1):
                if not isinstance(case, dict) or case.get("id") is None:
                    raise DataError(f"{path}:row {i}: field 'id' is missing (a list of cases needs an id per case)")
                cases[str(case["id"])] = case
            return cases
        raise DataError(f"{path}: expected an object of cases keyed by id, or a list of cases")

    def _find_paper(self, key: str) -> Doc | None:
        """A paper/*.md file named by the key (Loong's keys are file names) or whose first line is the key."""
        if self._papers is None:
            self._papers = sorted(self.folder("paper").glob("*.md"))
        by_name = {p.name: p for p in self._papers}
        path = by_name.get(key) or by_name.get(key + ".md")
        if path is None:
            if self._paper_titles is None:
                self._paper_titles = {}
                for p in self._papers:
                    self._paper_titles.setdefault(_paper_title(read_text(p)), p)
            path = self._paper_titles.get(key.strip("#").strip())
        if path is None:
            return None
        text = read_text(path)
        return Doc(title=_paper_title(text) or key, text=text)


def _paper_title(text: str) -> str:
    return text.split("\n", 1)[0].strip("#").strip()


def default_docs_dir(src: str) -> Path:
    """The docs folder beside the .jsonl: doc/ (the Loong release) or docs/."""
    here = Path(src).parent
    for name in ("doc", "docs"):
        if (here / name).is_dir():
            return here / name
    raise DataError(f"{src}: no doc/ or docs/ folder beside the file: pass the Loong docs folder with --docs DIR")


def convert_loong(src: str, docs_dir: str | None = None) -> list[Record]:
    root = Path(docs_dir) if docs_dir else default_docs_dir(src)
    if not root.is_dir():
        raise DataError(f"{root}: Loong docs folder not found")
    docs = LoongDocs(root)
    return [_loong_record(row, where, docs) for where, row in read_rows(src)]


def _loong_record(row: dict, where: str, lookup: LoongDocs) -> Record:
    level = get_int(row, "level", where)
    if level not in LEVEL_TASKS:
        raise bad(where, "level", "1, 2, 3 or 4", row["level"])
    domain = get_str(row, "type", where)
    if domain not in DOMAINS:
        raise bad(where, "type", "financial, legal or paper", domain)
    instruction = get_str(row, "instruction", where, default="")
    keys = str_list(get_list(row, "doc", where), where, "doc")
    content_only = domain == "legal" and level == 4 and LEGAL_RESULTS_GIVEN in instruction
    docs = []
    for i, key in enumerate(keys):
        doc = lookup.find(domain, key, level, content_only)
        if doc is None:
            raise DataError(f"{where}: field 'doc[{i}]': no {domain} document '{key}' in {lookup.folder(domain)}")
        docs.append(doc)
    answer = get(row, "answer", where)
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = str(answer)
    if not isinstance(answer, (str, list, dict)):
        raise bad(where, "answer", "a string, list or object", answer)
    shuffle = get(row, "shuffle_doc", where, default=True)
    if not isinstance(shuffle, bool):
        raise bad(where, "shuffle_doc", "true or false", shuffle)
    record = Record(
        id=str(get(row, "id", where)),
        source="loong",
        task=LEVEL_TASKS[level],
        docs=docs,
        question=get_str(row, "question", where),
        answer=answer,
        instruction=instruction,
        domain=domain,
        length_set=get_int(row, "set", where, default=None),
        # "leave no document behind": every document of a Loong item is needed
        needed_docs=list(range(len(docs))),
        meta={
            "level": level,
            "length": get(row, "length", where, default=None),
            "language": get_str(row, "language", where, default=None),
            "prompt_template": get_str(row, "prompt_template", where, default=None),
            "shuffle_doc": shuffle,
            "doc_keys": keys,
        },
    )
    return parse_record(record.to_json(), where)
