"""Fact fields of the three domains: how each value is phrased, compared, bucketed and normalised."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DOMAINS = ("financial", "legal", "paper")
NAME_KEY = {"financial": "company", "legal": "case_id", "paper": "title"}
NOUN = {"financial": "company", "legal": "case", "paper": "paper"}
PLURAL = {"financial": "companies", "legal": "cases", "paper": "papers"}
NAME_NOUN = {"financial": "company name", "legal": "case number", "paper": "paper title"}
NAME_NOUNS = {"financial": "company names", "legal": "case numbers", "paper": "paper titles"}
CITE_KEY = {"legal": "cites", "paper": "references"}

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
QUARTER_WORDS = ("first", "second", "third", "fourth")


def money_m(v: float) -> str:
    return f"${v:,.1f} million"


def per_share(v: float) -> str:
    return f"${v:.2f}"


def millions(v: float) -> str:
    return f"{v:,.1f} million"


def usd(v: int) -> str:
    return f"${v:,}"


def long_date(iso: str) -> str:
    d = dt.date.fromisoformat(iso)
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


def one_decimal(v: float) -> str:
    return f"{v:.1f}"


def period_long(facts: dict) -> str:
    """'fiscal year 2024' or 'the third quarter of 2024' for a financial report's facts."""
    if facts["quarter"] is None:
        return f"fiscal year {facts['year']}"
    return f"the {QUARTER_WORDS[facts['quarter'] - 1]} quarter of {facts['year']}"


@dataclass(frozen=True)
class Field:
    key: str  # key in the facts dict
    tag: str  # tag of the sentence that states it
    label: str  # how questions name it
    fmt: Callable[[Any], str] = str
    canon: Callable[[Any], str] | None = None  # rule-scoring form, when it differs from fmt
    kind: str = "num"  # num | time | text
    step: float = 1.0  # resolution of the values (for thresholds strictly between two values)

    def num(self, value: Any) -> float:
        if isinstance(value, str):
            return float(dt.date.fromisoformat(value).toordinal())
        return float(value)

    def from_num(self, x: float, like: Any) -> Any:
        if isinstance(like, str):
            return dt.date.fromordinal(int(x)).isoformat()
        if isinstance(like, int):
            return int(round(x))
        return round(x, 2)

    def words(self) -> dict[str, str]:
        """How questions say more/less of this field: 'highest'/'above' for amounts, 'latest'/'after' for times."""
        return TIME_WORDS if self.kind == "time" else NUM_WORDS


NUM_WORDS = {
    "high": "highest",
    "low": "lowest",
    "above": "above",
    "below": "below",
    "desc": "from highest to lowest",
    "asc": "from lowest to highest",
}
TIME_WORDS = {
    "high": "latest",
    "low": "earliest",
    "above": "after",
    "below": "before",
    "desc": "from latest to earliest",
    "asc": "from earliest to latest",
}


def _canon1(v: float) -> str:
    return f"{v:.1f}"


def _canon2(v: float) -> str:
    return f"{v:.2f}"


FIELDS: dict[str, dict[str, Field]] = {
    "financial": {
        "revenue": Field("revenue", "revenue", "revenue", money_m, _canon1, step=0.1),
        "net_profit": Field("net_profit", "net_profit", "net profit", money_m, _canon1, step=0.1),
        "total_assets": Field("total_assets", "total_assets", "total assets", money_m, _canon1, step=0.1),
        "shares_outstanding": Field(
            "shares_outstanding", "shares_outstanding", "number of shares outstanding", millions, _canon1, step=0.1
        ),
        "eps": Field("eps", "eps", "earnings per share", per_share, _canon2, step=0.01),
        "sector": Field("sector", "sector", "sector", kind="text"),
        "founded": Field("founded", "founded", "founding year", kind="time"),
        "headquarters": Field("headquarters", "headquarters", "headquarters city", kind="text"),
    },
    "legal": {
        "court": Field("court", "header", "court", kind="text"),
        "date": Field("date", "header", "decision date", long_date, str, kind="time"),
        "damages": Field("damages", "verdict", "damages awarded", usd, str),
        "plaintiff": Field("plaintiff", "cause", "plaintiff", kind="text"),
        "cause": Field("cause", "cause", "cause of action", kind="text"),
        "category": Field("category", "cause", "type of dispute", kind="text"),
    },
    "paper": {
        "method": Field("method", "intro", "method", kind="text"),
        "dataset": Field("dataset", "score", "data set", kind="text"),
        "score": Field("score", "score", "score", one_decimal, step=0.1),
        "year": Field("year", "year", "publication year", kind="time"),
        "area": Field("area", "area", "research area", kind="text"),
    },
}

# Which fields each subtask may ask about, per domain.
SPOT_FIELDS = {
    "financial": (
        "revenue",
        "net_profit",
        "total_assets",
        "shares_outstanding",
        "eps",
        "sector",
        "founded",
        "headquarters",
    ),
    "legal": ("court", "date", "damages", "plaintiff", "cause"),
    "paper": ("method", "dataset", "score", "year"),
}
COMPARE_FIELDS = {
    "financial": ("revenue", "net_profit", "total_assets", "eps"),
    "legal": ("damages", "date"),
    "paper": ("score", "year"),
}
ORDER_FIELDS = {"financial": ("revenue", "net_profit"), "legal": ("damages",), "paper": ("method",)}
CLASS_FIELD = {"financial": "sector", "legal": "category", "paper": "area"}
TREND_FIELDS = ("revenue", "net_profit", "total_assets")

# (label, lower bound inclusive or None, upper bound exclusive or None, sampling range inside the bucket)
Bucket = tuple[str, float | None, float | None, tuple[float, float]]
BUCKETS: dict[tuple[str, str], tuple[Bucket, ...]] = {
    ("financial", "revenue"): (
        ("under $1,000 million", None, 1000.0, (80.0, 950.0)),
        ("$1,000 million to $5,000 million", 1000.0, 5000.0, (1050.0, 4900.0)),
        ("over $5,000 million", 5000.0, None, (5100.0, 25000.0)),
    ),
    ("financial", "founded"): (
        ("before 1980", None, 1980, (1950, 1979)),
        ("1980 to 1999", 1980, 2000, (1980, 1999)),
        ("2000 or later", 2000, None, (2000, 2018)),
    ),
    ("legal", "damages"): (
        ("under $50,000", None, 50_000, (5_000, 45_000)),
        ("$50,000 to $250,000", 50_000, 250_000, (55_000, 240_000)),
        ("over $250,000", 250_000, None, (260_000, 2_000_000)),
    ),
    ("paper", "year"): (
        ("before 2016", None, 2016, (2010, 2015)),
        ("2016 to 2019", 2016, 2020, (2016, 2019)),
        ("2020 or later", 2020, None, (2020, 2024)),
    ),
    ("paper", "score"): (
        ("below 60.0", None, 60.0, (40.0, 59.0)),
        ("60.0 to 80.0", 60.0, 80.0, (61.0, 79.0)),
        ("80.0 or above", 80.0, None, (81.0, 95.0)),
    ),
}
BUCKET_FIELDS = {"financial": ("revenue", "founded"), "legal": ("damages",), "paper": ("year", "score")}


def name_of(domain: str, facts: dict) -> str:
    return facts[NAME_KEY[domain]]


def quoted(domain: str, name: str) -> str:
    """Paper titles are quoted in prose and questions; company names and case numbers are not."""
    return f'"{name}"' if domain == "paper" else name


def listing(domain: str, names: list[str]) -> str:
    return ", ".join(quoted(domain, n) for n in sorted(names))


def label_for(domain: str, field: Field, facts: dict) -> str:
    """The field as a question names it, with the shared period or benchmark spelled out."""
    if domain == "financial" and field.kind == "num":
        return f"{field.label} for {period_long(facts)}"
    if domain == "paper" and field.key == "score":
        return f"{facts['metric']} on {facts['dataset']}"
    return field.label
