"""Creating repositories through GitHub's and GitLab's REST APIs.

Only the calls publish:github / publish:gitlab need, each as the host documents it
(tests/git_hosts checks every request against the hosts' published OpenAPI
descriptions). Errors name the secret to fix; tokens are never part of a message.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from portal_backend.git_hosts.access import token_secret

VISIBILITIES = ("private", "internal", "public")


class HostApiError(Exception):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _object(response: httpx.Response) -> dict[str, Any]:
    """The JSON object a host answered (a repository or project)."""
    body: dict[str, Any] = response.json()
    return body


class _Api:
    label = ""

    def __init__(
        self,
        host: str,
        api_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.host = host
        if not token:
            raise HostApiError(
                f"no token for {host}: store one with ragportal secrets set {token_secret(host)}"
            )
        self.client = httpx.Client(
            base_url=api_url,
            headers=self._headers(token),
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    def _headers(self, token: str) -> dict[str, str]:
        raise NotImplementedError

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> _Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, json: dict[str, Any] | None = None) -> httpx.Response:
        try:
            response = self.client.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise HostApiError(
                f"{self.label} API at {self.client.base_url} unreachable: {exc}"
            ) from exc
        if response.status_code == 401:
            raise HostApiError(
                f"{self.label} refused the token {token_secret(self.host)} (401): store a valid "
                f"one with ragportal secrets set {token_secret(self.host)}",
                401,
            )
        return response

    def _fail(self, response: httpx.Response, what: str) -> HostApiError:
        try:
            body = response.json()
            detail = body.get("message") or body.get("error") or ""
            if isinstance(detail, dict | list):
                detail = str(detail)
        except ValueError:
            detail = response.text[:200]
        return HostApiError(
            f"{self.label} could not {what} ({response.status_code}): {detail}".rstrip(": "),
            response.status_code,
        )


class GitHubApi(_Api):
    label = "GitHub"

    def _headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "rag-portal",
        }

    def get_repo(self, owner: str, repo: str) -> dict[str, Any] | None:
        response = self._call("GET", f"/repos/{quote(owner)}/{quote(repo)}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(response, f"read {owner}/{repo}")
        return _object(response)

    def create_repo(
        self, owner: str, repo: str, *, description: str, visibility: str
    ) -> dict[str, Any]:
        """In the organization ``owner``, or in the token's own account when ``owner`` is
        that user (GitHub's two endpoints; Backstage's publish:github does the same)."""
        account = self._call("GET", f"/users/{quote(owner)}")
        if account.status_code == 404:
            raise HostApiError(f"GitHub has no user or organization {owner!r}", 404)
        if account.status_code != 200:
            raise self._fail(account, f"look up {owner}")
        body: dict[str, Any] = {
            "name": repo,
            "description": description[:350],
            "private": visibility != "public",
            "auto_init": False,
        }
        if account.json().get("type") == "Organization":
            path = f"/orgs/{quote(owner)}/repos"
        else:
            me = self._call("GET", "/user")
            if me.status_code != 200:
                raise self._fail(me, "read the token's user")
            login = me.json().get("login")
            if str(login).lower() != owner.lower():
                raise HostApiError(
                    f"{owner} is a user account and the token belongs to {login}: GitHub only "
                    "lets a user create repositories in their own account",
                    403,
                )
            path = "/user/repos"
        created = self._call("POST", path, json=body)
        if created.status_code == 201:
            return _object(created)
        if created.status_code == 422:
            existing = self.get_repo(owner, repo)
            if existing is not None:
                return existing  # created by an earlier attempt of the same step
        raise self._fail(created, f"create {owner}/{repo}")


class GitLabApi(_Api):
    label = "GitLab"

    def _headers(self, token: str) -> dict[str, str]:
        return {"PRIVATE-TOKEN": token, "User-Agent": "rag-portal"}

    def get_project(self, path: str) -> dict[str, Any] | None:
        response = self._call("GET", f"/projects/{quote(path, safe='')}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(response, f"read {path}")
        return _object(response)

    def create_project(
        self, namespace: str, repo: str, *, description: str, visibility: str
    ) -> dict[str, Any]:
        found = self._call("GET", f"/namespaces/{quote(namespace, safe='')}")
        if found.status_code == 404:
            raise HostApiError(f"GitLab has no group or user namespace {namespace!r}", 404)
        if found.status_code != 200:
            raise self._fail(found, f"look up namespace {namespace}")
        created = self._call(
            "POST",
            "/projects",
            json={
                "name": repo,
                "path": repo,
                "namespace_id": found.json()["id"],
                "description": description,
                "visibility": visibility,
                "initialize_with_readme": False,
            },
        )
        if created.status_code == 201:
            return _object(created)
        if created.status_code == 400:
            existing = self.get_project(f"{namespace}/{repo}")
            if existing is not None:
                return existing  # created by an earlier attempt of the same step
        raise self._fail(created, f"create {namespace}/{repo}")
