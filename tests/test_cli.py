"""The CLI: help, env, config show, and bad recipes as one line with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from repro.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else code), out, err


def test_help_lists_every_command(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for command in ("env", "config"):
        assert command in out


def test_config_show_prints_resolved_yaml(capsys):
    code, out, _ = run_cli(capsys, "config", "show", "recipes/tiny/base_4bit.yaml", "model.lora.r=8")
    assert code == 0
    assert "load_in_4bit: true" in out  # from the child recipe
    assert "r: 8" in out  # from the override
    assert "source: artifacts/smollm2-135m-instruct" in out  # inherited from base.yaml


def test_bad_override_exits_2_naming_the_key(capsys):
    code, out, err = run_cli(capsys, "config", "show", "recipes/tiny/base.yaml", "bogus=1")
    assert code == 2
    assert err.count("\n") == 1 and "'bogus'" in err and "Traceback" not in err


def test_missing_recipe_exits_2(capsys):
    code, _, err = run_cli(capsys, "config", "show", "recipes/tiny/missing.yaml")
    assert code == 2 and "recipes/tiny/missing.yaml: recipe file not found" in err


def test_repro_debug_shows_the_traceback(capsys, monkeypatch):
    monkeypatch.setenv("REPRO_DEBUG", "1")
    code, _, err = run_cli(capsys, "config", "show", "recipes/tiny/base.yaml", "bogus=1")
    assert code == 2 and "Traceback" in err and "'bogus'" in err


def test_env_prints_its_table(capsys):
    code, out, _ = run_cli(capsys, "env")
    assert code == 0
    for row in ("python", "torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets"):
        assert row in out
    assert "attention (auto)" in out and "sdpa" in out  # CPU here: no flash attention
    device = "cuda" if torch.cuda.is_available() else "cpu"  # the device `auto` picks on this machine
    assert "4-bit loading" in out and f"yes (nf4 on {device})" in out


def test_python_dash_m_and_console_script_agree():
    env = dict(os.environ, REPRO_DEBUG="")
    res = subprocess.run(
        [sys.executable, "-m", "repro", "config", "show", "recipes/tiny/base.yaml", "bogus=1"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 2 and res.stderr.strip().startswith("repro: error:") and "bogus" in res.stderr
