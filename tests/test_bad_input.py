"""The bad-input matrix: every case is exit code 2, exactly one stderr line, no traceback, finished work kept."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import pytest

from repro.cli import main
from repro.data.loong_mini import generate
from repro.data.schema import write_records

REPO = Path(__file__).resolve().parent.parent
BASE = str(REPO / "recipes" / "tiny" / "base.yaml")


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return generate(8, seed=3, split="test", sets=[1])


@pytest.fixture(scope="module")
def data_file(tmp_path_factory, records) -> Path:
    path = tmp_path_factory.mktemp("bad-input-data") / "test.jsonl"
    write_records(path, records)
    return path


def run_cli(capfd, args: list[str]) -> tuple[int, str, str]:
    capfd.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capfd.readouterr()
    code = exit_info.value.code
    return (0 if code is None else code), out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {err!r}"
    assert lines[0].startswith("repro: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Recipe files (read through `config show`, the same loader every command uses)

RECIPE_FILES = {
    "yaml-syntax": ("seed: [1, 2\n", ["r.yaml:", "YAML syntax error"]),
    "not-utf8": (b"seed: 1\nname: \xff\xfe\n", ["not UTF-8"]),
    "empty": ("", ["recipe file is empty"]),
    "comments-only": ("# nothing here\n\n# still nothing\n", ["recipe file is empty"]),
    "duplicate-top-key": ("seed: 1\nseed: 2\n", ["r.yaml:2", "'seed' is given twice"]),
    "duplicate-nested-key": ("model:\n  dtype: float32\n  dtype: bfloat16\n", ["r.yaml:3", "'dtype' is given twice"]),
    "unknown-key": ("sed: 1\n", ["unknown key 'sed'", "did you mean 'seed'"]),
    "unknown-nested-key": ("model:\n  lora:\n    rank: 4\n", ["unknown key 'model.lora.rank'"]),
    "wrong-type": ("seed: abc\n", ["key 'seed'", "expected int"]),
    "section-as-scalar": ("model: 3\n", ["key 'model' is a section"]),
    "not-a-mapping": ("- 1\n- 2\n", ["must be a mapping"]),
    "bad-choice": ("model:\n  dtype: float8\n", ["key 'model.dtype'", "one of"]),
    "extends-missing": ("extends: nowhere.yaml\n", ["nowhere.yaml: recipe file not found"]),
    "extends-not-a-name": ("extends: [a, b]\n", ["`extends` must be a file name"]),
    "extends-self": ("extends: r.yaml\n", ["loops back"]),
    "negative-lr-in-file": ("train:\n  lr: -0.001\n", ["r.yaml: key 'train.lr': must be > 0"]),
    "nan-lr-in-file": ("train:\n  lr: .nan\n", ["key 'train.lr'", "finite number"]),
    "bad-set-ranges": ("loong_mini:\n  set_ranges: {1: [500, 250]}\n", ["loong_mini.set_ranges"]),
}


@pytest.mark.parametrize("case", sorted(RECIPE_FILES))
def test_bad_recipe_file(case, tmp_path, capfd):
    content, needles = RECIPE_FILES[case]
    recipe = write(tmp_path / "r.yaml", content)
    assert_one_line_error(*run_cli(capfd, ["config", "show", str(recipe)])[::2], *needles)


def test_recipe_that_is_a_folder(tmp_path, capfd):
    assert_one_line_error(*run_cli(capfd, ["config", "show", str(tmp_path)])[::2], "is a folder")


def test_missing_recipe(tmp_path, capfd):
    assert_one_line_error(*run_cli(capfd, ["config", "show", str(tmp_path / "none.yaml")])[::2], "not found")


# ---------------------------------------------------------------------------------------------
# Values: every numeric key has its range, checked when the recipe loads (before anything runs)

BAD_VALUES = {
    "train.lr=-1": "must be > 0",
    "train.lr=nan": "finite number",
    "train.lr=inf": "finite number",
    "train.micro_batch_size=0": "must be >= 1",
    "train.micro_batch_tokens=-5": "must be >= 1",
    "train.grad_accum=0": "must be >= 1",
    "train.epochs=0": "must be >= 1",
    "train.max_steps=0": "must be >= 1",
    "train.checkpoint_every=0": "must be >= 1",
    "train.keep_last=0": "must be >= 1",
    "train.logprob_chunk=0": "must be >= 1",
    "train.min_lr_ratio=2": "must be >= 0 and <= 1",
    "train.max_grad_norm=0": "must be > 0",
    "train.warmup_steps=-1": "must be >= 0",
    "sft.sets=[1,0]": "got 0",
    "sft.limit=0": "must be >= 1",
    "sft.max_seq_tokens=0": "must be >= 1",
    "model.lora.r=0": "must be >= 1",
    "model.lora.dropout=1.0": "must be >= 0 and < 1",
    "eval.generation.batch_size=0": "must be >= 1",
    "eval.generation.max_new_tokens=0": "must be >= 1",
    "eval.generation.temperature=0": "must be > 0",
    "eval.generation.top_p=1.5": "must be > 0 and <= 1",
    "eval.llm_judge.concurrency=0": "must be >= 1",
    "eval.llm_judge.timeout_s=0": "must be > 0",
    "eval.llm_judge.max_retries=-1": "must be >= 0",
    "eval.max_input_tokens=0": "must be >= 1",
    "seed=-1": "must be >= 0",
    "loong_mini.distractors=-2": "must be >= 0",
    "rl.group_size=0": "must be >= 1",
    "rl.eps_low=1.5": "must be >= 0 and <= 1",
    "rl.max_gen_batches=0": "must be >= 1",
    "rl.phases=[]": "at least one phase",
    "rl.phases=[{max_input_tokens: 900, steps: 1}, {max_input_tokens: 800, steps: 1}]": "must increase",
    "rl.phases=[{max_input_tokens: 900, steps: 0}]": "must be >= 1",
    "rl.algorithm=ppo": "one of",
}


@pytest.mark.parametrize("override", sorted(BAD_VALUES))
def test_out_of_range_value(override, capfd):
    key = override.split("=")[0]
    if key == "rl.phases" and "steps: 0" in override:
        key = "rl.phases[0].steps"
    code, _, err = run_cli(capfd, ["config", "show", BASE, override])
    assert_one_line_error(code, err, f"key '{key}'", BAD_VALUES[override])


@pytest.mark.parametrize("command", [["sft"], ["eval", "loong"]])
def test_commands_check_values_before_running(command, tmp_path, capfd):
    out = tmp_path / "run"
    code, _, err = run_cli(
        capfd, [*command, BASE, "train.checkpoint_every=0", "eval.generation.batch_size=0", "--out", str(out)]
    )
    assert_one_line_error(code, err, "must be >= 1")
    assert not out.exists()  # nothing was started


def test_override_without_equals(capfd):
    assert_one_line_error(*run_cli(capfd, ["config", "show", BASE, "seed"])[::2], "expected key.sub=value")


# ---------------------------------------------------------------------------------------------
# Data files


def _record_line(records, **changes) -> str:
    return json.dumps({**records[0].to_json(), **changes})


DATA_FILES = {
    "bad-json": (lambda recs: "{not json\n", [":1: not valid JSON"]),
    "nested-100000-deep": (lambda recs: "[" * 100_000 + "]" * 100_000 + "\n", [":1:", "nested too deeply"]),
    "huge-integer": (lambda recs: '{"id": ' + "9" * 5000 + "}\n", [":1:", "cannot be read"]),
    "not-utf8": (lambda recs: b'{"id": "\xff"}\n', ["not UTF-8"]),
    "duplicate-id": (
        lambda recs: _record_line(recs) + "\n" + _record_line(recs) + "\n",
        [":2: duplicate id", "first at"],
    ),
    "missing-field": (lambda recs: json.dumps({"id": "x"}) + "\n", [":1: field 'source' is missing"]),
    "unknown-field": (lambda recs: _record_line(recs, colour="red") + "\n", [":1: unknown field 'colour'"]),
    "not-an-object": (lambda recs: "[1, 2]\n", [":1: expected a JSON object"]),
    "bad-task": (lambda recs: _record_line(recs, task="dance") + "\n", [":1:", "task"]),
}


@pytest.mark.parametrize("case", sorted(DATA_FILES))
def test_bad_data_file_in_validate(case, tmp_path, capfd, records):
    make, needles = DATA_FILES[case]
    path = write(tmp_path / "d.jsonl", make(records))
    assert_one_line_error(*run_cli(capfd, ["data", "validate", str(path)])[::2], str(path), *needles)


@pytest.mark.parametrize("case", ["nested-100000-deep", "duplicate-id", "huge-integer"])
def test_bad_data_file_in_eval(case, tmp_path, capfd, records):
    make, needles = DATA_FILES[case]
    path = write(tmp_path / "d.jsonl", make(records))
    code, _, err = run_cli(capfd, ["eval", "loong", BASE, f"eval.data={path}", "--out", str(tmp_path / "run")])
    assert_one_line_error(code, err, *needles)


def test_validate_skip_bad_counts_a_duplicate(tmp_path, capfd, records):
    path = write(tmp_path / "d.jsonl", _record_line(records) + "\n" + _record_line(records) + "\n")
    code, out, err = run_cli(capfd, ["data", "validate", str(path), "--skip-bad"])
    assert code == 0 and err == ""
    assert "1 valid records, 1 bad lines skipped" in out


def test_data_file_missing_and_folder(tmp_path, capfd):
    assert_one_line_error(*run_cli(capfd, ["data", "validate", str(tmp_path / "none.jsonl")])[::2], "not found")
    assert_one_line_error(*run_cli(capfd, ["data", "validate", str(tmp_path)])[::2], "is a folder")


def test_convert_deep_json_and_unknown_format(tmp_path, capfd):
    deep = write(tmp_path / "deep.json", "[" * 100_000 + "]" * 100_000)
    code, _, err = run_cli(capfd, ["data", "convert", "longbench", str(deep), "--out", str(tmp_path / "o.jsonl")])
    assert_one_line_error(code, err, "nested too deeply")
    code, _, err = run_cli(capfd, ["data", "convert", "nosuch", str(deep), "--out", str(tmp_path / "o.jsonl")])
    assert_one_line_error(code, err, "nosuch")


def test_eval_with_no_matching_records(data_file, tmp_path, capfd):
    code, _, err = run_cli(
        capfd, ["eval", "loong", BASE, f"eval.data={data_file}", "eval.sets=[4]", "--out", str(tmp_path / "r")]
    )
    assert_one_line_error(code, err, "no record matches")


def test_unreadable_data_file(tmp_path):
    """chmod 000 stops only a user other than root: a forked child drops to user nobody first when run as root."""
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o755)  # pytest's own temp root is owner-only: user nobody must reach the file
    path = write(folder / "d.jsonl", "{}\n")
    path.chmod(0)
    err_file = tmp_path / "stderr.txt"
    pid = os.fork()
    if pid == 0:  # the child: stderr to a file, then (as root) become nobody, then run the command
        code = 1
        try:
            fd = os.open(err_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            os.dup2(fd, 2)
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - the child exits right after
            if os.geteuid() == 0:
                os.setuid(65534)
            main(["data", "validate", str(path)])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    shutil.rmtree(folder)
    assert_one_line_error(os.waitstatus_to_exitcode(status), err_file.read_text(), str(path), "Permission denied")


# ---------------------------------------------------------------------------------------------
# Predictions (`eval loong --predictions`): nothing is judged, and a finished run folder is untouched


def _pred(record_id: str, text: str = "Therefore, the answer is x") -> str:
    return json.dumps({"id": record_id, "prediction": text}) + "\n"


PREDICTIONS = {
    "bad-json": (lambda ids: _pred(ids[0]) + "{oops\n", [":2: not valid JSON"]),
    "nested-deep": (lambda ids: "[" * 100_000 + "]" * 100_000 + "\n", [":1:", "nested too deeply"]),
    "unknown-id": (lambda ids: _pred("no-such-id"), [":1: unknown id 'no-such-id'"]),
    "duplicate-id": (lambda ids: _pred(ids[0]) + _pred(ids[0], "other"), [":2: duplicate prediction", "first at"]),
    "prediction-not-a-string": (lambda ids: json.dumps({"id": ids[0], "prediction": 5}) + "\n", ["must be a string"]),
    "no-id": (lambda ids: json.dumps({"prediction": "x"}) + "\n", [":1: expected"]),
    "not-utf8": (lambda ids: b'{"id": "\xff", "prediction": ""}\n', ["not UTF-8"]),
}


@pytest.mark.parametrize("case", sorted(PREDICTIONS))
def test_bad_predictions_file(case, data_file, records, tmp_path, capfd):
    make, needles = PREDICTIONS[case]
    preds = write(tmp_path / "p.jsonl", make([r.id for r in records]))
    run = tmp_path / "run"
    code, _, err = run_cli(
        capfd, ["eval", "loong", BASE, f"eval.data={data_file}", "--predictions", str(preds), "--out", str(run)]
    )
    assert_one_line_error(code, err, *needles)
    assert not (run / "metrics.json").exists()


def test_predictions_missing_or_folder(data_file, tmp_path, capfd):
    for target, needle in ((tmp_path / "none.jsonl", "not found"), (tmp_path, "is a folder")):
        args = [
            "eval",
            "loong",
            BASE,
            f"eval.data={data_file}",
            "--predictions",
            str(target),
            "--out",
            str(tmp_path / "r"),
        ]
        assert_one_line_error(*run_cli(capfd, args)[::2], needle)


def test_a_finished_run_survives_a_bad_resume(data_file, records, tmp_path, capfd):
    good = write(tmp_path / "good.jsonl", "".join(_pred(r.id) for r in records))
    run = tmp_path / "run"
    args = ["eval", "loong", BASE, f"eval.data={data_file}", "--predictions", str(good), "--out", str(run)]
    assert run_cli(capfd, args)[0] == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    bad = write(tmp_path / "bad.jsonl", _pred(records[0].id) + "{oops\n")
    code, _, err = run_cli(capfd, [*args[:4], "--predictions", str(bad), "--out", str(run), "--resume"])
    assert_one_line_error(code, err, "not valid JSON")
    after = {p.name: p.read_bytes() for p in run.iterdir()}
    assert {k: v for k, v in after.items() if k != "recipe.yaml"} == {
        k: v for k, v in before.items() if k != "recipe.yaml"
    }


# ---------------------------------------------------------------------------------------------
# Model folders


def _copy_model(src: str, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _corrupt_weights(d: Path) -> None:
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[:1000])


MODELS = {
    "no-config": (lambda d: (d / "config.json").unlink(), ["has no config.json"]),
    "corrupt-weights": (_corrupt_weights, ["cannot load", "header"]),
    "no-weights": (lambda d: (d / "model.safetensors").unlink(), ["cannot load", "model.safetensors"]),
    "config-not-json": (lambda d: (d / "config.json").write_text("{nope"), ["cannot load"]),
    "unknown-architecture": (
        lambda d: (d / "config.json").write_text(
            (d / "config.json").read_text().replace('"model_type": "qwen2"', '"model_type": "nosuchmodel"')
        ),
        ["cannot load", "nosuchmodel"],
    ),
    "no-tokenizer": (lambda d: [p.unlink() for p in d.glob("tokenizer*")], ["tokenizer"]),
}


@pytest.mark.parametrize("case", sorted(MODELS))
def test_broken_model_folder(case, tiny_model_dir, data_file, tmp_path, capfd):
    breaks, needles = MODELS[case]
    model = _copy_model(tiny_model_dir, tmp_path / "model")
    breaks(model)
    args = ["eval", "loong", BASE, f"model.source={model}", f"eval.data={data_file}", "--out", str(tmp_path / "r")]
    assert_one_line_error(*run_cli(capfd, args)[::2], str(model), *needles)


def test_hub_id_offline(data_file, tmp_path, capfd):
    args = [
        "eval",
        "loong",
        BASE,
        "model.source=Nobody/not-a-model",
        f"eval.data={data_file}",
        "--out",
        str(tmp_path / "r"),
    ]
    assert_one_line_error(*run_cli(capfd, args)[::2], "Nobody/not-a-model")


# ---------------------------------------------------------------------------------------------
# The command line itself

CLI = {
    "no-such-command": (["bogus"], ["No such command 'bogus'", "see repro --help"]),
    "missing-recipe": (["sft"], ["Missing argument", "see repro sft --help"]),
    "missing-option": (["data", "loong-mini"], ["Missing option '--out'", "see repro data loong-mini --help"]),
    "unknown-option": (["sft", BASE, "--nope"], ["No such option: --nope", "see repro sft --help"]),
    "not-an-int": (["data", "loong-mini", "--out", "x", "--n", "abc"], ["'--n'", "see repro data loong-mini --help"]),
    "nproc-zero": (["sft", BASE, "--nproc", "0"], ["--nproc: expected 1 or more"]),
    "nproc-negative": (["sft", BASE, "--nproc", "-1"], ["--nproc: expected 1 or more"]),
    "bad-format": (["data", "loong-mini", "--out", "x", "--format", "csv"], ["--format"]),
    "bad-sets": (["data", "loong-mini", "--out", "x", "--sets", "1,b"], ["--sets"]),
    "export-not-a-run": (["export", "/nonexistent-run", "--out", "x"], ["not a finished training run"]),
    "export-bad-dtype": (["export", "/nonexistent-run", "--out", "x", "--dtype", "int3"], ["--dtype"]),
    "reproduce-bad-profile": (["reproduce", "l1", "--profile", "huge"], ["'huge' is not one of 'cpu', 'cpu-long'"]),
    "reproduce-bad-algorithm": (["reproduce", "l1", "--algorithms", "dapo,ppo"], ["--algorithms"]),
    "rl-missing-data": (["rl", BASE, "rl.data=/nonexistent/train.jsonl"], ["data file not found"]),
    "loong-mini-out-is-a-file": (["data", "loong-mini", "--out", "README.md", "--n", "2"], ["a file, not a folder"]),
    "reproduce-bad-seeds": (["l1", "reproduce", "--seeds", "0,x"], ["--seeds: expected whole numbers"]),
}


@pytest.mark.parametrize("case", sorted(CLI))
def test_bad_command_line(case, capfd):
    args, needles = CLI[case]
    assert_one_line_error(*run_cli(capfd, args)[::2], *needles)


def test_rl_phase_that_no_prompt_fits(tiny_model_dir, data_file, tmp_path, capfd):
    args = ["rl", BASE, f"model.source={tiny_model_dir}", f"rl.data={data_file}", "rl.tasks=[]"]
    args += ["rl.phases=[{max_input_tokens: 10, steps: 1}]", "--out", str(tmp_path / "run")]
    assert_one_line_error(*run_cli(capfd, args)[::2], "rl.phases: no record's documents fit", "raise the last")


def test_solopo_workstation_profile_without_musique(tmp_path, capfd):
    args = ["reproduce", "solopo", "--profile", "workstation", "--out", str(tmp_path / "ws")]
    assert_one_line_error(*run_cli(capfd, args)[::2], "data/musique/test.jsonl is missing", "convert MuSiQue")


def test_cprs_workstation_profile_without_hotpotqa_or_musique(tmp_path, capfd):
    args = ["reproduce", "cprs", "--profile", "workstation", "--out", str(tmp_path / "ws")]
    needles = ("data/hotpotqa/train.jsonl and data/musique/train.jsonl are missing", "convert HotpotQA or MuSiQue")
    assert_one_line_error(*run_cli(capfd, args)[::2], *needles)


def test_compress_input_that_is_not_utf8_text(tmp_path, capfd):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café".encode("latin-1"))
    for path, needle in ((latin1, "not UTF-8 text"), (tmp_path / "missing.txt", "cannot read it")):
        args = ["cprs", "compress", BASE, "--input", str(path)]
        assert_one_line_error(*run_cli(capfd, args)[::2], f"--input {path}", needle)


def test_workstation_profile_offline(tmp_path, capfd):
    """The workstation profile needs the hub (model, DocQA-RL): offline it says so in one line."""
    args = ["reproduce", "l1", "--profile", "workstation", "--out", str(tmp_path / "ws")]
    assert_one_line_error(*run_cli(capfd, args)[::2], "cannot reach the hub", "Qwen/Qwen2.5-1.5B-Instruct")


def test_out_that_is_a_file(tmp_path, capfd, data_file):
    target = write(tmp_path / "taken", "keep me\n")
    for command in (["sft", BASE], ["eval", "loong", BASE, f"eval.data={data_file}"]):
        assert_one_line_error(*run_cli(capfd, [*command, "--out", str(target)])[::2], "is a file")
    assert target.read_text() == "keep me\n"


def test_out_holding_a_run_without_resume(tmp_path, capfd):
    run = tmp_path / "run"
    write(run / "metrics.jsonl", '{"step": 1}\n')
    assert_one_line_error(*run_cli(capfd, ["sft", BASE, "--out", str(run)])[::2], "add --resume")
    assert (run / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_resume_with_nothing_to_resume(tmp_path, capfd):
    args = ["sft", BASE, f"output_dir={tmp_path}", "--resume"]
    assert_one_line_error(*run_cli(capfd, args)[::2], "--resume: no earlier run")


# ---------------------------------------------------------------------------------------------
# The judge endpoint


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _llm_judge_args(data_file: Path, preds: Path, run: Path, base_url: str, *extra: str) -> list[str]:
    return [
        "eval", "loong", BASE, f"eval.data={data_file}", "eval.judge=llm", "eval.llm_judge.backend=openai",
        f"eval.llm_judge.base_url={base_url}", "eval.llm_judge.model=judge", "eval.llm_judge.max_retries=0",
        "eval.llm_judge.timeout_s=2", *extra, "--predictions", str(preds), "--out", str(run),
    ]  # fmt: skip


def test_endpoint_down_keeps_the_predictions(data_file, records, tmp_path, capfd):
    preds = write(tmp_path / "p.jsonl", "".join(_pred(r.id) for r in records))
    run = tmp_path / "run"
    args = _llm_judge_args(data_file, preds, run, f"http://127.0.0.1:{_closed_port()}/v1")
    assert_one_line_error(*run_cli(capfd, args)[::2], "127.0.0.1")
    assert (run / "predictions.jsonl").read_text().count("\n") == len(records)


def test_endpoint_key_variable_unset(data_file, records, tmp_path, capfd, monkeypatch):
    monkeypatch.delenv("REPRO_TEST_NO_SUCH_KEY", raising=False)
    preds = write(tmp_path / "p.jsonl", _pred(records[0].id))
    extra = "eval.llm_judge.api_key_env=REPRO_TEST_NO_SUCH_KEY"
    args = _llm_judge_args(data_file, preds, tmp_path / "run", f"http://127.0.0.1:{_closed_port()}/v1", extra)
    assert_one_line_error(*run_cli(capfd, args)[::2], "REPRO_TEST_NO_SUCH_KEY")


def test_endpoint_url_without_scheme_hides_its_password(data_file, records, tmp_path, capfd):
    preds = write(tmp_path / "p.jsonl", _pred(records[0].id))
    args = _llm_judge_args(data_file, preds, tmp_path / "run", "ftp://user:hunter2@127.0.0.1/v1")
    code, _, err = run_cli(capfd, args)
    assert_one_line_error(code, err, "base_url")
    assert "hunter2" not in err


# ---------------------------------------------------------------------------------------------
# The real entry point, as a user runs it


def test_console_entry_point_prints_one_line(tmp_path):
    recipe = write(tmp_path / "r.yaml", "seed: 1\nseed: 2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "repro", "sft", str(recipe)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert_one_line_error(proc.returncode, proc.stderr, "'seed' is given twice")
    assert proc.stdout == ""
