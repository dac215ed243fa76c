"""Where documents come from (sources.json): local folders, git repositories of
Markdown, PDF/HTML URLs and Confluence HTML export folders.

Each document becomes a SourceItem with a stable id (its `source`) and a loader, so
sharding and change detection work on ids before anything is read.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from ingestion.boilerplate import BoilerplateProfile
from ingestion.loaders import (
    HTML_SUFFIXES,
    MARKDOWN_SUFFIXES,
    LoadProblem,
    LoadResult,
    load_bytes,
    read_file,
)


@dataclass(frozen=True)
class RawDocument:
    data: bytes
    content_type: str = ""


@dataclass(frozen=True)
class SourceItem:
    """One document: `read` fetches its bytes, `site` groups the pages that share a
    template (one folder, one Confluence export, one web host), so repeated navigation
    can be learnt across them."""

    source: str
    source_type: str
    read: Callable[[], RawDocument]
    site: str
    max_bytes: int

    def load(
        self, boilerplate: BoilerplateProfile | None = None, raw: RawDocument | None = None
    ) -> LoadResult:
        raw = raw or self.read()
        return load_bytes(
            raw.data,
            self.source,
            content_type=raw.content_type,
            max_bytes=self.max_bytes,
            boilerplate=boilerplate,
        )

    @property
    def is_html(self) -> bool:
        suffix = Path(self.source.split("?", 1)[0]).suffix.lower()
        return suffix in HTML_SUFFIXES or (self.source_type == "url" and suffix == "")


@dataclass(frozen=True)
class SourceProblem:
    source: str
    message: str


@dataclass
class SourcesConfig:
    local_dirs: list[str]
    git_repos: list[dict[str, str]]
    urls: list[str]
    confluence_dirs: list[str]

    @classmethod
    def read(cls, path: Path) -> SourcesConfig:
        data = json.loads(path.read_text()) if path.exists() else {}
        return cls(
            local_dirs=list(data.get("local_dirs", [])),
            git_repos=list(data.get("git_repos", [])),
            urls=list(data.get("urls", [])),
            confluence_dirs=list(data.get("confluence_dirs", [])),
        )


def shard_of(source: str, shard_count: int) -> int:
    """Stable across processes (unlike hash()), so every Job pod agrees."""
    return int(hashlib.sha1(source.encode()).hexdigest()[:8], 16) % shard_count


def _files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def _file_item(path: Path, source: str, source_type: str, max_bytes: int, site: str) -> SourceItem:
    return SourceItem(
        source,
        source_type,
        lambda: RawDocument(read_file(path, max_bytes=max_bytes)),
        site,
        max_bytes,
    )


def _url_item(url: str, max_bytes: int, timeout_s: float) -> SourceItem:
    def read() -> RawDocument:
        try:
            with httpx.Client(follow_redirects=True, timeout=timeout_s) as http:
                response = http.get(url)
        except httpx.HTTPError as exc:
            raise LoadProblem(f"cannot fetch URL: {exc}") from exc
        if response.status_code >= 400:
            raise LoadProblem(f"fetching the URL answered HTTP {response.status_code}")
        content_type = response.headers.get("content-type", "").split(";")[0].strip()
        return RawDocument(response.content, content_type)

    return SourceItem(url, "url", read, f"url:{httpx.URL(url).host}", max_bytes)


def checkout_git(url: str, ref: str, cache_dir: Path) -> Path:
    """Shallow clone (or refresh) of one ref into the cache folder."""
    target = cache_dir / hashlib.sha1(f"{url}@{ref}".encode()).hexdigest()[:16]
    ref_args = ["--branch", ref] if ref else []
    if (target / ".git").exists():
        subprocess.run(
            ["git", "-C", str(target), "fetch", "--depth", "1", "origin", ref or "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        )
        subprocess.run(
            ["git", "-C", str(target), "reset", "--hard", "FETCH_HEAD"],
            check=True,
            capture_output=True,
            text=True,
        )
    else:
        cache_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "clone", "--depth", "1", *ref_args, url, str(target)],
            check=True,
            capture_output=True,
            text=True,
        )
    return target


def enumerate_sources(
    config: SourcesConfig,
    *,
    base_dir: Path,
    cache_dir: Path,
    max_bytes: int,
    url_timeout_s: float = 30.0,
) -> tuple[list[SourceItem], list[SourceProblem]]:
    items: list[SourceItem] = []
    problems: list[SourceProblem] = []

    for folder in config.local_dirs:
        root = (base_dir / folder).resolve()
        if not root.is_dir():
            problems.append(SourceProblem(folder, "folder does not exist"))
            continue
        for path in _files(root):
            source = (
                path.relative_to(base_dir).as_posix()
                if path.is_relative_to(base_dir)
                else str(path)
            )
            items.append(_file_item(path, source, "local", max_bytes, f"local:{folder}"))

    for repo in config.git_repos:
        url, ref, sub = repo.get("url", ""), repo.get("ref", ""), repo.get("path", "") or ""
        try:
            checkout = checkout_git(url, ref, cache_dir)
        except (subprocess.CalledProcessError, OSError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            problems.append(
                SourceProblem(
                    url, f"git clone of {ref or 'default branch'} failed: {detail.strip()}"
                )
            )
            continue
        root = checkout / sub.strip("/")
        if not root.is_dir():
            problems.append(SourceProblem(url, f"path {sub!r} does not exist in the repository"))
            continue
        # A repository holds code too: only its Markdown is a document source.
        for path in _files(root):
            if path.suffix.lower() in MARKDOWN_SUFFIXES - {".txt"}:
                source = f"{url}/{path.relative_to(checkout).as_posix()}"
                items.append(_file_item(path, source, "git", max_bytes, f"git:{url}"))

    for url in config.urls:
        items.append(_url_item(url, max_bytes, url_timeout_s))

    for folder in config.confluence_dirs:
        root = (base_dir / folder).resolve()
        if not root.is_dir():
            problems.append(SourceProblem(folder, "Confluence export folder does not exist"))
            continue
        # Exports carry attachments, images and CSS beside the pages: pages only.
        for path in _files(root):
            if path.suffix.lower() in HTML_SUFFIXES:
                source = f"confluence:{Path(folder).name}/{path.relative_to(root).as_posix()}"
                site = f"confluence:{folder}"
                items.append(_file_item(path, source, "confluence", max_bytes, site))

    return items, problems
