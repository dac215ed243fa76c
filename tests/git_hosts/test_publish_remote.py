"""Publishing to remotes and reading back from them: a real git smart-HTTP server with
basic auth, tokens from the portal's secret store, the GitHub and GitLab REST calls
checked against the hosts' published descriptions. The same repoContentsUrl each
publish action answers with is what provisioning reads (repo_checkout.export_tree)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from catalog.errors import ConflictError
from portal_backend.provisioning.repo_checkout import (
    CheckoutError,
    export_tree,
    head_commit,
    read_text,
)
from portal_backend.scaffolder.actions import load_actions
from portal_backend.scaffolder.actions.base import ActionContext, ActionError, get_action
from portal_backend.settings import Settings
from tests.git_hosts.conftest import TOKEN, USER, store_secret
from tests.git_hosts.fakes import FakeGitHub, FakeGitLab
from tests.git_hosts.server import GitHttpServer

load_actions()
BASIC = base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()  # the header git sends


def _workspace(root: Path) -> Path:
    workspace = root / "workspaces" / "task-1"
    (workspace / "deploy" / "k8s").mkdir(parents=True)
    (workspace / "deploy" / "k8s" / "kustomization.yaml").write_text("resources: []\n")
    (workspace / "catalog-info.yaml").write_text("kind: Component\nmetadata: {name: svc}\n")
    (workspace / "README.md").write_text("# svc\n")
    return workspace


def _ctx(settings: Settings, session_factory, root: Path, logs: list[str]) -> ActionContext:  # type: ignore[no-untyped-def]
    return ActionContext(
        task_id="task-1",
        step_id="publish",
        workspace=_workspace(root),
        settings=settings,
        session_factory=session_factory,
        user_ref="user:default/alice",
        log=logs.append,
    )


def _no_secret_in(*texts: Any) -> None:
    for text in texts:
        assert TOKEN not in str(text) and BASIC not in str(text), text


def test_publish_git_to_an_existing_https_remote_and_read_it_back(
    settings: Settings, session_factory, tmp_path: Path, git_server: GitHttpServer
) -> None:  # type: ignore[no-untyped-def]
    bare = git_server.create_bare("team/svc.git")
    url = f"{git_server.url}/team/svc.git"
    store_secret(settings, session_factory, f"git-token:{git_server.netloc}", TOKEN)
    local = settings.model_copy(
        update={
            "scaffolder_git_hosts": {
                git_server.netloc: {"type": "git", "url": url, "username": "portal-bot"}
            }
        }
    )
    publish = get_action("publish:git")
    assert publish is not None
    assert publish.precheck({"repoUrl": url}, local) == []
    logs: list[str] = []
    ctx = _ctx(local, session_factory, tmp_path, logs)
    out = publish.run(ctx, {"repoUrl": url})
    assert out["repoContentsUrl"] == f"git+{url}#main"
    assert out["remoteUrl"] == url
    pushed = (bare / "refs" / "heads" / "main").read_text().strip()
    assert out["commitHash"] == pushed
    # Idempotent for the task; refused for anyone else at submit time.
    assert publish.run(ctx, {"repoUrl": url})["commitHash"] == pushed
    with pytest.raises(ConflictError):
        publish.precheck({"repoUrl": url}, local)

    # Provisioning reads the published tree from the remote, with the same credentials.
    deploy = export_tree(out["repoContentsUrl"], tmp_path / "checkout", local, "deploy")
    assert (deploy / "k8s" / "kustomization.yaml").read_text() == "resources: []\n"
    whole = export_tree(out["repoContentsUrl"], tmp_path / "whole", local)
    assert sorted(p.name for p in whole.iterdir()) == ["README.md", "catalog-info.yaml", "deploy"]
    assert head_commit(out["repoContentsUrl"], local) == pushed
    assert "name: svc" in read_text(out["repoContentsUrl"] + "/catalog-info.yaml", local)

    # Every request git made carried the token as a header, never in a URL.
    git_requests = [r for r in git_server.requests if ".git/" in r.path]
    assert git_requests and all(TOKEN not in r.path for r in git_server.requests)
    assert any(r.authorization == f"Basic {BASIC}" for r in git_requests)
    _no_secret_in(out, logs)


def test_refused_or_missing_tokens_name_the_secret_and_never_leak(
    settings: Settings, session_factory, tmp_path: Path, git_server: GitHttpServer
) -> None:  # type: ignore[no-untyped-def]
    git_server.create_bare("team/svc.git")
    url = f"{git_server.url}/team/svc.git"
    local = settings.model_copy(
        update={
            "scaffolder_git_hosts": {
                git_server.netloc: {"type": "git", "url": url, "username": "portal-bot"}
            }
        }
    )
    publish = get_action("publish:git")
    assert publish is not None
    [missing] = publish.precheck({"repoUrl": url}, local)
    assert f"git-token:{git_server.netloc} is not set" in missing.message

    wrong = TOKEN[::-1]
    store_secret(settings, session_factory, f"git-token:{git_server.netloc}", wrong)
    with pytest.raises(ActionError) as refused:
        publish.run(_ctx(local, session_factory, tmp_path, []), {"repoUrl": url})
    assert f"git-token:{git_server.netloc} is refused" in str(refused.value)
    assert wrong not in str(refused.value)
    with pytest.raises(CheckoutError) as unread:
        export_tree(f"git+{url}#main", tmp_path / "x", local)
    assert wrong not in str(unread.value) and "is refused" in str(unread.value)
    # A token typed into the URL itself is refused before anything is sent.
    with_password = url.replace("http://", f"http://portal-bot:{wrong}@")
    with pytest.raises(ActionError, match="must not carry a password"):
        publish.run(_ctx(local, session_factory, tmp_path / "2", []), {"repoUrl": with_password})


def _github_settings(settings: Settings, github: FakeGitHub) -> Settings:
    return settings.model_copy(
        update={
            "scaffolder_git_hosts": {
                "ghe.test": {
                    "type": "github",
                    "webUrl": github.git.url,
                    "apiUrl": f"{github.git.url}/api/v3",
                }
            }
        }
    )


@pytest.mark.parametrize(
    ("owner", "calls"),
    [
        ("acme", ["users/get-by-username", "repos/create-in-org"]),
        (
            "alice",
            [
                "users/get-by-username",
                "users/get-authenticated",
                "repos/create-for-authenticated-user",
            ],
        ),
    ],
)
def test_publish_github_creates_the_repository_through_the_rest_api(
    settings: Settings,
    session_factory,
    tmp_path: Path,
    github: FakeGitHub,
    owner: str,
    calls: list[str],
) -> None:  # type: ignore[no-untyped-def]
    configured = _github_settings(settings, github)
    store_secret(settings, session_factory, "git-token:ghe.test", TOKEN)
    repo_url = f"ghe.test?owner={owner}&repo=svc"
    # publish:git with a github host is publish:github (what the rag-service template uses).
    for action_id in ("publish:github", "publish:git"):
        action = get_action(action_id)
        assert action is not None and action.precheck({"repoUrl": repo_url}, configured) == []
    assert github.calls == ["repos/get", "repos/get"]
    logs: list[str] = []
    out = get_action("publish:git").run(  # type: ignore[union-attr]
        _ctx(configured, session_factory, tmp_path, logs),
        {"repoUrl": repo_url, "description": "Answers questions"},
    )
    assert github.calls[2:] == calls
    assert github.violations == []
    assert out["remoteUrl"] == f"{github.git.url}/{owner}/svc"
    assert out["repoContentsUrl"] == f"{github.git.url}/{owner}/svc/blob/main"
    assert github.repos[f"{owner}/svc"]["private"] is True
    pushed = github.git.root / owner / "svc.git" / "refs" / "heads" / "main"
    assert pushed.read_text().strip() == out["commitHash"]
    # Read back from the web blob URL, as rag:provision does.
    deploy = export_tree(out["repoContentsUrl"], tmp_path / "checkout", configured, "deploy")
    assert (deploy / "k8s" / "kustomization.yaml").is_file()
    assert head_commit(out["repoContentsUrl"], configured) == out["commitHash"]
    with pytest.raises(ConflictError):
        get_action("publish:github").precheck({"repoUrl": repo_url}, configured)  # type: ignore[union-attr]
    assert github.violations == []
    _no_secret_in(out, logs)


def test_the_github_stand_in_holds_requests_to_the_openapi_description(
    github: FakeGitHub,
) -> None:
    """The check is real: a misspelt property, a wrong type, or an operation GitHub does
    not have are reported."""
    github.handle("POST", "/orgs/acme/repos", {"authorization": f"Bearer {TOKEN}"}, {"nme": "x"})
    github.handle(
        "POST", "/user/repos", {"authorization": f"Bearer {TOKEN}"}, {"name": "y", "private": "yes"}
    )
    github.handle("PUT", "/orgs/acme/repositories", {}, None)
    text = "\n".join(github.violations)
    assert "'nme' is not in repos/create-in-org" in text
    assert "'yes' is not of type 'boolean'" in text
    assert "PUT /orgs/acme/repositories: no such operation" in text


def test_publish_github_without_a_token_refuses_at_submit(
    settings: Settings, github: FakeGitHub
) -> None:
    configured = _github_settings(settings, github)
    [problem] = get_action("publish:github").precheck(  # type: ignore[union-attr]
        {"repoUrl": "ghe.test?owner=acme&repo=svc"}, configured
    )
    assert problem.path == "input.repoUrl"
    assert "ragportal secrets set git-token:ghe.test" in problem.message
    assert github.calls == []


def test_publish_gitlab_creates_the_project_in_a_nested_group(
    settings: Settings, session_factory, tmp_path: Path, gitlab: FakeGitLab
) -> None:  # type: ignore[no-untyped-def]
    configured = settings.model_copy(
        update={
            "scaffolder_git_hosts": {"gitlab.test": {"type": "gitlab", "webUrl": gitlab.git.url}}
        }
    )
    store_secret(settings, session_factory, "git-token:gitlab.test", TOKEN)
    repo_url = "gitlab.test?owner=platform/rag&repo=svc"
    action = get_action("publish:gitlab")
    assert action is not None and action.precheck({"repoUrl": repo_url}, configured) == []
    logs: list[str] = []
    out = action.run(_ctx(configured, session_factory, tmp_path, logs), {"repoUrl": repo_url})
    assert gitlab.violations == []
    assert gitlab.calls == ["GET /projects/:id", "GET /namespaces/:id", "POST /projects"]
    assert out["repoContentsUrl"] == f"{gitlab.git.url}/platform/rag/svc/-/blob/main"
    deploy = export_tree(out["repoContentsUrl"], tmp_path / "checkout", configured, "deploy")
    assert (deploy / "k8s" / "kustomization.yaml").is_file()
    assert head_commit(out["repoContentsUrl"], configured) == out["commitHash"]
    with pytest.raises(ConflictError):
        action.precheck({"repoUrl": repo_url}, configured)
    _no_secret_in(out, logs)
    # The stand-in's check is real: an attribute python-gitlab does not describe is reported.
    gitlab.handle(
        "POST", "/projects", {"private-token": TOKEN}, {"name": "x", "visbility": "private"}
    )
    assert any("visbility" in v for v in gitlab.violations)


def test_catalog_register_reads_catalog_info_from_the_remote(
    settings: Settings, session_factory, tmp_path: Path, git_server: GitHttpServer
) -> None:  # type: ignore[no-untyped-def]
    git_server.create_bare("team/svc.git")
    url = f"{git_server.url}/team/svc.git"
    local = settings.model_copy(
        update={
            "scaffolder_git_hosts": {
                git_server.netloc: {"type": "git", "url": url, "username": "portal-bot"}
            }
        }
    )
    store_secret(settings, session_factory, f"git-token:{git_server.netloc}", TOKEN)
    ctx = _ctx(local, session_factory, tmp_path, [])
    (ctx.workspace / "catalog-info.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: remote-svc}\n"
        "spec: {type: service, lifecycle: production, owner: group:default/a}\n"
    )
    out = get_action("publish:git").run(ctx, {"repoUrl": url})  # type: ignore[union-attr]
    registered = get_action("catalog:register").run(  # type: ignore[union-attr]
        ctx, {"repoContentsUrl": out["repoContentsUrl"], "catalogInfoPath": "/catalog-info.yaml"}
    )
    assert registered["entityRef"] == "component:default/remote-svc"
    assert registered["catalogInfoUrl"] == f"git+{url}#main/catalog-info.yaml"
