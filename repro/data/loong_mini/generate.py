"""The `generate` entry point: schedule over sets x tasks, length control per set range and record assembly."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable

from repro.data.loong_mini import chains, clusters
from repro.data.loong_mini import tasks as builders
from repro.data.loong_mini.entities import SPLITS, Ctx
from repro.data.loong_mini.fields import DOMAINS, name_of
from repro.data.loong_mini.render import Draft, grow, keyword_strings, make_draft, render, shrink
from repro.data.loong_mini.tasks import DOMAIN_SUBTASKS, MIN_DOCS, TASK_SUBTASKS, TASKS, Spec
from repro.data.phrases import phrase_spans
from repro.data.schema import Answer, Doc, Evidence, Record
from repro.errors import DataError

CPU_SET_RANGES: dict[int, tuple[int, int]] = {1: (250, 500), 2: (500, 1000), 3: (1000, 2000), 4: (2000, 4000)}
WORKSTATION_SET_RANGES: dict[int, tuple[int, int]] = {
    1: (10_000, 50_000),
    2: (50_000, 100_000),
    3: (100_000, 200_000),
    4: (200_000, 250_000),
}
# Base documents per instance (needed ones, plus look-alikes for spotlight) before distractors.
DOCS_PER_SET = {1: (2, 4), 2: (3, 6), 3: (5, 8), 4: (8, 12)}
SOURCE = "loong-mini"
MAX_TRIES = 16

BUILDERS: dict[str, Callable[[Ctx, str, int], Spec]] = {
    "locating": builders.spotlight,
    "sequential_enumeration": builders.sequential_enumeration,
    "extremum": builders.extremum,
    "range_counting": builders.range_counting,
    "bucketing": clusters.bucketing,
    "classification": clusters.classification,
    "citation_reference": clusters.citation_reference,
    "temporal_trend": chains.temporal_trend,
    "citation_chain": chains.citation_chain,
    "ordering": chains.ordering,
}
# (domain, subtask) pairs of each task, subtask-major so that a short run already meets every domain.
COMBOS: dict[str, list[tuple[str, str]]] = {
    task: [(d, s) for s in subs for d in DOMAINS if s in DOMAIN_SUBTASKS[d]] for task, subs in TASK_SUBTASKS.items()
}


def word_count_tokens(text: str) -> int:
    """Token-count proxy without a tokenizer: 1.3 tokens per whitespace-separated word."""
    return round(1.3 * len(text.split()))


def context_text(docs: Iterable[Doc]) -> str:
    """The whole context whose length decides the length set: the document texts joined by blank lines."""
    return "\n\n".join(d.text for d in docs)


def answer_text(answer: Answer) -> str:
    return answer if isinstance(answer, str) else json.dumps(answer)


def _doc_title(domain: str, facts: dict) -> str:
    if domain == "financial":
        kind = "Annual Report" if facts["quarter"] is None else "Quarterly Report"
        return f"{facts['company']} {kind} {facts['period']}"
    if domain == "legal":
        return f"Judgment in case {facts['case_id']}"
    return facts["title"]


def _check_options(
    n: int, split: str, sets: Iterable[int], task_names: Iterable[str] | str | None, distractors: int, set_ranges: dict
) -> tuple[list[int], list[str]]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DataError(f"loong-mini: n must be a positive integer, got {n!r}")
    if split not in SPLITS:
        raise DataError(f"loong-mini: unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    if isinstance(distractors, bool) or not isinstance(distractors, int) or distractors < 0:
        raise DataError(f"loong-mini: distractors must be a non-negative integer, got {distractors!r}")
    for s, rng_ in set_ranges.items():
        ok = isinstance(rng_, tuple | list) and len(rng_) == 2 and all(isinstance(x, int) for x in rng_)
        if not ok or not 0 < rng_[0] < rng_[1]:
            raise DataError(f"loong-mini: set_ranges[{s!r}] must be (low, high) token counts with 0 < low < high")
    sets = list(sets)
    allowed = sorted(s for s in DOCS_PER_SET if s in set_ranges)
    bad = [s for s in sets if s not in allowed]
    if not sets or bad:
        got = repr(bad[0]) if bad else "none"
        raise DataError(f"loong-mini: unknown length set {got}; allowed: {', '.join(map(str, allowed))}")
    names = list(TASKS) if task_names is None else [task_names] if isinstance(task_names, str) else list(task_names)
    bad_tasks = [t for t in names if t not in TASKS]
    if not names or bad_tasks:
        got = repr(bad_tasks[0]) if bad_tasks else "none"
        raise DataError(f"loong-mini: unknown task {got}; allowed: {', '.join(TASKS)}")
    return sets, names


def generate(
    n: int,
    seed: int = 0,
    split: str = "train",
    sets: Iterable[int] = (1, 2, 3, 4),
    tasks: Iterable[str] | str | None = None,
    distractors: int = 0,
    set_ranges: dict[int, tuple[int, int]] = CPU_SET_RANGES,
    count_tokens: Callable[[str], int] = word_count_tokens,
) -> list[Record]:
    """n Loong-style instances spread round-robin over sets x tasks (and each task's domain/subtask pairs).

    Instance i depends only on (seed, split, i) and the options, so a longer run extends a shorter one.
    """
    set_list, task_list = _check_options(n, split, sets, tasks, distractors, set_ranges)
    cells = [(s, t) for s in set_list for t in task_list]
    records = []
    for i in range(n):
        set_id, task = cells[i % len(cells)]
        combos = COMBOS[task]
        domain, subtask = combos[(i // len(cells)) % len(combos)]
        rng = random.Random(f"loong-mini/{seed}/{split}/{i}")
        rid = f"lm-{split}-{seed}-{i:06d}"
        records.append(
            _instance(
                rng, rid, split, seed, set_id, task, domain, subtask, distractors, set_ranges[set_id], count_tokens
            )
        )
    return records


def _fit(
    drafts: list[Draft], rng: random.Random, lo: int, hi: int, count: Callable[[str], int]
) -> tuple[list[str], list[dict], int] | None:
    """Grow the drafts into the token range, measured on the joined context; None when they cannot fit."""
    est = sum(d.tokens for d in drafts)
    margin = (hi - lo) // 10  # aim inside the range, so small count drifts stay in it
    if est > hi:
        return None
    target = max(est, rng.randint(lo + margin, hi - margin))
    while est < target:
        est += grow(drafts[rng.randrange(len(drafts))], rng, count)
    for _ in range(8):
        rendered = [render(d) for d in drafts]
        total = count(context_text(Doc("", text) for text, _ in rendered))
        if lo <= total <= hi:
            return [t for t, _ in rendered], [s for _, s in rendered], total
        # The estimate is a sum of per-sentence counts; rescale it by what the whole context measured.
        goal = est * ((lo + hi) / 2) / max(total, 1)
        while est < goal:
            est += grow(drafts[rng.randrange(len(drafts))], rng, count)
        while est > goal:
            removable = [d for d in drafts if any(x.removable for x in d.body)]
            if not removable:
                return None
            est -= shrink(rng.choice(removable))
    return None


def _instance(
    rng: random.Random,
    rid: str,
    split: str,
    seed: int,
    set_id: int,
    task: str,
    domain: str,
    subtask: str,
    distractors: int,
    span: tuple[int, int],
    count: Callable[[str], int],
) -> Record:
    lo, hi = span
    doc_lo, doc_hi = DOCS_PER_SET[set_id]
    for attempt in range(MAX_TRIES):
        base = max(MIN_DOCS.get(subtask, 2), rng.randint(doc_lo, doc_hi) - attempt // 2)
        ctx = Ctx(rng, split)
        spec = BUILDERS[subtask](ctx, domain, base)
        facts = spec.facts + [builders.distractor(ctx, domain, spec) for _ in range(distractors)]
        required = [spec.required(i) for i in range(len(spec.facts))] + [spec.lookalike_tags] * distractors
        drafts = [make_draft(domain, x, req, rng, count) for x, req in zip(facts, required, strict=True)]
        fitted = _fit(drafts, rng, lo, hi, count)
        if fitted is not None:
            break
    else:
        raise DataError(
            f"loong-mini: cannot fit a {domain} {subtask} instance with {distractors} distractors into set {set_id} "
            f"({lo}-{hi} tokens); use fewer distractors or a wider range"
        )
    texts, spans, total = fitted
    order = list(range(len(drafts)))
    rng.shuffle(order)
    pos = {j: p for p, j in enumerate(order)}
    docs = [Doc(_doc_title(domain, facts[j]), texts[j]) for j in order]
    evidence = sorted((Evidence(pos[j], *spans[j][tag]) for j, tag in spec.evidence), key=lambda e: (e.doc, e.start))
    # keyword labels: where each evidence sentence names its entity and states the asked value (or cited name);
    # a template states each once, so the first match is the one ("contract" in "a contract claim for breach of
    # a supply contract")
    keyword_spans = sorted(
        [pos[j], *found[0]]
        for j, tag in spec.evidence
        for phrase in keyword_strings(domain, facts[j], tag, spec.params.get("field"))
        if (found := phrase_spans(texts[j], phrase, *spans[j][tag]))
    )
    steps = sorted(spec.doc_steps, key=lambda s: pos[s[0]]) if spec.sort_steps else spec.doc_steps
    lines = [f"Document {pos[j] + 1} {text}" for j, text in steps] + spec.final_steps
    lines.append(f"Therefore, the answer is {answer_text(spec.answer)}.")
    n_base = len(spec.facts)
    meta = {
        "facts": [facts[j] for j in order],
        "params": spec.params,
        "distractor_docs": sorted(pos[j] for j in range(n_base, len(facts))),
        "lookalike_docs": sorted(pos[j] for j in range(n_base) if j not in spec.needed),
        "entities": [name_of(domain, facts[j]) for j in order],
        "keyword_spans": keyword_spans,  # [doc, start, end] in the document's text, as Evidence
        "length": total,
        "set_range": [lo, hi],
        "split": split,
        "seed": seed,
    }
    if spec.canonical is not None:
        meta["answer_canonical"] = spec.canonical
    return Record(
        id=rid,
        source=SOURCE,
        task=task,
        docs=docs,
        question=spec.question,
        answer=spec.answer,
        instruction=spec.instruction,
        subtask=subtask,
        domain=domain,
        length_set=set_id,
        evidence=evidence,
        needed_docs=sorted(pos[j] for j in spec.needed),
        reasoning="\n".join(lines),
        meta=meta,
    )
