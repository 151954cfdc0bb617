"""`repro data`: Loong-mini files, the round trip through Loong's own layout, validation with --skip-bad."""

from __future__ import annotations

import json

import pytest

from repro.cli import main
from repro.data.schema import read_records


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return (exit_info.value.code or 0), out, err


def test_loong_mini_is_deterministic_and_covers_sets_and_tasks(tmp_path, capsys):
    for name in ("a", "b"):
        code, out, _ = run_cli(capsys, "data", "loong-mini", "--out", str(tmp_path / name), "--n", "32", "--seed", "3")
        assert code == 0 and "32 instances" in out
    a, b = (tmp_path / "a" / "train.jsonl").read_bytes(), (tmp_path / "b" / "train.jsonl").read_bytes()
    assert a == b
    records = read_records(tmp_path / "a" / "train.jsonl").records
    assert {(r.length_set, r.task) for r in records} == {
        (s, t) for s in (1, 2, 3, 4) for t in ("spotlight", "comparison", "clustering", "chain_of_reasoning")
    }


def test_loong_layout_round_trips_through_the_converter(tmp_path, capsys):
    out = tmp_path / "loong"
    run_cli(capsys, "data", "loong-mini", "--out", str(tmp_path / "mini"), "--n", "12", "--split", "test")
    run_cli(capsys, "data", "loong-mini", "--out", str(out), "--n", "12", "--split", "test", "--format", "loong")
    code, _, _ = run_cli(
        capsys, "data", "convert", "loong", str(out / "loong.jsonl"), "--out", str(tmp_path / "c.jsonl")
    )
    assert code == 0
    original = read_records(tmp_path / "mini" / "test.jsonl").records
    converted = read_records(tmp_path / "c.jsonl").records
    assert [r.answer for r in converted] == [r.answer for r in original]
    assert [r.task for r in converted] == [r.task for r in original]
    # the same documents come back, text for text
    assert [sorted(d.text for d in r.docs) for r in converted] == [sorted(d.text for d in r.docs) for r in original]


def test_validate_fails_on_a_bad_line_or_skips_and_counts(tmp_path, capsys):
    run_cli(capsys, "data", "loong-mini", "--out", str(tmp_path), "--n", "3")
    path = tmp_path / "train.jsonl"
    lines = path.read_text().splitlines()
    broken = json.loads(lines[1])
    del broken["answer"]
    path.write_text("\n".join([lines[0], json.dumps(broken), lines[2]]) + "\n")
    code, _, err = run_cli(capsys, "data", "validate", str(path))
    assert code == 2 and f"{path}:2: field 'answer' is missing" in err
    code, out, _ = run_cli(capsys, "data", "validate", str(path), "--skip-bad")
    assert code == 0 and "2 valid records, 1 bad lines skipped" in out


def test_bad_options_exit_2(tmp_path, capsys):
    code, _, err = run_cli(capsys, "data", "loong-mini", "--out", str(tmp_path), "--sets", "1,x")
    assert code == 2 and "--sets" in err
    code, _, err = run_cli(capsys, "data", "convert", "csv", "x.csv", "--out", str(tmp_path / "o.jsonl"))
    # FORMAT is a choice: the error lists the converters' formats
    assert code == 2 and "'csv' is not one of 'loong', 'docqa-rl', 'longbench', 'musique', 'hotpotqa'" in err
