"""publish:git: commit the workspace and push it as a new repository.

``repoUrl`` is Backstage's ``host?owner=o&repo=r``. Host ``local`` means a bare
repository under ``<data_dir>/repos/<owner>/<repo>.git``; other hosts come from
``settings.scaffolder_git_hosts`` (URL template with ``{owner}``, ``{repo}``, ``{token}``).
Every commit carries a ``Scaffolder-Task:`` trailer, which is how a re-run of the same
task recognises its own repository and commit instead of making a second one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from catalog.errors import ConflictError
from portal_backend.scaffolder.actions.base import (
    Action,
    ActionContext,
    ActionError,
    FieldError,
    register,
)
from portal_backend.scaffolder.actions.fs import inside
from portal_backend.scaffolder.expressions import ExpressionError, parse_repo_url
from portal_backend.scaffolder.redaction import Redactor
from portal_backend.settings import Settings

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
TRAILER = "Scaffolder-Task"


def local_repo_path(settings: Settings, owner: str, repo: str) -> Path:
    return settings.data_dir / "repos" / owner / f"{repo}.git"


def local_contents_url(bare: Path, branch: str) -> str:
    """``file://<bare>/blob/<branch>``: read by catalog:register with ``git show``."""
    return f"file://{bare}/blob/{branch}"


def _git(
    *args: str, cwd: Path | None = None, redactor: Redactor | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
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
        text = (result.stderr or result.stdout).strip()
        if redactor:
            text = redactor.redact(text)
        raise ActionError(f"git {args[0]} failed: {text}")
    return result


def _parse(repo_url: str) -> tuple[str, str, str]:
    try:
        parsed = parse_repo_url(repo_url)
    except ExpressionError as exc:
        raise ActionError(str(exc)) from exc
    owner = parsed.get("owner") or parsed.get("organization") or ""
    repo = parsed["repo"]
    for label, value in (("owner", owner), ("repo", repo)):
        if not NAME.match(value) or value.endswith(".git") or ".." in value:
            raise ActionError(f"repoUrl {label} {value!r} must be letters, digits, '.', '_' or '-'")
    return parsed["host"], owner, repo


def _task_of_commit(git_dir: Path, ref: str) -> str | None:
    result = _git("--git-dir", str(git_dir), "log", "-1", "--format=%B", ref, check=False)
    if result.returncode != 0:
        return None
    match = re.search(rf"^{TRAILER}: (\S+)$", result.stdout, re.MULTILINE)
    return match.group(1) if match else None


def _remote(settings: Settings, host: str, owner: str, repo: str) -> tuple[str, str, Redactor]:
    config = settings.scaffolder_git_hosts.get(host)
    if config is None:
        configured = ", ".join(["local", *settings.scaffolder_git_hosts]) or "local"
        raise ActionError(f"git host {host!r} is not configured (configured: {configured})")
    token = config.get("token", "")
    url = config["url"].format(owner=owner, repo=repo, token=token, host=host)
    contents = (
        config.get("contentsUrl", "https://{host}/{owner}/{repo}/blob/{branch}")
        .replace("{owner}", owner)
        .replace("{repo}", repo)
        .replace("{host}", host)
    )
    return url, contents, Redactor({"token": token})


@register
class PublishGit(Action):
    id = "publish:git"
    description = (
        "Creates a repository from the workspace: one commit by the requesting user, pushed "
        "to repoUrl (host?owner=o&repo=r; host 'local' = bare repos in the data folder)."
    )
    input_schema = {
        "type": "object",
        "required": ["repoUrl"],
        "properties": {
            "repoUrl": {"type": "string", "pattern": r"^[^?]+\?.*repo=.+"},
            "defaultBranch": {"type": "string", "pattern": r"^[A-Za-z0-9._/-]+$"},
            "description": {"type": "string"},
            "sourcePath": {"type": "string"},
            "gitCommitMessage": {"type": "string"},
            "gitAuthorName": {"type": "string"},
            "gitAuthorEmail": {"type": "string"},
        },
    }
    output_schema = {
        "type": "object",
        "properties": {
            "remoteUrl": {"type": "string"},
            "repoContentsUrl": {"type": "string"},
            "commitHash": {"type": "string"},
        },
    }

    def precheck(self, input: dict[str, Any], settings: Settings) -> list[FieldError]:
        try:
            host, owner, repo = _parse(str(input.get("repoUrl", "")))
        except ActionError as exc:
            return [FieldError("input.repoUrl", str(exc))]
        if host == "local":
            if local_repo_path(settings, owner, repo).exists():
                raise ConflictError(f"repository {owner}/{repo} already exists on host local")
            return []
        if host not in settings.scaffolder_git_hosts:
            return [FieldError("input.repoUrl", f"git host {host!r} is not configured")]
        url, _, redactor = _remote(settings, host, owner, repo)
        result = _git("ls-remote", "--heads", url, check=False)
        if result.returncode == 0 and result.stdout.strip():
            raise ConflictError(f"repository {owner}/{repo} on {host} already has branches")
        return []

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        host, owner, repo = _parse(input["repoUrl"])
        branch = input.get("defaultBranch") or "main"
        source = ctx.workspace.resolve()
        if input.get("sourcePath"):
            source = inside(ctx.workspace, input["sourcePath"])
        user = ctx.user_ref.rpartition("/")[2] or "scaffolder"
        author = input.get("gitAuthorName") or user
        email = input.get("gitAuthorEmail") or f"{user}@users.rag-portal.local"
        message = input.get("gitCommitMessage") or "Initial commit"
        message = f"{message}\n\n{TRAILER}: {ctx.task_id}\n"
        if ctx.dry_run:
            ctx.log(f"dry run: would publish {owner}/{repo} ({branch}) to {host}")
            return {
                "remoteUrl": f"dry-run://{host}/{owner}/{repo}",
                "repoContentsUrl": f"dry-run://{host}/{owner}/{repo}/blob/{branch}",
                "commitHash": "0" * 40,
            }
        if host == "local":
            bare = local_repo_path(ctx.settings, owner, repo)
            self._ensure_local_repo(ctx, bare, branch, input.get("description", ""))
            url, contents, redactor = str(bare), local_contents_url(bare, branch), Redactor({})
        else:
            url, contents, redactor = _remote(ctx.settings, host, owner, repo)
            contents = contents.replace("{branch}", branch)
        commit = self._push(ctx, url, branch, source, author, email, message, redactor)
        remote_url = f"file://{url}" if host == "local" else redactor.redact(url)
        ctx.log(f"published {owner}/{repo} ({branch}) at {commit[:12]}")
        return {"remoteUrl": remote_url, "repoContentsUrl": contents, "commitHash": commit}

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

    def _push(
        self,
        ctx: ActionContext,
        url: str,
        branch: str,
        source: Path,
        author: str,
        email: str,
        message: str,
        redactor: Redactor,
    ) -> str:
        with tempfile.TemporaryDirectory(prefix=".publish-", dir=ctx.workspace.parent) as tmp:
            git_dir = Path(tmp) / "git"
            _git("init", "--quiet", "--bare", "-b", branch, str(git_dir))
            fetched = _git(
                "--git-dir",
                str(git_dir),
                "fetch",
                "--quiet",
                url,
                f"refs/heads/{branch}:refs/remotes/origin/{branch}",
                check=False,
            )
            if fetched.returncode == 0:
                existing = f"refs/remotes/origin/{branch}"
                if _task_of_commit(git_dir, existing) == ctx.task_id:
                    commit = _git("--git-dir", str(git_dir), "rev-parse", existing).stdout.strip()
                    ctx.log("repository already published by this task; nothing to push")
                    return commit
                raise ConflictError(f"branch {branch} of the target repository already has commits")
            tree = ["--git-dir", str(git_dir), "--work-tree", str(source)]
            _git(*tree, "add", "--all", ".")
            env_author = [f"--author={author} <{email}>"]
            _git(*tree, "commit", "--quiet", "--no-verify", *env_author, "-m", message)
            commit = _git("--git-dir", str(git_dir), "rev-parse", "HEAD").stdout.strip()
            pushed = _git(
                "--git-dir",
                str(git_dir),
                "push",
                "--quiet",
                url,
                f"HEAD:refs/heads/{branch}",
                check=False,
            )
            if pushed.returncode != 0:
                # A concurrent run of the same task may have pushed first: accept its commit.
                _git(
                    "--git-dir",
                    str(git_dir),
                    "fetch",
                    "--quiet",
                    url,
                    f"+refs/heads/{branch}:refs/remotes/origin/{branch}",
                    check=False,
                )
                existing = f"refs/remotes/origin/{branch}"
                if _task_of_commit(git_dir, existing) == ctx.task_id:
                    return _git("--git-dir", str(git_dir), "rev-parse", existing).stdout.strip()
                raise ActionError(f"git push failed: {redactor.redact(pushed.stderr.strip())}")
            return commit
