"""Readers and converters: each official layout in tests/fixtures converts to the records written out here."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from repro.data.converters import FORMATS, convert, docqa_task
from repro.data.prompts import build_prompt
from repro.data.readers import read_rows
from repro.data.schema import Evidence, read_records, write_records
from repro.errors import DataError

FIX = Path(__file__).parent / "fixtures"


# ---------------------------------------------------------------- readers


def test_read_jsonl_locations_count_blank_lines(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text('{"x": 1}\n\n{"x": 2}\n', encoding="utf-8")
    assert read_rows(str(f)) == [(f"{f}:1", {"x": 1}), (f"{f}:3", {"x": 2})]


def test_read_jsonl_bad_line_names_file_and_line(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text('{"x": 1}\n{"x": \n', encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{f}:2: not valid JSON"):
        read_rows(str(f))


def test_read_jsonl_row_must_be_object(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{f}:1: expected a JSON object, got list"):
        read_rows(str(f))


def test_read_json_list_and_object_with_data_key(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text('[{"x": 1}, {"x": 2}]', encoding="utf-8")
    b.write_text('{"version": "1.0", "data": [{"x": 3}]}', encoding="utf-8")
    assert read_rows(str(a)) == [(f"{a}:row 1", {"x": 1}), (f"{a}:row 2", {"x": 2})]
    assert read_rows(str(b)) == [(f"{b}:row 1", {"x": 3})]


def test_read_json_without_a_list_fails(tmp_path):
    f = tmp_path / "a.json"
    f.write_text('{"a": 1}', encoding="utf-8")
    with pytest.raises(DataError, match="expected a JSON list of rows"):
        read_rows(str(f))


def test_read_parquet_and_folder(tmp_path):
    f = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist([{"x": 1, "y": ["a"]}, {"x": 2, "y": []}]), f)
    (tmp_path / "test.jsonl").write_text('{"x": 9, "y": []}\n', encoding="utf-8")
    assert read_rows(str(f)) == [(f"{f}:row 1", {"x": 1, "y": ["a"]}), (f"{f}:row 2", {"x": 2, "y": []})]
    assert [row["x"] for _, row in read_rows(str(tmp_path))] == [9, 1, 2]
    assert [row["x"] for _, row in read_rows(str(tmp_path), split="train")] == [1, 2]


def test_read_missing_path_and_bad_suffix(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_rows(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="not found"):
        read_rows("some/where.parquet")
    (tmp_path / "a.csv").write_text("x\n1\n")
    with pytest.raises(DataError, match="unsupported file type '.csv'"):
        read_rows(str(tmp_path / "a.csv"))


def test_org_name_under_a_local_folder_is_a_missing_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match="^data/train: data file not found"):
        read_rows("data/train")


def test_read_parquet_corrupt(tmp_path):
    f = tmp_path / "a.parquet"
    f.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=rf"^{f}: cannot read parquet"):
        read_rows(str(f))


def test_hub_id_offline_is_one_line_error(monkeypatch):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as err:
        read_rows("repro-tests/no-such-dataset")
    msg = str(err.value)
    assert "\n" not in msg
    assert "cannot reach the hub for dataset 'repro-tests/no-such-dataset' (offline?)" in msg
    assert "local .parquet/.jsonl path" in msg


# ---------------------------------------------------------------- convert(): dispatch


def test_unknown_format_lists_formats():
    with pytest.raises(DataError, match="unknown data format 'squad'.*loong, docqa-rl, longbench, musique, hotpotqa"):
        convert("squad", "x.jsonl")
    assert FORMATS == ("loong", "docqa-rl", "longbench", "musique", "hotpotqa")


def test_docs_dir_only_for_loong():
    with pytest.raises(DataError, match="--docs is only for the loong format"):
        convert("musique", str(FIX / "musique" / "musique_ans_dev.jsonl"), docs_dir="x")


# ---------------------------------------------------------------- loong


def test_loong_fixture():
    recs = convert("loong", str(FIX / "loong" / "loong.jsonl"))
    assert [r.id for r in recs] == ["fin-l1-0001", "legal-l2-0002", "paper-l3-0003", "fin-l4-0004", "legal-l4-0005"]
    assert [r.task for r in recs] == [
        "spotlight",
        "comparison",
        "clustering",
        "chain_of_reasoning",
        "chain_of_reasoning",
    ]
    assert [r.domain for r in recs] == ["financial", "legal", "paper", "financial", "legal"]
    assert [r.length_set for r in recs] == [1, 2, 3, 4, 1]
    assert all(r.source == "loong" and r.needed_docs == list(range(len(r.docs))) for r in recs)

    fin = recs[0]
    # below level 4 the 2024 report is taken, and the exact name beats "Acme Corp International"
    assert [d.title for d in fin.docs] == ["Acme Corp", "Beta Industries"]
    assert fin.docs[0].text == "Acme Corp annual report 2024.\nTotal revenue for fiscal 2024 was $14.1 million.\n"
    assert fin.question == "What was the total revenue of Acme Corp in fiscal 2024?"
    assert fin.instruction == "Answer the question using the financial reports above."
    assert fin.answer == "$14.1 million"
    assert fin.meta == {
        "level": 1,
        "length": 21034,
        "language": "en",
        "prompt_template": "{docs}\n\n{instruction}\n\n{question}",
        "shuffle_doc": True,
        "doc_keys": ["Acme Corp", "Beta Industries"],
    }

    legal = recs[1]
    assert legal.docs[0].title == "(2023)京01刑终1号"
    assert (
        legal.docs[0].text == "北京市第一中级人民法院刑事判决书。被告人张某犯盗窃罪。判处有期徒刑一年，并处罚金五千元。"
    )
    assert legal.answer == ["(2023)沪02刑初5号"]
    assert legal.meta["shuffle_doc"] is False

    paper = recs[2]
    # one key is a file name (as in Loong), the other the paper's title line
    assert [d.title for d in paper.docs] == [
        "Sparse Retrieval for Long Documents",
        "Graph Attention for Citation Tracing",
    ]
    assert paper.docs[0].text.startswith("# Sparse Retrieval for Long Documents\n")
    assert paper.answer == {
        "Reference": ["Sparse Retrieval for Long Documents"],
        "Citation": ["Graph Attention for Citation Tracing"],
    }

    fin4 = recs[3]
    assert [d.text.splitlines()[0] for d in fin4.docs] == ["AVNI form 10-K for 2018.", "AVNI form 10-K for 2019."]
    assert fin4.meta["shuffle_doc"] is True  # absent in the row: Loong's default

    # level-4 legal items that list the verdicts in the instruction show the case text without its result
    assert [d.text for d in recs[4].docs] == [
        "北京市第一中级人民法院刑事判决书。被告人张某犯盗窃罪。",
        "上海市第二中级人民法院刑事判决书。被告人李某犯诈骗罪。",
    ]


def test_loong_unknown_doc_key_names_line_and_key():
    src = FIX / "loong" / "loong_bad.jsonl"
    with pytest.raises(DataError, match=rf"^{src}:2: field 'doc\[1\]': no financial document 'Gamma Holdings'"):
        convert("loong", str(src))


def test_loong_legal_as_list_and_explicit_docs_dir(tmp_path):
    docs = tmp_path / "my_docs"
    (docs / "legal").mkdir(parents=True)
    cases = [{"id": "case-1", "content": "Case one.", "result": " Fined."}, {"id": "case-2", "content": "Case two."}]
    (docs / "legal" / "legal.json").write_text(json.dumps(cases), encoding="utf-8")
    row = {"id": 7, "level": "2", "set": 1, "type": "legal", "question": "q", "instruction": "i",
           "doc": ["case-2", "case-1"], "answer": "case-1"}  # fmt: skip
    src = tmp_path / "items.jsonl"
    src.write_text(json.dumps(row) + "\n", encoding="utf-8")
    (rec,) = convert("loong", str(src), docs_dir=str(docs))
    assert rec.id == "7" and rec.task == "comparison"
    assert [(d.title, d.text) for d in rec.docs] == [("case-2", "Case two."), ("case-1", "Case one. Fined.")]


def test_loong_bad_fields(tmp_path):
    shutil.copytree(FIX / "loong" / "doc", tmp_path / "doc")
    src = tmp_path / "loong.jsonl"
    good = json.loads((FIX / "loong" / "loong.jsonl").read_text(encoding="utf-8").splitlines()[0])
    for change, pattern in [
        ({"level": 5}, "field 'level': expected 1, 2, 3 or 4, got 5"),
        ({"type": "medical"}, "field 'type': expected financial, legal or paper"),
        ({"answer": None}, "field 'answer' is missing"),
        ({"doc": "Acme Corp"}, "field 'doc': expected a list"),
        ({"question": 3}, "field 'question': expected a string, got 3"),
    ]:
        src.write_text(json.dumps(good) + "\n" + json.dumps({**good, **change}) + "\n", encoding="utf-8")
        with pytest.raises(DataError, match=rf"^{src}:2: {pattern}"):
            convert("loong", str(src))


def test_loong_without_docs_folder(tmp_path):
    src = tmp_path / "loong.jsonl"
    shutil.copy(FIX / "loong" / "loong.jsonl", src)
    with pytest.raises(DataError, match="no doc/ or docs/ folder beside the file: pass the Loong docs folder"):
        convert("loong", str(src))


# ---------------------------------------------------------------- docqa-rl


@pytest.fixture
def docqa_parquet(tmp_path) -> Path:
    """The hand-written DocQA-RL rows written as verl-style parquet, as the hub release ships them."""
    rows = json.loads((FIX / "docqa_rl" / "docqa_rl.json").read_text(encoding="utf-8"))
    path = tmp_path / "docqa_rl.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_docqa_rl_parquet(docqa_parquet):
    recs = convert("docqa-rl", str(docqa_parquet))
    assert [r.id for r in recs] == ["docmath-0", "long_logic-1", "musique-2", "long_toc_choices_0_20000-3"]
    assert [r.task for r in recs] == ["docmath", "multiple_choice", "qa", "multiple_choice"]
    assert all(r.source == "docqa-rl" and len(r.docs) == 1 for r in recs)
    math, mc, qa, toc = recs
    assert math.docs[0].text == "Revenue 2022: 10.0 million.\nRevenue 2023: 12.5 million."
    assert math.question == "By what percentage did revenue grow from 2022 to 2023?"
    assert math.answer == "25" and math.answer_aliases == []
    assert math.meta["data_source"] == "docmath" and math.meta["extra_info"]["index"] == 0
    assert mc.question == "Who is the shortest?\nA. Alice\nB. Bob\nC. Carol\nD. Cannot tell"
    assert mc.instruction == 'Format your response as follows: "The correct answer is (insert answer here)".'
    assert mc.answer == "C" and mc.meta["system"] == "You are a careful reader."
    assert qa.docs[0].text.startswith("Passage 1: Eiffel Tower\n")
    # the released grader's layout (long.py reads the gold with the response's own parser): the gold keeps its
    # phrase, and the reward reads it as the letter
    assert toc.answer == "The correct answer is (B)"
    from repro.loong.verify import RewardConfig, verify_answer

    assert verify_answer("<think>labour: one year</think>The correct answer is (B).", toc, RewardConfig()) == 1.0
    assert verify_answer("The correct answer is (C).", toc, RewardConfig()) == 0.0


def test_docqa_rl_l1_prompt_rebuilds_the_original_user_turn(docqa_parquet):
    rows = json.loads((FIX / "docqa_rl" / "docqa_rl.json").read_text(encoding="utf-8"))
    for row, rec in zip(rows, convert("docqa-rl", str(docqa_parquet)), strict=True):
        user = next(m["content"] for m in row["prompt"] if m["role"] == "user")
        assert build_prompt(rec, "l1")[0] == user


def test_docqa_rl_list_ground_truth_and_bad_rows(tmp_path):
    rows = json.loads((FIX / "docqa_rl" / "docqa_rl.json").read_text(encoding="utf-8"))
    src = tmp_path / "rows.jsonl"
    listed = {**rows[2], "reward_model": {"style": "rule", "ground_truth": ["France", "French Republic"]}}
    src.write_text(json.dumps(listed) + "\n", encoding="utf-8")
    (rec,) = convert("docqa-rl", str(src))
    assert rec.answer == "France" and rec.answer_aliases == ["French Republic"]

    no_text = {**rows[0], "prompt": [{"role": "user", "content": "What is 2 + 2?"}]}
    no_answer = {**rows[0], "reward_model": {"style": "rule"}}
    for bad, pattern in [
        (no_text, "field 'prompt': the user message has no <text> ... </text> document block"),
        (no_answer, "field 'reward_model.ground_truth' is missing"),
        ({**rows[0], "prompt": "hi"}, "field 'prompt': expected a list"),
    ]:
        src.write_text(json.dumps(rows[0]) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
        with pytest.raises(DataError, match=rf"^{src}:2: {pattern}"):
            convert("docqa-rl", str(src))


def test_docqa_rl_bad_parquet_row_names_row(tmp_path):
    rows = json.loads((FIX / "docqa_rl" / "docqa_rl.json").read_text(encoding="utf-8"))
    rows[1]["prompt"] = [{"role": "system", "content": "only a system turn"}]
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(DataError, match=rf"^{path}:row 2: field 'prompt': no user message"):
        convert("docqa-rl", str(path))


def test_docqa_task_from_data_source():
    assert [docqa_task(s) for s in ("docmath_qa", "long_logic", "multiple_choice", "multihoprag", "musique")] == [
        "docmath",
        "multiple_choice",
        "multiple_choice",
        "qa",
        "qa",
    ]


# ---------------------------------------------------------------- longbench, musique, hotpotqa


def test_longbench_fixture():
    recs = convert("longbench", str(FIX / "longbench" / "hotpotqa.jsonl"))
    assert [r.id for r in recs] == ["lb-hotpot-001", "lb-hotpot-002"]
    r = recs[1]
    assert (r.source, r.task, r.subtask) == ("longbench", "qa", "hotpotqa")
    assert r.question == "Who wrote the novel that the film Clueless is based on?"
    assert [d.title for d in r.docs] == ["hotpotqa"]
    assert r.docs[0].text.startswith("Passage 1:\nClueless\n")
    assert (r.answer, r.answer_aliases) == ("Jane Austen", ["Austen"])
    assert r.meta == {"dataset": "hotpotqa", "length": 27, "language": "en"}


def test_longbench_bad_record():
    src = FIX / "longbench" / "longbench_bad.jsonl"
    with pytest.raises(DataError, match=rf"^{src}:2: field 'answers': expected a list, got \"Jane Austen\""):
        convert("longbench", str(src))


def test_musique_fixture():
    recs = convert("musique", str(FIX / "musique" / "musique_ans_dev.jsonl"))
    r = recs[0]
    assert (r.id, r.source, r.task) == ("2hop__1001_2002", "musique", "qa")
    assert [d.title for d in r.docs] == ["Louvre", "Mona Lisa", "Leonardo da Vinci", "Vinci"]
    assert r.needed_docs == [1, 2]
    assert [d.title for d in r.short_docs()] == ["Mona Lisa", "Leonardo da Vinci"]
    assert r.evidence == [Evidence(doc=1, start=0, end=80), Evidence(doc=2, start=0, end=44)]
    assert (r.answer, r.answer_aliases) == ("Vinci", ["Vinci, Tuscany"])
    assert [s["answer"] for s in r.meta["question_decomposition"]] == ["Leonardo da Vinci", "Vinci"]
    assert recs[1].needed_docs == [0, 1] and recs[1].answer_aliases == []


def test_musique_bad_record():
    src = FIX / "musique" / "musique_bad.jsonl"
    with pytest.raises(DataError, match=rf"^{src}:3: field 'paragraphs\[1\].paragraph_text' is missing"):
        convert("musique", str(src))


def test_hotpotqa_fixture():
    recs = convert("hotpotqa", str(FIX / "hotpotqa" / "hotpot_dev_distractor.json"))
    a, b = recs
    assert (a.id, a.source, a.task, a.answer) == ("5a8b57f25542995d1e6f1371", "hotpotqa", "qa", "yes")
    assert [d.title for d in a.docs] == ["Adam Collis", "Ed Wood", "Scott Derrickson"]
    assert (
        a.docs[2].text
        == "Scott Derrickson is an American director. He lives in Los Angeles. He directed Doctor Strange."
    )
    assert a.needed_docs == [1, 2]
    assert [a.docs[e.doc].text[e.start : e.end] for e in a.evidence] == [
        "Edward Davis Wood Jr. was an American filmmaker.",
        "Scott Derrickson is an American director.",
    ]
    assert a.meta == {"type": "comparison", "level": "hard"}
    # the official data holds a few facts past the last sentence: skipped and counted
    assert b.evidence == [
        Evidence(doc=0, start=0, end=73),
        Evidence(doc=2, start=0, end=39),
        Evidence(doc=2, start=40, end=99),
    ]
    assert b.docs[2].text[40:99] == "She later served as Chief of Protocol of the United States."
    assert b.needed_docs == [0, 2]
    assert b.meta["skipped_supporting_facts"] == 1


def test_hotpotqa_bad_record():
    src = FIX / "hotpotqa" / "hotpot_bad.json"
    with pytest.raises(DataError, match=rf"^{src}:row 2: field 'context\[0\]\[1\]': expected a list of sentences"):
        convert("hotpotqa", str(src))


# ---------------------------------------------------------------- output


@pytest.mark.parametrize(
    "fmt, src",
    [
        ("loong", "loong/loong.jsonl"),
        ("docqa-rl", "docqa_rl/docqa_rl.json"),
        ("longbench", "longbench/hotpotqa.jsonl"),
        ("musique", "musique/musique_ans_dev.jsonl"),
        ("hotpotqa", "hotpotqa/hotpot_dev_distractor.json"),
    ],
)
def test_records_round_trip_through_jsonl(tmp_path, fmt, src):
    recs = convert(fmt, str(FIX / src))
    out = tmp_path / "out.jsonl"
    assert write_records(out, recs) == len(recs)
    assert read_records(out).records == recs


def test_convert_script(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "convert_script", Path(__file__).parents[1] / "data_scripts" / "convert.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "m.jsonl"
    assert script.main(["musique", str(FIX / "musique" / "musique_ans_dev.jsonl"), "--out", str(out)]) == 0
    assert f"wrote 2 records to {out}" in capsys.readouterr().out
    assert [r.id for r in read_records(out).records] == ["2hop__1001_2002", "2hop__3003_4004"]
    assert script.main(["musique", str(FIX / "musique" / "musique_bad.jsonl"), "--out", str(out)]) == 2
    assert "error: " in capsys.readouterr().err
