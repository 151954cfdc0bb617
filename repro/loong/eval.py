"""`repro eval loong`: assemble prompts by Loong's rule, generate (or read predictions), judge, aggregate, report."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.config import EvalSection, ModelSection, Recipe, recipe_to_yaml
from repro.data.prompts import apply_chat, build_prompt
from repro.data.schema import Record, read_records
from repro.errors import ConfigError, DataError, ReproError
from repro.fsio import append_jsonl, atomic_write_json, atomic_write_text
from repro.loong.judges import ORDERED_SUBTASKS, judge_prompt, parse_rating, rule_score
from repro.loong.metrics import aggregate, format_tables, paper_reference_rows
from repro.loong.run_files import drop_torn_tail, read_done, read_predictions
from repro.progress import progress
from repro.redact import redact_url
from repro.runrecord import write_environment
from repro.train.dist import DistInfo, barrier

log = logging.getLogger("repro.eval")


@dataclass
class EvalItem:
    record: Record
    prompt: str = ""
    dropped_docs: int = 0
    prompt_tokens: int = 0


def select_records(cfg: EvalSection) -> list[Record]:
    records = read_records(cfg.data).records
    chosen = [
        r
        for r in records
        if (r.length_set is None or r.length_set in cfg.sets) and (not cfg.tasks or r.task in cfg.tasks)
    ]
    if cfg.limit is not None:
        chosen = chosen[: cfg.limit]
    if not chosen:
        raise DataError(f"{cfg.data}: no record matches eval.sets={cfg.sets} eval.tasks={cfg.tasks or 'all'}")
    return chosen


def rule_judge(record: Record, prediction: str) -> float:
    ordered = record.subtask in ORDERED_SUBTASKS if isinstance(record.answer, list) else None
    return rule_score(prediction, record.answer, ordered=ordered, aliases=record.answer_aliases)


def assemble_prompts(items: list[EvalItem], cfg: EvalSection, tokenizer: Any, seed: int) -> None:
    """Fill each item's chat-formatted prompt: documents in order while they fit, an overflowing one dropped whole."""

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    chat_overhead = count(apply_chat(tokenizer, ""))
    budget = cfg.max_input_tokens - chat_overhead
    for item in items:
        text, dropped = build_prompt(
            item.record,
            style=cfg.prompt_style,
            budget_tokens=budget,
            count_tokens=count,
            shuffle_seed=seed if cfg.shuffle_docs else None,
        )
        item.prompt = apply_chat(tokenizer, text)
        item.dropped_docs = dropped
        item.prompt_tokens = count(item.prompt)


def _row(item: EvalItem, text: str) -> dict:
    return {
        "id": item.record.id,
        "prediction": text,
        "dropped_docs": item.dropped_docs,
        "prompt_tokens": item.prompt_tokens,
    }


def generate_predictions(items: list[EvalItem], recipe: Recipe, run_dir: Path, dist: DistInfo | None = None) -> None:
    """Generate for the items without a prediction yet, appending each batch (each reply, from a server) to
    predictions.jsonl. Several processes split the items (process r takes items r, r + N, ...), each appending
    to its own predictions.rank<r>.jsonl; the main process then merges them into predictions.jsonl in the
    items' order (a cut run's part files count as done on resume)."""
    from repro.generation import generate_texts
    from repro.modeling import load_model

    dist = dist or DistInfo()
    path = run_dir / "predictions.jsonl"
    if dist.is_main:
        drop_torn_tail(path)
        for part in sorted(run_dir.glob("predictions.rank*.jsonl")):
            drop_torn_tail(part)
    barrier()
    done = read_done(path)
    for part in run_dir.glob("predictions.rank*.jsonl"):
        done.update(read_done(part))
    pending = [it for it in items if it.record.id not in done][dist.rank :: dist.world_size]
    mine = path if dist.world_size == 1 else run_dir / f"predictions.rank{dist.rank}.jsonl"
    if pending and recipe.eval.generation.backend == "server":
        _generate_on_server(items, pending, recipe, run_dir, mine)
    elif pending:
        loaded = load_model(recipe.model, training=False)
        assemble_prompts(pending, recipe.eval, loaded.tokenizer, recipe.seed)
        pending.sort(key=lambda it: it.prompt_tokens)  # similar lengths batch with little padding
        gen = recipe.eval.generation
        bar = progress(len(pending), "generate", "item", enabled=dist.is_main)
        for start in range(0, len(pending), gen.batch_size):
            batch = pending[start : start + gen.batch_size]
            texts = generate_texts(loaded.model, loaded.tokenizer, [it.prompt for it in batch], gen)
            for item, text in zip(batch, texts, strict=True):
                append_jsonl(mine, _row(item, text))
            bar.update(len(batch))
        bar.close()
    if dist.world_size > 1:
        barrier()
        if dist.is_main:
            merge_parts(items, run_dir)
        barrier()


def merge_parts(items: list[EvalItem], run_dir: Path) -> None:
    """Append the processes' part files' rows to predictions.jsonl in the items' order, then remove the parts."""
    path = run_dir / "predictions.jsonl"
    parts = sorted(run_dir.glob("predictions.rank*.jsonl"))
    rows: dict[str, dict] = {}
    for part in parts:
        rows.update(read_done(part))
    done = read_done(path)
    for item in items:
        if item.record.id in rows and item.record.id not in done:
            append_jsonl(path, rows[item.record.id])
    for part in parts:
        part.unlink()


def _generate_on_server(
    items: list[EvalItem], pending: list[EvalItem], recipe: Recipe, run_dir: Path, path: Path
) -> None:
    """The pending items' greedy completions from eval.generation.server, each appended to `path` as it arrives."""
    from repro.generation_server import generate_texts, served_model
    from repro.modeling import load_tokenizer

    tokenizer = load_tokenizer(recipe.model)
    assemble_prompts(pending, recipe.eval, tokenizer, recipe.seed)
    gen = recipe.eval.generation
    bar = progress(len(items), "generate", "item", initial=len(items) - len(pending))

    def record(i: int, text: str) -> None:
        append_jsonl(path, _row(pending[i], text))
        bar.update(1)

    try:
        generate_texts(served_model(recipe.model, gen), tokenizer, [it.prompt for it in pending], gen, record)
    except ReproError as exc:
        raise type(exc)(
            f"{exc}; the finished predictions are kept in {path}; run again with --resume --out {run_dir} to "
            "generate the rest"
        ) from exc
    finally:
        bar.close()


def dump_prompts(recipe: Recipe, out: str) -> int:
    """Write every selected item's chat-formatted prompt, exactly as generation would feed it, to `out` as JSONL
    ({"id", "prompt"}), atomically; returns how many. Any generator's answers come back with --predictions."""
    from repro.data.jsonl import write_jsonl
    from repro.modeling import load_tokenizer

    items = [EvalItem(r) for r in select_records(recipe.eval)]
    assemble_prompts(items, recipe.eval, load_tokenizer(recipe.model), recipe.seed)
    write_jsonl(out, ({"id": it.record.id, "prompt": it.prompt} for it in items), "--dump-prompts")
    return len(items)


def copy_predictions(items: list[EvalItem], preds: dict[str, str], predictions_file: str, run_dir: Path) -> None:
    lines = [
        json.dumps({"id": it.record.id, "prediction": preds[it.record.id]}) for it in items if it.record.id in preds
    ]
    atomic_write_text(run_dir / "predictions.jsonl", "".join(line + "\n" for line in lines))
    missing = len(items) - len(lines)
    if missing:
        log.warning(
            "%d of %d items have no prediction in %s; they are left out of the metrics",
            missing,
            len(items),
            predictions_file,
        )


def judge_all(items: list[EvalItem], predictions: dict[str, dict], recipe: Recipe, run_dir: Path) -> dict[str, dict]:
    """Judgements by id (score None = the judge's output did not parse), appended to judgements.jsonl."""
    path = run_dir / "judgements.jsonl"
    cfg = recipe.eval
    if cfg.judge == "rule":
        judged = {}
        for it in items:
            if it.record.id in predictions:
                score = rule_judge(it.record, predictions[it.record.id]["prediction"])
                judged[it.record.id] = {"id": it.record.id, "judge": "rule", "score": score}
        atomic_write_text(path, "".join(json.dumps(j) + "\n" for j in judged.values()))
        return judged
    drop_torn_tail(path)
    judged = read_done(path)
    pending = [it for it in items if it.record.id in predictions and it.record.id not in judged]
    if pending:
        chats = [
            [
                {
                    "role": "user",
                    "content": judge_prompt(
                        it.record.question, it.record.answer, predictions[it.record.id]["prediction"]
                    ),
                }
            ]
            for it in pending
        ]
        judge = _llm_judge_backend(recipe)  # a bad judge set-up fails here, before any output
        bar = progress(len(pending), "judge", "item")
        failures: list[Exception] = []

        def record_result(i: int, reply: str | Exception) -> None:
            # A failed chat is counted, not raised, so the chats still in flight get recorded too.
            if isinstance(reply, Exception):
                failures.append(reply)
                return
            entry = {"id": pending[i].record.id, "judge": "llm", "score": parse_rating(reply), "rationale": reply}
            append_jsonl(path, entry)
            judged[entry["id"]] = entry
            bar.update(1)

        try:
            judge(chats, record_result)
        finally:
            bar.close()
        if failures:
            bug = next((f for f in failures if not isinstance(f, ReproError)), None)
            if bug is not None:
                raise bug
            first = failures[0]
            raise type(first)(
                f"{len(failures)} of {len(chats)} judgements failed (first: {first}); the {len(judged)} finished "
                f"ones are kept in {path}; run again with --resume --out {run_dir} to judge the rest"
            ) from first
    return judged


def _llm_judge_backend(recipe: Recipe) -> Any:
    """A function judging chats (calling on_result(index, reply or exception) for each), set up and checked."""
    cfg = recipe.eval.llm_judge
    if not cfg.model:
        raise ConfigError(
            "eval.llm_judge.model is empty: name the judge model (a HF folder/hub id, or the endpoint's model)"
        )
    if cfg.backend == "openai":
        from repro.loong.llm_client import judge_client

        client = judge_client(cfg)
        client.check_key()
        return lambda chats, on_result: client.complete_many(chats, on_result=on_result)
    from repro.config import GenerationSection, LoraSection
    from repro.generation import generate_texts
    from repro.modeling import load_model

    judge = load_model(ModelSection(source=cfg.model, lora=LoraSection(enabled=False)), training=False)
    gen = GenerationSection(
        max_new_tokens=cfg.max_new_tokens, do_sample=False, batch_size=recipe.eval.generation.batch_size
    )

    def run(chats: list[list[dict]], on_result: Any) -> None:
        for start in range(0, len(chats), gen.batch_size):
            batch = chats[start : start + gen.batch_size]
            tok = judge.tokenizer
            prompts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in batch]
            for offset, reply in enumerate(generate_texts(judge.model, tok, prompts, gen)):
                on_result(start + offset, reply)

    return run


def write_report(run_dir: Path, recipe: Recipe, metrics: dict, source: str) -> None:
    header = [
        f"# Loong evaluation: {recipe.name}",
        "",
        f"- data: `{recipe.eval.data}` ({metrics['n']} items; sets {recipe.eval.sets}, "
        f"tasks {recipe.eval.tasks or 'all'})",
        f"- predictions: {source}",
        f"- judge: {recipe.eval.judge}" + (f" ({recipe.eval.llm_judge.model})" if recipe.eval.judge == "llm" else ""),
        f"- max input tokens: {recipe.eval.max_input_tokens}, prompt style: {recipe.eval.prompt_style}",
        "",
        "Avg score (0-100) / perfect rate (0-1), as in the Loong paper. The paper's rows are its published",
        "numbers on the real benchmark (far longer inputs, GPT-4 judge): context, not a like-for-like comparison.",
        "Loong's sets span 10-50K, 50-100K, 100-200K and 200-250K tokens; Loong-mini's sets are scaled down",
        "(CPU default 0.25-0.5K, 0.5-1K, 1-2K, 2-4K tokens).",
        "",
    ]
    tables = format_tables(metrics, reference_rows=paper_reference_rows(), label=recipe.name)
    atomic_write_text(run_dir / "report.md", "\n".join(header) + tables)


def run_eval(
    recipe: Recipe, run_dir: Path, predictions_file: str | None = None, dist: DistInfo | None = None
) -> dict | None:
    """Evaluate into `run_dir` (resuming whatever it already holds); returns the metrics. With several processes
    every one generates its share of the items and the main process judges and returns the metrics (the others:
    None)."""
    dist = dist or DistInfo()
    started = time.time()
    items = [EvalItem(r) for r in select_records(recipe.eval)]
    # a user's predictions are read before the run folder is made: a bad file leaves nothing behind
    preds = read_predictions(predictions_file, {it.record.id for it in items}) if predictions_file else {}
    text = recipe_to_yaml(recipe)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "recipe.yaml", text)
        inputs = [recipe.eval.data, *([predictions_file] if predictions_file else [])]
        write_environment(run_dir, seed=recipe.seed, data_files=inputs, recipe_text=text)
    barrier()
    if predictions_file and not dist.is_main:
        return None  # nothing to generate: the main process copies and judges
    if predictions_file:
        copy_predictions(items, preds, predictions_file, run_dir)
        source = f"read from `{predictions_file}`"
    else:
        generate_predictions(items, recipe, run_dir, dist)
        if not dist.is_main:
            return None
        source = f"generated by `{recipe.model.source}`"
        gen = recipe.eval.generation
        if gen.backend == "server":
            from repro.generation_server import served_model

            source += f" on the server {redact_url(gen.server.base_url)} (as `{served_model(recipe.model, gen)}`)"
    predictions = read_done(run_dir / "predictions.jsonl")
    judged = judge_all(items, predictions, recipe, run_dir)
    rows = [
        {
            "task": it.record.task,
            "length_set": it.record.length_set,
            "score": judged[it.record.id]["score"],
            "dropped_docs": int(predictions[it.record.id].get("dropped_docs", 0)),
        }
        for it in items
        if it.record.id in judged
    ]
    metrics = aggregate(rows)
    log.info("evaluated %d items in %.1f s", len(rows), time.time() - started)
    atomic_write_json(run_dir / "metrics.json", metrics)
    write_report(run_dir, recipe, metrics, source)
    return metrics
