"""Prose rendering of one document: varied fact sentences, filler sentences, paragraphs and evidence spans."""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field

from repro.data.loong_mini.fields import CITE_KEY, FIELDS, name_of, period_long

PARA_BREAK = 0.2  # chance that a sentence starts a new paragraph
HEAD = {"financial": "intro", "legal": "header", "paper": "intro"}
TAIL = {"legal": "verdict"}

TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "financial": {
        "intro": (
            "This report presents the results of {company} for {when}.",
            "{company} hereby publishes its financial statements covering {when}.",
            "The following discussion covers the operations of {company} during {when}.",
            "This document is the {kind} of {company} for {when}.",
        ),
        "revenue": (
            "For {when}, {company} reported total revenue of {v}.",
            "{company} generated revenue of {v} in {when}.",
            "Revenue at {company} came in at {v} for {when}.",
            "Total revenue of {company} reached {v} during {when}.",
        ),
        "net_profit": (
            "{company} recorded a net profit of {v} for {when}.",
            "Net profit attributable to {company} amounted to {v} in {when}.",
            "For {when}, the net profit of {company} was {v}.",
        ),
        "total_assets": (
            "As of the end of {when}, {company} held total assets of {v}.",
            "The balance sheet of {company} showed total assets of {v} at the close of {when}.",
            "Total assets of {company} stood at {v} at the end of {when}.",
        ),
        "shares_outstanding": (
            "{company} had {v} shares outstanding at the end of {when}.",
            "At the close of {when}, {v} shares of {company} were outstanding.",
        ),
        "eps": (
            "Earnings per share of {company} were {v} for {when}.",
            "{company} delivered basic earnings per share of {v} in {when}.",
        ),
        "sector": (
            "{company} operates in the {v} sector.",
            "{company} is classified as a company in the {v} sector.",
            "As a business in the {v} sector, {company} serves a broad customer base.",
        ),
        "founded": (
            "{company} was founded in {v}.",
            "Since its founding in {v}, {company} has grown steadily.",
            "{company} traces its origins to {v}, the year it was founded.",
        ),
        "headquarters": (
            "{company} is headquartered in {v}.",
            "The head office of {company} is located in {v}.",
        ),
    },
    "legal": {
        "header": (
            "Case {case_id} was heard before the {court}, which delivered its judgment on {v}.",
            "On {v}, the {court} issued its decision in case {case_id}.",
            "The judgment in case {case_id} was handed down by the {court} on {v}.",
        ),
        "cause": (
            "In case {case_id}, {plaintiff} brought {a_kind} claim against {defendant} for {cause}.",
            "The dispute in case {case_id}, {a_kind} matter, arose when {plaintiff} sued {defendant} over {cause}.",
            "{plaintiff}, the plaintiff in case {case_id}, sued {defendant} in this {kind} dispute for {cause}.",
        ),
        "verdict": (
            "In case {case_id}, the court ruled for {plaintiff} and ordered {defendant} to pay damages of {v}.",
            "The court found {defendant} liable in case {case_id} and awarded {plaintiff} {v} in damages.",
            "Judgment in case {case_id} was entered for {plaintiff}, with damages of {v} payable by {defendant}.",
        ),
        "cite": (
            "In case {case_id}, the court relied on its earlier ruling in case {other}.",
            "The reasoning in case {case_id} follows the precedent set in case {other}.",
            "The court in case {case_id} cited case {other} as persuasive authority.",
        ),
    },
    "paper": {
        "intro": (
            'The paper "{title}" introduces {method}, a new approach to {task}.',
            'In "{title}", the authors propose {method} for {task}.',
            '"{title}" presents {method}, a method designed for {task}.',
        ),
        "year": (
            '"{title}" was published in {v}.',
            'The paper "{title}" appeared in {v}.',
            'Published in {v}, "{title}" drew attention from its research community.',
        ),
        "score": (
            'On {dataset}, {method} from "{title}" achieves {metric} of {v}.',
            '"{title}" reports {metric} of {v} for {method} on the {dataset} benchmark.',
            'The main result of "{title}" is {metric} of {v} on {dataset}.',
        ),
        "area": (
            '"{title}" belongs to the field of {v}.',
            'The research area of "{title}" is {v}.',
            'The paper "{title}" is a contribution to {v}.',
        ),
        "cite": (
            '"{title}" builds on the earlier work "{other}".',
            'Among its references, "{title}" cites "{other}".',
            '"{title}" compares against the approach described in "{other}".',
        ),
    },
}

FILLERS: dict[str, tuple[str, ...]] = {
    "financial": (
        "{ref} continued to invest in {initiative} throughout the period.",
        "Management at {ref} highlighted {topic} as a key priority for the coming year.",
        "The board of {ref} reviewed its approach to {topic} during the period.",
        "{ref} expanded its {unit} operations and strengthened relationships with {partners}.",
        "According to management, demand from {partners} remained {tone}.",
        "{ref} also reported progress on {initiative}, which it expects to support long-term growth.",
        "{ref} noted that {risk} could affect future results.",
        "Risk factors discussed by {ref} include {risk} and {risk2}.",
        "{ref} maintained its focus on {topic} and {topic2}.",
        "During the period, {ref} completed an internal review of its {unit} processes.",
        "{ref} described its competitive position in its core markets as {tone}.",
        "The audit committee of {ref} met regularly to oversee {topic}.",
        "Employees of {ref} took part in programmes on {topic}.",
        "{ref} said that {partners} valued its work on {initiative}.",
    ),
    "legal": (
        "The parties in case {case_id} exchanged written submissions before the hearing.",
        "Counsel for {plaintiff} argued that {argument}.",
        "{defendant} contended that {defence}.",
        "The court in case {case_id} heard evidence from {witness}.",
        "The judgment in case {case_id} sets out the procedural history in some detail.",
        "Both parties were given the opportunity to respond to {item}.",
        "The court considered {item} carefully before reaching its conclusions.",
        "In its reasoning, the court emphasised {principle}.",
        "The record in case {case_id} includes {item} and {item2}.",
        "The court noted that {defendant} had not disputed {item}.",
    ),
    "paper": (
        "The authors of {ref} discuss {limitation} as a limitation of their approach.",
        "An ablation study in {ref} examines the contribution of {component}.",
        "{method} relies on {component} to keep training stable.",
        "{ref} releases code and detailed hyperparameter settings.",
        "One section of {ref} analyses {analysis}.",
        "The experiments in {ref} were run on {hardware}.",
        "The authors of {ref} note that {method} is sensitive to {hyper}.",
        "Qualitative examples in {ref} illustrate {analysis}.",
        "Future work suggested in {ref} includes applying {method} to {future}.",
        "{method} is compared with several strong baselines under the same training budget.",
        "{ref} argues that {component} matters more than model size.",
        "The appendix of {ref} reports {analysis} in more detail.",
    ),
}

SLOTS: dict[str, tuple[str, ...]] = {
    "initiative": (
        "a new enterprise software platform", "warehouse automation", "renewable energy procurement",
        "customer service digitisation", "supply chain resilience", "a regional distribution network",
        "employee training programmes", "data security upgrades", "product line simplification",
        "research partnerships with universities",
    ),
    "topic": (
        "cost discipline", "capital allocation", "workforce retention", "regulatory compliance", "customer retention",
        "cash flow management", "environmental reporting", "pricing strategy", "operational efficiency",
        "governance practices",
    ),
    "unit": ("manufacturing", "distribution", "retail", "service", "procurement", "logistics", "research"),
    "partners": (
        "long-standing customers", "distribution partners", "public-sector clients", "key suppliers",
        "institutional clients", "small-business customers",
    ),
    "tone": ("stable", "resilient", "steady", "uneven", "encouraging", "competitive"),
    "risk": (
        "changes in interest rates", "supply chain disruption", "currency fluctuations", "new regulation",
        "rising input costs", "cybersecurity incidents", "labour shortages", "shifts in consumer demand",
    ),
    "argument": (
        "the agreed terms had been ignored", "the delay caused significant losses",
        "the defendant acted without proper authority", "the notices were never properly served",
        "the obligations were clear from the correspondence",
    ),
    "defence": (
        "the claim was brought too late", "the losses were caused by a third party",
        "the terms had been varied by agreement", "no duty was owed to the claimant",
        "the evidence of loss was speculative",
    ),
    "witness": ("two expert witnesses", "a former manager", "an independent surveyor", "the company secretary"),
    "item": (
        "the expert reports", "the email correspondence", "the disputed invoices", "the inspection records",
        "the minutes of board meetings", "the witness statements",
    ),
    "principle": (
        "the importance of clear contractual language", "the duty to mitigate losses",
        "the standard of reasonable care", "the burden of proof on the claimant", "the need for proportionate remedies",
    ),
    "limitation": (
        "the cost of long inputs", "the dependence on labelled data", "sensitivity to noisy inputs",
        "limited evaluation in low-resource settings", "the memory footprint during training",
    ),
    "component": (
        "the gating module", "the auxiliary loss", "the pretraining stage", "the data augmentation policy",
        "the positional encoding", "the retrieval index",
    ),
    "analysis": (
        "typical failure cases", "how errors grow with input length", "the behaviour of attention weights",
        "the effect of model size",
    ),
    "hardware": ("a small GPU cluster", "commodity hardware", "a single accelerator node"),
    "hyper": ("the learning rate", "the batch size", "the number of layers", "the temperature parameter"),
    "future": ("multilingual data", "streaming inputs", "larger models", "new application domains"),
}  # fmt: skip
SLOTS["risk2"], SLOTS["topic2"], SLOTS["item2"] = SLOTS["risk"], SLOTS["topic"], SLOTS["item"]
# The field whose value a fact sentence states as {v}.
VALUE_FIELD = {("financial", key): key for key in FIELDS["financial"]} | {
    ("legal", "header"): "date",
    ("legal", "verdict"): "damages",
    ("paper", "year"): "year",
    ("paper", "score"): "score",
    ("paper", "area"): "area",
}
# How a filler sentence refers to the entity: by name, or (as prose does) by a short description.
REFS: dict[str, Callable[[dict], tuple[str, ...]]] = {
    "financial": lambda f: (f["company"], f["company"], "the company", "the group"),
    "legal": lambda f: (f["case_id"],),
    "paper": lambda f: (f'"{f["title"]}"', f'"{f["title"]}"', "the paper", "this work"),
}
CLOSINGS = ("It is so ordered.", "Each party shall bear its own costs.", "Costs follow the event.")


def _fields_of(template: str) -> tuple[str, ...]:
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


PARSED_FILLERS = {d: tuple((t, _fields_of(t)) for t in ts) for d, ts in FILLERS.items()}


@dataclass
class Line:
    text: str
    tag: str | None  # fact tag of the sentence; None for filler
    tokens: int
    new_para: bool  # starts a new paragraph
    removable: bool


@dataclass
class Draft:
    """A document being grown to length: fixed head, body lines, fixed tail (legal result) and spare facts."""

    domain: str
    facts: dict
    head: Line
    body: list[Line]
    tail: list[Line]
    spare: list[tuple[str, str]] = field(default_factory=list)
    tokens: int = 0
    used: set[str] = field(default_factory=set)


def _slots(domain: str, facts: dict) -> dict[str, str]:
    out = dict(facts)
    if domain == "financial":
        out["when"] = period_long(facts)
        out["kind"] = "annual report" if facts["quarter"] is None else "quarterly report"
    elif domain == "legal":
        out["kind"] = facts["category"].lower()
        out["a_kind"] = ("an " if out["kind"][0] in "aeiou" else "a ") + out["kind"]
    else:
        out["task"] = facts["task"].lower()
    return out


def fact_sentences(domain: str, facts: dict, rng: random.Random) -> dict[str, str]:
    """Every fact of the entity as one sentence, keyed by tag (citations as 'cite:<name>')."""
    slots = _slots(domain, facts)
    templates = TEMPLATES[domain]
    out: dict[str, str] = {}
    for tag, options in templates.items():
        if tag == "cite":
            continue
        key = VALUE_FIELD.get((domain, tag))
        value = FIELDS[domain][key].fmt(facts[key]) if key else None
        out[tag] = rng.choice(options).format(**slots, v=value)
    if domain in CITE_KEY:
        for other in facts[CITE_KEY[domain]]:
            out[f"cite:{other}"] = rng.choice(templates["cite"]).format(**slots, other=other)
    return out


def keyword_strings(domain: str, facts: dict, tag: str, field_key: str | None = None) -> list[str]:
    """The names and values a fact sentence states, as its keyword labels: the entity's name, and the cited name
    (a citation) or the value of the asked field (`field_key`; every field the sentence states when it is not
    one of them), as the prose writes it."""
    names = [name_of(domain, facts)]
    if tag.startswith("cite:"):
        return [*names, tag.split(":", 1)[1]]
    stated = [f for f in FIELDS[domain].values() if f.tag == tag]
    asked = [f for f in stated if f.key == field_key] or stated
    return names + [f.fmt(facts[f.key]) for f in asked]


def filler(domain: str, facts: dict, rng: random.Random) -> str:
    """A sentence about the entity that states none of the facts a question can ask for."""
    template, names = rng.choice(PARSED_FILLERS[domain])
    slots = {}
    for name in names:
        if name == "ref":
            slots[name] = rng.choice(REFS[domain](facts))
        else:
            slots[name] = facts[name] if name in facts else rng.choice(SLOTS[name])
    text = template.format(**slots)
    return text[0].upper() + text[1:]


def make_draft(domain: str, facts: dict, required: set[str], rng: random.Random, count: Callable[[str], int]) -> Draft:
    """The shortest document: head sentence, the required fact sentences (and the legal result paragraph)."""
    sentences = fact_sentences(domain, facts, rng)
    missing = sorted(required - set(sentences))
    if missing:
        raise ValueError(f"no sentence for tags {missing}")

    def line(tag: str, removable: bool = False) -> Line:
        text = sentences.pop(tag)
        return Line(text, tag, count(text), rng.random() < PARA_BREAK, removable)

    head = line(HEAD[domain])
    tail = [line(TAIL[domain])] if domain in TAIL else []
    if tail and rng.random() < 0.6:
        closing = rng.choice(CLOSINGS)
        tail.append(Line(closing, None, count(closing), False, False))
    body = [line(tag) for tag in sorted(required) if tag in sentences]
    rng.shuffle(body)
    spare = sorted(sentences.items())
    rng.shuffle(spare)
    draft = Draft(domain, facts, head, body, tail, spare)
    draft.tokens = sum(x.tokens for x in (head, *body, *tail))
    return draft


def grow(draft: Draft, rng: random.Random, count: Callable[[str], int]) -> int:
    """Insert one more sentence (a spare fact or a filler) at a random place; returns its token count."""
    if draft.spare and rng.random() < 0.35:
        tag, text = draft.spare.pop()
    else:
        tag, text = None, filler(draft.domain, draft.facts, rng)
        for _ in range(4):  # avoid repeating a sentence while the template pool allows it
            if text not in draft.used:
                break
            text = filler(draft.domain, draft.facts, rng)
        draft.used.add(text)
    new = Line(text, tag, count(text), rng.random() < PARA_BREAK, True)
    draft.body.insert(rng.randint(0, len(draft.body)), new)
    draft.tokens += new.tokens
    return new.tokens


def shrink(draft: Draft) -> int:
    """Drop the last removable sentence; returns its token count (0 when nothing can go)."""
    for i in range(len(draft.body) - 1, -1, -1):
        if draft.body[i].removable:
            gone = draft.body.pop(i)
            draft.tokens -= gone.tokens
            return gone.tokens
    return 0


def render(draft: Draft) -> tuple[str, dict[str, tuple[int, int]]]:
    """The document text and the character span of every tagged sentence; a tail is its own last paragraph."""
    parts: list[str] = []
    spans: dict[str, tuple[int, int]] = {}
    pos = 0
    seq = [(draft.head, "")]
    seq += [(x, "\n\n" if x.new_para else " ") for x in draft.body]
    seq += [(x, "\n\n" if i == 0 else " ") for i, x in enumerate(draft.tail)]
    for line, sep in seq:
        parts.append(sep)
        pos += len(sep)
        if line.tag is not None:
            spans[line.tag] = (pos, pos + len(line.text))
        parts.append(line.text)
        pos += len(line.text)
    return "".join(parts), spans
