"""`repro l1 sft|rl|reproduce`: QwenLong-L1's commands."""

from __future__ import annotations

import typer

from repro.commands import (
    PROFILE_HELP,
    REDO_HELP,
    SEEDS_HELP,
    Profile,
    names,
    redo_choices,
    seed_list,
    training_command,
)
from repro.l1.reproduce import REDO_STAGES

RedoStage = redo_choices(REDO_STAGES)

app = typer.Typer(help="QwenLong-L1: warm-up SFT, phased RL (GRPO/DAPO), the reproduction.", no_args_is_help=True)

sft_command = training_command(
    app,
    "sft",
    "repro.train.sft:run_sft",
    "QwenLong-L1 warm-up SFT: prompt (documents + question) -> reasoning + answer, loss on the response.",
)
rl_command = training_command(
    app,
    "rl",
    "repro.l1.phased_rl:run_rl",
    "QwenLong-L1 phased RL (GRPO or DAPO): curriculum rounds of G rollouts, hybrid reward, dynamic sampling.",
)


@app.command("reproduce")
def reproduce_command(
    profile: Profile = typer.Option(Profile.cpu, "--profile", help=PROFILE_HELP),
    out: str = typer.Option("runs/reproduce-l1", "--out", help="Folder of every stage and the report."),
    seeds: str = typer.Option(None, "--seeds", help=SEEDS_HELP),
    redo: RedoStage = typer.Option(None, "--redo", help=REDO_HELP),
    algorithms: str = typer.Option(None, "--algorithms", help="dapo, grpo or dapo,grpo (default: the profile's)."),
) -> None:
    """QwenLong-L1: default model and data, warm-up SFT, phased RL, evaluation of each policy, report.md."""
    from pathlib import Path

    from repro.l1.reproduce import reproduce_l1

    report = reproduce_l1(profile.value, Path(out), names(algorithms), seeds=seed_list(seeds), redo=redo and redo.value)
    typer.echo(f"report: {report}")
