"""Reading a published repository back: the tree a provisioner deploys from.

``publish:*`` actions answer with a ``repoContentsUrl`` (where the repository's files can
be read at the published branch). Provisioning, to a cluster or to the local runtime,
reads the repository from there rather than from the task's workspace, so a step that
runs on another worker, or a re-provision weeks later, deploys what was published.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from portal_backend.settings import Settings

LOCAL_TREE = re.compile(r"^file://(?P<repo>/.+?\.git)/(?:blob|tree)/(?P<ref>[^/]+)/?(?P<path>.*)$")


class CheckoutError(Exception):
    pass


@dataclass(frozen=True)
class PublishedTree:
    """A repository, a ref in it, and a folder inside it ("" = the root)."""

    repo: str
    ref: str
    path: str


def parse_contents_url(url: str, settings: Settings) -> PublishedTree:
    match = LOCAL_TREE.match(url)
    if not match:
        raise CheckoutError(
            f"cannot read {url}: not a repository this portal published "
            "(file://<repo>.git/blob/<ref>)"
        )
    repo = Path(match["repo"]).resolve()
    if not repo.is_relative_to((settings.data_dir / "repos").resolve()):
        raise CheckoutError(f"cannot read {url}: not a repository of this portal")
    return PublishedTree(str(repo), match["ref"], match["path"].strip("/"))


def export_tree(url: str, dest: Path, settings: Settings, member: str = "") -> Path:
    """Writes the files of ``url`` (or only its ``member`` folder) under ``dest``; returns
    the folder that corresponds to ``url``'s own path (plus ``member``)."""
    tree = parse_contents_url(url, settings)
    inside = "/".join(p for p in (tree.path, member.strip("/")) if p)
    command = ["git", "--git-dir", tree.repo, "archive", "--format=tar", tree.ref]
    command += [inside] if inside else []
    result = subprocess.run(command, capture_output=True, timeout=120)
    if result.returncode != 0:
        what = f"{inside}/ " if inside else ""
        raise CheckoutError(f"cannot read {what}from {url}: {result.stderr.decode().strip()}")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
        archive.extractall(dest, filter="data")
    return dest / inside if inside else dest


def head_commit(url: str, settings: Settings) -> str:
    """The commit ``url``'s ref points at now (what a deployment records)."""
    tree = parse_contents_url(url, settings)
    result = subprocess.run(
        ["git", "--git-dir", tree.repo, "rev-parse", "--verify", f"{tree.ref}^{{commit}}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if result.returncode != 0:
        raise CheckoutError(f"cannot resolve {tree.ref} in {url}: {result.stderr.strip()}")
    return result.stdout.strip()
