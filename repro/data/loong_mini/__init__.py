"""Loong-mini: a seeded generator of Loong-style multi-document QA instances, and a writer of Loong's layout."""

from repro.data.loong_mini.entities import SPLITS, name_split
from repro.data.loong_mini.fields import DOMAINS
from repro.data.loong_mini.generate import (
    CPU_SET_RANGES,
    DOCS_PER_SET,
    SOURCE,
    WORKSTATION_SET_RANGES,
    answer_text,
    context_text,
    generate,
    word_count_tokens,
)
from repro.data.loong_mini.loong_format import LEVELS, PROMPT_TEMPLATE, write_loong_format
from repro.data.loong_mini.tasks import DOMAIN_SUBTASKS, TASK_SUBTASKS, TASKS

__all__ = [
    "CPU_SET_RANGES",
    "DOCS_PER_SET",
    "DOMAINS",
    "DOMAIN_SUBTASKS",
    "LEVELS",
    "PROMPT_TEMPLATE",
    "SOURCE",
    "SPLITS",
    "TASKS",
    "TASK_SUBTASKS",
    "WORKSTATION_SET_RANGES",
    "answer_text",
    "context_text",
    "generate",
    "name_split",
    "word_count_tokens",
    "write_loong_format",
]
