"""`repro cprs train|compress|reproduce`: QwenLong-CPRS's commands."""

from __future__ import annotations

import sys

import typer

from repro.commands import (
    OVERRIDES_HELP,
    PROFILE_HELP,
    RECIPE,
    RECIPE_HELP,
    REDO_HELP,
    SEEDS_HELP,
    Profile,
    redo_choices,
    seed_list,
    training_command,
)
from repro.cprs.reproduce import REDO_STAGES
from repro.errors import ReproError

RedoStage = redo_choices(REDO_STAGES)

app = typer.Typer(help="QwenLong-CPRS: train the compressor, compress a context.", no_args_is_help=True)

train_command = training_command(
    app,
    "train",
    "repro.cprs.train:run_cprs",
    "Train the compressor: bidirectional top layers, a token critic and a boundary head on evidence labels.",
)


@app.command("compress")
def compress_command(
    recipe: str = typer.Argument(..., help=RECIPE_HELP, metavar=RECIPE),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    input_file: str = typer.Option(..., "--input", help="The context: a UTF-8 text file, or - for stdin."),
    query: str = typer.Option(None, "--query", help="The question the kept text must answer (default: none)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (text, spans, ratio, ...)."),
) -> None:
    """Compress a context with cprs.compressor: windows tagged in batches, the tagged spans kept in order."""
    import json

    from repro.config import load_recipe
    from repro.cprs.compress import compress, load_compressor

    cfg = load_recipe(recipe, overrides or [])
    text = _read_context(input_file)
    critic, tokenizer = load_compressor(cfg)
    result = compress(critic, tokenizer, text, cfg.cprs, query)
    typer.echo(json.dumps(result.to_json(), ensure_ascii=False) if as_json else result.text)


def _read_context(path: str) -> str:
    """A context from a file or stdin: UTF-8 text only (a binary or undecodable file is one line, exit 2)."""
    from pathlib import Path

    from repro.data.jsonl import os_reason

    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise ReproError(f"--input {path}: cannot read it ({os_reason(exc)})") from None
    if b"\x00" in data:
        raise ReproError(f"--input {path}: a binary file, not text; give a UTF-8 text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReproError(f"--input {path}: not UTF-8 text (byte {exc.start}); convert it to UTF-8") from None


@app.command("reproduce")
def reproduce_command(
    profile: Profile = typer.Option(Profile.cpu, "--profile", help=PROFILE_HELP),
    out: str = typer.Option("runs/reproduce-cprs", "--out", help="Folder of every stage and the report."),
    seeds: str = typer.Option(None, "--seeds", help=SEEDS_HELP),
    redo: RedoStage = typer.Option(None, "--redo", help=REDO_HELP),
    l1_out: str = typer.Option("runs/reproduce-l1", "--l1-out", help="The L1 reproduction's folder (its reader)."),
) -> None:
    """QwenLong-CPRS: train the compressor, compress held-out contexts, a reader on each context, report.md."""
    from pathlib import Path

    from repro.cprs.reproduce import reproduce_cprs

    report = reproduce_cprs(profile.value, Path(out), Path(l1_out), seeds=seed_list(seeds), redo=redo and redo.value)
    typer.echo(f"report: {report}")
