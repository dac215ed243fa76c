"""The README stays a newcomer's page, and the documentation's links lead somewhere.

Reference material belongs in docs/<domain>.md and figures in benchmarks/RESULTS.md;
these checks keep the README short, every relative link in it and in docs/ pointing at
a file that exists, and every docs/ page reachable from the README's index.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
README_MAX_LINES = 300

# [text](target) or [text](target "title"); images too (![alt](target)).
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", re.I)


def relative_links(markdown: str) -> list[str]:
    """Link targets that name a file of this repository (no URL, no bare anchor), as
    written; code blocks and code spans hold examples, not links."""
    prose = CODE_SPAN.sub("", FENCE.sub("", markdown))
    return [t for t in LINK.findall(prose) if not EXTERNAL.match(t)]


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in relative_links(page.read_text(encoding="utf-8")):
        path = target.split("#", 1)[0].split("?", 1)[0]
        if not (page.parent / path).exists():
            broken.append(target)
    return broken


def test_readme_is_at_most_300_lines() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move reference "
        "material to docs/<domain>.md and figures to benchmarks/RESULTS.md"
    )


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(page: Path) -> None:
    assert broken_links(page) == [], f"{page.relative_to(ROOT)} links to missing files"


def test_every_docs_page_is_in_the_readme_index() -> None:
    linked = {(ROOT / t.split("#", 1)[0]).resolve() for t in relative_links(README.read_text())}
    missing = [p.name for p in DOCS if p.resolve() not in linked]
    assert DOCS and missing == [], f"README.md does not link to docs/{missing}"


def test_the_link_check_sees_links_and_ignores_code_and_urls(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# there\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [anchor](there.md#part) [gone](docs/gone.md) ![img](missing.png)\n"
        "[web](https://example.com/x.md) [self](#section) `[code](nothing.md)`\n"
        "```\n[fenced](nothing.md)\n```\n"
    )
    assert broken_links(page) == ["docs/gone.md", "missing.png"]
