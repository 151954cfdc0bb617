"""CPRS training labels: context offsets, keyword/sentence/paragraph spans, BIOE tags and built examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.cprs.labels import (
    IGNORE,
    TAG_B,
    TAG_E,
    TAG_I,
    TAG_O,
    agnostic_instruction,
    answer_strings,
    build_example,
    context_text,
    critical_spans,
    keyword_spans,
    merge_spans,
    sentence_spans,
    system_prompt,
    token_labels,
    word_targets,
)
from repro.data.phrases import phrase_spans
from repro.data.schema import Doc, Evidence, Record
from repro.errors import ConfigError, DataError

FIXTURES = Path(__file__).parent / "fixtures"
O, B, I, E = TAG_O, TAG_B, TAG_I, TAG_E  # noqa: E741 (short names keep the hand-written tag lists readable)

# doc 0 sentences: "It rose." (0, 8), "Sales hit 5.2 m!" (9, 25), then a newline, "End" (26, 29)
ALPHA = "It rose. Sales hit 5.2 m!\nEnd"
# doc 1 sentences: "Zürich – 東京 is far." (0, 19), "Tea." (20, 24)
BETA = "Zürich – 東京 is far. Tea."
ALPHA_AT = len("Document 1: Alpha\n")  # 18
BETA_AT = ALPHA_AT + len(ALPHA) + len("\n\n") + len("Document 2: Beta\n")  # 18 + 29 + 2 + 17 = 66


def make_record(evidence: list[Evidence], needed_docs: list[int] | None = None) -> Record:
    return Record(
        id="r1",
        source="hand",
        task="qa",
        docs=[Doc("Alpha", ALPHA), Doc("Beta", BETA)],
        question="What did sales hit, and where is Beta?",
        answer="5.2 m",
        evidence=evidence,
        needed_docs=needed_docs,
    )


@pytest.fixture(scope="module")
def tokenizer():
    from repro.tiny import build_tokenizer  # the tiny model's own tokenizer, without building the model

    return build_tokenizer()


def test_context_text_offsets_point_at_each_doc_text():
    context, doc_spans = context_text(make_record([]))
    assert (ALPHA_AT, BETA_AT) == (18, 66)
    assert doc_spans == [(18, 47), (66, 90)]
    assert context == "Document 1: Alpha\n" + ALPHA + "\n\nDocument 2: Beta\n" + BETA
    assert [context[s:e] for s, e in doc_spans] == [ALPHA, BETA]


def test_sentence_rule_splits_on_end_marks_and_newlines_only():
    assert sentence_spans(ALPHA) == [(0, 8), (9, 25), (26, 29)]
    assert sentence_spans(BETA) == [(0, 19), (20, 24)]
    assert sentence_spans("Pi is 3.14, e.g.x too") == [(0, 21)]
    assert sentence_spans("") == []
    assert sentence_spans("A.  \n\n  B") == [(0, 2), (8, 9)]


def test_keyword_spans_are_answer_strings_and_names_inside_the_evidence():
    """Evidence: "Sales hit 5.2 m!" (doc 0, 9-25) and "Zürich – 東京 is far." (doc 1, 0-19). The answer "5.2 m" sits
    at doc 0 19-24, context 18 + 19 = 37 to 42; the alias "東京" at doc 1 9-11, context 66 + 9 = 75 to 77; the alias
    "ZÜRICH" matches "Zürich" whatever the case, 66-72; the alias "5" is inside the number 5.2 and "End" outside
    the evidence: neither is a keyword. The titles "Alpha" and "Beta" are not in the evidence."""
    record = make_record([Evidence(0, 9, 25), Evidence(1, 0, 19)])
    record.answer_aliases = ["東京", "ZÜRICH", "5", "End"]
    context, _ = context_text(record)
    spans = critical_spans(record, "keyword")
    assert spans == [(37, 42), (66, 72), (75, 77)]
    assert [context[s:e] for s, e in spans] == ["5.2 m", "Zürich", "東京"]
    assert keyword_spans(record) == [(0, 19, 24), (1, 9, 11), (1, 0, 6)]
    # sentence and paragraph stay as they were: the sentences, the documents
    sentences = [context[s:e] for s, e in critical_spans(record, "sentence")]
    assert sentences == ["Sales hit 5.2 m!", "Zürich – 東京 is far."]
    assert critical_spans(record, "paragraph") == [(18, 47), (66, 90)]


def test_keyword_names_come_from_entities_and_yes_no_is_no_keyword():
    record = make_record([Evidence(0, 0, 25)])  # "It rose. Sales hit 5.2 m!"
    record.answer = {"yes": ["Sales"], "no": []}
    record.meta = {"entities": ["rose", "Beta"]}
    context, _ = context_text(record)
    # answer strings: "yes", "Sales", "no" (yes and no dropped); entity of doc 0: "rose" (3-7 in doc 0)
    assert answer_strings(record.answer) == ["yes", "Sales", "no"]
    assert [context[s:e] for s, e in critical_spans(record, "keyword")] == ["rose", "Sales"]


def test_phrase_spans_by_hand():
    text = "Revenue of $1,034.9 million; 1 office in Vinci, Leonardo da Vinci's town (not Vincible)."
    assert phrase_spans(text, "$1,034.9 million") == [(11, 27)]
    assert phrase_spans(text, "1") == [(29, 30)]  # the 1 of "$1,034.9" is part of a longer number
    assert phrase_spans(text, "vinci") == [(41, 46), (60, 65)]  # not inside "Vincible"
    assert phrase_spans(text, "vinci", 47) == [(60, 65)]
    assert phrase_spans(text, "  ") == []


def test_sentence_spans_cover_whole_sentences_around_evidence():
    record = make_record([Evidence(0, 19, 22), Evidence(1, 9, 11)])
    context, _ = context_text(record)
    spans = critical_spans(record, "sentence")
    assert spans == [(27, 43), (66, 85)]
    assert [context[s:e] for s, e in spans] == ["Sales hit 5.2 m!", "Zürich – 東京 is far."]


def test_sentence_span_never_cuts_inside_evidence_that_crosses_a_boundary():
    record = make_record([Evidence(0, 5, 12)])  # "se. Sal": across the end of the first sentence
    assert critical_spans(record, "sentence") == [(18, 43)]
    abbreviation = Record("r2", "hand", "qa", [Doc("", "Dr. Who ran. Next.")], "q", "a", evidence=[Evidence(0, 0, 7)])
    # "Dr." ends a sentence by the simple rule, but the evidence "Dr. Who" pulls both pieces in whole
    at = len("Document 1\n")
    assert critical_spans(abbreviation, "sentence") == [(at, at + 12)]


def test_paragraph_spans_are_needed_docs_or_else_evidence_docs():
    assert critical_spans(make_record([Evidence(0, 19, 22)], needed_docs=[1, 0]), "paragraph") == [(18, 47), (66, 90)]
    assert critical_spans(make_record([Evidence(1, 0, 3)]), "paragraph") == [(66, 90)]
    assert critical_spans(make_record([]), "paragraph") == []


def test_listed_keyword_spans_merge_when_they_overlap_or_touch_and_bad_ones_are_a_data_error():
    record = make_record([Evidence(0, 9, 25)])
    record.meta = {"keyword_spans": [[0, 9, 14], [0, 12, 18], [0, 18, 22], [1, 4, 4]]}
    assert critical_spans(record, "keyword") == [(27, 40)]
    for bad in ([[0, 9]], [[2, 0, 1]], [[0, 20, 30]], "x"):
        record.meta = {"keyword_spans": bad}
        with pytest.raises(DataError, match="keyword_spans"):
            critical_spans(record, "keyword")
    assert merge_spans([(5, 7), (0, 2), (2, 3), (9, 9), (6, 8)]) == [(0, 3), (5, 8)]


def test_unknown_granularity_is_a_config_error():
    with pytest.raises(ConfigError, match="granularity"):
        critical_spans(make_record([]), "word")
    with pytest.raises(ConfigError, match="granularity"):
        system_prompt("word", "fact", True)


def test_system_prompt_names_granularity_tag_word_and_mode():
    aware = system_prompt("sentence", "needle", query_aware=True)
    assert "whole sentence" in aware and "'needle'" in aware and "'outside'" in aware and "question" in aware
    agnostic = system_prompt("paragraph", "chain", query_aware=False)
    assert "whole document" in agnostic and "'chain'" in agnostic and "instruction" in agnostic
    assert "keyword" in system_prompt("keyword")


# tokens:    special  "abc"   "d"     "efghi"  "j"      "klmno"   "pqrst"   special
OFFSETS = [(0, 0), (0, 3), (3, 4), (4, 9), (9, 10), (10, 15), (15, 20), (0, 0)]


def test_bioe_tags_on_hand_made_offsets():
    assert token_labels(OFFSETS, [(3, 9), (15, 20)]) == [O, O, B, E, O, O, B, O]  # one-token span is B
    assert token_labels(OFFSETS, [(2, 5)]) == [O, B, I, E, O, O, O, O]  # partial overlap counts
    assert token_labels(OFFSETS, [(3, 4), (4, 9)]) == [O, O, B, B, O, O, O, O]  # touching spans stay two
    assert token_labels(OFFSETS, [(0, 1), (2, 3)]) == [O, B, O, O, O, O, O, O]  # spans sharing a token merge
    assert token_labels(OFFSETS, [(1, 12), (11, 16)]) == [O, B, I, I, I, I, E, O]  # overlapping spans merge
    assert token_labels(OFFSETS, []) == [O] * 8
    assert token_labels([], [(0, 4)]) == []


def test_bio_tags_and_word_targets():
    tags = token_labels(OFFSETS, [(3, 9), (10, 20)], scheme="BIO")
    assert tags == [O, O, B, I, O, B, I, O]
    assert word_targets(tags) == [0, 0, 1, 1, 0, 1, 1, 0]
    assert word_targets([O, B, I, E]) == [0, 1, 1, 1]
    with pytest.raises(ConfigError, match="scheme"):
        token_labels(OFFSETS, [], scheme="IOB2")


def test_unicode_spans_map_to_exact_substrings_through_a_tokenizer(tokenizer):
    record = make_record([Evidence(1, 0, 11)])
    context, _ = context_text(record)
    (span,) = critical_spans(record, "sentence")
    assert context[span[0] : span[1]] == "Zürich – 東京 is far."
    encoded = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [tuple(o) for o in encoded["offset_mapping"]]
    tags = token_labels(offsets, [span])
    inside = [offsets[i] for i, t in enumerate(tags) if t != O]
    assert min(a for a, _ in inside) == 66 and max(b for _, b in inside) == 85
    assert tags[[i for i, t in enumerate(tags) if t != O][0]] == B
    assert tags[[i for i, t in enumerate(tags) if t != O][-1]] == E


def test_build_example_layout_and_targets(tokenizer):
    record = make_record([Evidence(0, 19, 22), Evidence(1, 0, 11)])
    example = build_example(record, tokenizer, "sentence", query_aware=True, max_tokens=4096)
    n, p = len(example["input_ids"]), example["prompt_len"]
    assert not example["truncated"] and example["tag_word"] == "fact"
    assert len(example["tags"]) == len(example["word_targets"]) == len(example["critical_mask"]) == n
    assert example["tags"][:p] == [IGNORE] * p and example["word_targets"][:p] == [IGNORE] * p
    assert example["critical_mask"][:p] == [0] * p
    prefix = tokenizer.decode(example["input_ids"][:p])
    assert record.question in prefix and "whole sentence" in prefix
    context, _ = context_text(record)
    assert len(example["offsets"]) == n - p
    assert tokenizer.decode(example["input_ids"][p:]) == context
    kept = {i for i, m in enumerate(example["critical_mask"][p:]) if m}
    spans = critical_spans(record, "sentence")
    for i, (a, b) in enumerate(example["offsets"]):
        assert (i in kept) == any(a < e and s < b for s, e in spans)
    tags = example["tags"][p:]
    assert example["word_targets"][p:] == [int(t != O) for t in tags]
    assert sum(t == B for t in tags) == 2 and sum(t == E for t in tags) == 2


def test_build_example_agnostic_prompt_and_first_window_cut(tokenizer):
    record = make_record([Evidence(1, 0, 11)])
    full = build_example(record, tokenizer, "keyword", query_aware=False, max_tokens=4096)
    p = full["prompt_len"]
    prefix = tokenizer.decode(full["input_ids"][:p])
    assert record.question not in prefix and agnostic_instruction(record) in prefix
    cut = build_example(record, tokenizer, "keyword", query_aware=False, max_tokens=p + 5)
    assert cut["truncated"] and len(cut["input_ids"]) == p + 5 and cut["input_ids"] == full["input_ids"][: p + 5]
    assert cut["tags"] == full["tags"][: p + 5] and cut["offsets"] == full["offsets"][:5]
    with pytest.raises(ValueError, match="no room"):
        build_example(record, tokenizer, "keyword", query_aware=False, max_tokens=p)


def test_span_cut_by_the_window_edge_ends_in_i_not_e(tokenizer):
    record = make_record([Evidence(0, 0, len(ALPHA))])
    full = build_example(record, tokenizer, "sentence", query_aware=True, max_tokens=4096)
    first_inside = full["critical_mask"].index(1)
    assert first_inside >= full["prompt_len"]
    cut = build_example(record, tokenizer, "sentence", query_aware=True, max_tokens=first_inside + 2)
    assert cut["tags"][-2:] == [B, I]


def test_loong_mini_records_label_their_evidence():
    from repro.data.loong_mini.fields import FIELDS
    from repro.data.loong_mini.generate import generate

    record = generate(1, seed=3, sets=(1,), tasks="spotlight")[0]
    context, doc_spans = context_text(record)
    keyword = critical_spans(record, "keyword")
    (evidence,) = record.evidence
    (doc,) = record.needed_docs
    field = record.meta["params"]["field"]
    value = FIELDS[record.domain][field].fmt(record.meta["facts"][doc][field])
    # the keywords are the entity's name and the asked value, both inside the evidence sentence
    assert sorted(context[s:e] for s, e in keyword) == sorted([record.meta["entities"][doc], value])
    at = doc_spans[doc][0]
    assert all(at + evidence.start <= s < e <= at + evidence.end for s, e in keyword)
    instruction = agnostic_instruction(record)
    (needed,) = record.needed_docs
    assert record.meta["entities"][needed] in instruction and record.question not in instruction
    assert critical_spans(record, "paragraph") == [doc_spans[needed]]
    sentence = critical_spans(record, "sentence")
    assert all(any(s <= a and b <= e for s, e in sentence) for a, b in keyword)


def test_agnostic_instruction_falls_back_to_titles_and_citations():
    assert agnostic_instruction(make_record([Evidence(1, 0, 3)])) == "Find every fact about: Beta."
    record = make_record([Evidence(0, 0, 3)])
    record.subtask = "citation_chain"
    assert agnostic_instruction(record) == "Find every citation made in: Alpha."


def test_hotpotqa_supporting_facts_label_sentences_and_their_documents():
    from repro.data.converters import convert

    record = convert("hotpotqa", str(FIXTURES / "hotpotqa" / "hotpot_dev_distractor.json"))[0]
    context, _ = context_text(record)
    facts = ["Edward Davis Wood Jr. was an American filmmaker.", "Scott Derrickson is an American director."]
    assert [context[s:e] for s, e in critical_spans(record, "sentence")] == facts
    # keywords: the titles of the evidence documents where the facts name them ("Ed Wood" is "Edward Davis Wood
    # Jr." there); the answer "yes" is none
    assert [context[s:e] for s, e in critical_spans(record, "keyword")] == ["Scott Derrickson"]
    assert [context[s:e] for s, e in critical_spans(record, "paragraph")] == [
        "Edward Davis Wood Jr. was an American filmmaker. He made low-budget films.",
        "Scott Derrickson is an American director. He lives in Los Angeles. He directed Doctor Strange.",
    ]


def test_musique_supporting_paragraphs_are_the_spans_at_every_granularity():
    from repro.data.converters import convert

    record = convert("musique", str(FIXTURES / "musique" / "musique_ans_dev.jsonl"))[0]
    context, _ = context_text(record)
    paragraphs = [
        "The Mona Lisa is a portrait painted by Leonardo da Vinci and kept at the Louvre.",
        "Leonardo da Vinci was born in Vinci in 1452.",
    ]
    for granularity in ("sentence", "paragraph"):
        assert [context[s:e] for s, e in critical_spans(record, granularity)] == paragraphs
    # the titles of the evidence documents ("Mona Lisa", "Leonardo da Vinci") and the answer "Vinci", wherever
    # the supporting paragraphs hold them (the answer inside the painter's name merges into it)
    keywords = [context[s:e] for s, e in critical_spans(record, "keyword")]
    assert keywords == ["Mona Lisa", "Leonardo da Vinci", "Leonardo da Vinci", "Vinci"]


def test_loong_mini_keyword_strings_name_the_entity_and_the_asked_value():
    from repro.data.loong_mini.render import keyword_strings

    case = {"case_id": "2011-CV-70766", "category": "Contract", "plaintiff": "Jonas Fenwick", "cause": "a breach"}
    assert keyword_strings("legal", case, "cause", "category") == ["2011-CV-70766", "Contract"]
    assert keyword_strings("legal", case, "cause", "plaintiff") == ["2011-CV-70766", "Jonas Fenwick"]
    assert keyword_strings("paper", {"title": "Deep Nets"}, "cite:Old Nets") == ["Deep Nets", "Old Nets"]
    company = {"company": "Acme Ltd", "revenue": 1034.9}
    assert keyword_strings("financial", company, "revenue", "revenue") == ["Acme Ltd", "$1,034.9 million"]


def test_every_loong_mini_evidence_sentence_has_its_name_and_value_and_nothing_else():
    from repro.data.loong_mini.generate import generate

    for record in generate(26, seed=5, sets=(1,)):
        listed = record.meta["keyword_spans"]
        for ev in record.evidence:
            inside = [(s, e) for d, s, e in listed if d == ev.doc and ev.start <= s < e <= ev.end]
            assert len(inside) >= 2, record.id  # the entity's name and the value (or the cited name)
        assert all(any(d == ev.doc and ev.start <= s and e <= ev.end for ev in record.evidence) for d, s, e in listed)
        words = sum(e - s for s, e in critical_spans(record, "keyword"))
        assert 0 < words < sum(e - s for s, e in critical_spans(record, "sentence"))
