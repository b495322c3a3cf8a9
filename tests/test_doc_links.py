"""Every relative link of the README and docs/ resolves from its page's folder (the recipe pages named the shared
seed-solutions.md as ../shared/... and ../../../shared/...; from docs/recipes/ only the second is right)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"  # the shared material beside the project checkout (/work/shared)
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SHARED_IN_CODE = re.compile(r"`(?:\.\./)+shared/")  # a path into shared/ in prose: a link instead, checked here


def prose(page: Path) -> list[str]:
    """The page's lines outside ``` blocks (commands there run from the project root, not the page's folder)."""
    lines, fenced = [], False
    for line in page.read_text().splitlines():
        fenced ^= line.lstrip().startswith("```")
        if not fenced and not line.lstrip().startswith("```"):
            lines.append(line)
    return lines


def links(page: Path) -> list[str]:
    return [target for line in prose(page) for target in LINK.findall(line)]


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = [line.lstrip("#").strip() for line in prose(page) if line.startswith("#")]
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_pages_have_links_into_the_project_and_into_shared() -> None:
    targets = [t for page in PAGES for t in links(page)]
    assert "docs/recipes/buildings.md" in targets
    assert targets.count("../../../shared/reference/seed-solutions.md") == 5  # one per recipe page


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve_from_the_page(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if resolved.is_relative_to(SHARED.resolve()) and not SHARED.is_dir():
            continue  # a checkout without the shared folder beside it
        if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in anchors(resolved)):
            broken.append(target)
    assert broken == []
    assert [line for line in prose(page) if SHARED_IN_CODE.search(line)] == []
