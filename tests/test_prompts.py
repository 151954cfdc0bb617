"""Prompt building: the exact L1 text, Loong templates, whole-document fitting to a budget, chat templates."""

from __future__ import annotations

import pytest

from repro.data.prompts import (
    L1_TEMPLATE,
    LOONG_TEMPLATE,
    apply_chat,
    build_prompt,
    chat_messages,
    fill_template,
    fit_docs,
    l1_prompt,
    loong_prompt,
    render_doc,
    split_l1_prompt,
    token_counter,
)
from repro.data.schema import Doc, Record
from repro.errors import ConfigError, ModelError


def words(text: str) -> int:
    return len(text.split())


def make_record(docs, meta=None, instruction="Answer briefly.", question="Which one?") -> Record:
    return Record(
        id="r1",
        source="test",
        task="qa",
        docs=docs,
        question=question,
        answer="x",
        instruction=instruction,
        meta=meta or {},
    )


# A, B, C, D cost 3 header words ("Document i: X") plus 5, 10, 3, 4 text words: 8, 13, 6, 7.
A, B, C, D = (Doc("A", "a " * 5), Doc("B", "b " * 10), Doc("C", "c " * 3), Doc("D", "d " * 4))


def test_l1_template_exact():
    assert L1_TEMPLATE == (
        "Please read the following text and answer the question below.\n\n<text>\n{content}\n</text>\n\n{question}"
        '\n\nFormat your response as follows: "Therefore, the answer is (insert answer here)".'
    )
    assert l1_prompt("Who won?", "Doc {body}") == (
        "Please read the following text and answer the question below.\n\n<text>\nDoc {body}\n</text>\n\n"
        'Who won?\n\nFormat your response as follows: "Therefore, the answer is (insert answer here)".'
    )
    assert l1_prompt("Q", "T") == L1_TEMPLATE.format(content="T", question="Q")


def test_split_l1_prompt_undoes_l1_prompt():
    text = l1_prompt("What?\nA. x\nB. y", "line one\n\nline two", 'Format your response as follows: "X".')
    assert split_l1_prompt(text) == (
        "line one\n\nline two",
        "What?\nA. x\nB. y",
        'Format your response as follows: "X".',
    )
    assert split_l1_prompt("no document here") is None


def test_fit_docs_skips_what_overflows_and_keeps_going():
    # overhead 2: A -> 10, B would make 23 > 20 (dropped), C -> 16, D would make 23 > 20 (dropped)
    kept, dropped = fit_docs([A, B, C, D], 20, words, overhead_tokens=2)
    assert kept == [A, C] and dropped == 2
    assert all(k is d for k, d in zip(kept, [A, C], strict=True))  # whole objects, never cut
    # a roomier budget: A 8 + B 13 = 21, C 27 > 26 dropped, D 28 > 26 dropped
    assert fit_docs([A, B, C, D], 26, words) == ([A, B], 2)
    assert fit_docs([A, B, C, D], 34, words) == ([A, B, C, D], 0)
    assert fit_docs([A, B], 5, words, overhead_tokens=6) == ([], 2)


def test_fit_docs_respects_budget_for_every_budget():
    docs = [A, B, C, D]
    for budget in range(0, 40):
        kept, dropped = fit_docs(docs, budget, words, overhead_tokens=1)
        assert len(kept) + dropped == len(docs)
        rendered = "\n\n".join(render_doc(i, d) for i, d in enumerate(kept, start=1))
        assert 1 + words(rendered) <= budget or not kept


def test_loong_prompt_uses_record_template_and_headers():
    rec = make_record([A, C], meta={"prompt_template": "{instruction}\n\n{docs}\n\n{question}"})
    assert loong_prompt(rec, [A, C]) == (
        "Answer briefly.\n\nDocument 1: A\n" + A.text + "\n\nDocument 2: C\n" + C.text + "\n\nWhich one?"
    )
    plain = make_record([A])
    assert loong_prompt(plain, [A]) == LOONG_TEMPLATE.format(
        docs="Document 1: A\n" + A.text, instruction="Answer briefly.", question="Which one?"
    )


def test_fill_template_leaves_braces_in_values():
    assert fill_template("{docs}|{instruction}|{question}", "d {question}", "i {docs}", "q {x}") == (
        "d {question}|i {docs}|q {x}"
    )
    assert fill_template("{question}", "D", "", "Q") == "D\n\nQ"


def test_build_prompt_loong_within_budget():
    rec = make_record([A, B, C, D])
    overhead = words(loong_prompt(rec, []))  # "Answer briefly. Which one?" = 4
    assert overhead == 4
    text, dropped = build_prompt(rec, "loong", 20, words)
    # 4 + A 8 = 12, B 25 > 20, C 18, D 25 > 20
    assert dropped == 2
    assert text == loong_prompt(rec, [A, C])
    assert words(text) <= 20
    assert build_prompt(rec, "loong")[0] == loong_prompt(rec, [A, B, C, D])


def test_build_prompt_l1_single_doc_is_bare_and_dropped_whole():
    rec = make_record([Doc("report", "one two three")], instruction="", question="Q?")
    text, dropped = build_prompt(rec, "l1", 100, words)
    assert (text, dropped) == (l1_prompt("Q?", "one two three"), 0)
    overhead = words(l1_prompt("Q?", ""))
    text, dropped = build_prompt(rec, "l1", overhead + 2, words)
    assert (text, dropped) == (l1_prompt("Q?", ""), 1)


def test_build_prompt_l1_multi_doc_puts_instruction_before_question():
    rec = make_record([A, C])
    text, _ = build_prompt(rec, "l1")
    assert text == l1_prompt(
        "Answer briefly.\n\nWhich one?", "Document 1: A\n" + A.text + "\n\nDocument 2: C\n" + C.text
    )


def test_build_prompt_drops_more_when_counts_do_not_add_up():
    # a counter whose count of the whole exceeds the sum of the parts (as real tokenizers may)
    def lumpy(text: str) -> int:
        return words(text) + (10 if len(text) > 60 else 0)

    rec = make_record([A, C, D])
    text, dropped = build_prompt(rec, "loong", 30, lumpy)
    assert lumpy(text) <= 30
    assert dropped >= 1 and text == loong_prompt(rec, [A, C, D][: 3 - dropped])


def test_build_prompt_shuffle_is_seeded_and_optional():
    rec = make_record([A, B, C, D])
    a, _ = build_prompt(rec, "loong", shuffle_seed=1)
    assert a == build_prompt(rec, "loong", shuffle_seed=1)[0]
    assert {build_prompt(rec, "loong", shuffle_seed=s)[0] for s in range(8)} != {a}
    fixed = make_record([A, B, C, D], meta={"shuffle_doc": False})
    assert build_prompt(fixed, "loong", shuffle_seed=1)[0] == loong_prompt(fixed, [A, B, C, D])


def test_build_prompt_rejects_unknown_style_and_missing_counter():
    with pytest.raises(ConfigError, match="prompt style 'chatml' is unknown"):
        build_prompt(make_record([A]), "chatml")
    with pytest.raises(ValueError, match="count_tokens"):
        build_prompt(make_record([A]), "loong", 10)


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")


def test_chat_messages():
    assert chat_messages("hi") == [{"role": "user", "content": "hi"}]
    assert chat_messages("hi", system="be brief") == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]


def test_apply_chat(tiny_tokenizer):
    tiny_tokenizer.chat_template = None
    with pytest.raises(ModelError, match="has no chat template"):
        apply_chat(tiny_tokenizer, "hello")
    tiny_tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    assert apply_chat(tiny_tokenizer, "hello", system="sys") == "<|system|>sys\n<|user|>hello\n<|assistant|>"
    assert apply_chat(tiny_tokenizer, "hello", add_generation_prompt=False) == "<|user|>hello\n"
    assert token_counter(tiny_tokenizer)("hello big world") == 3
