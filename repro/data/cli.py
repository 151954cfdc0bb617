"""`repro data …`: generate Loong-mini, convert the papers' data sets, validate record files."""

from __future__ import annotations

import time
from collections import Counter
from enum import StrEnum
from pathlib import Path

import typer

from repro.data.converters import FORMATS
from repro.errors import ConfigError


class RecordFormat(StrEnum):
    jsonl = "jsonl"
    loong = "loong"


DataFormat = StrEnum("DataFormat", {name: name for name in FORMATS})  # the converters' formats

data_app = typer.Typer(help="Make, convert and check data sets.", no_args_is_help=True)


def _int_list(text: str | None, what: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{what}: expected comma-separated numbers like 1,2,3, got '{text}'") from None


@data_app.command("loong-mini")
def loong_mini(
    out: str = typer.Option(..., "--out", help="Output folder."),
    n: int = typer.Option(2000, "--n", help="Number of instances."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed and options give identical output."),
    split: str = typer.Option("train", "--split", help="train or test (they share no entity names)."),
    sets: str = typer.Option(None, "--sets", help="Length sets, e.g. 1,2,3,4 (default: all)."),
    tasks: str = typer.Option(
        None, "--tasks", help="Tasks, e.g. spotlight,comparison,clustering,chain_of_reasoning (default: all)."
    ),
    distractors: int = typer.Option(None, "--distractors", help="Extra same-domain documents per instance."),
    fmt: RecordFormat = typer.Option(
        RecordFormat.jsonl, "--format", help="jsonl (the kit's records) or loong (Loong's own layout)."
    ),
    recipe: str = typer.Option(None, "--recipe", help="Take set ranges and the token counter from this recipe."),
) -> None:
    """Generate Loong-mini: Loong-style multi-document instances (4 tasks, 3 domains, 4 length sets)."""
    from repro.config import Recipe, load_recipe
    from repro.data.loong_mini import generate, word_count_tokens, write_loong_format
    from repro.data.schema import write_records

    if Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out}: a file, not a folder; give a folder (its {split}.jsonl is written there)")
    cfg = load_recipe(recipe) if recipe else Recipe()
    count = word_count_tokens
    if cfg.loong_mini.count_tokens == "model":
        from repro.modeling import load_tokenizer

        tokenizer = load_tokenizer(cfg.model)
        count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    ranges = {k: (v[0], v[1]) for k, v in cfg.loong_mini.set_ranges.items()}
    started = time.time()
    records = generate(
        n,
        seed=seed,
        split=split,
        sets=_int_list(sets, "--sets") or sorted(ranges),
        tasks=tasks.split(",") if tasks else None,
        distractors=cfg.loong_mini.distractors if distractors is None else distractors,
        set_ranges=ranges,
        count_tokens=count,
    )
    if fmt == RecordFormat.loong:
        target = write_loong_format(records, out)
    else:
        target = Path(out) / f"{split}.jsonl"
        write_records(target, records)
    by = Counter((r.length_set, r.task) for r in records)
    typer.echo(f"{len(records)} instances in {time.time() - started:.1f} s -> {target}")
    typer.echo("per set x task: " + ", ".join(f"set{s}/{t}={c}" for (s, t), c in sorted(by.items())))


@data_app.command("convert")
def convert_command(
    fmt: DataFormat = typer.Argument(..., help="The data set's layout.", metavar="FORMAT"),
    src: str = typer.Argument(
        ..., help="A local .json/.jsonl/.parquet file or folder, or a hub dataset id.", metavar="SRC"
    ),
    out: str = typer.Option(..., "--out", help="Output JSONL file of the kit's records."),
    docs: str = typer.Option(None, "--docs", help="Loong only: the docs folder (default: beside the file)."),
    split: str = typer.Option(None, "--split", help="Split of a hub data set (default train)."),
) -> None:
    """Convert one of the papers' data sets into the kit's record schema."""
    from repro.data.converters import convert
    from repro.data.schema import write_records

    records = convert(fmt.value, src, docs, split)
    write_records(out, records)
    typer.echo(f"{len(records)} records -> {out}")


@data_app.command("validate")
def validate(
    path: str = typer.Argument(..., help="A JSONL file of the kit's records."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip bad lines (and count them) instead of failing."),
) -> None:
    """Check a record file against the schema and count its records by task and length set."""
    from repro.data.schema import read_records

    result = read_records(path, skip_bad=skip_bad)
    by = Counter((r.task, r.length_set) for r in result.records)
    typer.echo(f"{len(result.records)} valid records, {result.skipped} bad lines skipped")
    for (task, length_set), count in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        typer.echo(f"  {task:<20} set {length_set if length_set is not None else '-'}: {count}")
