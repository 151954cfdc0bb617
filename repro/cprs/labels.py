"""QwenLong-CPRS training labels: critical spans at keyword, sentence or paragraph granularity, as per-token tags."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from repro.data.phrases import phrase_spans
from repro.data.prompts import DOC_SEP, apply_chat, render_doc
from repro.data.schema import Doc, Record
from repro.errors import ConfigError, DataError
from repro.train.logprobs import IGNORE_INDEX as IGNORE  # no loss at this position

Span = tuple[int, int]

GRANULARITIES = ("keyword", "sentence", "paragraph")
SCHEMES = ("BIOE", "BIO")
TAG_O, TAG_B, TAG_I, TAG_E = 0, 1, 2, 3  # boundary tags; BIO uses the first three
OUTSIDE_WORD = "outside"
DEFAULT_TAG_WORD = "fact"
# the tag word the system prompt names for each granularity (single tokens in Qwen2 and SmolLM2 vocabularies)
TAG_WORDS = {"keyword": "key", "sentence": "fact", "paragraph": "paragraph"}

UNITS = {
    "keyword": "keyword (the exact names, values and short phrases)",
    "sentence": "whole sentence",
    "paragraph": "whole document",
}
# Sentence rule: a sentence ends after . ! or ? when whitespace follows, or at a newline (3.5 and e.g.x stay whole).
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


def check_granularity(granularity: str) -> None:
    if granularity not in GRANULARITIES:
        raise ConfigError(f"CPRS granularity '{granularity}' is unknown (choose from {', '.join(GRANULARITIES)})")


def check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ConfigError(f"CPRS tag scheme '{scheme}' is unknown (choose from {', '.join(SCHEMES)})")


def system_prompt(granularity: str, tag_word: str = DEFAULT_TAG_WORD, query_aware: bool = True) -> str:
    """The compressor's system turn: what to extract, at which granularity, and which word tags it."""
    check_granularity(granularity)
    need = (
        "needed to answer the question in the user turn"
        if query_aware
        else "asked for by the instruction in the user turn"
    )
    return (
        "You are a context compressor. After the user turn comes a long context. "
        f"Mark every {UNITS[granularity]} of the context that is {need} with the tag word '{tag_word}'; "
        f"every other token of the context is '{OUTSIDE_WORD}'."
    )


def _entity_names(record: Record, doc_ids: Sequence[int]) -> list[str]:
    """Loong-mini's per-document entity names (meta["entities"]), else the document titles."""
    entities = record.meta.get("entities")
    if isinstance(entities, list) and len(entities) == len(record.docs):
        names = [str(entities[i]) for i in doc_ids]
    else:
        names = [record.docs[i].title for i in doc_ids]
    return list(dict.fromkeys(n for n in names if n))


def _field_label(record: Record) -> str | None:
    """How Loong-mini's questions name the asked field (meta["params"]["field"]), when the record has one."""
    params = record.meta.get("params")
    key = params.get("field") if isinstance(params, dict) else None
    if not isinstance(key, str):
        return None
    from repro.data.loong_mini.fields import FIELDS

    field = FIELDS.get(record.domain or "", {}).get(key)
    return field.label if field is not None else key.replace("_", " ")


def agnostic_instruction(record: Record) -> str:
    """A query-agnostic request for the record's evidence, naming its topic and entities but not the question.

    The labels stay the record's evidence spans. For Loong-mini this fits: its evidence is the sentences that
    state the asked field (meta["params"]["field"]) of the named entities (meta["entities"]), or, in the
    citation subtasks, the citing sentences. For other sources (HotpotQA, MuSiQue) the request only names the
    evidence documents' titles, so it is a loose description of question-specific evidence.
    """
    doc_ids = sorted({e.doc for e in record.evidence}) or list(record.needed_docs or [])
    names = ", ".join(_entity_names(record, doc_ids)) or "the documents"
    label = _field_label(record)
    if label is not None:
        return f"Find every statement of the {label} of: {names}."
    if (record.subtask or "").startswith("citation"):
        return f"Find every citation made in: {names}."
    return f"Find every fact about: {names}."


def user_query(record: Record, query_aware: bool) -> str:
    return record.question if query_aware else agnostic_instruction(record)


def prompt_prefix(
    tokenizer: Any, record: Record, granularity: str, query_aware: bool, tag_word: str = DEFAULT_TAG_WORD
) -> str:
    """Chat text before the context: system prompt, the query (or instruction), then the assistant header.

    The context tokens follow the assistant header directly; every window of a long context gets this prefix.
    """
    system = system_prompt(granularity, tag_word, query_aware)
    return apply_chat(tokenizer, user_query(record, query_aware), system=system, add_generation_prompt=True)


def context_text(record: Record) -> tuple[str, list[Span]]:
    """The documents as one context (render_doc headers, DOC_SEP between) and each doc's text span in it."""
    parts, doc_spans, pos = [], [], 0
    for i, doc in enumerate(record.docs, start=1):
        part = render_doc(i, doc)
        text_start = pos + len(render_doc(i, Doc(doc.title, "")))
        doc_spans.append((text_start, text_start + len(doc.text)))
        parts.append(part)
        pos += len(part) + len(DOC_SEP)
    return DOC_SEP.join(parts), doc_spans


def merge_spans(spans: Sequence[Span]) -> list[Span]:
    """Sorted spans with overlapping or touching ones merged and empty ones dropped."""
    merged: list[Span] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def sentence_spans(text: str) -> list[Span]:
    """Sentences of `text` (see _SENTENCE_END), stripped of surrounding whitespace, empty ones dropped."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        end = match.start() if match.group() == "\n" else match.end()
        spans.append((start, end))
        start = match.end()
    spans.append((start, len(text)))
    return [stripped for s, e in spans if (stripped := _strip_span(text, s, e))[1] > stripped[0]]


def _strip_span(text: str, start: int, end: int) -> Span:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _sentence_cover(text: str, start: int, end: int) -> Span:
    """The sentences that [start, end) touches, joined into one span that always contains [start, end)."""
    touched = [(s, e) for s, e in sentence_spans(text) if s < end and start < e]
    if not touched:
        return start, end
    return min(start, touched[0][0]), max(end, touched[-1][1])


def _paragraph_docs(record: Record) -> list[int]:
    if record.needed_docs is not None:
        return sorted(set(record.needed_docs))
    return sorted({e.doc for e in record.evidence})


NOT_NAMES = {"yes", "no"}  # answers that are no name or value of the evidence


def answer_strings(answer: Any) -> list[str]:
    """Every string an answer holds: itself, a list's items, a mapping's keys and values (nested)."""
    if isinstance(answer, dict):
        return [s for k, v in answer.items() for s in (*answer_strings(k), *answer_strings(v))]
    if isinstance(answer, list):
        return [s for item in answer for s in answer_strings(item)]
    return [str(answer)] if answer is not None else []


def keyword_spans(record: Record) -> list[tuple[int, int, int]]:
    """(doc, start, end) in the document's text of the names and values the evidence states.

    Loong-mini records list them (meta["keyword_spans"]: each evidence sentence's entity name and the asked value
    or cited name). Other records: every whole-word, case-blind occurrence inside an evidence span of an answer
    string (answer, aliases; not yes/no) or of an evidence document's entity name or title; an evidence span that
    holds none gives no keyword.
    """
    listed = record.meta.get("keyword_spans")
    if listed is not None:
        return _checked_keyword_spans(record, listed)
    doc_ids = sorted({e.doc for e in record.evidence})
    phrases = [*answer_strings(record.answer), *record.answer_aliases, *_entity_names(record, doc_ids)]
    phrases = list(dict.fromkeys(p.strip() for p in phrases if p.strip().lower() not in NOT_NAMES))
    return [
        (ev.doc, a, b)
        for ev in record.evidence
        for phrase in phrases
        for a, b in phrase_spans(record.docs[ev.doc].text, phrase, ev.start, ev.end)
    ]


def _checked_keyword_spans(record: Record, listed: Any) -> list[tuple[int, int, int]]:
    ok = isinstance(listed, list) and all(
        isinstance(item, list)
        and len(item) == 3
        and all(isinstance(v, int) for v in item)
        and 0 <= item[0] < len(record.docs)
        and 0 <= item[1] <= item[2] <= len(record.docs[item[0]].text)
        for item in listed
    )
    if not ok:
        raise DataError(f"{record.id}: meta['keyword_spans'] must be [doc, start, end] spans inside its documents")
    return [(d, s, e) for d, s, e in listed]


def critical_spans(record: Record, granularity: str) -> list[Span]:
    """Char spans [start, end) of context_text(record) to keep, sorted, merged and non-overlapping.

    keyword: the names and values the evidence states (keyword_spans); sentence: every sentence an evidence span
    touches; paragraph: the text of every needed document (needed_docs, else the documents holding evidence).
    """
    check_granularity(granularity)
    _, doc_spans = context_text(record)
    if granularity == "paragraph":
        return merge_spans([doc_spans[i] for i in _paragraph_docs(record)])
    if granularity == "keyword":
        return merge_spans([(doc_spans[d][0] + s, doc_spans[d][0] + e) for d, s, e in keyword_spans(record)])
    spans = []
    for ev in record.evidence:
        if ev.end <= ev.start:
            continue
        start, end = _sentence_cover(record.docs[ev.doc].text, ev.start, ev.end)
        offset = doc_spans[ev.doc][0]
        spans.append((offset + start, offset + end))
    return merge_spans(spans)


def _merge_overlapping(spans: Sequence[Span]) -> list[Span]:
    """Sorted non-empty spans with overlapping ones merged; spans that only touch stay apart."""
    merged: list[Span] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def token_runs(offsets: Sequence[Span], spans: Sequence[Span]) -> list[Span]:
    """Per span, the token range [first, last + 1) of the tokens that overlap it; runs sharing a token merge.

    A token overlaps span [s, e) when its chars (a, b) satisfy a < e and s < b, so special tokens with (0, 0)
    offsets never do. Runs that only touch stay apart, so BIOE can show where one span ends and the next begins.
    """
    disjoint = _merge_overlapping(spans)
    starts = [s for s, _ in disjoint]
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, (a, b) in enumerate(offsets):
        if a >= b:
            continue
        j = bisect_left(starts, b) - 1  # the last span that starts before the token ends
        while j >= 0 and disjoint[j][1] > a:  # disjoint spans have sorted ends, so stop at the first that ends early
            first.setdefault(j, i)
            last[j] = i
            j -= 1
    runs: list[Span] = []
    for lo, stop in sorted((first[j], last[j] + 1) for j in first):
        if runs and lo < runs[-1][1]:
            runs[-1] = (runs[-1][0], max(runs[-1][1], stop))
        else:
            runs.append((lo, stop))
    return runs


def runs_to_tags(runs: Sequence[Span], n_tokens: int, scheme: str = "BIOE") -> list[int]:
    """Boundary tags for token runs: BIOE marks B first, E last, I between; a one-token run is just B.

    BIO marks B first and I for the rest. Every token outside the runs is O.
    """
    check_scheme(scheme)
    tags = [TAG_O] * n_tokens
    for first, stop in runs:
        tags[first] = TAG_B
        for i in range(first + 1, stop):
            tags[i] = TAG_I
        if scheme == "BIOE" and stop - first > 1:
            tags[stop - 1] = TAG_E
    return tags


def token_labels(offsets: Sequence[Span], spans: Sequence[Span], scheme: str = "BIOE") -> list[int]:
    """Per-token boundary tags (O=0, B=1, I=2, E=3) for char `spans` given a tokenizer's offset mapping."""
    return runs_to_tags(token_runs(offsets, spans), len(offsets), scheme)


def word_targets(tags: Sequence[int]) -> list[int]:
    """The label-word target per token: 1 (the tag word) inside a span, 0 (the word 'outside') elsewhere."""
    return [0 if t == TAG_O else 1 for t in tags]


def build_example(
    record: Record,
    tokenizer: Any,
    granularity: str,
    query_aware: bool,
    max_tokens: int,
    tag_word: str = DEFAULT_TAG_WORD,
    scheme: str = "BIOE",
) -> dict:
    """One training example: the chat prefix (no loss) then the first window of context tokens, with targets.

    max_tokens bounds the whole example (prefix included), as the paper's window w does; context tokens past it
    are cut. Tags are computed on the whole context before the cut, so a span running past the window ends in I
    there, as it would at inference. `offsets` are the context chars of each kept context token.
    """
    check_scheme(scheme)
    prefix = prompt_prefix(tokenizer, record, granularity, query_aware, tag_word)
    prefix_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    room = max_tokens - len(prefix_ids)
    if room <= 0:
        raise ValueError(f"max_tokens={max_tokens} leaves no room for context after a {len(prefix_ids)}-token prefix")
    context, _ = context_text(record)
    encoded = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [(int(a), int(b)) for a, b in encoded["offset_mapping"]]
    tags = token_labels(offsets, critical_spans(record, granularity), scheme)
    ids, offsets, tags = encoded["input_ids"][:room], offsets[:room], tags[:room]
    pad = [IGNORE] * len(prefix_ids)
    return {
        "input_ids": list(prefix_ids) + list(ids),
        "prompt_len": len(prefix_ids),
        "tags": pad + tags,
        "word_targets": pad + word_targets(tags),
        "critical_mask": [0] * len(prefix_ids) + [int(t != TAG_O) for t in tags],
        "offsets": offsets,
        "truncated": len(encoded["input_ids"]) > room,
        "tag_word": tag_word,
    }
