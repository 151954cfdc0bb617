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
from repro.data.cli import data_app  # noqa: E402

app.add_typer(data_app, name="data")
eval_app = typer.Typer(help="Evaluate models on benchmarks.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

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


@eval_app.command("loong")
def eval_loong(
    recipe: str = typer.Argument(..., help=RECIPE_HELP),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    predictions: str = typer.Option(
        None, "--predictions", help='Judge this JSONL of {"id", "prediction"} lines instead of generating.'
    ),
    out: str = typer.Option(None, "--out", help="Run folder (default: OUTPUT_DIR/<recipe>-<time>)."),
    resume: bool = typer.Option(False, "--resume", help="Continue a run folder: finished items are not redone."),
) -> None:
    """Loong evaluation: generate or read predictions, judge (rule or LLM), write metrics.json and report.md."""
    from repro.config import load_recipe
    from repro.loong.eval import run_eval
    from repro.runs import run_folder

    cfg = load_recipe(recipe, overrides or [])
    run_dir = run_folder(cfg.output_dir, cfg.name, out, resume)
    metrics = run_eval(cfg, run_dir, predictions)
    typer.echo(f"avg score {metrics['avg_score']}, perfect rate {metrics['perfect_rate']} over {metrics['n']} items")
    typer.echo(f"run folder: {run_dir} (metrics.json, report.md)")


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
