"""Reading this portal's own repositories (bare, under ``<data_dir>/repos``) for the
repository browser and the Docs tab: branches, folders, files and history.

Read only, through ``git --git-dir`` on the bare repository; every name and ref that
comes from a URL is checked before it reaches git, and a repository outside the
portal's repositories folder is never opened.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from catalog.errors import NotFoundError
from portal_backend.git_hosts import local_repos
from portal_backend.settings import Settings

# Owner folders and repository names as publish:git and the team repositories write them.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")
# Branch or tag names; never an option (no leading '-') and never a range or a revision
# expression (no '..', '~', '^', ':').
_REF = re.compile(r"^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}$")
_CLONE_URL = re.compile(r"^file://(?P<repo>/.+?\.git)/?$")
README_NAMES = ("readme.md", "readme.markdown", "readme", "readme.txt", "readme.rst")
MARKDOWN_SUFFIXES = (".md", ".markdown")
MAX_SHOWN_BYTES = 512 * 1024


@dataclass(frozen=True)
class HostedRepo:
    owner: str
    name: str
    path: Path

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass(frozen=True)
class TreeEntry:
    name: str
    path: str
    is_dir: bool
    size: int | None


@dataclass(frozen=True)
class Blob:
    path: str
    size: int
    text: str | None  # None for a binary file
    truncated: bool


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    date: datetime
    subject: str

    @property
    def short(self) -> str:
        return self.sha[:10]


def _git(repo: HostedRepo, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(
        ["git", "--git-dir", str(repo.path), *args],
        capture_output=True,
        env=env,
        timeout=30,
        check=False,
    )


def hosted_repo(settings: Settings, owner: str, name: str) -> HostedRepo:
    """The portal's repository ``owner/name``; NotFoundError for anything else."""
    root = local_repos.repos_root(settings).resolve()
    if not (_NAME.match(owner) and _NAME.match(name)) or ".." in owner + name:
        raise NotFoundError(f"there is no repository {owner}/{name} on this portal")
    path = local_repos.repo_path(settings, owner, name).resolve()
    if not path.is_relative_to(root) or not (path / "HEAD").is_file():
        raise NotFoundError(f"there is no repository {owner}/{name} on this portal")
    return HostedRepo(owner, name, path)


def list_repos(settings: Settings) -> list[HostedRepo]:
    root = local_repos.repos_root(settings)
    found = []
    for bare in sorted(root.glob("*/*.git")) if root.is_dir() else []:
        owner, name = bare.parent.name, bare.name[: -len(".git")]
        if _NAME.match(owner) and _NAME.match(name) and (bare / "HEAD").is_file():
            found.append(HostedRepo(owner, name, bare.resolve()))
    return found


def repo_of_url(settings: Settings, url: str) -> tuple[HostedRepo, str, str] | None:
    """(repository, ref, path) a ``file://`` clone or contents URL of this portal names;
    None for any other URL (remote hosts, other folders, repositories since removed)."""
    ref, path = "", ""
    try:
        tree = local_repos.parse_contents_url(url, settings)
    except local_repos.ForeignRepositoryError:
        return None
    if tree is not None:
        bare, ref, path = tree.repo, tree.ref, tree.path
    else:
        match = _CLONE_URL.match(url)
        if match is None:
            return None
        bare = Path(match["repo"]).resolve()
    root = local_repos.repos_root(settings).resolve()
    if not bare.is_relative_to(root) or len(bare.relative_to(root).parts) != 2:
        return None
    try:
        repo = hosted_repo(settings, bare.parent.name, bare.name[: -len(".git")])
    except NotFoundError:
        return None
    return repo, ref, path


def check_ref(ref: str) -> str:
    if not _REF.match(ref):
        raise NotFoundError(f"there is no branch or tag {ref!r}")
    return ref


def check_path(path: str) -> str:
    """A path inside the repository ("" = the root), normalised; never leaves it."""
    parts = [p for p in PurePosixPath(path.strip("/")).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise NotFoundError(f"there is no file {path!r}")
    return "/".join(parts)


def default_branch(repo: HostedRepo) -> str | None:
    """The branch HEAD names, when it has commits (an empty repository has none)."""
    head = _git(repo, "symbolic-ref", "--short", "HEAD").stdout.decode().strip()
    if head and _git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{head}").returncode:
        return None
    return head or None


def branches(repo: HostedRepo) -> list[str]:
    out = _git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads").stdout
    return [line for line in out.decode().splitlines() if line]


def _object_type(repo: HostedRepo, ref: str, path: str) -> str | None:
    ref = check_ref(ref)
    spec = f"{ref}^{{tree}}" if not path else f"{ref}:{path}"
    result = _git(repo, "cat-file", "-t", spec)
    return result.stdout.decode().strip() if result.returncode == 0 else None


def is_dir(repo: HostedRepo, ref: str, path: str) -> bool:
    return _object_type(repo, ref, check_path(path)) == "tree"


def tree(repo: HostedRepo, ref: str, path: str = "") -> list[TreeEntry]:
    """The folder ``path`` at ``ref``: folders first, then files, by name."""
    path = check_path(path)
    if _object_type(repo, ref, path) != "tree":
        raise NotFoundError(f"there is no folder {path or '/'} at {ref} in {repo.slug}")
    spec = f"{ref}:{path}" if path else f"{ref}^{{tree}}"
    out = _git(repo, "ls-tree", "-z", "-l", spec).stdout.decode("utf-8", "replace")
    entries = []
    for record in filter(None, out.split("\0")):
        meta, _, name = record.partition("\t")
        _mode, kind, _sha, size = meta.split(maxsplit=3)
        entries.append(
            TreeEntry(
                name=name,
                path=f"{path}/{name}" if path else name,
                is_dir=kind == "tree",
                size=int(size) if size.strip().isdigit() else None,
            )
        )
    return sorted(entries, key=lambda e: (not e.is_dir, e.name.lower()))


def blob(repo: HostedRepo, ref: str, path: str, limit: int = MAX_SHOWN_BYTES) -> Blob:
    path = check_path(path)
    if not path or _object_type(repo, ref, path) != "blob":
        raise NotFoundError(f"there is no file {path} at {ref} in {repo.slug}")
    data = _git(repo, "cat-file", "blob", f"{ref}:{path}").stdout
    binary = b"\0" in data[:8000]
    text = None if binary else data[:limit].decode("utf-8", "replace")
    return Blob(path=path, size=len(data), text=text, truncated=len(data) > limit)


def raw(repo: HostedRepo, ref: str, path: str) -> bytes:
    path = check_path(path)
    if not path or _object_type(repo, ref, path) != "blob":
        raise NotFoundError(f"there is no file {path} at {ref} in {repo.slug}")
    return _git(repo, "cat-file", "blob", f"{ref}:{path}").stdout


def readme(entries: list[TreeEntry]) -> TreeEntry | None:
    by_name = {e.name.lower(): e for e in entries if not e.is_dir}
    return next((by_name[n] for n in README_NAMES if n in by_name), None)


def log(repo: HostedRepo, ref: str, limit: int = 50, path: str = "") -> list[Commit]:
    args = ["log", f"-n{limit}", "--format=%H%x1f%an%x1f%aI%x1f%s%x1e", check_ref(ref)]
    if path:
        args += ["--", check_path(path)]
    result = _git(repo, *args)
    if result.returncode != 0:
        raise NotFoundError(f"there is no branch or tag {ref!r} in {repo.slug}")
    commits = []
    for record in result.stdout.decode("utf-8", "replace").split("\x1e"):
        if not record.strip():
            continue
        sha, author, date, subject = record.strip("\n").split("\x1f", 3)
        commits.append(Commit(sha, author, datetime.fromisoformat(date), subject))
    return commits


def markdown_files(repo: HostedRepo, ref: str, folder: str) -> list[str]:
    """Every Markdown file under ``folder`` at ``ref`` (paths from the repository root)."""
    folder = check_path(folder)
    if _object_type(repo, ref, folder) != "tree":
        return []
    out = _git(repo, "ls-tree", "-r", "-z", "--name-only", check_ref(ref), "--", f"{folder}/")
    names = out.stdout.decode("utf-8", "replace").split("\0")
    return sorted(n for n in names if n.lower().endswith(MARKDOWN_SUFFIXES))
