"""`repro cprs reproduce`: QwenLong-CPRS end to end, in the order of the paper's method and experiments.

1. Default model and data (pipeline.data): Loong-mini with its evidence (the compressor's labels); on a
   workstation HotpotQA + MuSiQue, interleaved into OUT/train.jsonl.
2. The compressor (cprs.train): bidirectional top layers, a token critic and a boundary head trained on
   keyword, sentence and paragraph labels. Writes OUT/compressor.
   Where the profile names validation records (`calibration_per_set`): the critic's keep threshold with the best
   sentence-level span F1 on held-out records that are not test items (cprs.calibrate). OUT/threshold.json.
3. The reader: the L1 warm-up SFT policy (pipeline.policy; reused from the L1 reproduction's folder), or on a
   workstation a hub model.
4. Window-parallel compression (cprs.compress) of every held-out context at each granularity, for its
   question. Writes OUT/compressions.jsonl.
5. Reduced contexts: CPRS (sentence), BM25 over 600-token chunks at CPRS's budget and at a fixed budget per
   set, truncation at CPRS's budget, the gold evidence alone (oracle). Writes OUT/contexts/<method>.jsonl.
6. The reader on the full context and on each reduced one. Writes OUT/eval-<method>.
7. Latency (compress + answer against answer) and compression time by input length. OUT/latency.json,
   OUT/timing.json.
8. The report (cprs.report): OUT/report.md with span quality, ratio, scores, latency and scaling.

Every stage writes its own folder or file and is reused when complete.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro.config import Recipe
from repro.cprs.calibrate import THRESHOLD_GRID
from repro.cprs.sections import CprsSection
from repro.data.schema import Doc, Record, read_records, write_records
from repro.errors import ReproError
from repro.fsio import append_jsonl, atomic_write_json
from repro.pipeline.data import TEST_DATA, TRAIN_DATA, model_and_data, workstation_loong_mini
from repro.pipeline.policy import warmup_sft_policy
from repro.pipeline.profiles import load_profile, stage_values
from repro.pipeline.stages import StageClock, clear_if_redoing, evaluate_policy, load_stage_recipe, seed_folder
from repro.runrecord import write_environment

log = logging.getLogger("repro.reproduce")

# bm25: at the tokens CPRS kept for the item; bm25-fixed: at the profile's budget for the item's set;
# oracle: the gold evidence sentences alone
METHODS = ("full", "cprs", "bm25", "bm25-fixed", "truncate", "oracle")
SEED_FREE = ("full", "bm25-fixed", "oracle")  # contexts that do not depend on the compressor
# what `--redo` can name: the compressor's training, compression, the reduced contexts, the reader, timings
REDO_STAGES = ("compressor", "threshold", "compress", "contexts", "reader", "latency", "timing")
GRANULARITIES = ("keyword", "sentence", "paragraph")


@dataclass
class CprsProfile:
    """One entry of recipes/profiles/cprs.yaml."""

    budget: str
    recipe: str
    eval_recipe: str
    set: dict[str, dict[str, Any]] = field(default_factory=dict)  # train, eval -> recipe values
    sets: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    per_set: int = 12  # held-out items per set for the reader and the spans
    # held-out records per set after the test items on which to choose cprs.threshold (0: the recipe's keep rule)
    calibration_per_set: int = 0
    timing_lengths: list[int] = field(default_factory=lambda: [2048, 4096, 8192, 16384, 32768])
    latency_items: int = 3  # items per set timed for compress + answer against answer
    # the compressor's training files (several: interleaved, those present) and the held-out records
    train_data: list[str] = field(default_factory=lambda: [TRAIN_DATA])
    test_data: str = TEST_DATA
    reader: str = "l1-sft"  # the L1 warm-up SFT policy, or a model source answering as it is
    seeds: list[int] = field(default_factory=lambda: [0])  # the compressor trained once per seed
    repeats: int = 3  # timed repeats per length of the compression timing (the exponent's fit)
    # latency repeats, each the median over the set's items: 4 against 4 lets an exact test reach p = 1/70
    latency_repeats: int = 4
    longer: str = ""  # what the next longer profile would add, for the report
    # the fixed BM25 budget per set: 1/8 of the set's longest context, the paper's 16K-token budget at 128K
    bm25_budgets: dict[int, int] = field(default_factory=lambda: {1: 62, 2: 125, 3: 250, 4: 500})


def reproduce_cprs(
    profile_name: str,
    out: Path,
    l1_out: Path = Path("runs/reproduce-l1"),
    seeds: tuple[int, ...] | None = None,
    redo: str | None = None,
) -> Path:
    """Run (or finish) every stage of the CPRS reproduction into `out`, the compressor trained once per seed (the
    profile's unless given); returns report.md's path."""
    from repro.cprs.report import write_cprs_report

    profile = load_profile("cprs", profile_name, CprsProfile)
    seeds = seeds or tuple(profile.seeds)
    out.mkdir(parents=True, exist_ok=True)
    clock = StageClock(out, redo)

    with clock("default model and data"):
        train_data = training_file(profile, out)
        values = {"cprs.data": train_data, **stage_values(profile.set, "train")}
        recipes = {seed: load_stage_recipe(profile.recipe, {**values, "seed": seed}, "cprs") for seed in seeds}
        if profile.reader == "l1-sft":
            model_and_data(recipes[seeds[0]].model.source)
        else:
            workstation_loong_mini(load_stage_recipe(profile.eval_recipe, {}, "cprs-eval"))
    write_environment(out, seed=list(seeds), data_files=[train_data, profile.test_data])
    if profile.reader == "l1-sft":
        with clock("warm-up SFT (L1's, the reader)", keep=True):
            reader = str(warmup_sft_policy("gpu" if profile_name == "gpu" else "cpu", l1_out))
    else:
        reader = profile.reader
    records = _test_records(profile.test_data, profile)
    validation = validation_records(profile.test_data, profile, records)
    evals: dict[str, list[Path]] = {}
    first: dict = {}
    for seed in seeds:
        where, recipe = seed_folder(out, seed), recipes[seed]
        with clock(f"train the compressor (seed {seed})", key="compressor"):
            recipe.cprs.compressor = str(_train_compressor(recipe, where))
        if validation:
            with clock(f"choose the keep threshold (seed {seed})", key="threshold"):
                recipe.cprs.threshold = choose_threshold(recipe, validation, where / "threshold.json")
        with clock(f"compress the held-out contexts (seed {seed})", key="compress"):
            compressed = _compress_all(recipe, records, where / "compressions.jsonl")
        with clock(f"reduced contexts (seed {seed})", key="contexts"):
            files = _variant_files(recipe, profile, records, compressed, where / "contexts")
        for method, path in files.items():
            shared = method in SEED_FREE
            if shared and seed != seeds[0]:
                continue
            with clock(f"reader on {method}" + ("" if shared else f" (seed {seed})"), key="reader"):
                run_dir = (out if shared else where) / f"eval-{method}"
                evals.setdefault(method, []).append(_evaluate(profile, reader, str(path), run_dir))
        if not first:
            first = {"recipe": recipe, "compressed": compressed, "where": where}
    with clock("latency", key="latency"):
        latency = _latency(profile, records, first["compressed"], reader, out / "latency.json")
    with clock("compression time by length", key="timing"):
        timing = _timing(first["recipe"], profile, records, out / "timing.json")

    spans = _span_metrics(records, first["compressed"])
    notes = [
        f"Profile `{profile_name}` ({profile.budget}); compressor training seeds: {', '.join(map(str, seeds))} "
        "(the reader, the full context, the fixed-budget BM25 and the oracle do not depend on them: evaluated once; "
        "spans, ratio, latency and timing are the first seed's).",
        *clock.lines(),
        decoding_note(recipe.cprs, [seed_folder(out, seed) / "threshold.json" for seed in seeds]),
        WORKSTATION_NOTE if profile.reader != "l1-sft" else cpu_note(first["recipe"], first["where"] / "compressor"),
        *([f"What a longer profile adds: {profile.longer}"] if profile.longer else []),
    ]
    ratios = ratios_by_set(records, first["compressed"])
    return write_cprs_report(out, evals, spans, ratios, latency, timing, notes, profile.bm25_budgets, profile_name,
                             seeds, clock.times, first["where"] / "compressor")  # fmt: skip


def decoding_note(cfg: CprsSection, chosen: list[Path]) -> str:
    """How the compressor's spans were decoded: the recipe's rule, or each seed's threshold and how it was chosen."""
    if not all(path.is_file() for path in chosen):
        if cfg.threshold is not None:
            return f"Decoding: tokens whose keep probability reaches {cfg.threshold:g} (cprs.threshold)."
        return "Decoding: the released rule, a token is kept when P(B)+P(I)+P(E) beats P(O)."
    rows = [json.loads(path.read_text()) for path in chosen]
    each = "; ".join(
        f"{row['threshold']:g} (F1 {row['f1']:.3f}, recall {row['recall']:.3f}, kept {row['kept_share']:.1%})"
        for row in rows
    )
    return (
        f"Decoding: tokens whose keep probability reaches a threshold chosen per compressor on {rows[0]['records']} "
        f"held-out validation records (not test items) for the best sentence-level span F1 over "
        f"{THRESHOLD_GRID[0]:g}-{THRESHOLD_GRID[-1]:g}: {each}. The released rule, P(B)+P(I)+P(E) > P(O), kept "
        "nearly every token at this scale (docs/cprs.md)."
    )


def cpu_note(recipe: Recipe, run_dir: Path) -> str:
    """What the CPU profiles scaled down, with the compressor's training size read from its run."""
    from repro.reporting.plots import read_step_rows

    rows = read_step_rows(run_dir)
    steps = rows[-1]["step"] if rows else 0
    batch = recipe.train.micro_batch_size * recipe.train.grad_accum
    chosen = recipe.cprs.sets
    sets = ("set " if len(chosen) == 1 else "sets ") + ", ".join(map(str, chosen)) if chosen else "every set"
    each = "one granularity each" if recipe.cprs.one_granularity_per_record else "every granularity"
    return (
        "Scaled down against the paper: the compressor is SmolLM2-135M-Instruct (30 layers, the top 8 "
        f"bidirectional) instead of Qwen2-7B (28, top 7), trained for {steps} steps of {batch} Loong-mini records "
        f"({sets}, {each}) instead of 126K samples for 3 epochs; windows of 1,024 tokens instead of "
        "8,192; contexts of 0.5-5K tokens instead of 128K; "
        "the reader is the L1 warm-up SFT policy (135M) instead of Qwen2.5-7B/32B-Instruct."
    )


WORKSTATION_NOTE = (
    "Scaled down against the paper: the compressor is Qwen2-1.5B-Instruct (QLoRA) instead of Qwen2-7B, trained "
    "on HotpotQA supporting facts and MuSiQue supporting paragraphs only (no NER, needle or summary labels); the "
    "reader is Qwen2.5-1.5B-Instruct instead of Qwen2.5-7B/32B-Instruct, on Loong-mini sets 1-2 (10-100K tokens)."
)


def training_file(profile: CprsProfile, out: Path) -> str:
    """The compressor's training file: the profile's one file, or its files that exist, interleaved record by
    record into OUT/train.jsonl (so that cprs.limit draws from each)."""
    from itertools import chain, zip_longest

    if len(profile.train_data) == 1:
        return profile.train_data[0]
    present = [p for p in profile.train_data if Path(p).is_file()]
    if not present:
        raise ReproError(
            f"{' and '.join(profile.train_data)} are missing: convert HotpotQA or MuSiQue first "
            "(docs/cprs.md, 'On a workstation')"
        )
    joined = out / "train.jsonl"
    if not joined.is_file():
        sources = [read_records(p).records for p in present]
        write_records(joined, [r for r in chain.from_iterable(zip_longest(*sources)) if r is not None])
    return str(joined)


def _train_compressor(recipe: Recipe, out: Path) -> Path:
    from repro.cprs.train import run_cprs
    from repro.train.dist import DistInfo

    run_dir = out / "compressor"
    clear_if_redoing(run_dir)
    if not (run_dir / "final" / "critic.json").is_file():
        run_cprs(recipe, run_dir, DistInfo(), resume=run_dir.is_dir())
    return run_dir / "final"


def _test_records(path: str, profile: CprsProfile) -> list[Record]:
    """The first `per_set` held-out records of each set, with evidence (the gold spans)."""
    chosen: list[Record] = []
    for length_set in profile.sets:
        in_set = [r for r in read_records(path).records if r.length_set == length_set and r.evidence]
        chosen += in_set[: profile.per_set]
    if not chosen:
        raise ReproError(f"{path}: no held-out record with evidence in sets {profile.sets}")
    return chosen


def validation_records(path: str, profile: CprsProfile, test: list[Record]) -> list[Record]:
    """Up to `calibration_per_set` held-out records per set with evidence, none of them a test item."""
    if not profile.calibration_per_set:
        return []
    used = {r.id for r in test}
    chosen: list[Record] = []
    for length_set in profile.sets:
        pool = [r for r in read_records(path).records if r.length_set == length_set and r.evidence]
        chosen += [r for r in pool if r.id not in used][: profile.calibration_per_set]
    return chosen


def choose_threshold(recipe: Recipe, records: list[Record], path: Path) -> float:
    """The keep threshold with the best sentence-level span F1 on `records`; the grid and the choice in `path`."""
    from repro.cprs.calibrate import ValidationContext, best_threshold, threshold_table
    from repro.cprs.compress import load_compressor, score_context
    from repro.cprs.labels import context_text, critical_spans

    clear_if_redoing(path)
    if not path.is_file():
        critic, tokenizer = load_compressor(recipe)
        cfg = dataclasses.replace(recipe.cprs, granularity="sentence", threshold=None)
        contexts = []
        for record in records:
            scored = score_context(critic, tokenizer, context_text(record)[0], cfg, record.question)
            contexts.append(ValidationContext(scored.keep, scored.offsets, critical_spans(record, "sentence")))
        table = threshold_table(contexts, cfg)
        atomic_write_json(path, {**best_threshold(table), "records": len(records), "granularity": "sentence",
                                 "grid": table})  # fmt: skip
    return float(json.loads(path.read_text())["threshold"])


def _compress_all(recipe: Recipe, records: list[Record], path: Path) -> dict[str, dict]:
    """Each record's context compressed for its question at every granularity, appended as it finishes."""
    from repro.cprs.compress import compress, load_compressor
    from repro.cprs.labels import context_text
    from repro.loong.run_files import drop_torn_tail, read_done

    clear_if_redoing(path)
    done = read_done(path)
    drop_torn_tail(path)
    todo = [r for r in records if r.id not in done]
    if todo:
        critic, tokenizer = load_compressor(recipe)
        for record in todo:
            context, _ = context_text(record)
            row: dict[str, Any] = {"id": record.id, "set": record.length_set}
            for granularity in GRANULARITIES:
                cfg = dataclasses.replace(recipe.cprs, granularity=granularity)
                row[granularity] = compress(critic, tokenizer, context, cfg, record.question).to_json()
            append_jsonl(path, row)
            done[record.id] = row
    return done


def _variant_files(
    recipe: Recipe, profile: CprsProfile, records: list[Record], compressed: dict[str, dict], folder: Path
) -> dict:
    """The held-out records with their documents replaced by each method's reduced context (see METHODS)."""
    from repro.modeling import load_tokenizer

    tokenizer = load_tokenizer(recipe.model)
    clear_if_redoing(folder)
    rows: dict[str, list[Record]] = {m: [] for m in METHODS}
    for record in records:
        rows["full"].append(record)
        kept = compressed[record.id]["sentence"]
        for method, text in reduced_contexts(record, kept, fixed_budget(profile, record), tokenizer).items():
            rows[method].append(_with_context(record, text))
    files = {}
    for method, items in rows.items():
        files[method] = folder / f"{method}.jsonl"
        if not files[method].is_file():
            write_records(files[method], items)
    return files


def fixed_budget(profile: CprsProfile, record: Record) -> int:
    if record.length_set not in profile.bm25_budgets:
        raise ReproError(f"{record.id}: set {record.length_set} has no fixed BM25 budget in the profile")
    return profile.bm25_budgets[record.length_set]


def reduced_contexts(record: Record, kept: dict, fixed: int, tokenizer: Any) -> dict[str, str]:
    """Each reduced context of a record: sentence-level CPRS (`kept`, a Compression's JSON), BM25 over 600-token
    chunks and truncation at the tokens CPRS kept, BM25 at the `fixed` budget, and the gold evidence sentences."""
    from repro.cprs.baselines import bm25_select, count_with, reduced_text, token_cutter, truncate_to_budget
    from repro.cprs.labels import context_text, critical_spans

    context, _ = context_text(record)
    budget = int(kept["kept_tokens"])

    def count(text: str) -> int:
        return count_with(tokenizer, text)

    def bm25(tokens: int) -> str:
        return reduced_text(context, bm25_select(context, record.question, tokens, count, cut=token_cutter(tokenizer)))

    return {
        "cprs": kept["text"],
        "bm25": bm25(budget),
        "bm25-fixed": bm25(fixed),
        "truncate": reduced_text(context, truncate_to_budget(context, budget, tokenizer)),
        "oracle": reduced_text(context, critical_spans(record, "sentence")),
    }


def _with_context(record: Record, text: str) -> Record:
    return dataclasses.replace(record, docs=[Doc("Context", text)], evidence=[], needed_docs=None)


def _evaluate(profile: CprsProfile, reader: str, data: str, run_dir: Path) -> Path:
    values = {"eval.sets": list(profile.sets), "eval.tasks": [], "eval.limit": None}
    values.update(stage_values(profile.set, "eval"))
    return evaluate_policy(profile.eval_recipe, values, reader, data, run_dir)


def _span_metrics(records: list[Record], compressed: dict[str, dict]) -> dict[str, tuple[float, float, float]]:
    """Micro precision / recall / F1 of the kept characters against the gold spans, per granularity."""
    from repro.cprs.labels import critical_spans
    from repro.cprs.metrics import micro_prf

    out = {}
    for granularity in GRANULARITIES:
        pairs = [
            ([tuple(s) for s in compressed[r.id][granularity]["spans"]], critical_spans(r, granularity))
            for r in records
        ]
        out[granularity] = micro_prf(pairs)
    return out


def ratios_by_set(records: list[Record], compressed: dict[str, dict]) -> dict[int, dict[str, float]]:
    """Per set: input tokens, kept tokens (sentence-level CPRS) and their ratio."""
    by_set: dict[int, list[dict]] = {}
    for record in records:
        by_set.setdefault(record.length_set or 0, []).append(compressed[record.id]["sentence"])
    return {
        s: {
            "input_tokens": statistics.mean(r["input_tokens"] for r in rows),
            "kept_tokens": statistics.mean(r["kept_tokens"] for r in rows),
            "ratio": sum(r["input_tokens"] for r in rows) / max(sum(r["kept_tokens"] for r in rows), 1),
        }
        for s, rows in sorted(by_set.items())
    }


def _latency(profile: CprsProfile, records: list[Record], compressed: dict, reader: str, path: Path) -> dict:
    """Per set, on its first items: seconds to answer on the full context, and to compress then answer."""
    clear_if_redoing(path)
    if path.is_file():
        return json.loads(path.read_text())
    from repro.data.prompts import apply_chat, build_prompt
    from repro.generation import generate_texts
    from repro.modeling import load_model

    values = {"model.source": reader, **stage_values(profile.set, "eval")}
    reading = load_stage_recipe(profile.eval_recipe, values, "latency")
    gen = dataclasses.replace(reading.eval.generation, batch_size=1)
    loaded = load_model(reading.model, training=False)

    def answer_seconds(record: Record) -> float:
        text, _ = build_prompt(record, style="l1")
        started = time.perf_counter()
        generate_texts(loaded.model, loaded.tokenizer, [apply_chat(loaded.tokenizer, text)], gen)
        return time.perf_counter() - started

    result: dict[str, dict] = {}
    for length_set in profile.sets:
        items = [r for r in records if r.length_set == length_set][: profile.latency_items]
        if not items:
            continue
        kept = [compressed[r.id]["sentence"] for r in items]
        full_repeats, cprs_repeats = [], []
        for _ in range(profile.latency_repeats):  # each repeat: the median over the items
            full_repeats.append(statistics.median(answer_seconds(r) for r in items))
            cprs_repeats.append(statistics.median(
                c["seconds"] + answer_seconds(_with_context(r, c["text"])) for r, c in zip(items, kept, strict=True)
            ))  # fmt: skip
        result[str(length_set)] = {
            "full_s": statistics.median(full_repeats),
            "cprs_s": statistics.median(cprs_repeats),
            "full_repeats": full_repeats,
            "cprs_repeats": cprs_repeats,
        }
    atomic_write_json(path, result)
    return result


def _timing(recipe: Recipe, profile: CprsProfile, records: list[Record], path: Path) -> dict:
    """Compression seconds against input length: the held-out contexts joined and cut to each length."""
    clear_if_redoing(path)
    if path.is_file():
        return json.loads(path.read_text())
    from repro.cprs.compress import compress, load_compressor
    from repro.cprs.labels import context_text

    critic, tokenizer = load_compressor(recipe)
    text = "\n\n".join(context_text(r)[0] for r in records)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    while len(ids) < max(profile.timing_lengths):
        ids = ids + ids
    result = {}
    compress(critic, tokenizer, tokenizer.decode(ids[: min(profile.timing_lengths)]), recipe.cprs, "What is asked?")
    for length in profile.timing_lengths:  # after one warm-up pass, `repeats` timed ones per length
        piece = tokenizer.decode(ids[:length])
        repeats = []
        for _ in range(profile.repeats):
            started = time.perf_counter()
            made = compress(critic, tokenizer, piece, recipe.cprs, "What is asked?")
            repeats.append(time.perf_counter() - started)
        result[str(length)] = {"seconds": statistics.median(repeats), "repeats": repeats, "windows": made.windows}
        log.info("compression of %d tokens: %.1f s (median of %d)", length, statistics.median(repeats), len(repeats))
    atomic_write_json(path, result)
    return result
