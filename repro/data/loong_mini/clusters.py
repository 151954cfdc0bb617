"""Clustering builders: bucketing by value range, classification by category, citation and reference lists."""

from __future__ import annotations

from repro.data.loong_mini import entities as ent
from repro.data.loong_mini.fields import (
    BUCKET_FIELDS,
    BUCKETS,
    CITE_KEY,
    CLASS_FIELD,
    FIELDS,
    NAME_NOUN,
    NAME_NOUNS,
    PLURAL,
    label_for,
    listing,
    name_of,
    quoted,
)
from repro.data.loong_mini.tasks import Spec, entity, shared_settings, value_steps

CLASS_POOLS = {"financial": ent.SECTORS, "legal": ent.CATEGORIES, "paper": ent.AREA_NAMES}
CLASS_KW = {"financial": "sector", "legal": "category", "paper": "area"}


def _bucket_kw(domain: str, key: str, lo: float, hi: float, ctx: ent.Ctx) -> dict:
    if (domain, key) == ("financial", "revenue"):
        return {"revenue_range": (lo, hi)}
    if (domain, key) == ("financial", "founded"):
        return {"founded_range": (int(lo), int(hi))}
    if (domain, key) == ("legal", "damages"):
        return {"damages_range": (lo, hi)}
    if (domain, key) == ("paper", "year"):
        return {"year": ctx.rng.randint(int(lo), int(hi))}
    return {"score_range": (lo, hi)}


def bucketing(ctx: ent.Ctx, domain: str, n: int) -> Spec:
    rng = ctx.rng
    key = rng.choice(BUCKET_FIELDS[domain])
    f = FIELDS[domain][key]
    buckets = BUCKETS[(domain, key)]
    if n >= len(buckets):
        ids = list(range(len(buckets))) + [rng.randrange(len(buckets)) for _ in range(n - len(buckets))]
    else:
        ids = rng.sample(range(len(buckets)), n)
    rng.shuffle(ids)
    shared = shared_settings(ctx, domain, same_benchmark=True)
    facts = [entity(ctx, domain, shared, **_bucket_kw(domain, key, *buckets[b][3], ctx)) for b in ids]
    names = [name_of(domain, x) for x in facts]
    answer = {b[0]: sorted(names[i] for i in range(n) if ids[i] == j) for j, b in enumerate(buckets)}
    label = label_for(domain, f, facts[0])
    labels = "; ".join(f'"{b[0]}"' for b in buckets)
    final = [f"{b}: {', '.join(quoted(domain, x) for x in members) or 'none'}." for b, members in answer.items()]
    return Spec(
        facts=facts,
        needed=list(range(n)),
        evidence=[(i, f.tag) for i in range(n)],
        question=(
            f"Group the following {PLURAL[domain]} by {label} into these ranges: {labels}. "
            f"The {PLURAL[domain]} are: {listing(domain, names)}."
        ),
        instruction=(
            "Answer with a JSON object whose keys are the range labels exactly as given, in the given order, each "
            f"mapped to the alphabetically sorted list of {NAME_NOUNS[domain]} in that range (an empty list if none)."
        ),
        answer=answer,
        params={"field": key, "buckets": [[b[0], b[1], b[2]] for b in buckets]},
        doc_steps=value_steps(domain, facts, f, label),
        final_steps=final,
        lookalike_tags={f.tag},
        shared=shared,
    )


def classification(ctx: ent.Ctx, domain: str, n: int) -> Spec:
    rng = ctx.rng
    key = CLASS_FIELD[domain]
    f = FIELDS[domain][key]
    pool = CLASS_POOLS[domain]
    chosen = rng.sample(pool, min(n, rng.randint(2, 4)))
    cats = chosen + [rng.choice(chosen) for _ in range(n - len(chosen))]
    rng.shuffle(cats)
    shared = shared_settings(ctx, domain)
    facts = [entity(ctx, domain, shared, **{CLASS_KW[domain]: c}) for c in cats]
    names = [name_of(domain, x) for x in facts]
    answer = {c: sorted(names[i] for i in range(n) if cats[i] == c) for c in sorted(set(cats))}
    steps = [(i, f"places {quoted(domain, names[i])} in the {f.label} {cats[i]}.") for i in range(n)]
    final = [f"{c}: {', '.join(quoted(domain, x) for x in members)}." for c, members in answer.items()]
    return Spec(
        facts=facts,
        needed=list(range(n)),
        evidence=[(i, f.tag) for i in range(n)],
        question=(
            f"Classify the following {PLURAL[domain]} by {f.label} (one of: {', '.join(pool)}): "
            f"{listing(domain, names)}."
        ),
        instruction=(
            f"Answer with a JSON object that maps each {f.label} that occurs, in alphabetical order, to the "
            f"alphabetically sorted list of {NAME_NOUNS[domain]} in it."
        ),
        answer=answer,
        params={"field": key},
        doc_steps=steps,
        final_steps=final,
        lookalike_tags={f.tag},
        shared=shared,
    )


def time_key(domain: str, facts: dict) -> tuple:
    """Chronological sort key: decision date of a case, publication year of a paper (ties by name)."""
    return (facts["date"] if domain == "legal" else facts["year"], name_of(domain, facts))


def add_citations(ctx: ent.Ctx, domain: str, facts: list[dict], edges: list[tuple[int, int]]) -> None:
    """Record each (citing, cited) edge in the citing document's citation list, mixed with its external ones."""
    key = CITE_KEY[domain]
    for citing, cited in edges:
        facts[citing][key].append(name_of(domain, facts[cited]))
    for x in facts:
        ctx.rng.shuffle(x[key])


def citation_reference(ctx: ent.Ctx, domain: str, n: int) -> Spec:
    rng = ctx.rng
    shared = shared_settings(ctx, domain)
    facts = [entity(ctx, domain, shared) for _ in range(n)]
    order = sorted(range(n), key=lambda i: time_key(domain, facts[i]))
    edges = []
    for p in range(1, n):
        for cited in sorted(rng.sample(order[:p], rng.randint(0, min(2, p)))):
            edges.append((order[p], cited))
    if not edges:
        edges.append((order[-1], order[0]))
    add_citations(ctx, domain, facts, edges)
    names = [name_of(domain, x) for x in facts]
    cites = {i: sorted(names[t] for c, t in edges if c == i) for i in range(n)}
    cited_by = {i: sorted(names[c] for c, t in edges if t == i) for i in range(n)}
    direction = rng.choice(("references", "cited_by"))
    table = cites if direction == "references" else cited_by
    answer = {names[i]: table[i] for i in sorted(range(n), key=lambda i: names[i])}
    noun, plural = NAME_NOUN[domain], PLURAL[domain]
    none = f"none of the other listed {plural}"
    steps = [
        (i, f"shows that {quoted(domain, names[i])} cites {', '.join(quoted(domain, x) for x in cites[i]) or none}.")
        for i in range(n)
    ]
    if direction == "references":
        question = f"For each of the following {plural}, which of the other listed {plural} does it cite? "
        final = []
    else:
        question = f"For each of the following {plural}, which of the other listed {plural} cite it? "
        final = [f"Reversing these citations gives the listed {plural} that cite each one."]
    return Spec(
        facts=facts,
        needed=list(range(n)),
        evidence=[(c, f"cite:{names[t]}") for c, t in edges],
        question=question + f"The {plural} are: {listing(domain, names)}.",
        instruction=(
            f"Answer with a JSON object that maps each listed {noun}, in alphabetical order, to the alphabetically "
            f"sorted list of {NAME_NOUNS[domain]} (an empty list if there are none)."
        ),
        answer=answer,
        params={"direction": direction},
        doc_steps=steps,
        final_steps=final,
        shared=shared,
    )
