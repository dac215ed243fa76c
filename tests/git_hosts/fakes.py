"""Local stand-ins for github.com's and gitlab.com's REST APIs (neither can be reached
from here), on the same origin as a real git smart-HTTP server so created repositories
can be pushed to and read back.

The GitHub fake validates every request against GitHub's official OpenAPI description
(npm ``@octokit/openapi``) and answers with the description's own examples, adjusted to
the repository created, after validating them against the response schemas.

GitLab publishes its OpenAPI description only inside its monorepo, not on npm or PyPI,
so the GitLab fake checks requests against the best published machine-readable
description a registry carries: python-gitlab's v4 managers (PyPI), i.e. the resource
path, the HTTP method its mixins allow and the attributes ``create`` accepts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tests.git_hosts.openapi import OpenApiSpec
from tests.git_hosts.server import GitHttpServer

GITHUB_SPEC = (
    Path(__file__).parent
    / "node_modules"
    / "@octokit"
    / "openapi"
    / "generated"
    / "api.github.com.json"
)


@dataclass
class FakeGitHub:
    """GitHub Enterprise Server's layout: API at /api/v3, repositories at /<owner>/<repo>."""

    spec: OpenApiSpec
    git: GitHttpServer
    token: str
    login: str
    organizations: set[str]
    violations: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    repos: dict[str, dict[str, Any]] = field(default_factory=dict)

    def handle(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        op = self.spec.find(method, path)
        if op is None:
            self.violations.append(f"{method} {path}: no such operation in GitHub's OpenAPI")
            return 404, {"message": "Not Found"}
        self.calls.append(op.operation_id)
        self.violations += [f"{op.operation_id}: {p}" for p in self.spec.request_problems(op, body)]
        if headers.get("authorization") != f"Bearer {self.token}":
            return self._answer(op, 401, {"message": "Bad credentials", "documentation_url": ""})
        status, answer = self._route(op.operation_id, path, body)
        return self._answer(op, status, answer)

    def _answer(self, op: Any, status: int, answer: Any) -> tuple[int, Any]:
        self.violations += [
            f"{op.operation_id} answer {status}: {p}"
            for p in self.spec.response_problems(op, status, answer)
        ]
        return status, answer

    def _repository(self, owner: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        op = self.spec.find("POST", "/user/repos")
        assert op is not None
        repo = self.spec.example(op, 201)
        repo["owner"]["login"] = owner
        repo["owner"]["type"] = "Organization" if owner in self.organizations else "User"
        repo.update(
            name=name,
            full_name=f"{owner}/{name}",
            private=bool(body.get("private")),
            visibility="private" if body.get("private") else "public",
            description=body.get("description"),
            html_url=f"{self.git.url}/{owner}/{name}",
            clone_url=f"{self.git.url}/{owner}/{name}.git",
            default_branch="main",
        )
        # GitHub's example predates this required property of full-repository.
        repo.setdefault("has_discussions", False)
        return repo

    def _route(self, operation: str, path: str, body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if operation == "users/get-by-username":
            name = parts[1]
            if name not in self.organizations and name != self.login:
                return 404, {"message": "Not Found", "documentation_url": ""}
            user = self.spec.example(self.spec.find("GET", "/users/x"), 200)  # type: ignore[arg-type]
            user.update(login=name, type="Organization" if name in self.organizations else "User")
            return 200, user
        if operation == "users/get-authenticated":
            user = self.spec.example(self.spec.find("GET", "/user"), 200)  # type: ignore[arg-type]
            user.update(login=self.login, type="User")
            return 200, user
        if operation == "repos/get":
            found = self.repos.get(f"{parts[1]}/{parts[2]}")
            return (
                (200, found) if found else (404, {"message": "Not Found", "documentation_url": ""})
            )
        if operation in ("repos/create-in-org", "repos/create-for-authenticated-user"):
            owner = parts[1] if operation == "repos/create-in-org" else self.login
            failed = {"message": "Validation Failed", "documentation_url": "", "errors": []}
            if "name" not in (body or {}):
                return 422, failed
            key = f"{owner}/{body['name']}"
            if key in self.repos:
                return 422, failed
            self.git.create_bare(f"{key}.git")
            self.repos[key] = self._repository(owner, body["name"], body)
            return 201, self.repos[key]
        self.violations.append(f"{operation}: the portal is not expected to call it")
        return 404, {"message": "Not Found", "documentation_url": ""}


def _gitlab_paths() -> dict[str, tuple[str, set[str], tuple[str, ...], tuple[str, ...]]]:
    """python-gitlab's description of the resources publish:gitlab uses: resource ->
    (collection path, allowed methods, required and optional create attributes)."""
    from gitlab import mixins
    from gitlab.v4.objects import NamespaceManager, ProjectManager

    described = {}
    for name, manager in (("namespaces", NamespaceManager), ("projects", ProjectManager)):
        methods = set()
        if issubclass(manager, mixins.GetMixin):
            methods.add("GET")
        if issubclass(manager, mixins.CreateMixin):
            methods.add("POST")
        attrs = manager._create_attrs
        described[name] = (manager._path, methods, tuple(attrs.required), tuple(attrs.optional))
    return described


@dataclass
class FakeGitLab:
    """GitLab self-managed's layout: API at /api/v4, projects at /<namespace>/<project>."""

    git: GitHttpServer
    token: str
    namespaces: dict[str, int]
    violations: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    described: dict[str, Any] = field(default_factory=_gitlab_paths)

    def handle(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        resource = parts[0]
        if resource not in self.described:
            self.violations.append(f"{method} {path}: not a resource publish:gitlab may use")
            return 404, {"message": "404 Not Found"}
        collection, methods, required, optional = self.described[resource]
        if f"/{resource}" != collection or method not in methods or len(parts) > 2:
            self.violations.append(f"{method} {path}: python-gitlab describes no such call")
        if method == "POST":
            unknown = sorted(set(body or {}) - set(required) - set(optional))
            missing = sorted(set(required) - set(body or {}))
            if unknown or missing:
                self.violations.append(f"POST {path}: unknown {unknown}, missing {missing}")
        self.calls.append(f"{method} /{resource}" + ("/:id" if len(parts) == 2 else ""))
        if headers.get("private-token") != self.token:
            return 401, {"message": "401 Unauthorized"}
        if method == "GET" and resource == "namespaces":
            full_path = unquote(parts[1])
            if full_path not in self.namespaces:
                return 404, {"message": "404 Namespace Not Found"}
            return 200, {"id": self.namespaces[full_path], "full_path": full_path, "kind": "group"}
        if method == "GET" and resource == "projects":
            found = self.projects.get(unquote(parts[1]))
            return (200, found) if found else (404, {"message": "404 Project Not Found"})
        if method == "POST" and resource == "projects":
            owners = [
                p for p, i in self.namespaces.items() if i == (body or {}).get("namespace_id")
            ]
            if not owners or "path" not in body:
                return 400, {"message": "namespace_id and path are required"}
            namespace = owners[0]
            key = f"{namespace}/{body['path']}"
            if key in self.projects:
                return 400, {"message": {"name": ["has already been taken"]}}
            self.git.create_bare(f"{key}.git")
            self.projects[key] = {
                "id": 1000 + len(self.projects),
                "name": body["name"],
                "path": body["path"],
                "path_with_namespace": key,
                "visibility": body.get("visibility", "private"),
                "default_branch": "main",
                "web_url": f"{self.git.url}/{key}",
                "http_url_to_repo": f"{self.git.url}/{key}.git",
                "ssh_url_to_repo": f"git@127.0.0.1:{key}.git",
            }
            return 201, self.projects[key]
        self.violations.append(f"{method} {path}: the portal is not expected to call it")
        return 404, {"message": "404 Not Found"}
