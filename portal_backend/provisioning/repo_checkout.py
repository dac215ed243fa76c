"""Reading a published repository back: the tree a provisioner deploys from.

``publish:*`` actions answer with a ``repoContentsUrl`` (where the repository's files can
be read at the published branch). Provisioning, to a cluster or to the local runtime,
reads the repository from there rather than from the task's workspace, so a step that
runs on another worker, or a re-provision weeks later, deploys what was published.

Every contents URL a publish action hands out is understood here:

- ``file://<data_dir>/repos/<owner>/<repo>.git/blob/<ref>[/<path>]``: this portal's bare
  repositories (publish:git to host ``local``);
- ``<webUrl>/<owner>/<repo>/blob/<ref>[/<path>]`` of a configured ``github`` host;
- ``<webUrl>/<namespace>/<repo>/-/blob/<ref>[/<path>]`` of a configured ``gitlab`` host;
- ``git+<clone url>#<ref>[/<path>]``: any remote over HTTPS or SSH (publish:git to an
  existing repository).

Remotes are fetched (one commit, no history) with the credentials of the secret store
(``portal_backend.git_hosts.access``); no token reaches a log, an output or an error.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from portal_backend.git_hosts import local_repos
from portal_backend.git_hosts.access import (
    Credentials,
    GitRemoteError,
    failure_hint,
    load_credentials,
    remote_host,
    run_git,
)
from portal_backend.git_hosts.hosts import hosts_of_kind
from portal_backend.settings import Settings

GIT_TREE = re.compile(r"^git\+(?P<repo>[^#]+)#(?P<ref>[^/]+)/?(?P<path>.*)$")
GITHUB_TREE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/(?:blob|tree)/(?P<ref>[^/]+)/?(?P<path>.*)$")
GITLAB_TREE = re.compile(r"^/(?P<repo>.+?)/-/(?:blob|tree)/(?P<ref>[^/]+)/?(?P<path>.*)$")


class CheckoutError(Exception):
    pass


@dataclass(frozen=True)
class PublishedTree:
    """A repository, a ref in it, and a folder inside it ("" = the root). ``repo`` is a
    bare repository's path (local) or a clone URL (remote); ``host`` names the remote's
    credentials ("" for local)."""

    repo: str
    ref: str
    path: str
    host: str = ""

    @property
    def local(self) -> bool:
        return not self.host and self.repo.startswith("/")


def _web_tree(url: str, settings: Settings) -> PublishedTree | None:
    for kind, pattern in (("github", GITHUB_TREE), ("gitlab", GITLAB_TREE)):
        for host in hosts_of_kind(settings, kind):
            if not url.startswith(host.web_url + "/"):
                continue
            match = pattern.match(urlsplit(url).path.removeprefix(urlsplit(host.web_url).path))
            if match:
                return PublishedTree(
                    f"{host.web_url}/{match['repo']}.git",
                    match["ref"],
                    match["path"].strip("/"),
                    host.name,
                )
    return None


def parse_contents_url(url: str, settings: Settings) -> PublishedTree:
    try:
        local = local_repos.parse_contents_url(url, settings)
    except local_repos.ForeignRepositoryError as exc:
        raise CheckoutError(str(exc)) from exc
    if local is not None:
        return PublishedTree(str(local.repo), local.ref, local.path)
    match = GIT_TREE.match(url)
    if match:
        host = remote_host(match["repo"])
        if not host:
            raise CheckoutError(
                f"cannot read {url}: git+ URLs name a remote over HTTPS or SSH "
                "(git+https://host/owner/repo.git#<ref>)"
            )
        return PublishedTree(match["repo"], match["ref"], match["path"].strip("/"), host)
    tree = _web_tree(url, settings)
    if tree is not None:
        return tree
    raise CheckoutError(
        f"cannot read {url}: not a repository this portal published (file://<repo>.git/blob/"
        "<ref>, git+<clone url>#<ref>, or a blob URL of a configured GitHub/GitLab host)"
    )


def _credentials(tree: PublishedTree, settings: Settings) -> Credentials:
    try:
        return load_credentials(settings, tree.host)
    except RuntimeError as exc:  # the secret store's key changed
        raise CheckoutError(str(exc)) from exc


def _fetch(tree: PublishedTree, settings: Settings, git_dir: Path) -> Credentials:
    """Fetch ``tree.ref`` of a remote into the bare ``git_dir`` as FETCH_HEAD."""
    credentials = _credentials(tree, settings)
    subprocess.run(["git", "init", "--quiet", "--bare", str(git_dir)], check=True)
    try:
        fetched = run_git(
            "--git-dir",
            str(git_dir),
            "fetch",
            "--quiet",
            "--depth",
            "1",
            tree.repo,
            tree.ref,
            url=tree.repo,
            credentials=credentials,
        )
    except GitRemoteError as exc:
        raise CheckoutError(str(exc)) from exc
    if fetched.returncode != 0:
        hint = failure_hint(fetched.stderr, tree.repo, credentials)
        raise CheckoutError(f"cannot fetch {tree.ref} from {tree.repo}: {hint}")
    return credentials


def _archive(git_dir: str, ref: str, inside: str) -> subprocess.CompletedProcess[bytes]:
    command = ["git", "--git-dir", git_dir, "archive", "--format=tar", ref]
    return subprocess.run(command + ([inside] if inside else []), capture_output=True, timeout=120)


def export_tree(url: str, dest: Path, settings: Settings, member: str = "") -> Path:
    """Writes the files of ``url`` (or only its ``member`` folder) under ``dest``; returns
    the folder that corresponds to ``url``'s own path (plus ``member``)."""
    tree = parse_contents_url(url, settings)
    inside = "/".join(p for p in (tree.path, member.strip("/")) if p)
    if tree.local:
        result = _archive(tree.repo, tree.ref, inside)
    else:
        with tempfile.TemporaryDirectory(prefix="ragportal-checkout-") as scratch:
            git_dir = Path(scratch) / "repo.git"
            _fetch(tree, settings, git_dir)
            result = _archive(str(git_dir), "FETCH_HEAD", inside)
    if result.returncode != 0:
        what = f"{inside}/ " if inside else ""
        raise CheckoutError(f"cannot read {what}from {url}: {result.stderr.decode().strip()}")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
        archive.extractall(dest, filter="data")
    return dest / inside if inside else dest


def read_text(url: str, settings: Settings) -> str:
    """The content of the file ``url`` names (e.g. ``<contents url>/catalog-info.yaml``)."""
    tree = parse_contents_url(url, settings)
    if not tree.path:
        raise CheckoutError(f"cannot read {url}: it names a folder, not a file")
    if tree.local:
        command = ["git", "--git-dir", tree.repo, "show", f"{tree.ref}:{tree.path}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    else:
        with tempfile.TemporaryDirectory(prefix="ragportal-checkout-") as scratch:
            git_dir = Path(scratch) / "repo.git"
            _fetch(tree, settings, git_dir)
            command = ["git", "--git-dir", str(git_dir), "show", f"FETCH_HEAD:{tree.path}"]
            result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise CheckoutError(f"cannot read {url}: {result.stderr.strip()}")
    return result.stdout


def head_commit(url: str, settings: Settings) -> str:
    """The commit ``url``'s ref points at now (what a deployment records)."""
    tree = parse_contents_url(url, settings)
    if tree.local:
        result = subprocess.run(
            ["git", "--git-dir", tree.repo, "rev-parse", "--verify", f"{tree.ref}^{{commit}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise CheckoutError(f"cannot resolve {tree.ref} in {url}: {result.stderr.strip()}")
        return result.stdout.strip()
    credentials = _credentials(tree, settings)
    try:
        listed = run_git(
            "ls-remote", tree.repo, tree.ref, url=tree.repo, credentials=credentials, timeout=60
        )
    except GitRemoteError as exc:
        raise CheckoutError(str(exc)) from exc
    if listed.returncode != 0:
        hint = failure_hint(listed.stderr, tree.repo, credentials)
        raise CheckoutError(f"cannot resolve {tree.ref} in {tree.repo}: {hint}")
    # ls-remote lines are "<sha>\t<ref>".
    refs: dict[str, str] = {
        name: sha
        for sha, name in (
            line.split("\t", 1) for line in listed.stdout.splitlines() if "\t" in line
        )
    }
    for name in (f"refs/heads/{tree.ref}", f"refs/tags/{tree.ref}^{{}}", f"refs/tags/{tree.ref}"):
        if name in refs:
            return refs[name]
    if re.fullmatch(r"[0-9a-f]{40}", tree.ref):
        return tree.ref
    raise CheckoutError(f"cannot resolve {tree.ref} in {tree.repo}: no such branch or tag")
