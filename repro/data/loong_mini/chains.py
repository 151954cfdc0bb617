"""Chain-of-reasoning builders: temporal trend across reports, citation chain, ordering by a given sequence."""

from __future__ import annotations

from repro.data.loong_mini import entities as ent
from repro.data.loong_mini.clusters import add_citations, time_key
from repro.data.loong_mini.fields import (
    FIELDS,
    NAME_NOUN,
    NAME_NOUNS,
    NOUN,
    ORDER_FIELDS,
    PLURAL,
    TREND_FIELDS,
    label_for,
    name_of,
    period_long,
    quoted,
)
from repro.data.loong_mini.tasks import Spec, entity, shared_settings


def temporal_trend(ctx: ent.Ctx, domain: str, n: int) -> Spec:
    """Reports of one company over n consecutive years or quarters; the answer is the direction of each change."""
    if domain != "financial":
        raise ValueError("temporal_trend is built for financial reports only")
    rng = ctx.rng
    if rng.random() < 0.5:
        whens = [ent.period(2024 - n + 1 + k, None) for k in range(n)]
    else:
        last = 2024 * 4 + 3  # Q4 2024, counting quarters from year 0
        whens = [ent.period(q // 4, q % 4 + 1) for q in range(last - n + 1, last + 1)]
    profile = ent.company_profile(ctx)
    facts, prev = [], None
    for when in whens:
        prev = ent.figures(ctx, prev=prev)
        facts.append(ent.report_facts(profile, when, prev))
    key = rng.choice(TREND_FIELDS)
    f = FIELDS[domain][key]
    values = [x[key] for x in facts]
    answer = ["increase" if b > a else "decrease" for a, b in zip(values, values[1:], strict=False)]
    final = [
        f"From {period_long(facts[i])} to {period_long(facts[i + 1])} it went from {f.fmt(values[i])} to "
        f"{f.fmt(values[i + 1])}, {'an increase' if word == 'increase' else 'a decrease'}."
        for i, word in enumerate(answer)
    ]
    company = profile["company"]
    return Spec(
        facts=facts,
        needed=list(range(n)),
        evidence=[(i, f.tag) for i in range(n)],
        question=(
            f"Based on the reports of {company} from {period_long(facts[0])} to {period_long(facts[-1])}, "
            f"how did its {f.label} change from each period to the next?"
        ),
        instruction=(
            "Answer with a JSON list with one entry per pair of consecutive periods, in chronological order, "
            'each "increase" or "decrease".'
        ),
        answer=answer,
        params={"field": key},
        doc_steps=[
            (i, f"covers {period_long(x)}: the {f.label} of {company} was {f.fmt(x[key])}.")
            for i, x in enumerate(facts)
        ],
        final_steps=final,
        sort_steps=False,
        lookalike_tags={f.tag},
    )


def citation_chain(ctx: ent.Ctx, domain: str, n: int) -> Spec:
    """Each document cites the next older one; the answer is the chain from the newest document."""
    shared = shared_settings(ctx, domain)
    facts = [entity(ctx, domain, shared) for _ in range(n)]
    chain = sorted(range(n), key=lambda i: time_key(domain, facts[i]), reverse=True)
    links = list(zip(chain, chain[1:], strict=False))
    add_citations(ctx, domain, facts, links)
    names = [name_of(domain, x) for x in facts]
    noun, plural = NOUN[domain], PLURAL[domain]
    start = quoted(domain, names[chain[0]])
    steps = [(a, f"shows that {quoted(domain, names[a])} cites {quoted(domain, names[b])}.") for a, b in links]
    steps.append(
        (chain[-1], f"shows that {quoted(domain, names[chain[-1]])} cites none of the other provided {plural}.")
    )
    where = "judgments" if domain == "legal" else "papers"
    first = f"case {start}" if domain == "legal" else f"the paper {start}"
    return Spec(
        facts=facts,
        needed=list(range(n)),
        evidence=[(a, f"cite:{names[b]}") for a, b in links],
        question=(
            f"Start from {first}. Among the provided {where}, each {noun} cites at most one other provided {noun}. "
            f"Follow these citations from {noun} to {noun} and list the {plural} in the order you reach them."
        ),
        instruction=(
            f"Answer with a JSON list of {NAME_NOUNS[domain]}, beginning with the starting {noun} and ending with "
            f"the {noun} that cites none of the other provided {plural}."
        ),
        answer=[names[i] for i in chain],
        params={"start": names[chain[0]]},
        doc_steps=steps,
        final_steps=["The chain ends there."],
        sort_steps=False,
        shared=shared,
    )


def ordering(ctx: ent.Ctx, domain: str, n: int) -> Spec:
    """Given values listed in a shuffled order, name the entity each belongs to, in that order (Loong's solitaire)."""
    rng = ctx.rng
    key = rng.choice(ORDER_FIELDS[domain])
    f = FIELDS[domain][key]
    shared = shared_settings(ctx, domain)
    facts = [entity(ctx, domain, shared) for _ in range(n)]
    seq = list(range(n))
    rng.shuffle(seq)
    values = [f.fmt(facts[i][key]) for i in seq]
    label = label_for(domain, f, facts[0])
    if domain == "paper":
        question = (
            f"The following methods are proposed in the provided papers, listed in a particular order: "
            f"{'; '.join(values)}. List the titles of the papers that propose them, in the same order."
        )
    else:
        question = (
            f"The following values of {label} appear in the provided documents, listed in a particular order: "
            f"{'; '.join(values)}. Identify the {NOUN[domain]} each value belongs to and list the "
            f"{NAME_NOUNS[domain]} in the same order."
        )
    return Spec(
        facts=facts,
        needed=list(range(n)),
        evidence=[(i, f.tag) for i in range(n)],
        question=question,
        instruction=f"Answer with a JSON list of {NAME_NOUNS[domain]}, one per given value, in the given order.",
        answer=[name_of(domain, facts[i]) for i in seq],
        params={"field": key, "sequence": [facts[i][key] for i in seq]},
        doc_steps=[
            (i, f"gives {f.fmt(facts[i][key])} as the {label} of {quoted(domain, name_of(domain, facts[i]))}.")
            for i in seq
        ],
        final_steps=[f"Matching each value to its {NAME_NOUN[domain]} in the given order gives the list."],
        sort_steps=False,
        lookalike_tags={f.tag},
        shared=shared,
    )
