"""`repro solopo pairs|train|reproduce`: SoLoPO's commands."""

from __future__ import annotations

import typer

from repro.commands import (
    NPROC_HELP,
    OUT_HELP,
    OVERRIDES_HELP,
    PROFILE_HELP,
    RECIPE,
    RECIPE_HELP,
    REDO_HELP,
    SEEDS_HELP,
    Profile,
    names,
    processes,
    redo_choices,
    seed_list,
    training_command,
)
from repro.errors import ReproError
from repro.solopo.reproduce import REDO_STAGES

RedoStage = redo_choices(REDO_STAGES)

app = typer.Typer(help="SoLoPO: short-context preference pairs and preference optimisation.", no_args_is_help=True)

train_command = training_command(
    app,
    "train",
    "repro.solopo.train:run_solopo",
    "Preference optimisation on solopo.pairs: solopo (short PO + SoLo-RA), long, expand_long or short.",
)


@app.command("pairs")
def pairs_command(
    recipe: str = typer.Argument(..., help=RECIPE_HELP, metavar=RECIPE),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    out: str = typer.Option(None, "--out", help=OUT_HELP),
    resume: bool = typer.Option(False, "--resume", help="Continue the run folder's pairs.jsonl."),
    nproc: int = typer.Option(1, "--nproc", help=NPROC_HELP + " Each process samples its share of the examples."),
    dump: str = typer.Option(
        None,
        "--dump-prompts",
        metavar="FILE",
        help='Write the chat-formatted prompts as JSONL ({"id", "context", "prompt", "n"}) for another generator, '
        "and stop.",
    ),
) -> None:
    """Sample K responses per example on its short (or long) context, score them, keep a correct and a wrong one."""
    from repro.config import load_recipe
    from repro.solopo.sample import PAIRS_FILE, dump_pair_prompts, make_pairs

    cfg = load_recipe(recipe, overrides or [])
    if dump:
        if resume:
            raise ReproError("--dump-prompts writes the prompts and stops: give it without --resume")
        written, left_out = dump_pair_prompts(cfg, dump)
        too_long = f" ({left_out} left out: their needed documents alone exceed solopo.max_input_tokens)"
        typer.echo(f"{written} prompts written to {dump}" + (too_long if left_out else ""))
        return
    with processes(cfg, nproc, out, resume) as (run_dir, dist):
        stats = make_pairs(cfg, run_dir, resume=resume, dist=dist)
    if stats is not None:  # the main process reports
        typer.echo(f"{stats.line()}: {run_dir / PAIRS_FILE}")


@app.command("reproduce")
def reproduce_command(
    profile: Profile = typer.Option(Profile.cpu, "--profile", help=PROFILE_HELP),
    out: str = typer.Option("runs/reproduce-solopo", "--out", help="Folder of every stage and the report."),
    seeds: str = typer.Option(None, "--seeds", help=SEEDS_HELP),
    redo: RedoStage = typer.Option(None, "--redo", help=REDO_HELP),
    algorithms: str = typer.Option(None, "--algorithms", help="dpo, simpo, orpo, comma-separated (default: all)."),
    l1_out: str = typer.Option("runs/reproduce-l1", "--l1-out", help="The L1 reproduction's folder (its SFT policy)."),
) -> None:
    """SoLoPO: SFT policy, pairs on short and long contexts, DPO/SimPO/ORPO per mode, evaluation, report.md."""
    from pathlib import Path

    from repro.solopo.reproduce import reproduce_solopo

    report = reproduce_solopo(
        profile.value, Path(out), names(algorithms), Path(l1_out), seeds=seed_list(seeds), redo=redo and redo.value
    )
    typer.echo(f"report: {report}")
