"""Loong-mini generator: determinism, coverage, gold answers re-derived from facts, spans, lengths and Loong layout."""

from __future__ import annotations

import datetime as dt
import glob
import json
import re
from functools import cache
from pathlib import Path

import pytest

from repro.data.loong_mini import CPU_SET_RANGES, generate, write_loong_format
from repro.data.schema import read_records, write_records
from repro.errors import DataError

NAME = {"financial": "company", "legal": "case_id", "paper": "title"}
CITES = {"legal": "cites", "paper": "references"}
CATEGORY = {"financial": "sector", "legal": "category", "paper": "area"}
LEVEL = {"spotlight": 1, "comparison": 2, "clustering": 3, "chain_of_reasoning": 4}
SUBTASKS = {
    "spotlight": {"locating"},
    "comparison": {"sequential_enumeration", "extremum", "range_counting"},
    "clustering": {"bucketing", "classification", "citation_reference"},
    "chain_of_reasoning": {"temporal_trend", "citation_chain", "ordering"},
}
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October")
MONTHS += ("November", "December")


@cache
def sample(n: int = 320, seed: int = 7, split: str = "train", distractors: int = 0) -> tuple:
    return tuple(generate(n, seed=seed, split=split, distractors=distractors))


def proxy_tokens(text: str) -> int:
    return round(1.3 * len(text.split()))


def shown(field: str, value) -> str:
    """How the documents write a value, worked out here independently of the generator."""
    if field in ("revenue", "net_profit", "total_assets"):
        return f"${value:,.1f} million"
    if field == "shares_outstanding":
        return f"{value:,.1f} million"
    if field == "eps":
        return f"${value:.2f}"
    if field == "damages":
        return f"${value:,}"
    if field == "date":
        d = dt.date.fromisoformat(value)
        return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"
    if field == "score":
        return f"{value:.1f}"
    return str(value)


def expected_answer(rec):
    """Re-derive the gold answer from the structured facts of the needed documents and the question's parameters."""
    facts, p, key = rec.meta["facts"], rec.meta["params"], NAME[rec.domain]
    needed = [facts[i] for i in rec.needed_docs]
    names = [f[key] for f in needed]
    by_name = {f[key]: f for f in needed}
    field = p.get("field")
    sub = rec.subtask
    if sub == "locating":
        (only,) = needed
        return shown(field, only[field])
    if sub == "sequential_enumeration":
        return [f[key] for f in sorted(needed, key=lambda f: f[field], reverse=p["order"] == "desc")]
    if sub == "extremum":
        return (max if p["extreme"] == "max" else min)(needed, key=lambda f: f[field])[key]
    if sub == "range_counting":
        assert all(f[field] != p["threshold"] for f in needed)
        if p["direction"] == "above":
            return str(sum(f[field] > p["threshold"] for f in needed))
        return str(sum(f[field] < p["threshold"] for f in needed))
    if sub == "bucketing":
        out = {}
        for label, lo, hi in p["buckets"]:
            inside = [f[key] for f in needed if (lo is None or f[field] >= lo) and (hi is None or f[field] < hi)]
            out[label] = sorted(inside)
        assert sum(len(v) for v in out.values()) == len(needed)
        return out
    if sub == "classification":
        cat = CATEGORY[rec.domain]
        return {c: sorted(f[key] for f in needed if f[cat] == c) for c in sorted({f[cat] for f in needed})}
    if sub == "citation_reference":
        refs = {n: sorted(c for c in by_name[n][CITES[rec.domain]] if c in by_name) for n in sorted(names)}
        if p["direction"] == "references":
            return refs
        return {n: sorted(m for m in names if n in refs[m]) for n in sorted(names)}
    if sub == "citation_chain":
        chain = [p["start"]]
        while True:
            nxt = [c for c in by_name[chain[-1]][CITES[rec.domain]] if c in by_name]
            assert len(nxt) <= 1 and not set(nxt) & set(chain)
            if not nxt:
                return chain
            chain.append(nxt[0])
    if sub == "ordering":
        every = [f[field] for f in facts]
        assert all(every.count(v) == 1 for v in p["sequence"])  # no other document shares a listed value
        return [next(f[key] for f in needed if f[field] == v) for v in p["sequence"]]
    if sub == "temporal_trend":
        assert len({f["company"] for f in needed}) == 1
        series = [f[field] for f in sorted(needed, key=lambda f: (f["year"], f["quarter"] or 0))]
        return ["increase" if b > a else "decrease" for a, b in zip(series, series[1:], strict=False)]
    raise AssertionError(f"unexpected subtask {sub}")


def as_json(records) -> str:
    return json.dumps([r.to_json() for r in records], sort_keys=True)


def test_same_seed_same_records_and_longer_runs_extend_shorter_ones():
    a, b = generate(48, seed=11), generate(48, seed=11)
    assert as_json(a) == as_json(b)
    assert as_json(generate(48, seed=12)) != as_json(a)
    assert as_json(generate(16, seed=11)) == as_json(a[:16])
    assert len({r.id for r in a}) == 48 and a[3].id == "lm-train-11-000003"


def test_every_task_subtask_domain_and_set_appears():
    recs = sample()
    assert {r.task for r in recs} == set(SUBTASKS)
    assert {r.subtask for r in recs} == set().union(*SUBTASKS.values())
    assert {r.domain for r in recs} == {"financial", "legal", "paper"}
    assert {r.length_set for r in recs} == {1, 2, 3, 4}
    for r in recs:
        assert r.subtask in SUBTASKS[r.task] and r.source == "loong-mini"
    for domain in ("financial", "legal", "paper"):
        assert {r.task for r in recs if r.domain == domain} == set(SUBTASKS)


def test_answers_rederive_from_facts():
    for rec in sample():
        expected = expected_answer(rec)
        assert rec.answer == expected, rec.id
        if isinstance(expected, dict):  # key order is part of the answer format
            assert list(rec.answer) == list(expected), rec.id
        kind = {"locating": str, "extremum": str, "range_counting": str, "bucketing": dict, "classification": dict}
        assert isinstance(rec.answer, kind.get(rec.subtask, dict if rec.subtask == "citation_reference" else list))


def test_canonical_answer_is_the_normalised_fact():
    seen = 0
    for rec in sample():
        if "answer_canonical" not in rec.meta:
            continue
        seen += 1
        field = rec.meta["params"]["field"]
        value = rec.meta["facts"][rec.needed_docs[0]][field]
        canon = rec.meta["answer_canonical"]
        assert canon != rec.answer
        assert canon == value if field == "date" else float(canon) == value
    assert seen > 0


def test_every_document_is_needed_and_spotlight_has_look_alikes():
    for rec in sample():
        every = set(range(len(rec.docs)))
        if rec.task == "spotlight":
            assert len(rec.needed_docs) == 1 and len(rec.docs) >= 2
            assert set(rec.meta["lookalike_docs"]) == every - set(rec.needed_docs)
            field = rec.meta["params"]["field"]
            for f in rec.meta["facts"]:  # same fields, other entities
                assert field in f
            names = [f[NAME[rec.domain]] for f in rec.meta["facts"]]
            assert len(set(names)) == len(names)
        else:
            assert set(rec.needed_docs) == every and rec.meta["lookalike_docs"] == []
        if rec.subtask in ("citation_reference", "citation_chain"):  # a document citing none has no span
            names = {f[NAME[rec.domain]] for f in rec.meta["facts"]}
            citing = {i for i in rec.needed_docs if set(rec.meta["facts"][i][CITES[rec.domain]]) & names}
            assert {e.doc for e in rec.evidence} == citing, rec.id
        else:
            assert {e.doc for e in rec.evidence} == set(rec.needed_docs), rec.id


def test_evidence_spans_hold_the_needed_facts():
    for rec in sample():
        facts, p = rec.meta["facts"], rec.meta["params"]
        assert rec.evidence
        texts: dict[int, list[str]] = {}
        for e in rec.evidence:
            doc = rec.docs[e.doc].text
            assert 0 <= e.start < e.end <= len(doc)
            span = doc[e.start : e.end]
            assert span.endswith(".") and "\n" not in span
            assert facts[e.doc][NAME[rec.domain]] in span, (rec.id, span)
            texts.setdefault(e.doc, []).append(span)
        for i in rec.needed_docs:
            joined = " ".join(texts.get(i, []))
            f = facts[i]
            if "field" in p and rec.subtask != "classification":
                assert shown(p["field"], f[p["field"]]) in joined, (rec.id, joined)
            if rec.subtask == "classification":
                assert f[CATEGORY[rec.domain]].lower() in joined.lower()
            if rec.subtask in ("citation_reference", "citation_chain"):
                names = {g[NAME[rec.domain]] for g in facts}
                for cited in set(f[CITES[rec.domain]]) & names:
                    assert cited in joined
        if rec.task == "spotlight":
            assert rec.answer in " ".join(texts[rec.needed_docs[0]])


def test_documents_are_prose_with_varied_phrasing_and_shuffled_order():
    skeletons, positions, unsorted_trend = set(), set(), False
    for rec in sample():
        for d in rec.docs:
            assert "=" not in d.text and len(re.findall(r"[.!?](?:\s|$)", d.text)) >= 2
        positions.add(rec.needed_docs[0] if rec.task == "spotlight" else -1)
        if rec.subtask == "temporal_trend":
            keys = [(f["year"], f["quarter"] or 0) for f in rec.meta["facts"]]
            unsorted_trend |= keys != sorted(keys)
        if rec.domain == "financial" and rec.meta["params"].get("field") == "revenue":
            for e in rec.evidence:
                f = rec.meta["facts"][e.doc]
                span = rec.docs[e.doc].text[e.start : e.end]
                when = f"fiscal year {f['year']}"
                if f["quarter"]:
                    when = f"the {('first', 'second', 'third', 'fourth')[f['quarter'] - 1]} quarter of {f['year']}"
                skeleton = span.replace(f["company"], "X").replace(shown("revenue", f["revenue"]), "V")
                skeletons.add(skeleton.replace(when, "P"))
    assert len({s for s in skeletons if "V" in s and "P" in s}) >= 3
    assert len(positions - {-1}) >= 3 and unsorted_trend


def test_distractors_extend_the_short_context():
    k = 3
    for rec in sample(n=96, seed=5, distractors=k):
        every = set(range(len(rec.docs)))
        needed, extra, alike = set(rec.needed_docs), set(rec.meta["distractor_docs"]), set(rec.meta["lookalike_docs"])
        assert len(extra) == k and not (needed & extra) and not (alike & extra) and not (needed & alike)
        assert needed | extra | alike == every
        if rec.task != "spotlight":
            assert len(rec.docs) == len(rec.needed_docs) + k
        facts = rec.meta["facts"]
        names = [f[NAME[rec.domain]] for f in facts]
        needed_names, extra_names = {names[i] for i in needed}, {names[i] for i in extra}
        assert not needed_names & extra_names
        # The question stays well-posed on the long context: it names its entities, none of the distractors,
        # and no citation links a distractor with a needed document.
        if rec.subtask in ("sequential_enumeration", "extremum", "range_counting", "bucketing", "classification"):
            assert all(n in rec.question for n in needed_names) and not any(n in rec.question for n in extra_names)
        if rec.domain in CITES:
            for i in every:
                linked = set(facts[i][CITES[rec.domain]]) & set(names)
                assert linked <= (needed_names if i in needed else set())
        assert rec.answer == expected_answer(rec)
        assert lengths_ok([rec])


def lengths_ok(records, ranges=CPU_SET_RANGES, count=proxy_tokens) -> bool:
    for rec in records:
        lo, hi = ranges[rec.length_set]
        total = count("\n\n".join(d.text for d in rec.docs))
        if not lo <= total <= hi or total != rec.meta["length"]:
            return False
    return True


def test_context_lengths_fall_in_their_set_range():
    recs = sample()
    assert lengths_ok(recs)
    by_set = {s: [len(r.docs) for r in recs if r.length_set == s] for s in (1, 2, 3, 4)}
    assert max(by_set[1]) <= 4 and max(by_set[4]) >= 10 and min(by_set[4]) > max(by_set[1])


def test_custom_ranges_and_token_counter():
    ranges = {1: (300, 600), 2: (900, 1500)}

    def chars(text: str) -> int:  # not additive over sentences: a fixed cost per call, like special tokens
        return len(text) // 4 + 30

    recs = generate(24, seed=2, sets=(1, 2), set_ranges=ranges, count_tokens=chars)
    assert {r.length_set for r in recs} == {1, 2}
    assert lengths_ok(recs, ranges, chars)


def test_train_and_test_share_no_entity_names():
    def names(records) -> set[str]:
        out = set()
        for rec in records:
            for f in rec.meta["facts"]:
                for key in ("company", "case_id", "plaintiff", "defendant", "title", "method"):
                    if key in f:
                        out.add(f[key])
                out.update(f.get("cites", []) + f.get("references", []))
        return out

    train, test = names(sample(n=200, seed=3)), names(sample(n=200, seed=3, split="test"))
    assert len(train) > 1000 and len(test) > 1000
    assert not train & test


def test_reasoning_walks_the_documents_and_ends_with_the_answer():
    for rec in sample():
        text = rec.answer if isinstance(rec.answer, str) else json.dumps(rec.answer)
        assert rec.reasoning.endswith(f"Therefore, the answer is {text}.")
        for i in rec.needed_docs:
            assert f"Document {i + 1} " in rec.reasoning


def test_records_survive_the_schema_round_trip(tmp_path):
    recs = list(sample()[:40])
    write_records(tmp_path / "lm.jsonl", recs)
    back = read_records(tmp_path / "lm.jsonl").records
    assert as_json(back) == as_json(recs)


def test_write_loong_format_keys_resolve_like_loongs_loader(tmp_path):
    recs = list(sample()[:64])
    write_loong_format(generate(5, seed=1), tmp_path)  # an older tree is replaced whole
    path = write_loong_format(recs, tmp_path)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    root = tmp_path / "doc"
    legal = json.loads((root / "legal" / "legal.json").read_text())
    assert len(lines) == len(recs)
    n_files = {"financial": 0, "legal": 0, "paper": 0}
    for line, rec in zip(lines, recs, strict=True):
        assert line["id"] == rec.id and line["level"] == LEVEL[rec.task] and line["set"] == rec.length_set
        assert line["type"] == rec.domain and line["language"] == "en" and line["answer"] == rec.answer
        assert line["length"] == rec.meta["length"] and isinstance(line["shuffle_doc"], bool)
        assert {"{docs}", "{instruction}", "{question}"} <= set(re.findall(r"\{\w+\}", line["prompt_template"]))
        assert len(line["doc"]) == len(rec.docs)
        for key, doc, f in zip(line["doc"], rec.docs, rec.meta["facts"], strict=True):
            n_files[rec.domain] += 1
            if rec.domain == "financial":
                pattern = f"*2024-{key}*.txt" if line["level"] != 4 else f"*{key}*.txt"
                (found,) = glob.glob(f"{root / 'financial'}/{pattern}")
                assert Path(found).read_text() == doc.text
                assert f["company"] in Path(found).stem.split("-")[-1] and Path(found).name.startswith(str(f["year"]))
            elif rec.domain == "legal":
                entry = legal[key]
                assert entry["content"] + entry["result"] == doc.text and f["case_id"] in key
                assert shown("damages", f["damages"]) in entry["result"]
            else:
                content = (root / "paper" / key).read_text()
                assert content.split("\n", 1)[0].strip("#").strip() == f["title"] and doc.text in content
    assert len(list((root / "financial").iterdir())) == n_files["financial"]
    assert len(legal) == n_files["legal"] and len(list((root / "paper").iterdir())) == n_files["paper"]


def test_tasks_option_restricts_the_tasks():
    recs = generate(12, seed=4, tasks="comparison", sets=(2,))
    assert {r.task for r in recs} == {"comparison"} and {r.length_set for r in recs} == {2}
    assert {r.subtask for r in recs} == SUBTASKS["comparison"]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"n": 0}, "positive"),
        ({"n": 3, "split": "dev"}, "allowed: train, test"),
        ({"n": 3, "sets": (5,)}, "allowed: 1, 2, 3, 4"),
        ({"n": 3, "sets": ()}, "allowed"),
        ({"n": 3, "tasks": ["spotlight", "summary"]}, "allowed: spotlight"),
        ({"n": 3, "distractors": -1}, "non-negative"),
        ({"n": 3, "set_ranges": {1: (500, 100)}}, "low < high"),
        ({"n": 3, "sets": (1,), "distractors": 40}, "fewer distractors"),
    ],
)
def test_bad_options_raise_data_error(kwargs, words):
    with pytest.raises(DataError, match=re.escape(words)):
        generate(**kwargs)
