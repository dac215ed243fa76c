"""publish:git, publish:github and publish:gitlab: commit the workspace, push it as a
new repository.

``repoUrl`` is Backstage's ``host?owner=o&repo=r``. Host ``local`` means a bare
repository under ``<data_dir>/repos/<owner>/<repo>.git``; other hosts come from
``settings.scaffolder_git_hosts`` (``portal_backend.git_hosts.hosts``): a ``github`` or
``gitlab`` host gets the repository created through its REST API first, a ``git`` host
is an existing empty repository at its ``url``. publish:git also takes a clone URL as
``repoUrl`` (``https://...``, ``ssh://...`` or ``git@host:path``) to push to any existing
remote. Credentials come from the secret store (``git-token:<host>``,
``git-ssh-key:<host>``), never from the template or its values.

Every commit carries a ``Scaffolder-Task:`` trailer, which is how a re-run of the same
task recognises its own repository and commit instead of making a second one. The
``repoContentsUrl`` each one answers with is one ``provisioning.repo_checkout`` reads back.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from catalog.errors import ConflictError
from portal_backend.git_hosts import local_repos
from portal_backend.git_hosts.access import (
    SCP_LIKE,
    Credentials,
    GitRemoteError,
    failure_hint,
    load_credentials,
    remote_host,
    run_git,
    safe_url,
)
from portal_backend.git_hosts.hosts import (
    GitHost,
    HostConfigError,
    configured_host,
    git_contents_url,
)
from portal_backend.git_hosts.rest import VISIBILITIES, GitHubApi, GitLabApi, HostApiError
from portal_backend.scaffolder import answers
from portal_backend.scaffolder.actions.base import (
    Action,
    ActionContext,
    ActionError,
    FieldError,
    register,
)
from portal_backend.scaffolder.actions.fs import inside
from portal_backend.scaffolder.expressions import ExpressionError, parse_repo_url
from portal_backend.settings import Settings

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
TRAILER = "Scaffolder-Task"
CLONE_URL = re.compile(r"^(https?|ssh)://")


def _git(
    *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """A git command that talks to no remote (local repositories only)."""
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_COMMITTER_NAME": "rag-portal",
        "GIT_COMMITTER_EMAIL": "scaffolder@rag-portal.local",
    }
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if check and result.returncode != 0:
        raise ActionError(f"git {args[0]} failed: {(result.stderr or result.stdout).strip()}")
    return result


def is_clone_url(repo_url: str) -> bool:
    return bool(CLONE_URL.match(repo_url) or ("://" not in repo_url and SCP_LIKE.match(repo_url)))


def _check_names(owner: str, repo: str, *, nested_owner: bool = False) -> None:
    owners = owner.split("/") if nested_owner else [owner]
    for label, value in [*(("owner", o) for o in owners), ("repo", repo)]:
        if not NAME.match(value) or value.endswith(".git") or ".." in value:
            raise ActionError(f"repoUrl {label} {value!r} must be letters, digits, '.', '_' or '-'")


def _parse(repo_url: str, *, nested_owner: bool = False) -> tuple[str, str, str]:
    try:
        parsed = parse_repo_url(repo_url)
    except ExpressionError as exc:
        raise ActionError(str(exc)) from exc
    owner = parsed.get("owner") or parsed.get("organization") or ""
    repo = parsed["repo"]
    _check_names(owner, repo, nested_owner=nested_owner)
    return parsed["host"], owner, repo


def _task_of_commit(git_dir: Path, ref: str) -> str | None:
    result = _git("--git-dir", str(git_dir), "log", "-1", "--format=%B", ref, check=False)
    if result.returncode != 0:
        return None
    match = re.search(rf"^{TRAILER}: (\S+)$", result.stdout, re.MULTILINE)
    return match.group(1) if match else None


def _credentials(settings: Settings, host: str) -> Credentials:
    try:
        return load_credentials(settings, host)
    except RuntimeError as exc:  # the secret store's key changed
        raise ActionError(str(exc)) from exc


@dataclass
class Commit:
    """What to commit and how: the parts every publish action shares."""

    source: Path
    branch: str
    author: str
    email: str
    message: str


def _commit_of(ctx: ActionContext, input: dict[str, Any]) -> Commit:
    source = ctx.workspace.resolve()
    if input.get("sourcePath"):
        source = inside(ctx.workspace, input["sourcePath"])
    user = ctx.user_ref.rpartition("/")[2] or "scaffolder"
    message = input.get("gitCommitMessage") or "Initial commit"
    return Commit(
        source=source,
        branch=input.get("defaultBranch") or "main",
        author=input.get("gitAuthorName") or user,
        email=input.get("gitAuthorEmail") or f"{user}@users.rag-portal.local",
        message=f"{message}\n\n{TRAILER}: {ctx.task_id}\n",
    )


def _dry_run(ctx: ActionContext, host: str, where: str, branch: str) -> dict[str, Any]:
    ctx.log(f"dry run: would publish {where} ({branch}) to {host}")
    return {
        "remoteUrl": f"dry-run://{host}/{where}",
        "repoContentsUrl": f"dry-run://{host}/{where}/blob/{branch}",
        "commitHash": "0" * 40,
    }


def push_workspace(ctx: ActionContext, url: str, commit: Commit, credentials: Credentials) -> str:
    """One commit of ``commit.source`` pushed to ``url``'s branch; the commit's hash. A
    branch that already holds this task's commit is left as it is (a re-run)."""

    def remote(*args: str) -> subprocess.CompletedProcess[str]:
        try:
            return run_git(*args, url=url, credentials=credentials)
        except GitRemoteError as exc:
            raise ActionError(str(exc)) from exc

    branch = commit.branch
    with tempfile.TemporaryDirectory(prefix=".publish-", dir=ctx.workspace.parent) as tmp:
        git_dir = Path(tmp) / "git"
        _git("init", "--quiet", "--bare", "-b", branch, str(git_dir))
        tracking = f"refs/remotes/origin/{branch}"
        fetched = remote(
            "--git-dir", str(git_dir), "fetch", "--quiet", url, f"refs/heads/{branch}:{tracking}"
        )
        if fetched.returncode == 0:
            if _task_of_commit(git_dir, tracking) == ctx.task_id:
                ctx.log("repository already published by this task; nothing to push")
                return _git("--git-dir", str(git_dir), "rev-parse", tracking).stdout.strip()
            raise ConflictError(f"branch {branch} of the target repository already has commits")
        if "couldn't find remote ref" not in fetched.stderr:
            # Not "empty repository": unreachable, or the credentials were refused.
            hint = failure_hint(fetched.stderr, url, credentials)
            raise ActionError(f"cannot reach {safe_url(url)}: {hint}")
        if ctx.answers is not None:
            # What the repository was generated from, for template upgrades.
            answers_file = commit.source / answers.PATH
            answers_file.parent.mkdir(parents=True, exist_ok=True)
            answers_file.write_text(ctx.answers.to_yaml(), encoding="utf-8")
        tree = ["--git-dir", str(git_dir), "--work-tree", str(commit.source)]
        _git(*tree, "add", "--all", ".")
        author = f"--author={commit.author} <{commit.email}>"
        _git(*tree, "commit", "--quiet", "--no-verify", author, "-m", commit.message)
        sha = _git("--git-dir", str(git_dir), "rev-parse", "HEAD").stdout.strip()
        pushed = remote(
            "--git-dir", str(git_dir), "push", "--quiet", url, f"HEAD:refs/heads/{branch}"
        )
        if pushed.returncode != 0:
            # A concurrent run of the same task may have pushed first: accept its commit.
            remote(
                "--git-dir",
                str(git_dir),
                "fetch",
                "--quiet",
                url,
                f"+refs/heads/{branch}:{tracking}",
            )
            if _task_of_commit(git_dir, tracking) == ctx.task_id:
                return _git("--git-dir", str(git_dir), "rev-parse", tracking).stdout.strip()
            hint = failure_hint(pushed.stderr, url, credentials)
            raise ActionError(f"git push to {safe_url(url)} failed: {hint}")
        return sha


PUBLISH_INPUT: dict[str, Any] = {
    "defaultBranch": {"type": "string", "pattern": r"^[A-Za-z0-9._-]+$"},
    "description": {"type": "string"},
    "sourcePath": {"type": "string"},
    "gitCommitMessage": {"type": "string"},
    "gitAuthorName": {"type": "string"},
    "gitAuthorEmail": {"type": "string"},
}
PUBLISH_OUTPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "remoteUrl": {"type": "string"},
        "repoContentsUrl": {"type": "string"},
        "commitHash": {"type": "string"},
    },
}
HOSTED_INPUT: dict[str, Any] = {
    **PUBLISH_INPUT,
    "repoVisibility": {"type": "string", "enum": list(VISIBILITIES), "default": "private"},
}


class _HostedPublish(Action):
    """Create the repository through the host's REST API, then push to it."""

    kind = ""
    nested_owner = False
    output_schema = PUBLISH_OUTPUT

    def _host(self, settings: Settings, host_name: str) -> GitHost:
        try:
            host = configured_host(settings, host_name)
        except HostConfigError as exc:
            raise ActionError(str(exc)) from exc
        if host.kind != self.kind:
            raise ActionError(f"git host {host_name!r} is a {host.kind} host, not {self.kind}")
        return host

    def _api(self, settings: Settings, host: GitHost) -> GitHubApi | GitLabApi:
        token = _credentials(settings, host.name).token
        api = GitHubApi if self.kind == "github" else GitLabApi
        try:
            return api(host.name, host.api_url, token)
        except HostApiError as exc:
            raise ActionError(str(exc)) from exc

    def _existing(self, api: Any, owner: str, repo: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def _create(self, api: Any, owner: str, repo: str, input: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _urls(self, created: dict[str, Any], branch: str) -> tuple[str, str, str]:
        """(clone URL, web URL, contents URL) from the host's answer."""
        raise NotImplementedError

    def precheck(self, input: dict[str, Any], settings: Settings) -> list[FieldError]:
        try:
            host_name, owner, repo = _parse(
                str(input.get("repoUrl", "")), nested_owner=self.nested_owner
            )
            host = self._host(settings, host_name)
            with self._api(settings, host) as api:
                existing = self._existing(api, owner, repo)
        except (ActionError, HostApiError) as exc:
            return [FieldError("input.repoUrl", str(exc))]
        if existing is not None:
            raise ConflictError(f"repository {owner}/{repo} already exists on {host_name}")
        return []

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        host_name, owner, repo = _parse(input["repoUrl"], nested_owner=self.nested_owner)
        commit = _commit_of(ctx, input)
        if ctx.dry_run:
            return _dry_run(ctx, host_name, f"{owner}/{repo}", commit.branch)
        host = self._host(ctx.settings, host_name)
        try:
            with self._api(ctx.settings, host) as api:
                created = self._create(api, owner, repo, input)
        except HostApiError as exc:
            raise ActionError(str(exc)) from exc
        clone_url, web_url, contents_url = self._urls(created, commit.branch)
        ctx.log(f"repository {owner}/{repo} ready on {host_name}: {web_url}")
        sha = push_workspace(ctx, clone_url, commit, _credentials(ctx.settings, host.name))
        ctx.log(f"published {owner}/{repo} ({commit.branch}) at {sha[:12]}")
        return {"remoteUrl": web_url, "repoContentsUrl": contents_url, "commitHash": sha}


@register
class PublishGitHub(_HostedPublish):
    id = "publish:github"
    kind = "github"
    description = (
        "Creates a GitHub repository (repoUrl github.com?owner=o&repo=r; an organization, or "
        "the token's own user) through the REST API with the token git-token:<host> of the "
        "secret store, and pushes the workspace as its first commit."
    )
    input_schema = {
        "type": "object",
        "required": ["repoUrl"],
        "properties": {
            "repoUrl": {"type": "string", "pattern": r"^[^?]+\?.*repo=.+"},
            **HOSTED_INPUT,
        },
    }

    def _existing(self, api: Any, owner: str, repo: str) -> dict[str, Any] | None:
        github: GitHubApi = api  # _api made this kind's client
        return github.get_repo(owner, repo)

    def _create(self, api: Any, owner: str, repo: str, input: dict[str, Any]) -> dict[str, Any]:
        github: GitHubApi = api
        return github.create_repo(
            owner,
            repo,
            description=input.get("description", ""),
            visibility=input.get("repoVisibility") or "private",
        )

    def _urls(self, created: dict[str, Any], branch: str) -> tuple[str, str, str]:
        web = str(created["html_url"]).rstrip("/")
        return str(created["clone_url"]), web, f"{web}/blob/{branch}"


@register
class PublishGitLab(_HostedPublish):
    id = "publish:gitlab"
    kind = "gitlab"
    nested_owner = True
    description = (
        "Creates a GitLab project (repoUrl gitlab.com?owner=group/subgroup&repo=r) through "
        "the REST API with the token git-token:<host> of the secret store, and pushes the "
        "workspace as its first commit."
    )
    input_schema = {
        "type": "object",
        "required": ["repoUrl"],
        "properties": {
            "repoUrl": {"type": "string", "pattern": r"^[^?]+\?.*repo=.+"},
            **HOSTED_INPUT,
        },
    }

    def _existing(self, api: Any, owner: str, repo: str) -> dict[str, Any] | None:
        gitlab: GitLabApi = api  # _api made this kind's client
        return gitlab.get_project(f"{owner}/{repo}")

    def _create(self, api: Any, owner: str, repo: str, input: dict[str, Any]) -> dict[str, Any]:
        gitlab: GitLabApi = api
        return gitlab.create_project(
            owner,
            repo,
            description=input.get("description", ""),
            visibility=input.get("repoVisibility") or "private",
        )

    def _urls(self, created: dict[str, Any], branch: str) -> tuple[str, str, str]:
        web = str(created["web_url"]).rstrip("/")
        return str(created["http_url_to_repo"]), web, f"{web}/-/blob/{branch}"


@register
class PublishGit(Action):
    id = "publish:git"
    description = (
        "Creates a repository from the workspace: one commit by the requesting user, pushed "
        "to repoUrl: host?owner=o&repo=r (host 'local' = bare repos in the data folder; a "
        "configured github/gitlab host gets the repository created through its API), or the "
        "clone URL of an existing empty repository (https://, ssh://, git@host:path)."
    )
    input_schema = {
        "type": "object",
        "required": ["repoUrl"],
        "properties": {
            "repoUrl": {
                "type": "string",
                "anyOf": [
                    {"pattern": r"^[^?]+\?.*repo=.+"},
                    {"pattern": r"^(https?|ssh)://"},
                    {"pattern": r"^[\w.-]+@[\w.-]+:"},
                ],
            },
            **HOSTED_INPUT,
        },
    }
    output_schema = PUBLISH_OUTPUT

    @staticmethod
    def _hosted(settings: Settings, repo_url: str) -> _HostedPublish | None:
        """publish:github / publish:gitlab when repoUrl names such a configured host."""
        if is_clone_url(repo_url):
            return None
        host_name = repo_url.partition("?")[0]
        if host_name == "local" or host_name not in settings.scaffolder_git_hosts:
            return None
        try:
            kind = configured_host(settings, host_name).kind
        except HostConfigError:
            return None
        hosted = {"github": PublishGitHub, "gitlab": PublishGitLab}.get(kind)
        return hosted() if hosted else None

    def _remote(self, settings: Settings, repo_url: str) -> tuple[str, str]:
        """(clone URL, credentials host) of a plain git remote."""
        if is_clone_url(repo_url):
            host = remote_host(repo_url)
            if not host:
                raise ActionError(f"repoUrl {safe_url(repo_url)!r} names no host")
            if "://" in repo_url and urlsplit(repo_url).password is not None:
                raise ActionError(
                    "repoUrl must not carry a password or token: store it with "
                    f"ragportal secrets set git-token:{host}"
                )
            return repo_url, host
        host_name, owner, repo = _parse(repo_url)
        try:
            configured = configured_host(settings, host_name)
        except HostConfigError as exc:
            raise ActionError(str(exc)) from exc
        return configured.clone_url(owner, repo), configured.name

    def precheck(self, input: dict[str, Any], settings: Settings) -> list[FieldError]:
        repo_url = str(input.get("repoUrl", ""))
        hosted = self._hosted(settings, repo_url)
        if hosted is not None:
            return hosted.precheck(input, settings)
        try:
            if not is_clone_url(repo_url):
                host, owner, repo = _parse(repo_url)
                if host == "local":
                    if local_repos.repo_path(settings, owner, repo).exists():
                        raise ConflictError(
                            f"repository {owner}/{repo} already exists on host local"
                        )
                    return []
            url, host = self._remote(settings, repo_url)
            credentials = _credentials(settings, host)
            listed = run_git("ls-remote", "--heads", url, url=url, credentials=credentials)
        except (ActionError, GitRemoteError) as exc:
            return [FieldError("input.repoUrl", str(exc))]
        if listed.returncode != 0:
            hint = failure_hint(listed.stderr, url, credentials)
            return [FieldError("input.repoUrl", f"cannot reach {safe_url(url)}: {hint}")]
        if listed.stdout.strip():
            raise ConflictError(f"repository {safe_url(url)} already has branches")
        return []

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        repo_url = str(input["repoUrl"])
        hosted = self._hosted(ctx.settings, repo_url)
        if hosted is not None:
            return hosted.run(ctx, input)
        commit = _commit_of(ctx, input)
        if not is_clone_url(repo_url):
            host, owner, repo = _parse(repo_url)
            if host == "local":
                if ctx.dry_run:
                    return _dry_run(ctx, host, f"{owner}/{repo}", commit.branch)
                bare = local_repos.repo_path(ctx.settings, owner, repo)
                self._ensure_local_repo(ctx, bare, commit.branch, input.get("description", ""))
                sha = push_workspace(ctx, str(bare), commit, Credentials())
                ctx.log(f"published {owner}/{repo} ({commit.branch}) at {sha[:12]}")
                return {
                    "remoteUrl": local_repos.clone_url(bare),
                    "repoContentsUrl": local_repos.contents_url(bare, commit.branch),
                    "commitHash": sha,
                }
        url, host = self._remote(ctx.settings, repo_url)
        if ctx.dry_run:
            return _dry_run(ctx, host, safe_url(url), commit.branch)
        sha = push_workspace(ctx, url, commit, _credentials(ctx.settings, host))
        ctx.log(f"published {safe_url(url)} ({commit.branch}) at {sha[:12]}")
        return {
            "remoteUrl": safe_url(url),
            "repoContentsUrl": git_contents_url(safe_url(url), commit.branch),
            "commitHash": sha,
        }

    def _ensure_local_repo(
        self, ctx: ActionContext, bare: Path, branch: str, description: str
    ) -> None:
        """Create the bare repository atomically (rename), owned by this task."""
        if not bare.exists():
            bare.parent.mkdir(parents=True, exist_ok=True)
            staging = bare.parent / f".{bare.name}.{uuid.uuid4().hex[:8]}"
            _git("init", "--bare", "--quiet", "-b", branch, str(staging))
            _git("--git-dir", str(staging), "config", "ragportal.task", ctx.task_id)
            (staging / "description").write_text(description + "\n", encoding="utf-8")
            try:
                os.rename(staging, bare)  # fails if it appeared meanwhile
                ctx.log(f"created repository {bare.parent.name}/{bare.stem}")
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
        owner_task = _git(
            "--git-dir", str(bare), "config", "--get", "ragportal.task", check=False
        ).stdout.strip()
        if owner_task != ctx.task_id:
            raise ConflictError(
                f"repository {bare.parent.name}/{bare.stem} already exists "
                "(created by another task)"
            )
