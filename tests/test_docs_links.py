"""README and docs/: every relative link names a file that exists and, with #anchor, a heading it holds."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)#\s]*)(#[^)\s]+)?\)")


def github_anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {github_anchor(line.lstrip("#")) for line in path.read_text().splitlines() if line.startswith("#")}


def test_github_anchor_of_a_heading_with_backticks_and_punctuation():
    assert github_anchor(" Deviations from the paper and the released code") == (
        "deviations-from-the-paper-and-the-released-code"
    )
    assert github_anchor(" `make reproduce-l1`, profile `cpu`, 2 CPU cores") == (
        "make-reproduce-l1-profile-cpu-2-cpu-cores"
    )


def test_every_relative_link_resolves():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for match in LINK.finditer(page.read_text()):
            target, anchor = match.group(1), match.group(2)
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            linked = (page.parent / target).resolve() if target else page
            if not linked.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and linked.suffix == ".md" and anchor[1:] not in anchors(linked):
                broken.append(f"{page.name}: {target}{anchor}")
    assert not broken, broken
