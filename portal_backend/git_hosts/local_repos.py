"""This portal's own git host: bare repositories under ``<data_dir>/repos``, and the
``file://`` URLs that name them. The one place those paths and URLs are built and read.

- clone URL: ``file://<data_dir>/repos/<owner>/<repo>.git``
- contents URL (publish:git's ``repoContentsUrl``, catalog:register's location):
  ``file://<bare>/blob/<ref>[/<path>]`` (``tree`` for ``blob`` is read too)
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from portal_backend.settings import Settings

_CONTENTS_URL = re.compile(
    r"^file://(?P<repo>/.+?\.git)/(?:blob|tree)/(?P<ref>[^/]+)/?(?P<path>.*)$"
)


class ForeignRepositoryError(ValueError):
    """A ``file://`` URL of a repository outside this portal's repositories folder."""


@dataclass(frozen=True)
class LocalTree:
    """A bare repository of this portal, a ref in it, and a path inside ("" = root)."""

    repo: Path
    ref: str
    path: str


def repos_root(settings: Settings) -> Path:
    return settings.data_dir / "repos"


def repo_path(settings: Settings, owner: str, repo: str) -> Path:
    return repos_root(settings) / owner / f"{repo}.git"


def clone_url(bare: Path) -> str:
    return f"file://{bare}"


def contents_url(bare: Path, branch: str) -> str:
    """Where a published branch's files are read (``git show``, ``git archive``)."""
    return f"{clone_url(bare)}/blob/{branch}"


def parse_contents_url(url: str, settings: Settings) -> LocalTree | None:
    """The tree a local contents URL names; None when ``url`` is not one. Raises
    ForeignRepositoryError for a repository this portal does not keep: a URL is input,
    and must not reach other git folders on the machine."""
    match = _CONTENTS_URL.match(url)
    if match is None:
        return None
    repo = Path(match["repo"]).resolve()
    if not repo.is_relative_to(repos_root(settings).resolve()):
        raise ForeignRepositoryError(f"cannot read {url}: not a repository of this portal")
    return LocalTree(repo, match["ref"], match["path"].strip("/"))


def archive_root(settings: Settings) -> Path:
    """Where archived repositories go: outside ``repos_root``, so their names are free."""
    return settings.data_dir / "repos-archive"


def archive_repo(settings: Settings, owner: str, repo: str, stamp: str) -> Path:
    """Move a repository aside (``repos-archive/<owner>/<repo>-<stamp>.git``), keeping its
    history, so a new service may take its name. Returns where it went."""
    source = repo_path(settings, owner, repo)
    target = archive_root(settings) / owner / f"{repo}-{stamp}.git"
    target.parent.mkdir(parents=True, exist_ok=True)
    source.rename(target)
    return target


def remove_repo(settings: Settings, owner: str, repo: str) -> Path:
    """Delete a repository and its history for good. Returns the path it had."""
    path = repo_path(settings, owner, repo)
    shutil.rmtree(path)
    return path
