"""The `repro` command line: thin commands that load a recipe and call a stage's run()."""

from __future__ import annotations

import logging
import os
import sys
import traceback

import typer

from repro.errors import ReproError

app = typer.Typer(
    help="Reproduce QwenLong-L1, SoLoPO and QwenLong-CPRS at small scale, validated on Loong.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect recipes.", no_args_is_help=True)
app.add_typer(config_app, name="config")

RECIPE_HELP = "Recipe YAML file, e.g. recipes/tiny/base.yaml."
OVERRIDES_HELP = "Overrides as key.sub=value, e.g. model.lora.r=8 seed=1."


@app.command("env")
def env_command() -> None:
    """Show library versions, devices and the backends the kit would pick here."""
    from rich.console import Console
    from rich.table import Table

    from repro.envinfo import env_rows

    table = Table(title="repro env", show_header=True)
    table.add_column("what")
    table.add_column("value")
    for key, value in env_rows():
        table.add_row(key, value)
    Console().print(table)


@config_app.command("show")
def config_show(
    recipe: str = typer.Argument(..., help=RECIPE_HELP),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
) -> None:
    """Print the fully resolved recipe (extends and overrides applied) as YAML."""
    from repro.config import load_recipe, recipe_to_yaml

    typer.echo(recipe_to_yaml(load_recipe(recipe, overrides or [])), nl=False)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2 (REPRO_DEBUG=1: traceback)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        app(args=argv, prog_name="repro", standalone_mode=True)
    except ReproError as exc:
        if os.environ.get("REPRO_DEBUG") == "1":
            traceback.print_exc()
        print(f"repro: error: {exc}", file=sys.stderr)
        sys.exit(2)
