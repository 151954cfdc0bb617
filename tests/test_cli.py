"""The CLI: help, env, config show, and bad recipes as one line with exit code 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch
import typer.main

from repro.cli import app, main

ROOT = Path(__file__).resolve().parents[1]
# The commands README's command-line table documents; a command dropped from the app, or one added without
# a line in README, fails test_registered_commands_are_the_documented_ones.
README_COMMANDS = {
    "env",
    "config show",
    "data loong-mini",
    "data convert",
    "data validate",
    "eval loong",
    "init-model",
    "export",
    "l1 sft",
    "l1 rl",
    "l1 reproduce",
    "solopo pairs",
    "solopo train",
    "solopo reproduce",
    "cprs train",
    "cprs compress",
    "cprs reproduce",
}
# The forms before each paper had its own group: hidden from the help, still working.
ALIASES = {"sft": "l1 sft", "rl": "l1 rl", "reproduce l1": "l1 reproduce", "reproduce solopo": "solopo reproduce",
           "reproduce cprs": "cprs reproduce"}  # fmt: skip


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else code), out, err


def command_tree(command=None, path: tuple[str, ...] = (), hidden: bool = True) -> dict[tuple[str, ...], list[str]]:
    """Each group of the Typer app (the root is ()) -> the names of the commands registered under it (without
    the hidden ones when `hidden` is False)."""
    command = typer.main.get_command(app) if command is None else command
    tree = {path: [name for name, sub in command.commands.items() if hidden or not sub.hidden]}
    for name, sub in command.commands.items():
        if hasattr(sub, "commands") and (hidden or not sub.hidden):  # a sub-group
            tree |= command_tree(sub, (*path, name), hidden)
    return tree


def leaf_commands() -> set[str]:
    return {" ".join((*path, name)) for path, names in command_tree().items() for name in names} - {
        " ".join(path) for path in command_tree()
    }


def listed_commands(help_text: str) -> set[str]:
    """The names in a help page's command list (rich's boxed panel, or click's plain indented list)."""
    return set(re.findall(r"^(?:│ | {2})([a-z][a-z0-9-]*)(?: {2,}| *│?$)", help_text, flags=re.MULTILINE))


def test_registered_commands_are_the_documented_ones_and_the_aliases():
    assert leaf_commands() == README_COMMANDS | set(ALIASES)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## The command line", 1)[1].split("\n## ", 1)[0]
    assert [c for c in sorted(README_COMMANDS) if f"`repro {c}" not in table] == []


@pytest.mark.parametrize(
    "group", sorted(command_tree(hidden=False)), ids=lambda path: " ".join(("repro", *path))
)
def test_help_lists_every_command(capsys, group):
    code, out, _ = run_cli(capsys, *group, "--help")
    assert code == 0
    assert f"Usage: {' '.join(('repro', *group))} " in out
    assert listed_commands(out) == set(command_tree(hidden=False)[group])


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_an_alias_runs_the_command_it_names(capsys, alias):
    code, out, _ = run_cli(capsys, *alias.split(), "--help")
    assert code == 0 and f"Usage: repro {alias} " in out
    _, target, _ = run_cli(capsys, *ALIASES[alias].split(), "--help")
    # the same options and text, under the other name (the boxes' padding follows the name's length)
    def words(text: str, name: str) -> list[str]:
        return text.replace(f"repro {name} ", "").split()

    assert words(out, alias) == words(target, ALIASES[alias])


@pytest.mark.parametrize("command", sorted(README_COMMANDS))
def test_each_command_has_its_help(capsys, command):
    code, out, _ = run_cli(capsys, *command.split(), "--help")
    assert code == 0 and f"Usage: repro {command} " in out and "--help" in out


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


def console_script() -> list[str]:
    """The installed `repro` console script, next to this interpreter (pip puts it there); where it is not,
    the entry point the installed metadata declares, called as the script would call it."""
    (entry,) = entry_points(group="console_scripts", name="repro")  # none: the kit is not installed (pip install -e .)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert entry.value == declared["repro"] == "repro.cli:main"
    script = Path(sys.executable).with_name("repro")
    if script.is_file():
        return [str(script)]
    call = "import sys; from importlib.metadata import entry_points; (e,) = entry_points(group='console_scripts', "
    call += "name='repro'); sys.argv[0] = 'repro'; sys.exit(e.load()())"
    return [sys.executable, "-c", call]


@pytest.mark.parametrize(
    "args",
    [["--help"], [], ["eval", "--help"], ["config", "show", "recipes/tiny/base.yaml", "bogus=1"], ["no-such-command"]],
    ids=["help", "no arguments", "group help", "bad override", "unknown command"],
)
def test_python_dash_m_and_console_script_agree(args):
    # this checkout's code for both (an editable install may point at another one); a fixed width for rich
    env = dict(os.environ, REPRO_DEBUG="", PYTHONPATH=str(ROOT), COLUMNS="100")
    runs = [
        subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
        for cmd in (console_script(), [sys.executable, "-m", "repro"])
    ]
    script, module = ((r.returncode, r.stdout, r.stderr) for r in runs)
    assert script == module
    code, out, err = script
    if args in (["--help"], []):
        assert code == 0 and "Usage: repro [OPTIONS] COMMAND" in out
        assert listed_commands(out) == set(command_tree(hidden=False)[()])
    elif args == ["eval", "--help"]:
        assert code == 0 and "Usage: repro eval " in out and listed_commands(out) == {"loong"}
    else:
        assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("repro: error:")
        assert ("'bogus'" if "bogus=1" in args else "no-such-command") in err


def test_nproc_relaunches_the_same_command_under_torchrun_without_its_nproc():
    from repro.commands import torchrun_command

    cmd = torchrun_command(2, ["solopo", "train", "r.yaml", "--nproc", "2", "a.b=1", "--nproc=3", "--out", "x"])
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "repro"]
    assert cmd == [*launcher, "solopo", "train", "r.yaml", "a.b=1", "--out", "x"]


def test_version_and_choices_in_the_help(capsys):
    from repro import __version__

    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out == f"repro {__version__}\n"
    _, out, _ = run_cli(capsys, "l1", "reproduce", "--help")
    assert "cpu|cpu-long|gpu|workst" in out.replace("\n", "").replace("│", "").replace(" ", "")
    _, out, _ = run_cli(capsys, "l1", "sft", "--help")
    assert "RECIPE" in out
