"""Prompt text: the QwenLong-L1 document-QA prompt, Loong's templates, fitting whole documents to a budget, chat."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from repro.data.schema import Doc, Record
from repro.errors import ConfigError, ModelError

CountTokens = Callable[[str], int]
RenderDoc = Callable[[int, Doc], str]
Style = Literal["l1", "loong"]
STYLES = ("l1", "loong")

L1_INTRO = "Please read the following text and answer the question below."
FORMAT_PREFIX = "Format your response as follows:"
L1_FORMAT = FORMAT_PREFIX + ' "Therefore, the answer is (insert answer here)".'
L1_TEMPLATE = L1_INTRO + "\n\n<text>\n{content}\n</text>\n\n{question}\n\n" + L1_FORMAT
LOONG_TEMPLATE = "{docs}\n\n{instruction}\n\n{question}"
DOC_SEP = "\n\n"
_SLOTS = re.compile(r"\{(docs|instruction|question)\}")


def l1_prompt(question: str, docs_text: str, format_line: str = L1_FORMAT) -> str:
    """The QwenLong-L1 user turn; with the default format line it equals L1_TEMPLATE filled in."""
    return f"{L1_INTRO}\n\n<text>\n{docs_text}\n</text>\n\n{question}\n\n{format_line}"


def split_l1_prompt(content: str) -> tuple[str, str, str] | None:
    """Undo l1_prompt: (document text, question, format line) of an L1-style user turn, None without <text>.

    The text between the first <text> and the last </text> is the document, less the one newline each side
    that the template adds; after it comes the question, then the last "Format your response as follows:"
    paragraph ("" when there is none).
    """
    start, end = content.find("<text>"), content.rfind("</text>")
    if start < 0 or end < start:
        return None
    doc = content[start + len("<text>") : end].removeprefix("\n").removesuffix("\n")
    rest = content[end + len("</text>") :]
    cut = rest.rfind(FORMAT_PREFIX)
    if cut < 0:
        return doc, rest.strip(), ""
    return doc, rest[:cut].strip(), rest[cut:].strip()


def render_doc(index: int, doc: Doc) -> str:
    """One document with its header; `index` counts from 1 in the order shown."""
    header = f"Document {index}: {doc.title}" if doc.title else f"Document {index}"
    return f"{header}\n{doc.text}"


def render_docs(docs: Sequence[Doc], render: RenderDoc = render_doc) -> str:
    return DOC_SEP.join(render(i, d) for i, d in enumerate(docs, start=1))


def fill_template(template: str, docs_text: str, instruction: str, question: str) -> str:
    """Fill {docs}, {instruction} and {question} in one pass, so braces inside the values stay as they are.

    A template without {docs} gets the documents in front, so they are never silently left out.
    """
    values = {"docs": docs_text, "instruction": instruction, "question": question}
    text = _SLOTS.sub(lambda m: values[m.group(1)], template)
    return text if "{docs}" in template else docs_text + DOC_SEP + text


def loong_prompt(record: Record, docs: Sequence[Doc]) -> str:
    """Loong's prompt: the record's own meta["prompt_template"] when it has one, else LOONG_TEMPLATE."""
    template = record.meta.get("prompt_template") or LOONG_TEMPLATE
    return fill_template(template, render_docs(docs), record.instruction, record.question)


def fit_docs(
    docs: Sequence[Doc],
    budget_tokens: int,
    count_tokens: CountTokens,
    overhead_tokens: int = 0,
    render: RenderDoc = render_doc,
) -> tuple[list[Doc], int]:
    """Keep whole documents, in order, while overhead + rendered documents fit `budget_tokens`.

    A document that would overflow is dropped whole (never cut) and the next ones are still tried, so a
    later, smaller document may fill the room left: this is what Loong's assembly loop does (`continue` on a
    document that does not fit). Each document costs the tokens of its rendering (header included, at the
    index it will have) plus a separator, which slightly over-counts and so never overflows.
    Returns (kept documents in their original order, number dropped).
    """
    kept: list[Doc] = []
    used, dropped = overhead_tokens, 0
    for doc in docs:
        cost = count_tokens(render(len(kept) + 1, doc) + DOC_SEP)
        if used + cost > budget_tokens:
            dropped += 1
            continue
        kept.append(doc)
        used += cost
    return kept, dropped


def _l1_parts(record: Record) -> tuple[str, str]:
    """(question block, format line) for the L1 prompt of a record.

    An instruction that starts with "Format your response as follows:" is the record's own format line (the
    DocQA-RL converter keeps it there, e.g. for multiple choice); any other instruction goes before the question.
    """
    instruction = record.instruction.strip()
    if instruction.startswith(FORMAT_PREFIX):
        return record.question, instruction
    return (f"{instruction}\n\n{record.question}" if instruction else record.question), L1_FORMAT


def _bare_doc(index: int, doc: Doc) -> str:
    return doc.text


def _assembler(record: Record, style: Style) -> tuple[Callable[[Sequence[Doc]], str], RenderDoc]:
    """(documents -> finished user text, how one document is rendered) for a record in a style."""
    if style == "loong":
        return (lambda docs: loong_prompt(record, docs)), render_doc
    question, format_line = _l1_parts(record)
    render = _bare_doc if len(record.docs) == 1 else render_doc
    return (lambda docs: l1_prompt(question, render_docs(docs, render), format_line)), render


def build_prompt(
    record: Record,
    style: Style = "l1",
    budget_tokens: int | None = None,
    count_tokens: CountTokens | None = None,
    shuffle_seed: int | None = None,
) -> tuple[str, int]:
    """The user text for `record` in the "l1" or "loong" style, and how many documents were dropped.

    With a budget, the template (question, instruction, format line) is counted first and documents are
    added with fit_docs; the finished prompt is then counted again and, since a tokenizer's counts of parts
    need not add up exactly, trailing documents are dropped until it fits. If even the bare template
    exceeds the budget, every document is dropped and the text is returned anyway (dropped == len(docs)).
    The chat template's own tokens are not counted: leave room for them in the budget.
    With `shuffle_seed`, kept documents are shuffled per record (seeded by the seed and the record id)
    unless meta["shuffle_doc"] is false, as Loong shuffles its documents after fitting them.
    In the L1 style a single document is shown bare, as in DocQA-RL; several get headers (render_doc).
    """
    if style not in STYLES:
        raise ConfigError(f"prompt style '{style}' is unknown (choose from {', '.join(STYLES)})")
    assemble, render = _assembler(record, style)
    kept, dropped = list(record.docs), 0
    if budget_tokens is not None:
        if count_tokens is None:
            raise ValueError("build_prompt: count_tokens is needed with budget_tokens")
        kept, dropped = fit_docs(record.docs, budget_tokens, count_tokens, count_tokens(assemble([])), render)
    if shuffle_seed is not None and record.meta.get("shuffle_doc", True):
        random.Random(f"{shuffle_seed}:{record.id}").shuffle(kept)
    text = assemble(kept)
    if budget_tokens is not None and count_tokens is not None:
        while kept and count_tokens(text) > budget_tokens:
            kept.pop()
            dropped += 1
            text = assemble(kept)
    return text, dropped


def chat_messages(user_text: str, system: str | None = None) -> list[dict]:
    """One user turn, after a system turn when one is given."""
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": user_text}]


def apply_chat(tokenizer: Any, user_text: str, system: str | None = None, add_generation_prompt: bool = True) -> str:
    """The model's chat text for one user turn; a tokenizer without a chat template is a ModelError."""
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(
            f"tokenizer '{name}' has no chat template: use an instruct/chat model or set tokenizer.chat_template"
        )
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(
            chat_messages(user_text, system), tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except (TemplateError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"tokenizer '{name}': chat template failed: {first}") from exc


def token_counter(tokenizer: Any) -> CountTokens:
    """count_tokens for fit_docs / build_prompt: the tokenizer's token count of a text, no special tokens."""

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    return count
