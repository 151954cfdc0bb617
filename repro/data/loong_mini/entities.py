"""Seeded sampling of companies, legal cases and papers, with name pools split between train and test by hash."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

SPLITS = ("train", "test")

STEMS = (
    "Alder", "Amber", "Ash", "Birch", "Black", "Bright", "Cedar", "Clear", "Copper", "Crest",
    "Elm", "Fair", "Fern", "Fox", "Glen", "Gold", "Granite", "Green", "Hazel", "Iron",
    "Juniper", "Lake", "Laurel", "Maple", "Marble", "Meadow", "North", "Oak", "Pine", "Quarry",
    "Raven", "Red", "Ridge", "River", "Rock", "Silver", "Stone", "Summit", "Willow", "Wolf",
)  # fmt: skip
TAILS = (
    "brook", "crest", "dale", "field", "ford", "gate", "haven", "hill",
    "hurst", "land", "mark", "mont", "port", "stead", "view", "wood",
)  # fmt: skip
NOUNS = (
    "Works", "Partners", "Industries", "Holdings", "Enterprises",
    "Group", "Ventures", "Brands", "Associates", "Alliance",
)  # fmt: skip
SUFFIXES = ("Inc", "Corp", "Ltd", "plc", "LLC")
SECTORS = (
    "Consumer Goods", "Energy", "Financials", "Healthcare", "Industrials", "Real Estate", "Technology", "Utilities",
)  # fmt: skip
CITIES = (
    "Ashford", "Bramley", "Carrow", "Dunmore", "Easton", "Fairhaven", "Glenrock", "Harwick", "Ivybridge", "Kingsport",
    "Larkfield", "Millbrook", "Northam", "Oakridge", "Penrith", "Queensbury", "Rosedale", "Stanmore", "Thornbury",
    "Westfield",
)  # fmt: skip
COURTS = ("{} District Court", "{} Court of Appeal", "{} Commercial Court", "High Court of {}")
CAUSES = {
    "Contract": (
        "breach of a supply contract",
        "non-payment under a services agreement",
        "breach of a distribution agreement",
    ),
    "Employment": ("wrongful dismissal", "non-payment of overtime wages", "discrimination in promotion decisions"),
    "Intellectual Property": ("patent infringement", "trademark infringement", "copyright infringement"),
    "Property": ("trespass on commercial land", "nuisance from construction works", "a boundary encroachment"),
    "Tort": ("negligence causing personal injury", "defamation in a published article", "a defective product"),
}
CATEGORIES = tuple(sorted(CAUSES))
FIRST = (
    "Ada", "Bram", "Clara", "Dorian", "Edith", "Felix", "Greta", "Hugo", "Iris", "Jonas", "Kira", "Leon",
    "Mara", "Nils", "Olive", "Pavel", "Rhea", "Silas", "Tessa", "Victor", "Wren", "Yara", "Zane", "Lena",
)  # fmt: skip
LAST = (
    "Abbott", "Barlow", "Carver", "Dalton", "Ellison", "Fenwick", "Garner", "Harlow", "Ingram", "Jarvis", "Keller",
    "Lowell", "Mercer", "Norwood", "Orton", "Prescott", "Quinlan", "Radley", "Sutton", "Thorne", "Upton", "Vance",
    "Whitby", "Yardley",
)  # fmt: skip
TRADES = (
    "Freight", "Builders", "Foods", "Textiles", "Motors", "Media", "Clinics", "Software", "Logistics", "Realty",
    "Farms", "Printing",
)  # fmt: skip
AREAS: dict[str, dict[str, tuple[str, ...]]] = {
    "Computer Vision": {
        "tasks": ("Image Segmentation", "Object Detection", "Video Captioning"),
        "datasets": ("UrbanScenes-20", "DetectBench", "ClipStory"),
        "metrics": ("mAP", "accuracy", "CIDEr"),
    },
    "Graph Learning": {
        "tasks": ("Link Prediction", "Node Classification", "Molecular Property Prediction"),
        "datasets": ("CiteLinks", "ProteinNet-S", "MolProp-9"),
        "metrics": ("AUC", "accuracy", "F1"),
    },
    "Natural Language Processing": {
        "tasks": ("Long-Document Question Answering", "Machine Translation", "Text Summarization"),
        "datasets": ("LongQA-12K", "NewsSum", "ParaTrans"),
        "metrics": ("exact match", "F1", "ROUGE-L"),
    },
    "Reinforcement Learning": {
        "tasks": ("Robotic Grasping", "Offline Policy Learning", "Multi-Agent Coordination"),
        "datasets": ("GraspSuite", "OfflineGym", "HiveArena"),
        "metrics": ("success rate", "normalised return", "win rate"),
    },
    "Speech Processing": {
        "tasks": ("Keyword Spotting", "Speaker Verification", "Speech Enhancement"),
        "datasets": ("VoiceCmd-35", "SpeakerSet", "NoisyTalk"),
        "metrics": ("accuracy", "AUC", "PESQ-normalised score"),
    },
}
AREA_NAMES = tuple(sorted(AREAS))
ADJS = (
    "Sparse", "Hierarchical", "Adaptive", "Contrastive", "Recurrent", "Causal", "Modular", "Latent", "Robust",
    "Efficient", "Scalable", "Structured", "Gated", "Multi-Scale", "Self-Supervised", "Bayesian", "Implicit",
    "Federated", "Dynamic", "Probabilistic", "Lightweight", "Equivariant", "Compositional", "Continual",
)  # fmt: skip
MECHS = (
    "Attention", "Memory Routing", "Graph Encoders", "Prompt Tuning", "Token Pruning", "Retrieval", "Distillation",
    "Planning", "Mixture of Experts", "State Spaces", "Diffusion", "Tokenization", "Curriculum Learning",
    "Reward Modeling", "Normalization", "Message Passing", "Quantization", "Alignment", "Calibration", "Augmentation",
)  # fmt: skip
SYLLABLES = (
    "Ar", "Bel", "Cor", "Dax", "El", "Fen", "Gal", "Hel", "Ix", "Jor", "Kel", "Lum",
    "Mor", "Nex", "Or", "Pra", "Quil", "Ros", "Syl", "Tor", "Ul", "Ver", "Wyn", "Zen",
)  # fmt: skip
VOWELS = ("a", "e", "i", "o", "u", "")
ENDINGS = ("net", "former", "lm", "gate", "flow", "mix", "ra", "nix", "tron", "vis")

FIRST_DAY = dt.date(2010, 1, 1).toordinal()
LAST_DAY = dt.date(2024, 12, 31).toordinal()


@lru_cache(maxsize=1 << 16)
def name_split(name: str) -> str:
    """The split that owns an entity name; a stable hash, so train and test name pools never overlap."""
    return SPLITS[hashlib.sha1(name.encode("utf-8")).digest()[0] & 1]


@dataclass
class Ctx:
    """Sampling state of one instance: its random stream, its split and the names and values already used."""

    rng: random.Random
    split: str
    names: set[str] = field(default_factory=set)
    seen: dict[str, set] = field(default_factory=dict)

    def name(self, make: Callable[[random.Random], str]) -> str:
        for _ in range(10_000):
            candidate = make(self.rng)
            if candidate not in self.names and name_split(candidate) == self.split:
                self.names.add(candidate)
                return candidate
        raise RuntimeError("entity name pool exhausted")

    def claim(self, values: dict[str, Any]) -> bool:
        """Reserve values that must be unique within the instance; reserves nothing on a clash."""
        if any(v in self.seen.get(k, ()) for k, v in values.items()):
            return False
        for k, v in values.items():
            self.seen.setdefault(k, set()).add(v)
        return True


def _company_name(rng: random.Random) -> str:
    return f"{rng.choice(STEMS)}{rng.choice(TAILS)} {rng.choice(NOUNS)} {rng.choice(SUFFIXES)}"


def _party_name(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    return f"{rng.choice(LAST)} {rng.choice(TRADES)} {rng.choice(SUFFIXES)}"


def _title(rng: random.Random, task: str) -> str:
    adj, mech = rng.choice(ADJS), rng.choice(MECHS)
    pattern = rng.randrange(4)
    if pattern == 0:
        return f"{adj} {mech} for {task}"
    if pattern == 1:
        return f"{task} with {adj} {mech}"
    if pattern == 2:
        return f"Towards {adj} {mech} in {task}"
    return f"Rethinking {mech} for {adj} {task}"


def _method_name(rng: random.Random) -> str:
    return f"{rng.choice(SYLLABLES)}{rng.choice(VOWELS)}{rng.choice(ENDINGS)}"


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def period(year: int, quarter: int | None) -> dict:
    return {"year": year, "quarter": quarter, "period": f"FY{year}" if quarter is None else f"Q{quarter} {year}"}


def company_profile(ctx: Ctx, sector: str | None = None, founded_range: tuple[int, int] = (1950, 2018)) -> dict:
    rng = ctx.rng
    return {
        "company": ctx.name(_company_name),
        "sector": sector or rng.choice(SECTORS),
        "founded": rng.randint(*founded_range),
        "headquarters": rng.choice(CITIES),
    }


def figures(ctx: Ctx, revenue_range: tuple[float, float] = (80.0, 25000.0), prev: dict | None = None) -> dict:
    """One period's figures (USD millions); with `prev`, the next period of the same company."""
    rng = ctx.rng
    for _ in range(1000):
        if prev is None:
            revenue = round(_log_uniform(rng, *revenue_range), 1)
            margin = rng.uniform(0.03, 0.22)
            ratio = rng.uniform(0.8, 3.0)
            shares = max(1.0, round(revenue * rng.uniform(0.02, 0.5), 1))
        else:
            revenue = round(prev["revenue"] * (1 + rng.choice((-1, 1)) * rng.uniform(0.04, 0.25)), 1)
            margin = min(0.35, max(0.01, prev["net_profit"] / prev["revenue"] * rng.uniform(0.7, 1.35)))
            ratio = prev["total_assets"] / prev["revenue"] * rng.uniform(0.85, 1.15)
            shares = prev["shares_outstanding"]
        net, assets = round(revenue * margin, 1), round(revenue * ratio, 1)
        eps = round(net / shares, 2)
        if net <= 0 or eps < 0.01:
            continue
        values = {"revenue": revenue, "net_profit": net, "total_assets": assets, "eps": eps}
        if prev is not None and any(prev[k] == v for k, v in values.items()):
            continue
        if ctx.claim(values):
            return {**values, "shares_outstanding": shares}
    raise RuntimeError("could not sample distinct financial figures")


FIGURE_KEYS = ("revenue", "net_profit", "total_assets", "shares_outstanding", "eps")


def report_facts(profile: dict, when: dict, figs: dict) -> dict:
    """The facts of one financial report, keys in a fixed order."""
    return {**profile, **when, **{k: figs[k] for k in FIGURE_KEYS}}


def financial_entity(
    ctx: Ctx,
    when: dict,
    *,
    sector: str | None = None,
    founded_range: tuple[int, int] = (1950, 2018),
    revenue_range: tuple[float, float] = (80.0, 25000.0),
) -> dict:
    profile = company_profile(ctx, sector=sector, founded_range=founded_range)
    return report_facts(profile, when, figures(ctx, revenue_range=revenue_range))


def external_cases(ctx: Ctx, before_year: int, k: int) -> list[str]:
    return [ctx.name(lambda r: f"{r.randint(1995, before_year)}-CV-{r.randint(1, 99999):05d}") for _ in range(k)]


def case(
    ctx: Ctx,
    *,
    category: str | None = None,
    damages_range: tuple[float, float] = (5_000, 2_000_000),
    day_range: tuple[int, int] = (FIRST_DAY, LAST_DAY),
) -> dict:
    """A civil judgment: case number, court, decision date, parties, cause, damages, external citations."""
    rng = ctx.rng
    for _ in range(1000):
        date = dt.date.fromordinal(rng.randint(*day_range)).isoformat()
        damages = int(round(_log_uniform(rng, *damages_range), -2))
        damages = min(max(damages, int(damages_range[0])), int(damages_range[1]))
        if ctx.claim({"date": date, "damages": damages}):
            break
    else:
        raise RuntimeError("could not sample a distinct case")
    decided = int(date[:4])
    filed = decided - rng.randint(0, 2)
    category = category or rng.choice(CATEGORIES)
    return {
        "case_id": ctx.name(lambda r: f"{filed}-CV-{r.randint(1, 99999):05d}"),
        "court": rng.choice(COURTS).format(rng.choice(CITIES)),
        "date": date,
        "plaintiff": ctx.name(_party_name),
        "defendant": ctx.name(_party_name),
        "cause": rng.choice(CAUSES[category]),
        "category": category,
        "damages": damages,
        "cites": external_cases(ctx, filed - 1, rng.randint(0, 2)),
    }


def external_titles(ctx: Ctx, k: int) -> list[str]:
    tasks = [t for a in AREA_NAMES for t in AREAS[a]["tasks"]]
    return [ctx.name(lambda r: _title(r, r.choice(tasks))) for _ in range(k)]


def paper(
    ctx: Ctx,
    *,
    area: str | None = None,
    year: int | None = None,
    benchmark: tuple[str, str] | None = None,
    score_range: tuple[float, float] = (40.0, 95.0),
) -> dict:
    """A paper: title, method, area, benchmark result, year and references to papers outside the set."""
    rng = ctx.rng
    area = area or rng.choice(AREA_NAMES)
    info = AREAS[area]
    task = rng.choice(info["tasks"])
    dataset, metric = benchmark or (rng.choice(info["datasets"]), rng.choice(info["metrics"]))
    for _ in range(1000):
        score = round(rng.uniform(*score_range), 1)
        if ctx.claim({"score": score}):
            break
    else:
        raise RuntimeError("could not sample a distinct score")
    return {
        "title": ctx.name(lambda r: _title(r, task)),
        "method": ctx.name(_method_name),
        "area": area,
        "task": task,
        "dataset": dataset,
        "metric": metric,
        "score": score,
        "year": year if year is not None else rng.randint(2010, 2024),
        "references": external_titles(ctx, rng.randint(0, 2)),
    }


def benchmark(rng: random.Random, area: str) -> tuple[str, str]:
    info = AREAS[area]
    return rng.choice(info["datasets"]), rng.choice(info["metrics"])
