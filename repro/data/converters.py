"""Converters of the papers' data sets (Loong, DocQA-RL, LongBench v1, MuSiQue, HotpotQA) into records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from repro.data.convert_loong import convert_loong
from repro.data.fields import bad, get, get_dict, get_int, get_list, get_str, str_list
from repro.data.prompts import split_l1_prompt
from repro.data.readers import read_rows
from repro.data.schema import Doc, Evidence, Record, parse_record
from repro.errors import DataError

FORMATS = ("loong", "docqa-rl", "longbench", "musique", "hotpotqa")


def convert(fmt: str, src: str, docs_dir: str | None = None, split: str | None = None) -> list[Record]:
    """Records from `src` (a file, folder or hub id, see read_rows) in format `fmt`; `docs_dir` is Loong's only.

    Every record is checked against the record schema; the first bad one raises DataError with its location.
    """
    if fmt not in FORMATS:
        raise DataError(f"unknown data format '{fmt}' (known: {', '.join(FORMATS)})")
    if fmt == "loong":
        return convert_loong(src, docs_dir)
    if docs_dir is not None:
        raise DataError(f"--docs is only for the loong format; '{fmt}' keeps its documents in each row")
    make = _ROW_CONVERTERS[fmt]
    records = []
    for n, (where, row) in enumerate(read_rows(src, split), start=1):
        record = make(row, where, n, src)
        records.append(parse_record(record.to_json(), where))
    return records


def _answer_and_aliases(value: object, where: str, name: str) -> tuple[str, list[str]]:
    values = value if isinstance(value, (list, tuple)) else [value]
    answers = str_list(list(values), where, name)
    if not answers:
        raise bad(where, name, "at least one answer", value)
    return answers[0], answers[1:]


def docqa_task(data_source: str) -> str:
    """DocMath items are scored numerically, the synthetic logic set by its letter, the rest as QA."""
    ds = data_source.lower()
    if "docmath" in ds:
        return "docmath"
    if any(word in ds for word in ("logic", "choice", "mcq")):
        return "multiple_choice"
    return "qa"


def _docqa_rl(row: dict, where: str, n: int, src: str) -> Record:
    """verl-style RL row: the user turn is the L1 prompt; its <text> block is the document."""
    data_source = get_str(row, "data_source", where)
    messages = get_list(row, "prompt", where)
    user, system = None, None
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise bad(where, f"prompt[{i}]", '{"role": str, "content": str}', m)
        role = get_str(m, "role", where, f"prompt[{i}].role")
        content = get_str(m, "content", where, f"prompt[{i}].content")
        if role == "user":
            user = content
        elif role == "system":
            system = content
    if user is None:
        raise DataError(f"{where}: field 'prompt': no user message")
    parts = split_l1_prompt(user)
    if parts is None:
        raise DataError(f"{where}: field 'prompt': the user message has no <text> ... </text> document block")
    doc_text, question, format_line = parts
    if not question:
        raise DataError(f"{where}: field 'prompt': no question after </text> in the user message")
    reward = get_dict(row, "reward_model", where)
    answer, aliases = _answer_and_aliases(
        get(reward, "ground_truth", where, "reward_model.ground_truth"), where, "reward_model.ground_truth"
    )
    extra = get_dict(row, "extra_info", where, default={})
    key = next((extra[k] for k in ("id", "uid", "index") if extra.get(k) is not None), n)
    meta = {"data_source": data_source, "reward_style": reward.get("style"), "extra_info": extra}
    if system:
        meta["system"] = system
    return Record(
        id=f"{data_source}-{key}",
        source="docqa-rl",
        task=docqa_task(data_source),
        docs=[Doc(title=data_source, text=doc_text)],
        question=question,
        answer=answer,
        # the format line (e.g. a multiple-choice one) is kept so the L1 prompt rebuilds the original turn
        instruction=format_line,
        subtask=data_source,
        answer_aliases=aliases,
        meta=meta,
    )


def _longbench(row: dict, where: str, n: int, src: str) -> Record:
    dataset = get_str(row, "dataset", where, default=Path(src).stem)
    answer, aliases = _answer_and_aliases(get_list(row, "answers", where), where, "answers")
    meta = {"dataset": dataset, "length": get_int(row, "length", where, default=None)}
    for key in ("language", "all_classes"):
        if row.get(key) is not None:
            meta[key] = row[key]
    return Record(
        id=str(get(row, "_id", where)),
        source="longbench",
        task="qa",
        docs=[Doc(title=dataset, text=get_str(row, "context", where))],
        question=get_str(row, "input", where),
        answer=answer,
        subtask=dataset,
        answer_aliases=aliases,
        meta=meta,
    )


def _musique(row: dict, where: str, n: int, src: str) -> Record:
    """All paragraphs are the long context; the supporting ones are the short context and the evidence."""
    docs, needed = [], []
    for i, p in enumerate(get_list(row, "paragraphs", where)):
        name = f"paragraphs[{i}]"
        if not isinstance(p, dict):
            raise bad(where, name, "an object", p)
        title = get_str(p, "title", where, f"{name}.title")
        docs.append(Doc(title=title, text=get_str(p, "paragraph_text", where, f"{name}.paragraph_text")))
        supporting = get(p, "is_supporting", where, f"{name}.is_supporting", default=False)
        if not isinstance(supporting, bool):
            raise bad(where, f"{name}.is_supporting", "true or false", supporting)
        if supporting:
            needed.append(i)
    meta: dict = {"question_decomposition": get_list(row, "question_decomposition", where, default=[])}
    if row.get("answerable") is not None:
        meta["answerable"] = row["answerable"]
    aliases = str_list(get_list(row, "answer_aliases", where, default=[]), where, "answer_aliases")
    return Record(
        id=str(get(row, "id", where)),
        source="musique",
        task="qa",
        docs=docs,
        question=get_str(row, "question", where),
        answer=get_str(row, "answer", where),
        answer_aliases=aliases,
        evidence=[Evidence(doc=i, start=0, end=len(docs[i].text)) for i in needed],
        needed_docs=needed,
        meta=meta,
    )


def _hotpotqa(row: dict, where: str, n: int, src: str) -> Record:
    """One document per context title: its sentences, stripped, joined by one space; evidence = sentence spans.

    The official files hold a few supporting facts that name a missing title or sentence; those are skipped
    and counted in meta["skipped_supporting_facts"] rather than failing the whole file.
    """
    docs: list[Doc] = []
    spans: list[list[tuple[int, int]]] = []
    for i, item in enumerate(get_list(row, "context", where)):
        name = f"context[{i}]"
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            raise bad(where, name, "[title, [sentences]]", item)
        if not isinstance(item[1], (list, tuple)):
            raise bad(where, f"{name}[1]", "a list of sentences", item[1])
        sentences = str_list(list(item[1]), where, f"{name}[1]")
        text, offsets = "", []
        for s in sentences:
            if offsets:
                text += " "
            offsets.append((len(text), len(text) + len(s.strip())))
            text += s.strip()
        docs.append(Doc(title=item[0], text=text))
        spans.append(offsets)
    by_title: dict[str, int] = {}
    for i, d in enumerate(docs):
        by_title.setdefault(d.title, i)
    evidence, skipped = set(), 0
    for i, fact in enumerate(get_list(row, "supporting_facts", where)):
        if not (isinstance(fact, (list, tuple)) and len(fact) == 2 and isinstance(fact[0], str)):
            raise bad(where, f"supporting_facts[{i}]", "[title, sentence index]", fact)
        doc, sent = by_title.get(fact[0]), fact[1]
        if doc is None or not isinstance(sent, int) or isinstance(sent, bool) or not 0 <= sent < len(spans[doc]):
            skipped += 1
            continue
        evidence.add((doc, *spans[doc][sent]))
    meta = {k: row[k] for k in ("type", "level") if row.get(k) is not None}
    if skipped:
        meta["skipped_supporting_facts"] = skipped
    ordered = sorted(evidence)
    return Record(
        id=str(get(row, "_id", where)),
        source="hotpotqa",
        task="qa",
        docs=docs,
        question=get_str(row, "question", where),
        answer=get_str(row, "answer", where),
        evidence=[Evidence(doc=d, start=s, end=e) for d, s, e in ordered],
        needed_docs=sorted({d for d, _, _ in ordered}),
        meta=meta,
    )


_ROW_CONVERTERS: dict[str, Callable[[dict, str, int, str], Record]] = {
    "docqa-rl": _docqa_rl,
    "longbench": _longbench,
    "musique": _musique,
    "hotpotqa": _hotpotqa,
}
