"""The per-item view: per task, the items whose scores differ most between the stages, and its markdown page."""

import json

import pytest

from repro.data.schema import Doc, Record, write_records
from repro.errors import ReproError
from repro.reporting.items import cell, disagreement_items, score_cell, score_spread, shorten, write_items_page


def record(item_id: str, task: str, question: str, answer) -> Record:
    return Record(id=item_id, source="test", task=task, docs=[Doc("d", "text")], question=question, answer=answer)


def write_run(folder, data_path, scores: dict, predictions: dict) -> None:
    """An eval run folder: recipe.yaml naming the record file, judgements.jsonl, predictions.jsonl."""
    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text(f"model:\n  source: tiny\neval:\n  data: {data_path}\n  judge: rule\n")
    judged = [{"id": i, "judge": "rule", "score": s} for i, s in scores.items()]
    (folder / "judgements.jsonl").write_text("".join(json.dumps(j) + "\n" for j in judged))
    preds = [{"id": i, "prediction": p, "dropped_docs": 0} for i, p in predictions.items()]
    (folder / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in preds))


LONG = "x" * 250

# Record file order d2, q2, q1, d1, q3 (so a tie is broken by id, not by file order).
# Scores per stage (None: the judge's output did not parse; RL did not judge d1 at all):
#         base   SFT    RL     spread over the parsed ones
#   q1    0      100    50     100 - 0  = 100
#   q2    30     None   50     50 - 30  = 20   (were the unparsed one read as 0: 50, above q3)
#   q3    10     45     10     45 - 10  = 35
#   d1    10     70     -      70 - 10  = 60
#   d2    100    40     100    100 - 40 = 60   (ties d1; "d1" < "d2")
# qa comes before docmath in the kit's task order, so: q1, q3, q2, d1, d2.
SCORES = {
    "base": {"q1": 0, "q2": 30, "q3": 10, "d1": 10, "d2": 100},
    "SFT": {"q1": 100, "q2": None, "q3": 45, "d1": 70, "d2": 40},
    "RL": {"q1": 50, "q2": 50, "q3": 10, "d2": 100},
}
PREDICTIONS = {
    "base": {"q1": "<think>the capital, surely</think>The answer is London.", "q2": "The answer is Milan",
             "q3": "Oslo", "d1": "The answer is 12", "d2": "The answer is 42"},
    "SFT": {"q1": "The answer is Paris | France\nline two", "q2": "The answer is Rome", "q3": "Bergen",
            "d1": "The answer is 12 and 7", "d2": "41"},
    "RL": {"q1": f"The answer is {LONG}", "q2": "The answer is Rome", "q3": "Oslo", "d2": "42"},
}  # fmt: skip


@pytest.fixture
def stages(tmp_path):
    data = tmp_path / "data" / "items.jsonl"
    data.parent.mkdir()
    write_records(
        data,
        [
            record("d2", "docmath", "d2?", "42"),
            record("q2", "qa", "q2?", "Rome"),
            record("q1", "qa", "Which | pipe?\nSecond line", "Paris"),
            record("d1", "docmath", "d1?", ["12", "7"]),
            record("q3", "qa", "q3?", "Oslo"),
        ],
    )
    runs = {}
    for name in SCORES:
        write_run(tmp_path / "eval" / name, data, SCORES[name], PREDICTIONS[name])
        runs[name] = tmp_path / "eval" / name
    return runs


def test_score_spread_and_helpers_by_hand():
    assert score_spread([0.0, 100.0, 50.0]) == 100.0
    assert score_spread([30.0, None, 50.0]) == 20.0  # the unparsed one is left out, not read as 0
    assert score_spread([40.0, None]) is None  # one parsed score: nothing to disagree with
    assert score_spread([None, None]) is None
    assert score_spread([40.0, 40.0]) == 0.0
    assert shorten("abc", 3) == "abc"
    assert shorten("abcdef", 4) == "abc…"  # 3 characters and the ellipsis: 4
    assert cell("a | b\r\nc\rd\ne") == "a \\| b<br>c<br>d<br>e"
    assert [score_cell(s) for s in (100.0, 42.5, 33.333, 0.0, None)] == ["100", "42.5", "33.3", "0", "–"]


def test_disagreement_items_order_and_content(stages):
    items = disagreement_items(stages)
    assert [(it["task"], it["id"], it["spread"]) for it in items] == [
        ("qa", "q1", 100.0),
        ("qa", "q3", 35.0),
        ("qa", "q2", 20.0),
        ("docmath", "d1", 60.0),
        ("docmath", "d2", 60.0),
    ]
    q1 = items[0]
    assert q1["question"] == "Which | pipe?\nSecond line"
    assert q1["gold"] == "Paris"
    assert q1["stages"]["base"] == {"judged": True, "score": 0.0, "answer": "London"}  # after </think>, no period
    assert q1["stages"]["SFT"]["answer"] == "Paris | France\nline two"
    # 250 x's: 199 of them and the ellipsis
    assert q1["stages"]["RL"]["answer"] == "x" * 199 + "…"
    assert items[2]["stages"]["SFT"] == {"judged": True, "score": None, "answer": "Rome"}  # unparsed
    d1 = items[3]
    assert d1["gold"] == '["12", "7"]'  # a list gold as JSON, as the judge sees it
    assert d1["stages"]["RL"] == {"judged": False, "score": None, "answer": None}


def test_per_task_truncation(stages):
    assert [it["id"] for it in disagreement_items(stages, per_task=1)] == ["q1", "d1"]
    assert [it["id"] for it in disagreement_items(stages, per_task=2)] == ["q1", "q3", "d1", "d2"]
    assert [it["id"] for it in disagreement_items(stages, per_task=10)] == ["q1", "q3", "q2", "d1", "d2"]
    with pytest.raises(ReproError, match="per_task"):
        disagreement_items(stages, per_task=0)
    with pytest.raises(ReproError, match="no evaluation run"):
        disagreement_items({})


def test_items_page_tables_escaping_and_unparsed(stages, tmp_path):
    out = write_items_page(stages, tmp_path / "report" / "items.md", per_task=2)
    text = out.read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["items.md"]  # written whole, no temp file left
    assert text.index("## qa") < text.index("## docmath")
    header = "| Item | Spread | Question | Gold | base answer | base score | SFT answer | SFT score | RL answer"
    header += " | RL score |"
    assert text.count(header) == 2
    q1 = (
        "| q1 | 100 | Which \\| pipe?<br>Second line | Paris | London | 0 | Paris \\| France<br>line two | 100 | "
        + "x" * 199
        + "… | 50 |"
    )
    assert q1 in text
    assert '| d1 | 60 | d1? | ["12", "7"] | 12 | 10 | 12 and 7 | 70 | – | – |' in text
    assert "| q3 | 35 | q3? | Oslo | Oslo | 10 | Bergen | 45 | Oslo | 10 |" in text
    assert "q2" not in text  # third in qa, past per_task=2
    out = write_items_page(stages, tmp_path / "report" / "items.md", per_task=3)
    assert "| q2 | 20 | q2? | Rome | Milan | 30 | Rome | unparsed | Rome | 50 |" in out.read_text()


def test_items_page_when_the_stages_agree(stages, tmp_path):
    out = write_items_page({"base": stages["base"], "base again": stages["base"]}, tmp_path / "items.md")
    text = out.read_text()
    assert "## qa" in text and "## docmath" in text
    assert text.count("The stages' parsed scores agree on every item of this task.") == 2
    assert "| Item |" not in text


def test_bad_predictions_line(stages):
    path = stages["RL"] / "predictions.jsonl"
    path.write_text('{"id": "q1", "prediction": 5}\n{"id": "q2", "prediction": "x"}\n')
    with pytest.raises(ReproError, match=r"predictions.jsonl:1: field 'prediction'"):
        disagreement_items(stages)
    path.write_text('["q1"]\n{"id": "q2", "prediction": "x"}\n')
    with pytest.raises(ReproError, match=r"predictions.jsonl:1: expected"):
        disagreement_items(stages)
    path.write_text('{"id": "q2", "prediction": "x"}\n{"id": "q1", "predi')  # torn last line: ignored
    assert disagreement_items(stages)[0]["stages"]["RL"]["answer"] is None
