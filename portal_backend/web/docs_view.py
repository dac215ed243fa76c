"""A service's documentation, rendered the way Backstage's TechDocs shows it: the
Markdown pages under ``docs/`` of its repository (on this portal), a page list on the
side, relative links kept inside the docs. With no page there yet, the README stands in.
"""

from __future__ import annotations

import posixpath
from typing import Any

from markupsafe import Markup

from catalog.errors import NotFoundError
from portal_backend.git_hosts import repo_browser
from portal_backend.web import links, markdown

DOCS_FOLDER = "docs"
MAX_PAGES = 300


def page_title(path: str) -> str:
    """``docs/getting-started.md`` -> ``Getting started``."""
    stem = posixpath.splitext(posixpath.basename(path))[0]
    if stem.lower() == "index":
        folder = posixpath.basename(posixpath.dirname(path))
        stem = "Overview" if folder == DOCS_FOLDER else folder
    words = stem.replace("-", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _renderer(
    repo: repo_browser.HostedRepo, ref: str, folder: str, docs_url: str, pages: set[str]
) -> tuple[Any, Any]:
    def link(url: str) -> str:
        target = markdown.resolve(folder, url)
        path, _, fragment = target.partition("#")
        if path in pages:  # another page of the docs: stay in the Docs tab
            return f"{docs_url}?page={path}" + (f"#{fragment}" if fragment else "")
        return links.repo_page(repo.owner, repo.name, "blob", ref, path) + (
            f"#{fragment}" if fragment else ""
        )

    def image(url: str) -> str:
        return links.repo_page(repo.owner, repo.name, "raw", ref, markdown.resolve(folder, url))

    return link, image


def service_docs(
    repo: repo_browser.HostedRepo, ref: str, docs_url: str, page: str | None
) -> dict[str, Any]:
    """The page list and one rendered page (``page``, else the first: index or README)."""
    ref = ref or repo_browser.default_branch(repo) or ""
    if not ref:
        return {"pages": [], "current": None, "readme": None, "ref": ref}
    paths = repo_browser.markdown_files(repo, ref, DOCS_FOLDER)[:MAX_PAGES]
    pages = [{"path": p, "title": page_title(p)} for p in paths]
    known = set(paths)
    chosen = page if page in known else None
    if chosen is None and paths:
        index = [p for p in paths if posixpath.basename(p).lower() in ("index.md", "readme.md")]
        chosen = (index or paths)[0]
    current = _rendered(repo, ref, chosen, docs_url, known) if chosen else None
    readme = None
    if not paths:
        entry = repo_browser.readme(repo_browser.tree(repo, ref, ""))
        readme = _rendered(repo, ref, entry.path, docs_url, known) if entry else None
    return {"pages": pages, "current": current, "readme": readme, "ref": ref}


def _rendered(
    repo: repo_browser.HostedRepo, ref: str, path: str, docs_url: str, known: set[str]
) -> dict[str, Any] | None:
    try:
        blob = repo_browser.blob(repo, ref, path)
    except NotFoundError:
        return None
    text = blob.text or ""
    link, image = _renderer(repo, ref, posixpath.dirname(path), docs_url, known)
    html: Markup = markdown.render(text, link, image)
    return {
        "path": path,
        "title": markdown.title_of(text, page_title(path)),
        "html": html,
        "source": links.repo_page(repo.owner, repo.name, "blob", ref, path),
        "truncated": blob.truncated,
    }
