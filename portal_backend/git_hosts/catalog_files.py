"""Files the portal itself writes into its own repositories (e.g. a team's
``catalog-info.yaml``): one commit per file, made without a work tree.

The commit is built with git's plumbing on a temporary index (blob, tree, commit) and
the branch moves with a compare-and-swap ``update-ref``, so two writers never lose each
other's commits and a reader never sees a half-written tree. ``undo`` moves the branch
back when what the commit was for failed afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from portal_backend.git_hosts import local_repos
from portal_backend.settings import Settings

BRANCH = "main"


class RepositoryWriteError(RuntimeError):
    pass


@dataclass(frozen=True)
class WrittenFile:
    bare: Path
    created_repo: bool
    previous: str | None  # the branch's commit before this one (None: it had none)
    commit: str
    contents_url: str  # file://<bare>/blob/main/<path>


def _git(
    bare: Path, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> str:
    result = subprocess.run(
        ["git", "--git-dir", str(bare), *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={
            **os.environ,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_COMMITTER_NAME": "rag-portal",
            "GIT_COMMITTER_EMAIL": "portal@rag-portal.local",
            **(env or {}),
        },
        check=False,
    )
    if result.returncode != 0:
        message = (result.stderr or result.stdout).decode("utf-8", "replace").strip()
        raise RepositoryWriteError(f"git {args[0]} failed: {message}")
    return result.stdout.decode().strip()


def _ensure_repo(bare: Path, description: str) -> bool:
    """Create the bare repository atomically; True when this call created it."""
    if bare.exists():
        return False
    bare.parent.mkdir(parents=True, exist_ok=True)
    staging = bare.parent / f".{bare.name}.{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["git", "init", "--bare", "--quiet", "-b", BRANCH, str(staging)], check=True, timeout=60
    )
    (staging / "description").write_text(description + "\n", encoding="utf-8")
    try:
        os.rename(staging, bare)
    except OSError:  # another writer created it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
        return False
    return True


def commit_file(
    settings: Settings,
    owner: str,
    repo: str,
    path: str,
    content: str,
    *,
    message: str,
    author: str,
    description: str = "",
) -> WrittenFile:
    """Commit ``content`` as ``path`` on ``main`` of the portal's repository owner/repo
    (created when missing). Raises RepositoryWriteError when the branch moved meanwhile."""
    bare = local_repos.repo_path(settings, owner, repo)
    created = _ensure_repo(bare, description)
    ref = f"refs/heads/{BRANCH}"
    try:
        previous: str | None = _git(bare, "rev-parse", "--verify", "--quiet", ref)
    except RepositoryWriteError:
        previous = None
    with tempfile.TemporaryDirectory(prefix="ragportal-index-") as scratch:
        index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        if previous:
            _git(bare, "read-tree", previous, env=index)
        blob = _git(bare, "hash-object", "-w", "--stdin", stdin=content.encode("utf-8"))
        _git(bare, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
        tree = _git(bare, "write-tree", env=index)
    parents = ["-p", previous] if previous else []
    name = author.rpartition("/")[2] or "rag-portal"
    commit = _git(
        bare,
        "commit-tree",
        tree,
        *parents,
        "-m",
        message,
        env={"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": f"{name}@users.rag-portal.local"},
    )
    # Compare-and-swap: refused if another commit landed since we read the branch.
    _git(bare, "update-ref", ref, commit, previous or "0" * 40)
    return WrittenFile(
        bare=bare,
        created_repo=created,
        previous=previous,
        commit=commit,
        contents_url=f"{local_repos.contents_url(bare, BRANCH)}/{path}",
    )


def undo(written: WrittenFile) -> None:
    """Take the commit back (the repository too, when the commit created it)."""
    if written.created_repo:
        shutil.rmtree(written.bare, ignore_errors=True)
        return
    ref = f"refs/heads/{BRANCH}"
    if written.previous:
        _git(written.bare, "update-ref", ref, written.previous, written.commit)
    else:
        _git(written.bare, "update-ref", "-d", ref, written.commit)
