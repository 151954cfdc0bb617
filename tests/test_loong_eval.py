"""`repro eval loong`: prompt budget, gold/empty predictions, resume, bad input, HTTP judge, tiny model end to end."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from repro.cli import main
from repro.config import load_recipe
from repro.data.converters import convert
from repro.data.loong_mini import generate
from repro.data.schema import write_records
from repro.errors import DataError
from repro.loong import eval as loong_eval
from repro.loong.eval import EvalItem, assemble_prompts, run_eval
from repro.loong.llm_client import EndpointDown

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def mini_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("loong-mini") / "test.jsonl"
    write_records(path, generate(16, seed=5, split="test"))
    return path


def make_recipe(tmp_path, data, model_dir="unused", *overrides):
    path = tmp_path / "r.yaml"
    path.write_text(
        f"output_dir: {tmp_path / 'runs'}\nmodel:\n  source: {model_dir}\n  lora:\n    enabled: false\n"
        f"eval:\n  data: {data}\n  max_input_tokens: 4096\n  generation:\n    max_new_tokens: 4\n    batch_size: 4\n"
    )
    return load_recipe(path, list(overrides))


def gold_text(answer) -> str:
    return answer if isinstance(answer, str) else json.dumps(answer)


def write_preds(path, records, fn):
    path.write_text("".join(json.dumps({"id": r.id, "prediction": fn(r)}) + "\n" for r in records))
    return path


def test_gold_predictions_score_100_and_empty_ones_0(tmp_path, mini_data):
    recipe = make_recipe(tmp_path, mini_data)
    records = loong_eval.select_records(recipe.eval)
    gold = write_preds(tmp_path / "gold.jsonl", records, lambda r: f"Therefore, the answer is {gold_text(r.answer)}")
    metrics = run_eval(recipe, tmp_path / "gold-run", str(gold))
    assert (metrics["avg_score"], metrics["perfect_rate"], metrics["n"]) == (100.0, 1.0, 16)
    env = json.loads((tmp_path / "gold-run" / "environment.json").read_text())
    assert set(env["data_sha256"]) == {recipe.eval.data, str(gold)}  # the records and the predictions read
    empty = write_preds(tmp_path / "empty.jsonl", records, lambda r: "")
    metrics = run_eval(recipe, tmp_path / "empty-run", str(empty))
    assert (metrics["avg_score"], metrics["perfect_rate"]) == (0.0, 0.0)
    report = (tmp_path / "empty-run" / "report.md").read_text()
    assert "Loong by task" in report and "Loong paper, full benchmark" in report


def test_gold_predictions_on_the_official_loong_layout(tmp_path):
    records = convert("loong", str(FIXTURES / "loong" / "loong.jsonl"))
    data = tmp_path / "loong.jsonl"
    write_records(data, records)
    recipe = make_recipe(tmp_path, data)
    gold = write_preds(tmp_path / "gold.jsonl", records, lambda r: f"The answer is {gold_text(r.answer)}")
    metrics = run_eval(recipe, tmp_path / "run", str(gold))
    assert (metrics["avg_score"], metrics["perfect_rate"], metrics["n"]) == (100.0, 1.0, len(records))


def test_prompts_fit_the_budget_and_never_cut_a_document(tiny_model_dir, tmp_path, mini_data):
    from repro.modeling import load_tokenizer

    recipe = make_recipe(tmp_path, mini_data, tiny_model_dir, "eval.max_input_tokens=600")
    tokenizer = load_tokenizer(recipe.model)
    items = [EvalItem(r) for r in loong_eval.select_records(recipe.eval)]
    assemble_prompts(items, recipe.eval, tokenizer, seed=0)
    assert sum(it.dropped_docs for it in items) > 0, "600 tokens is too small for the longer sets"
    for it in items:
        assert it.prompt_tokens <= 600
        shown = [d for d in it.record.docs if d.text in it.prompt]
        assert len(shown) + it.dropped_docs == len(it.record.docs)  # each document whole or absent


def test_resume_after_an_interruption_gives_the_same_metrics(tiny_model_dir, tmp_path, mini_data, monkeypatch):
    recipe = make_recipe(tmp_path, mini_data, tiny_model_dir, "eval.limit=8", "eval.generation.batch_size=2")
    full = run_eval(recipe, tmp_path / "full")

    import repro.generation as generation

    real = generation.generate_texts
    calls = {"n": 0}

    def dies_on_third_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(generation, "generate_texts", dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        run_eval(recipe, tmp_path / "cut")
    assert len((tmp_path / "cut" / "predictions.jsonl").read_text().splitlines()) == 4
    monkeypatch.setattr(generation, "generate_texts", real)
    resumed = run_eval(recipe, tmp_path / "cut")
    assert resumed == full
    full_preds = (tmp_path / "full" / "predictions.jsonl").read_text().splitlines()
    resumed_preds = (tmp_path / "cut" / "predictions.jsonl").read_text().splitlines()
    assert sorted(full_preds) == sorted(resumed_preds)


def test_bad_predictions_file_names_file_and_line(tmp_path, mini_data):
    recipe = make_recipe(tmp_path, mini_data)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "lm-test-5-000000", "prediction": "x"}\n{"id": "nope", "prediction": "x"}\n')
    with pytest.raises(DataError, match=rf"{bad}:2: unknown id 'nope'"):
        run_eval(recipe, tmp_path / "run", str(bad))
    bad.write_text('{"id": "lm-test-5-000000", "prediction": "x"}\n{not json\n')
    with pytest.raises(DataError, match=rf"{bad}:2: not valid JSON"):
        run_eval(recipe, tmp_path / "run2", str(bad))


def test_cli_bad_input_is_one_line_exit_2(tmp_path, mini_data, capsys):
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(f"eval:\n  data: {tmp_path / 'missing.jsonl'}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "loong", str(recipe_file), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "missing.jsonl: data file not found" in err and err.count("\n") == 1


class JudgeServer:
    """A local OpenAI-compatible endpoint on 127.0.0.1 that rates every answer with a fixed reply."""

    def __init__(self, reply: str | None):
        outer = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                outer.requests += 1
                self.rfile.read(int(self.headers["Content-Length"]))
                if reply is None:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def llm_recipe(tmp_path, data, url, *extra):
    """The test recipe judged by the local endpoint at `url`."""
    judge = ["eval.judge=llm", "eval.llm_judge.backend=openai", f"eval.llm_judge.base_url={url}"]
    return make_recipe(tmp_path, data, "unused", *judge, "eval.llm_judge.model=judge", *extra)


def test_llm_judge_over_http(tmp_path, mini_data):
    records = loong_eval.select_records(make_recipe(tmp_path, mini_data).eval)
    preds = write_preds(tmp_path / "p.jsonl", records, lambda r: "Therefore, the answer is 42")
    with JudgeServer("The answer misses most items.\nRating: [[80]]") as url:
        recipe = llm_recipe(tmp_path, mini_data, url)
        metrics = run_eval(recipe, tmp_path / "run", str(preds))
    assert (metrics["avg_score"], metrics["perfect_rate"], metrics["parse_rate"]) == (80.0, 0.0, 1.0)


def test_llm_judge_without_a_rating_counts_as_unparsed(tmp_path, mini_data):
    records = loong_eval.select_records(make_recipe(tmp_path, mini_data).eval)
    preds = write_preds(tmp_path / "p.jsonl", records, lambda r: "x")
    with JudgeServer("I cannot rate this.") as url:
        recipe = llm_recipe(tmp_path, mini_data, url)
        metrics = run_eval(recipe, tmp_path / "run", str(preds))
    assert metrics["parse_rate"] == 0.0 and metrics["avg_score"] is None


def test_endpoint_down_keeps_the_predictions(tmp_path, mini_data):
    records = loong_eval.select_records(make_recipe(tmp_path, mini_data).eval)
    preds = write_preds(tmp_path / "p.jsonl", records, lambda r: "x")
    with JudgeServer(None) as url:
        recipe = llm_recipe(tmp_path, mini_data, url, "eval.llm_judge.max_retries=1", "eval.llm_judge.timeout_s=2")
        with pytest.raises(EndpointDown):
            run_eval(recipe, tmp_path / "run", str(preds))
    assert len((tmp_path / "run" / "predictions.jsonl").read_text().splitlines()) == len(records)


def test_tiny_model_end_to_end_through_the_cli(tiny_model_dir, tmp_path, mini_data, capsys):
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(
        f"model:\n  source: {tiny_model_dir}\n  lora:\n    enabled: false\n"
        f"eval:\n  data: {mini_data}\n  limit: 4\n  generation:\n    max_new_tokens: 4\n"
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "loong", str(recipe_file), "--out", str(tmp_path / "run")])
    assert exit_info.value.code in (0, None)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n"] == 4 and metrics["parse_rate"] == 1.0
    preds = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 4 and all(isinstance(p["prediction"], str) for p in preds)
    # the same folder again without --resume is refused rather than overwritten
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "loong", str(recipe_file), "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2 and "--resume" in capsys.readouterr().err


def test_cli_records_the_scores_in_a_model_card(tmp_path, mini_data, capsys):
    records = loong_eval.select_records(make_recipe(tmp_path, mini_data).eval)
    gold = write_preds(tmp_path / "gold.jsonl", records, lambda r: f"Therefore, the answer is {gold_text(r.answer)}")
    card_dir = tmp_path / "model"
    card_dir.mkdir()
    (card_dir / "model_card.json").write_text(json.dumps({"name": "m", "scores": {"other": 1}}))
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(f"eval:\n  data: {mini_data}\n")
    args = ["eval", "loong", str(recipe_file), "--predictions", str(gold), "--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as exit_info:
        main(args + ["--card", str(card_dir), "--card-key", "gold"])
    assert exit_info.value.code in (0, None)
    card = json.loads((card_dir / "model_card.json").read_text())
    assert card["scores"]["other"] == 1  # other keys stay
    assert (card["scores"]["gold"]["avg_score"], card["scores"]["gold"]["n"]) == (100.0, 16)
    assert card["scores"]["gold"]["by_set"]["1"]["perfect_rate"] == 1.0
