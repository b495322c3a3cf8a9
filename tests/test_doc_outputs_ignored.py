"""Every output the README and recipe pages tell a user to write from the clone root is git-ignored: a new
user who runs the worked examples as written must not find them as untracked files to commit (the README's
my-pseudo/, my-pred-poly/ and the recipes' sn-*/sar-*/xbd-* folders were not)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs" / "recipes").glob("*.md"))]
OUTPUT = re.compile(r"(?:--out|-o) (\S+)|\btrain\.out=(\S+)")
SAMPLE = re.compile(r"^uv run python tests/recipes/\S+/data\.py (?:\S+ )?(\S+)\s*$")


def written_paths(page: Path) -> list[str]:
    """First path component of every --out / train.out= / sample-data folder of the page's uv run lines."""
    found = []
    for line in page.read_text().splitlines():
        if not line.startswith("uv run "):
            continue
        paths = [a or b for a, b in OUTPUT.findall(line)]
        sample = SAMPLE.match(line)
        paths += [sample.group(1)] if sample else []
        found += [p.strip("'\"").split("/")[0] for p in paths if not p.startswith(("/", "..", "$"))]
    return found


def test_pages_write_outputs_at_all() -> None:
    readme = written_paths(ROOT / "README.md")
    assert {"my-chips", "my-pseudo", "my-negatives.parquet", "my-pred-poly"} <= set(readme)


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_outputs_of_the_page_are_ignored(page: Path) -> None:
    paths = sorted(set(written_paths(page)))
    queries = [q for p in paths for q in (p, f"{p}/")]  # a folder may not exist yet: ask as file and as folder
    result = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], input="\n".join(queries), cwd=ROOT,
                            capture_output=True, text=True, check=False)
    ignored = {q.rstrip("/") for q in result.stdout.split()}
    assert [p for p in paths if p not in ignored] == []
