"""Markdown from repositories (READMEs, a service's docs/) as safe HTML for the pages.

CommonMark plus tables (markdown-it-py). Raw HTML in the source is escaped, not passed
through, and markdown-it refuses ``javascript:``/``data:`` links, so a repository's text
cannot run script in the portal. Relative links and images are resolved against the
file's folder in the repository browser, so they work as they do on a git host.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

_md = MarkdownIt("commonmark", {"html": False}).enable("table")


def _is_relative(url: str) -> bool:
    parts = urlsplit(url)
    return not (parts.scheme or parts.netloc or url.startswith(("/", "#")))


def resolve(folder: str, url: str) -> str:
    """``url`` relative to ``folder`` of the repository, as a repository path."""
    path, _, fragment = url.partition("#")
    joined = posixpath.normpath(posixpath.join(folder, path)) if path else folder
    joined = "" if joined in (".", "") else joined.lstrip("/")
    return joined + (f"#{fragment}" if fragment else "")


def _rewrite(tokens: list[Token], link: Callable[[str], str], image: Callable[[str], str]) -> None:
    for token in tokens:
        if token.children:
            _rewrite(token.children, link, image)
        if token.type == "link_open":
            href = str(token.attrGet("href") or "")
            if _is_relative(href):
                token.attrSet("href", link(href))
        elif token.type == "image":
            src = str(token.attrGet("src") or "")
            if _is_relative(src):
                token.attrSet("src", image(src))


def render(
    text: str,
    link: Callable[[str], str] = lambda url: url,
    image: Callable[[str], str] = lambda url: url,
) -> Markup:
    """HTML for ``text``; ``link``/``image`` map relative URLs (e.g. to browser pages)."""
    tokens = _md.parse(text)
    _rewrite(tokens, link, image)
    return Markup(_md.renderer.render(tokens, _md.options, {}))  # noqa: S704 (escaped above)


def title_of(text: str, fallback: str) -> str:
    """The first heading of a Markdown text, else ``fallback`` (for page lists)."""
    tokens = _md.parse(text)
    for heading, inline in zip(tokens, tokens[1:], strict=False):
        if heading.type == "heading_open" and inline.content.strip():
            return inline.content.strip()
    return fallback
