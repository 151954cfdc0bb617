"""`repro solopo pairs`: K responses per example on its short (or long) context, scored, a best and a worst kept."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from repro.config import Recipe, recipe_to_yaml
from repro.data.jsonl import appended_lines
from repro.data.prompts import apply_chat, build_prompt, token_counter
from repro.data.schema import Record, read_records
from repro.errors import DataError
from repro.fsio import append_jsonl, atomic_write_json, atomic_write_text
from repro.generation import sample_groups
from repro.l1.rewards import rule_reward
from repro.l1.rollout import reward_config
from repro.loong.run_files import drop_torn_tail, read_done
from repro.progress import progress
from repro.runs import check_resume_plan
from repro.solopo.pairs import PairStats, choose_pair

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


def context_prompts(record: Record, recipe: Recipe, tokenizer: Any) -> dict[str, str]:
    """The chat-formatted short and long prompts of a record, each within solopo.max_input_tokens."""
    count = token_counter(tokenizer)
    budget = recipe.solopo.max_input_tokens - count(apply_chat(tokenizer, ""))
    style = recipe.solopo.prompt_style
    prompts = {}
    for name, rec in (("short", short_record(record)), ("long", record)):
        text, _ = build_prompt(rec, style=style, budget_tokens=budget, count_tokens=count)
        prompts[name] = apply_chat(tokenizer, text)
    return prompts


def make_pairs(recipe: Recipe, run_dir: Path, resume: bool = False) -> PairStats:
    """Sample, score and pair every selected record into RUN/pairs.jsonl, appending a chunk as it finishes.

    Chunks of `generation.batch_size` examples are sampled under a seed of (recipe seed, chunk), so a resumed
    run makes the pairs an uninterrupted one makes. A row per example; `chosen` is null where all K scores tie.
    """
    from repro.modeling import load_model

    cfg = recipe.solopo
    if resume:
        check_resume_plan(run_dir, recipe, stage_keys=("solopo",))
    records = select_solopo_records(recipe)
    done = _finished_rows(run_dir / PAIRS_FILE) if resume else {}
    model_cfg = dataclasses.replace(recipe.model, lora=dataclasses.replace(recipe.model.lora, enabled=False))
    loaded = load_model(model_cfg, training=False)
    tokenizer, rewards = loaded.tokenizer, reward_config(cfg.reward)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "recipe.yaml", recipe_to_yaml(recipe))
    step = max(1, cfg.generation.batch_size)
    chunks = [records[i : i + step] for i in range(0, len(records), step)]
    bar = progress(len(records), "pairs", "example", initial=sum(r.id in done for r in records))
    for index, chunk in enumerate(chunks):
        if all(r.id in done for r in chunk):
            continue
        before = set(done)
        prompts = [context_prompts(r, recipe, tokenizer) for r in chunk]
        ids = [
            torch.tensor(tokenizer(p[cfg.context], add_special_tokens=False)["input_ids"], dtype=torch.long)
            for p in prompts
        ]
        groups = sample_groups(
            loaded.model, tokenizer, ids, cfg.samples, cfg.generation, seed=recipe.seed * 100_003 + index
        )
        for record, prompt, samples in zip(chunk, prompts, groups, strict=True):
            if record.id in done:  # a cut run wrote it; the seeded chunk samples it again identically
                continue
            scores = [rule_reward(s.text, record, rewards) for s in samples]
            choice = choose_pair(scores)
            row = {"id": record.id, "task": record.task, "length_set": record.length_set, "context": cfg.context}
            row.update(short_prompt=prompt["short"], long_prompt=prompt["long"], scores=scores)
            for name, i in zip(("chosen", "rejected"), choice or (None, None), strict=True):
                row[name] = (
                    None if i is None else {"ids": samples[i].token_ids, "text": samples[i].text, "score": scores[i]}
                )
            append_jsonl(run_dir / PAIRS_FILE, row)
            done[record.id] = row
        bar.update(sum(r.id not in before for r in chunk))
    bar.close()
    stats = PairStats()
    for record in records:
        stats.add(_choice(done[record.id]))
    atomic_write_json(run_dir / "summary.json", {**dataclasses.asdict(stats), "context": cfg.context})
    log.info("%d pairs from %d examples (%d skipped: all K scores equal) -> %s",
             stats.pairs, stats.examples, stats.skipped_ties, run_dir / PAIRS_FILE)  # fmt: skip
    return stats


def _choice(row: dict) -> tuple[int, int] | None:
    return None if row["chosen"] is None else (0, 1)


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
        raise DataError(f"{path}: no preference pair in it (every example's K scores tied); sample more or hotter")
    return pairs
