"""--nproc on the generation-heavy commands: eval and pairs split their items over processes and the main one
merges them in the input's order, with the results a single process gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repro.data.loong_mini import generate
from repro.data.schema import read_records, write_records

REPO = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")


def repro(*args: str) -> None:
    res = subprocess.run([sys.executable, "-m", "repro", *args], capture_output=True, text=True, env=ENV, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("nproc-data")
    write_records(folder / "test.jsonl", generate(5, seed=5, split="test", sets=(1,)))
    write_records(folder / "solopo.jsonl", generate(5, seed=5, sets=(1,), tasks=["spotlight"], distractors=2))
    return folder


def test_eval_over_two_processes_predicts_what_one_does_in_the_items_order(tiny_model_dir, data, tmp_path):
    # batch_size 1: no padding, so a process's share is generated exactly as the single process generates it
    common = ["recipes/tiny/loong_eval.yaml", f"model.source={tiny_model_dir}", "model.device=cpu",
              f"eval.data={data / 'test.jsonl'}", "eval.sets=[1]", "eval.generation.max_new_tokens=4",
              "eval.generation.batch_size=1"]  # fmt: skip
    repro("eval", "loong", *common, "--out", str(tmp_path / "one"))
    repro("eval", "loong", *common, "--out", str(tmp_path / "two"), "--nproc", "2")
    one, two = lines(tmp_path / "one" / "predictions.jsonl"), lines(tmp_path / "two" / "predictions.jsonl")
    order = [r.id for r in read_records(data / "test.jsonl").records if r.length_set == 1]
    assert [row["id"] for row in two] == order  # merged in the items' order
    assert {r["id"]: r["prediction"] for r in one} == {r["id"]: r["prediction"] for r in two}
    assert not list((tmp_path / "two").glob("predictions.rank*.jsonl"))  # the parts are merged away
    metrics = [json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("one", "two")]
    assert metrics[0]["avg_score"] == metrics[1]["avg_score"] and metrics[0]["n"] == metrics[1]["n"] == len(order)


def test_pairs_over_two_processes_are_the_pairs_one_makes(tiny_model_dir, data, tmp_path):
    # each chunk of generation.batch_size examples samples under its own seed, whichever process takes it
    common = ["recipes/tiny/solopo.yaml", f"model.source={tiny_model_dir}", "model.device=cpu",
              f"solopo.data={data / 'solopo.jsonl'}", "solopo.limit=5", "solopo.samples=2",
              "solopo.generation.max_new_tokens=4", "solopo.generation.batch_size=1"]  # fmt: skip
    repro("solopo", "pairs", *common, "--out", str(tmp_path / "one"))
    repro("solopo", "pairs", *common, "--out", str(tmp_path / "two"), "--nproc", "2")
    one, two = lines(tmp_path / "one" / "pairs.jsonl"), lines(tmp_path / "two" / "pairs.jsonl")
    assert [r["id"] for r in two] == [r["id"] for r in one]
    assert two == one
    assert json.loads((tmp_path / "one" / "summary.json").read_text()) == json.loads(
        (tmp_path / "two" / "summary.json").read_text()
    )
