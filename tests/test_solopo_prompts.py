"""The long prompt under a tight budget: distractors are dropped whole, never a needed document."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.config import load_recipe
from repro.data.prompts import build_prompt, l1_prompt, token_counter
from repro.data.schema import Doc, Record
from repro.solopo.sample import context_prompts, fit_long_docs

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "tiny" / "solopo.yaml"


class WordTokenizer:
    """One token per whitespace-separated word; the chat template adds nothing to the user text."""

    chat_template = "user text only"
    name_or_path = "words"

    def encode(self, text: str, add_special_tokens: bool = False) -> list[str]:
        return text.split()

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True) -> str:
        return messages[-1]["content"]


# document i is len_i copies of the word "w<i>"; 1 and 3 are needed, 0, 2 and 4 distractors
LENGTHS = [60, 30, 50, 20, 10]


def record() -> Record:
    docs = [Doc("", " ".join([f"w{i}"] * n)) for i, n in enumerate(LENGTHS)]
    return Record(id="r", source="t", task="spotlight", docs=docs, question="Which?", answer="x", needed_docs=[1, 3])


def shown(text: str) -> list[int]:
    """Which documents a prompt holds, by their words."""
    return [i for i in range(len(LENGTHS)) if f"w{i}" in text.split()]


def prompts(budget: int):
    recipe = load_recipe(RECIPE, [f"solopo.max_input_tokens={budget}", "solopo.prompt_style=l1"])
    return context_prompts(record(), recipe, WordTokenizer())


def test_the_word_counts_the_arithmetic_rests_on():
    count = token_counter(WordTokenizer())
    # the L1 template with no documents: "Please read ... below." 10 words, "<text>" "</text>" 2, "Which?" 1,
    # "Format your response as follows: "Therefore, the answer is (insert answer here)"." 12 = 25
    assert count(l1_prompt("Which?", "")) == 25
    # a document of n words costs n + 2 ("Document", "<i>" as its header); all five: 25 + 170 + 10 = 205
    assert count(build_prompt(record())[0]) == 205


def test_a_tight_budget_drops_distractors_and_keeps_every_needed_document():
    """Budget 125 words. Needed 1 and 3 alone: 25 + (30 + 2) + (20 + 2) = 79. Then each distractor in order:
    0 -> 79 + 62 = 141 > 125 dropped; 2 -> 79 + 52 = 131 dropped; 4 -> 79 + 12 = 91 kept."""
    got = prompts(125)
    assert shown(got.long) == [1, 3, 4] and got.dropped == [0, 2]
    assert len(got.long.split()) == 91
    assert shown(got.short) == [1, 3] and len(got.short.split()) == 79
    # documents kept in order, with no budget left for either dropped distractor
    assert fit_long_docs(record(), lambda r: len(build_prompt(r)[0].split()) <= 125) == ([1, 3, 4], [0, 2])


def test_fitting_in_document_order_alone_would_lose_a_needed_document():
    """What build_prompt's own fitting keeps at 125: 25 + 62 (0) = 87, + 32 (1) = 119, then 2 (171), 3 (141)
    and 4 (131) overflow. Needed document 3 is lost: the reason the long prompt is fitted its own way."""
    text, dropped = build_prompt(record(), budget_tokens=125, count_tokens=token_counter(WordTokenizer()))
    assert shown(text) == [0, 1] and dropped == 3


@pytest.mark.parametrize(
    ("budget", "kept", "dropped"),
    [
        (205, [0, 1, 2, 3, 4], []),  # all five: 25 + 170 words + 5 headers of 2 = 205
        (204, [0, 1, 2, 3], [4]),  # needed 79, + 62 (0) = 141, + 52 (2) = 193, + 12 (4) = 205 > 204
        (140, [1, 2, 3], [0, 4]),  # 79 + 62 (0) = 141 > 140; + 52 (2) = 131; + 12 (4) = 143 > 140
        (79, [1, 3], [0, 2, 4]),  # exactly the needed documents
    ],
)
def test_budgets_at_the_edges(budget, kept, dropped):
    got = prompts(budget)
    assert shown(got.long) == kept and got.dropped == dropped
    assert all(i in shown(got.long) for i in (1, 3))


def test_needed_documents_over_the_budget_skip_the_example():
    """78 < 79 = the needed documents alone: no prompt at all (make_pairs counts and logs it)."""
    assert prompts(78) is None
