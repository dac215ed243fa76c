"""Site chrome (navigation bars, "Prev | Up | Next" tables, breadcrumbs, sidebars, footers)
found by repetition across a site's pages, not by tag name.

Generated documentation (DocBook, Sphinx, Confluence exports, most CMSs) wraps every
page's text in the same template. On each page the *content root* is the element that
holds nearly all of its prose; the blocks beside it (siblings of the content root and
of its ancestors) are chrome when the same block, by its place in the page (tags,
classes and ids from <body> down), sits beside the content on at least half of the
site's pages and holds little of their prose. Once learnt, a chrome block goes from
every page of the site, short ones included (where no content root stands out). A
block seen on few pages, or a site of fewer than MIN_PAGES pages, is kept: nothing is
dropped on a guess.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from bs4 import BeautifulSoup, NavigableString, Tag

MIN_PAGES = 3
# A block beside the content is chrome when it appears on this share of the pages.
SHARE = 0.5
# Descend into a child while it holds this share of its parent's prose.
CONTENT_SHARE = 0.85
# Chrome holds little of a page's prose (median share over the pages it is on): a big
# section beside a bigger one is content, however often the layout repeats.
CHROME_MAX_SHARE = 0.15
_CONTAINERS = {"body", "div", "section", "article", "main"}
_DIGITS = re.compile(r"\d")


def _prose_lengths(body: Tag) -> dict[int, int]:
    """Characters of text outside links under each element (by id()), in one pass:
    navigation is mostly links, prose is not."""
    lengths: dict[int, int] = {}
    for text in body.find_all(string=True):
        if not isinstance(text, NavigableString):
            continue
        size = len(text.strip())
        if not size:
            continue
        ancestors = []
        in_link = False
        for parent in text.parents:
            if parent.name == "a":
                in_link = True
                break
            ancestors.append(parent)
            if parent is body:
                break
        if in_link:
            continue
        for parent in ancestors:
            lengths[id(parent)] = lengths.get(id(parent), 0) + size
    return lengths


def _step(tag: Tag) -> str:
    """One element of a block's place: tag, classes, and an id unless it is generated
    (ids with digits differ from page to page)."""
    part = tag.name
    ident = tag.get("id")
    if isinstance(ident, str) and ident and not _DIGITS.search(ident):
        part += "#" + ident
    classes = tag.get("class") or []
    if classes:
        part += "." + ".".join(sorted(classes))
    return part


_PLACE_ROOTS = ("body", "html", "[document]")


def _signature(tag: Tag) -> str:
    steps = []
    node: Tag | None = tag
    while node is not None and node.name not in _PLACE_ROOTS:
        steps.append(_step(node))
        node = node.parent
    return " > ".join(reversed(steps))


def _signatures(root: Tag) -> Iterator[tuple[Tag, str]]:
    """Every element under ``root`` with its _signature, in document order, each built
    from its parent's (one step per element, not one walk to <body> per element)."""
    places: dict[int, str] = {id(root): "" if root.name in _PLACE_ROOTS else _signature(root)}
    for node in root.descendants:
        if not isinstance(node, Tag):
            continue
        if node.name in _PLACE_ROOTS:
            place = ""
        else:
            above = places.get(id(node.parent), "")
            place = f"{above} > {_step(node)}" if above else _step(node)
        places[id(node)] = place
        yield node, place


def content_root(body: Tag, prose: dict[int, int] | None = None) -> Tag:
    """The innermost container that holds nearly all of the page's prose."""
    prose = prose if prose is not None else _prose_lengths(body)
    root = body
    while True:
        children = [c for c in root.children if isinstance(c, Tag)]
        if not children:
            return root
        lengths = [(prose.get(id(c), 0), c) for c in children]
        best_length, best = max(lengths, key=lambda pair: pair[0])
        total = sum(length for length, _ in lengths)
        if best.name not in _CONTAINERS or total == 0 or best_length < CONTENT_SHARE * total:
            return root
        root = best


def blocks_beside_content(body: Tag, prose: dict[int, int] | None = None) -> Iterator[Tag]:
    """Siblings of the content root and of each of its ancestors up to <body>."""
    node = content_root(body, prose)
    while node is not body and node.parent is not None:
        for sibling in node.parent.children:
            if isinstance(sibling, Tag) and sibling is not node:
                yield sibling
        node = node.parent


@dataclass
class BoilerplateProfile:
    """The chrome block signatures of one site, learnt from a sample of its pages."""

    pages: int = 0
    chrome: set[str] = field(default_factory=set)

    @classmethod
    def learn(cls, pages: Iterable[bytes | str]) -> BoilerplateProfile:
        shares: dict[str, list[float]] = {}
        count = 0
        for page in pages:
            soup = BeautifulSoup(page, "html.parser")
            body = soup.body
            if body is None:
                continue
            count += 1
            prose = _prose_lengths(body)
            total = prose.get(id(body), 0) or 1
            found: dict[str, float] = {}
            for block in blocks_beside_content(body, prose):
                signature = _signature(block)
                found[signature] = found.get(signature, 0.0) + prose.get(id(block), 0) / total
            for signature, share in found.items():
                shares.setdefault(signature, []).append(share)
        if count < MIN_PAGES:
            return cls(count)
        needed = max(MIN_PAGES, math.ceil(SHARE * count))
        return cls(
            count,
            {
                signature
                for signature, seen in shares.items()
                if len(seen) >= needed and statistics.median(seen) <= CHROME_MAX_SHARE
            },
        )

    def strip(self, body: Tag) -> int:
        """Removes this site's chrome from a parsed page, wherever it sits; returns how
        many blocks."""
        if not self.chrome:
            return 0
        doomed = [tag for tag, place in _signatures(body) if place in self.chrome]
        removed = 0
        for block in doomed:
            if not block.decomposed:  # not already gone with an enclosing block
                block.decompose()
                removed += 1
        return removed
