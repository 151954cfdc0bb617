"""`repro solopo pairs`: K responses per example on its short (or long) context, scored, a correct and a wrong kept."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from repro.config import Recipe, recipe_to_yaml
from repro.data.jsonl import appended_lines
from repro.data.prompts import apply_chat, build_prompt, token_counter
from repro.data.schema import Record, read_records
from repro.errors import DataError, ReproError
from repro.fsio import append_jsonl, atomic_write_json, atomic_write_text
from repro.generation_server import sample_groups, served_model
from repro.loong.run_files import drop_torn_tail, read_done
from repro.loong.verify import reward_config, verify_answer
from repro.progress import progress
from repro.runs import check_resume_plan
from repro.solopo.pairs import PairStats, choose_pair
from repro.train.dist import DistInfo, barrier

log = logging.getLogger("repro.solopo")

PAIRS_FILE = "pairs.jsonl"


def select_solopo_records(recipe: Recipe) -> list[Record]:
    """The records pairs are made from: those whose needed documents are known (a short context exists)."""
    cfg = recipe.solopo
    chosen = [
        r
        for r in read_records(cfg.data).records
        if (not cfg.sets or r.length_set in cfg.sets) and (not cfg.tasks or r.task in cfg.tasks)
    ]
    usable = [r for r in chosen if r.needed_docs is not None and len(r.needed_docs) < len(r.docs)]
    if len(usable) < len(chosen):
        log.info("%d of %d records left out: no documents beyond the needed ones (no short context)",
                 len(chosen) - len(usable), len(chosen))  # fmt: skip
    if cfg.limit is not None:
        usable = usable[: cfg.limit]
    if not usable:
        raise DataError(
            f"{cfg.data}: no record with both a short and a long context matches solopo.sets={cfg.sets} "
            f"solopo.tasks={cfg.tasks or 'all'}; generate Loong-mini with --distractors, or convert MuSiQue"
        )
    return usable


def short_record(record: Record) -> Record:
    """The record with only the documents its answer needs: SoLoPO's short context."""
    return dataclasses.replace(record, docs=record.short_docs(), needed_docs=None, evidence=[])


def _with_docs(record: Record, indices: list[int]) -> Record:
    return dataclasses.replace(record, docs=[record.docs[i] for i in indices], needed_docs=None, evidence=[])


def fit_long_docs(record: Record, fits: Callable[[Record], bool]) -> tuple[list[int], list[int]] | None:
    """(kept, dropped) document indices of the long context, each in document order; None when even the needed
    documents alone do not fit.

    Every document is kept when they all fit. Otherwise the needed ones are kept and each distractor, in
    document order, is added when the prompt still fits with it, else dropped whole; a later, smaller one may
    fill the room left (Loong's assembly loop). `fits` judges a record's whole prompt, so the count is exact.
    """
    every = list(range(len(record.docs)))
    if fits(record):
        return every, []
    needed = set(every if record.needed_docs is None else record.needed_docs)
    if not fits(_with_docs(record, sorted(needed))):
        return None
    kept, dropped = set(needed), []
    for i in every:
        if i in needed:
            continue
        if fits(_with_docs(record, sorted(kept | {i}))):
            kept.add(i)
        else:
            dropped.append(i)
    return sorted(kept), dropped


@dataclasses.dataclass
class ContextPrompts:
    """A record's chat-formatted short and long prompts, and the distractors the long one left out to fit."""

    short: str
    long: str
    dropped: list[int]


def context_prompts(record: Record, recipe: Recipe, tokenizer: Any) -> ContextPrompts | None:
    """The short and long prompts of a record, each within solopo.max_input_tokens (chat template counted).

    The long prompt drops distractors whole to fit (fit_long_docs), never a needed document; None when the
    needed documents alone do not fit, in the short prompt or in the long one.
    """
    count = token_counter(tokenizer)
    style, budget = recipe.solopo.prompt_style, recipe.solopo.max_input_tokens

    def chat(rec: Record) -> str:
        return apply_chat(tokenizer, build_prompt(rec, style=style)[0])

    def fits(rec: Record) -> bool:
        return count(chat(rec)) <= budget

    short = short_record(record)
    fitted = fit_long_docs(record, fits) if fits(short) else None
    if fitted is None:
        return None
    kept, dropped = fitted
    return ContextPrompts(chat(short), chat(_with_docs(record, kept)), dropped)


def make_pairs(
    recipe: Recipe, run_dir: Path, resume: bool = False, dist: DistInfo | None = None
) -> PairStats | None:
    """Sample, score and pair every selected record into RUN/pairs.jsonl, appending a chunk as it finishes.

    Chunks of `generation.batch_size` examples are sampled under a seed of (recipe seed, chunk), so a resumed
    run, or one over several processes, makes the pairs an uninterrupted single one makes. A row per example;
    `chosen` is null where no response is correct or none is wrong (choose_pair), and an example whose needed
    documents alone exceed solopo.max_input_tokens gets a row with `too_long: true` and no samples. Several
    processes: process r samples chunks r, r + N, ... into pairs.rank<r>.jsonl; the main process merges them
    into pairs.jsonl in the records' order and returns the stats (the others: None).
    """
    dist = dist or DistInfo()
    cfg = recipe.solopo
    if resume:
        check_resume_plan(run_dir, recipe, stage_keys=("solopo",))
    records = select_solopo_records(recipe)
    parts = sorted(run_dir.glob("pairs.rank*.jsonl")) if resume else []
    done = _finished_rows(run_dir / PAIRS_FILE) if resume else {}
    for part in parts:
        done.update(_finished_rows(part))
    barrier()  # every process has read the files before any appends to them
    model, tokenizer = _sampler(recipe)
    rewards = reward_config(cfg.reward)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "recipe.yaml", recipe_to_yaml(recipe))
    barrier()
    out = run_dir / (PAIRS_FILE if dist.world_size == 1 else f"pairs.rank{dist.rank}.jsonl")
    step = max(1, cfg.generation.batch_size)
    chunks = [records[i : i + step] for i in range(0, len(records), step)]
    bar = progress(len(records), "pairs", "example", initial=sum(r.id in done for r in records),
                   enabled=dist.is_main)  # fmt: skip
    for index, chunk in enumerate(chunks):
        if all(r.id in done for r in chunk) or index % dist.world_size != dist.rank:
            continue
        before = set(done)
        prompts = {r.id: context_prompts(r, recipe, tokenizer) for r in chunk}
        for record in chunk:
            if prompts[record.id] is None and record.id not in done:
                row = {"id": record.id, "task": record.task, "length_set": record.length_set, "context": cfg.context}
                append_jsonl(out, {**row, "too_long": True, "chosen": None, "rejected": None})
                done[record.id] = {"too_long": True}
        sampled = [r for r in chunk if prompts[r.id] is not None]
        ids = [
            torch.tensor(
                tokenizer(getattr(prompts[r.id], cfg.context), add_special_tokens=False)["input_ids"], dtype=torch.long
            )
            for r in sampled
        ]
        try:
            groups = sample_groups(
                model, tokenizer, ids, cfg.samples, cfg.generation, seed=recipe.seed * 100_003 + index
            ) if sampled else []  # fmt: skip
        except ReproError as exc:  # a generation server that failed: the finished chunks stay
            raise type(exc)(
                f"{exc}; the finished pairs are kept in {run_dir / PAIRS_FILE}: run again with --resume --out "
                f"{run_dir} to sample the rest"
            ) from exc
        for record, samples in zip(sampled, groups, strict=True):
            if record.id in done:  # a cut run wrote it; the seeded chunk samples it again identically
                continue
            prompt = prompts[record.id]
            scores = [verify_answer(s.text, record, rewards) for s in samples]
            choice = choose_pair(scores, cfg.correct_reward)
            row = {"id": record.id, "task": record.task, "length_set": record.length_set, "context": cfg.context}
            row.update(short_prompt=prompt.short, long_prompt=prompt.long, dropped_docs=prompt.dropped)
            row["scores"] = scores
            for name, i in zip(("chosen", "rejected"), choice or (None, None), strict=True):
                row[name] = (
                    None if i is None else {"ids": samples[i].token_ids, "text": samples[i].text, "score": scores[i]}
                )
            append_jsonl(out, row)
            done[record.id] = row
        bar.update(sum(r.id not in before for r in chunk))
    bar.close()
    if dist.world_size > 1:
        barrier()
        if not dist.is_main:
            return None
        done = _merge_parts(records, run_dir)
    stats = PairStats()
    for record in records:
        row = done[record.id]
        if row.get("too_long"):
            stats.add_too_long()
        else:
            stats.add(row["scores"], cfg.correct_reward)
    if stats.too_long:
        log.warning(
            "%d of %d examples skipped: their needed documents alone exceed solopo.max_input_tokens=%d; raise it "
            "to sample them", stats.too_long, stats.examples, cfg.max_input_tokens,
        )  # fmt: skip
    atomic_write_json(run_dir / "summary.json", {**dataclasses.asdict(stats), "context": cfg.context})
    log.info("%s -> %s", stats.line(), run_dir / PAIRS_FILE)
    return stats


def _merge_parts(records: list[Record], run_dir: Path) -> dict[str, dict]:
    """pairs.jsonl with the processes' part files' rows appended in the records' order; the parts removed."""
    path = run_dir / PAIRS_FILE
    done = _finished_rows(path)
    parts = sorted(run_dir.glob("pairs.rank*.jsonl"))
    rows: dict[str, dict] = {}
    for part in parts:
        rows.update(_finished_rows(part))
    for record in records:
        if record.id in rows and record.id not in done:
            append_jsonl(path, rows[record.id])
            done[record.id] = rows[record.id]
    for part in parts:
        part.unlink()
    return done


def _sampler(recipe: Recipe) -> tuple[Any, Any]:
    """What samples the responses and its tokenizer: the policy without adapters, or (generation.backend
    server) the name the server serves it under."""
    from repro.modeling import load_model, load_tokenizer

    gen = recipe.solopo.generation
    if gen.backend == "server":
        return served_model(recipe.model, gen), load_tokenizer(recipe.model)
    model_cfg = dataclasses.replace(recipe.model, lora=dataclasses.replace(recipe.model.lora, enabled=False))
    loaded = load_model(model_cfg, training=False)
    return loaded.model, loaded.tokenizer


def dump_pair_prompts(recipe: Recipe, out: str) -> tuple[int, int]:
    """Write each selected example's chat-formatted prompt on solopo.context, exactly as sampling would feed it, to
    `out` as JSONL ({"id", "context", "prompt", "n"}, n = solopo.samples), atomically. Returns (written, left out:
    needed documents alone over solopo.max_input_tokens)."""
    from repro.data.jsonl import write_jsonl
    from repro.modeling import load_tokenizer

    cfg = recipe.solopo
    tokenizer = load_tokenizer(recipe.model)
    rows = []
    records = select_solopo_records(recipe)
    for record in records:
        prompts = context_prompts(record, recipe, tokenizer)
        if prompts is not None:
            rows.append(
                {"id": record.id, "context": cfg.context, "prompt": getattr(prompts, cfg.context), "n": cfg.samples}
            )
    write_jsonl(out, rows, "--dump-prompts")
    return len(rows), len(records) - len(rows)


def _finished_rows(path: Path) -> dict[str, dict]:
    """Rows a cut run finished; a torn last line is cut from the file, so appending continues cleanly."""
    done = read_done(path, hint="delete the file to sample again")
    drop_torn_tail(path)
    return done


@dataclasses.dataclass
class Pair:
    """One training pair: both prompts' token ids, the chosen and rejected responses' ids, where it came from."""

    id: str
    short_prompt: torch.Tensor
    long_prompt: torch.Tensor
    chosen: torch.Tensor
    rejected: torch.Tensor
    context: str


def read_pairs(path: str | Path, tokenizer: Any) -> list[Pair]:
    """The pairs of a pairs.jsonl (rows without a pair are skipped), prompts tokenised as they were sampled."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"solopo.pairs: {path} not found; make it with `repro solopo pairs RECIPE`")
    pairs = []
    for where, row in appended_lines(path):
        try:
            if row["chosen"] is None:
                continue
            prompts = [
                torch.tensor(tokenizer(row[k], add_special_tokens=False)["input_ids"], dtype=torch.long)
                for k in ("short_prompt", "long_prompt")
            ]
            chosen, rejected = (torch.tensor(row[k]["ids"], dtype=torch.long) for k in ("chosen", "rejected"))
            pairs.append(Pair(str(row["id"]), *prompts, chosen, rejected, str(row["context"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: not a pairs row ({type(exc).__name__}: {exc}); remake the pairs file") from None
    if not pairs:
        raise DataError(
            f"{path}: no preference pair in it (no example had both a correct and a wrong response); sample more "
            "or hotter"
        )
    return pairs
