"""Spotlight and comparison builders, plus the Spec every task builder returns and the helpers they share."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from repro.data.loong_mini import entities as ent
from repro.data.loong_mini.fields import (
    COMPARE_FIELDS,
    FIELDS,
    NAME_NOUN,
    NAME_NOUNS,
    PLURAL,
    SPOT_FIELDS,
    Field,
    label_for,
    listing,
    name_of,
    period_long,
    quoted,
)

Answer = str | list | dict

TASK_SUBTASKS: dict[str, tuple[str, ...]] = {
    "spotlight": ("locating",),
    "comparison": ("sequential_enumeration", "extremum", "range_counting"),
    "clustering": ("bucketing", "classification", "citation_reference"),
    "chain_of_reasoning": ("temporal_trend", "citation_chain", "ordering"),
}
TASKS = tuple(TASK_SUBTASKS)
DOMAIN_SUBTASKS: dict[str, tuple[str, ...]] = {
    "financial": (
        "locating", "sequential_enumeration", "extremum", "range_counting", "bucketing", "classification",
        "temporal_trend", "ordering",
    ),
    "legal": (
        "locating", "sequential_enumeration", "extremum", "range_counting", "bucketing", "classification",
        "citation_reference", "citation_chain", "ordering",
    ),
    "paper": (
        "locating", "sequential_enumeration", "extremum", "range_counting", "bucketing", "classification",
        "citation_reference", "citation_chain", "ordering",
    ),
}  # fmt: skip
MIN_DOCS = {"temporal_trend": 3}

EXAMPLES = {
    "revenue": " (for example $1,234.5 million)",
    "net_profit": " (for example $1,234.5 million)",
    "total_assets": " (for example $1,234.5 million)",
    "shares_outstanding": " (for example 412.3 million)",
    "eps": " (for example $1.23)",
    "date": " (for example March 4, 2021)",
    "damages": " (for example $45,000)",
}
SPOT_QUESTIONS = {
    ("financial", "revenue"): "What was the total revenue of {name} for {when}?",
    ("financial", "net_profit"): "What net profit did {name} report for {when}?",
    ("financial", "total_assets"): "What were the total assets of {name} at the end of {when}?",
    ("financial", "shares_outstanding"): "How many shares of {name} were outstanding at the end of {when}?",
    ("financial", "eps"): "What were the earnings per share of {name} for {when}?",
    ("financial", "sector"): "In which sector does {name} operate?",
    ("financial", "founded"): "In which year was {name} founded?",
    ("financial", "headquarters"): "In which city is {name} headquartered?",
    ("legal", "court"): "Which court decided case {name}?",
    ("legal", "date"): "On what date was the judgment in case {name} delivered?",
    ("legal", "damages"): "How much in damages was awarded in case {name}?",
    ("legal", "plaintiff"): "Who was the plaintiff in case {name}?",
    ("legal", "cause"): "What was the cause of action in case {name}?",
    ("paper", "method"): 'What is the name of the method proposed in "{name}"?',
    ("paper", "dataset"): 'On which data set does "{name}" report its main result?',
    ("paper", "score"): 'What {metric} does "{name}" report on {dataset}?',
    ("paper", "year"): 'In which year was "{name}" published?',
}


@dataclass
class Spec:
    """One instance before rendering: facts per base document (needed ones and spotlight look-alikes) and gold."""

    facts: list[dict]
    needed: list[int]
    evidence: list[tuple[int, str]]  # (base document, sentence tag)
    question: str
    instruction: str
    answer: Answer
    params: dict
    doc_steps: list[tuple[int, str]]  # reasoning lines about one document, rendered "Document k <text>"
    final_steps: list[str] = field(default_factory=list)
    sort_steps: bool = True  # walk documents in context order (else in the order given)
    canonical: str | None = None
    lookalike_tags: set[str] = field(default_factory=set)  # sentences every other document also carries
    shared: dict = field(default_factory=dict)  # instance-wide settings distractors reuse

    def required(self, i: int) -> set[str]:
        return {tag for d, tag in self.evidence if d == i} | self.lookalike_tags


def shared_settings(ctx: ent.Ctx, domain: str, same_benchmark: bool = False) -> dict:
    """Reporting period of the financial reports; area and benchmark when papers must be comparable."""
    rng = ctx.rng
    if domain == "financial":
        quarter = None if rng.random() < 0.5 else rng.randint(1, 4)
        return {"when": ent.period(2024, quarter)}
    if domain == "paper" and same_benchmark:
        area = rng.choice(ent.AREA_NAMES)
        return {"area": area, "benchmark": ent.benchmark(rng, area)}
    return {}


def entity(ctx: ent.Ctx, domain: str, shared: dict, **kw: Any) -> dict:
    if domain == "financial":
        return ent.financial_entity(ctx, shared["when"], **kw)
    if domain == "legal":
        return ent.case(ctx, **kw)
    kw.setdefault("area", shared.get("area"))
    kw.setdefault("benchmark", shared.get("benchmark"))
    return ent.paper(ctx, **kw)


def distractor(ctx: ent.Ctx, domain: str, spec: Spec) -> dict:
    """A same-domain document about another entity, built like the instance's own documents."""
    if domain == "financial":
        like = ctx.rng.choice(spec.facts)
        return entity(ctx, domain, {"when": ent.period(like["year"], like["quarter"])})
    return entity(ctx, domain, spec.shared)


def value_steps(domain: str, facts: list[dict], f: Field, label: str) -> list[tuple[int, str]]:
    return [
        (i, f"gives the {label} of {quoted(domain, name_of(domain, x))} as {f.fmt(x[f.key])}.")
        for i, x in enumerate(facts)
    ]


def _comparable(ctx: ent.Ctx, domain: str, key: str, n: int) -> tuple[list[dict], dict]:
    shared = shared_settings(ctx, domain, same_benchmark=True)
    if domain == "paper" and key == "year":
        years = ctx.rng.sample(range(2010, 2025), n)
        return [entity(ctx, domain, shared, year=y) for y in years], shared
    return [entity(ctx, domain, shared) for _ in range(n)], shared


def spotlight(ctx: ent.Ctx, domain: str, n: int) -> Spec:
    rng = ctx.rng
    key = rng.choice(SPOT_FIELDS[domain])
    f = FIELDS[domain][key]
    shared = shared_settings(ctx, domain)
    facts = [entity(ctx, domain, shared) for _ in range(n)]
    t = rng.randrange(n)
    target = facts[t]
    name = name_of(domain, target)
    answer = f.fmt(target[key])
    canonical = f.canon(target[key]) if f.canon else None
    slots = {"name": name}
    if domain == "financial":
        slots["when"] = period_long(target)
    if domain == "paper":
        slots |= {"metric": target["metric"], "dataset": target["dataset"]}
    return Spec(
        facts=facts,
        needed=[t],
        evidence=[(t, f.tag)],
        question=SPOT_QUESTIONS[(domain, key)].format(**slots),
        instruction=f"Answer with the value exactly as the document states it{EXAMPLES.get(key, '')}, nothing else.",
        answer=answer,
        params={"field": key},
        doc_steps=[(t, f"is about {quoted(domain, name)} and gives its {f.label} as {answer}.")],
        final_steps=[f"The other documents describe other {PLURAL[domain]} and do not bear on the question."],
        canonical=canonical if canonical != answer else None,
        lookalike_tags={f.tag},
        shared=shared,
    )


def sequential_enumeration(ctx: ent.Ctx, domain: str, n: int) -> Spec:
    rng = ctx.rng
    key = rng.choice(COMPARE_FIELDS[domain])
    f = FIELDS[domain][key]
    facts, shared = _comparable(ctx, domain, key, n)
    desc = rng.random() < 0.5
    order = f.words()["desc" if desc else "asc"]
    label = label_for(domain, f, facts[0])
    ranked = sorted(range(n), key=lambda i: f.num(facts[i][key]), reverse=desc)
    names = [name_of(domain, facts[i]) for i in ranked]
    shown = "; ".join(f"{quoted(domain, name_of(domain, facts[i]))} ({f.fmt(facts[i][key])})" for i in ranked)
    return Spec(
        facts=facts,
        needed=list(range(n)),
        evidence=[(i, f.tag) for i in range(n)],
        question=f"Rank the following {PLURAL[domain]} by {label}, {order}: {listing(domain, names)}.",
        instruction=f"Answer with a JSON list of {NAME_NOUNS[domain]}, in the requested order.",
        answer=names,
        params={"field": key, "order": "desc" if desc else "asc"},
        doc_steps=value_steps(domain, facts, f, label),
        final_steps=[f"Ordered {order}: {shown}."],
        lookalike_tags={f.tag},
        shared=shared,
    )


def extremum(ctx: ent.Ctx, domain: str, n: int) -> Spec:
    rng = ctx.rng
    key = rng.choice(COMPARE_FIELDS[domain])
    f = FIELDS[domain][key]
    facts, shared = _comparable(ctx, domain, key, n)
    high = rng.random() < 0.5
    word = f.words()["high" if high else "low"]
    label = label_for(domain, f, facts[0])
    pick = (max if high else min)(range(n), key=lambda i: f.num(facts[i][key]))
    name = name_of(domain, facts[pick])
    names = [name_of(domain, x) for x in facts]
    return Spec(
        facts=facts,
        needed=list(range(n)),
        evidence=[(i, f.tag) for i in range(n)],
        question=f"Which of the following {PLURAL[domain]} has the {word} {label}: {listing(domain, names)}?",
        instruction=f"Answer with the {NAME_NOUN[domain]} only.",
        answer=name,
        params={"field": key, "extreme": "max" if high else "min"},
        doc_steps=value_steps(domain, facts, f, label),
        final_steps=[f"The {word} {label} is {f.fmt(facts[pick][key])}, that of {quoted(domain, name)}."],
        lookalike_tags={f.tag},
        shared=shared,
    )


def _threshold(rng: random.Random, f: Field, values: list[Any]) -> Any:
    """A threshold strictly between two neighbouring values (so no value equals it), in the values' own units."""
    nums = sorted({f.num(v) for v in values})
    candidates = []
    for a, b in zip(nums, nums[1:], strict=False):
        t = round(round((a + b) / 2 / f.step) * f.step, 2)
        if a < t < b:
            candidates.append(t)
    t = rng.choice(candidates) if candidates else nums[0] - f.step
    return f.from_num(t, values[0])


def range_counting(ctx: ent.Ctx, domain: str, n: int) -> Spec:
    rng = ctx.rng
    key = rng.choice(COMPARE_FIELDS[domain])
    f = FIELDS[domain][key]
    facts, shared = _comparable(ctx, domain, key, n)
    label = label_for(domain, f, facts[0])
    threshold = _threshold(rng, f, [x[key] for x in facts])
    above = rng.random() < 0.5
    side = f.words()["above" if above else "below"]
    hits = [i for i in range(n) if (f.num(facts[i][key]) > f.num(threshold)) == above]
    names = [name_of(domain, x) for x in facts]
    hit_names = ", ".join(quoted(domain, names[i]) for i in sorted(hits, key=lambda i: names[i])) or "none"
    return Spec(
        facts=facts,
        needed=list(range(n)),
        evidence=[(i, f.tag) for i in range(n)],
        question=(
            f"How many of the following {PLURAL[domain]} have a {label} {side} {f.fmt(threshold)}: "
            f"{listing(domain, names)}?"
        ),
        instruction="Answer with a single integer.",
        answer=str(len(hits)),
        params={"field": key, "threshold": threshold, "direction": "above" if above else "below"},
        doc_steps=value_steps(domain, facts, f, label),
        final_steps=[f"Those with a {label} {side} {f.fmt(threshold)}: {hit_names}; that makes {len(hits)}."],
        lookalike_tags={f.tag},
        shared=shared,
    )
