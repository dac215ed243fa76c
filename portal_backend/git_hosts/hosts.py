"""Configured git hosts (``RAGPORTAL_SCAFFOLDER_GIT_HOSTS``) and the URLs they use.

``{"github.com": {"type": "github"}, "gitlab.example.com": {"type": "gitlab"},
"git.example.com": {"type": "git", "url": "https://git.example.com/{owner}/{repo}.git"}}``

- ``github``: repositories are created through GitHub's REST API (``apiUrl``, default
  ``https://api.github.com`` for github.com, ``https://<host>/api/v3`` for Enterprise
  Server); contents URL ``<webUrl>/<owner>/<repo>/blob/<branch>``.
- ``gitlab``: through GitLab's REST API (``apiUrl``, default ``https://<host>/api/v4``);
  contents URL ``<webUrl>/<namespace>/<repo>/-/blob/<branch>``.
- ``git``: an existing (empty) repository at ``url``; contents URL ``git+<url>#<branch>``.

``webUrl`` defaults to ``https://<host>``; ``username`` overrides who the token is when
git speaks HTTPS. Tokens never live here: they are in the secret store.
"""

from __future__ import annotations

from dataclasses import dataclass

from portal_backend.settings import Settings

KINDS = ("github", "gitlab", "git")


class HostConfigError(Exception):
    pass


@dataclass(frozen=True)
class GitHost:
    name: str
    kind: str
    api_url: str
    web_url: str
    url_template: str

    def clone_url(self, owner: str, repo: str) -> str:
        if self.kind == "git":
            return self.url_template.format(owner=owner, repo=repo, host=self.name)
        return f"{self.web_url}/{owner}/{repo}.git"


def configured_host(settings: Settings, name: str) -> GitHost:
    config = settings.scaffolder_git_hosts.get(name)
    if config is None:
        known = ", ".join(["local", *settings.scaffolder_git_hosts])
        raise HostConfigError(
            f"git host {name!r} is not configured (configured: {known}); add it to "
            "RAGPORTAL_SCAFFOLDER_GIT_HOSTS"
        )
    kind = config.get("type") or ("git" if config.get("url") else "")
    if kind not in KINDS:
        raise HostConfigError(f"git host {name!r}: type must be one of {', '.join(KINDS)}")
    web_url = (config.get("webUrl") or f"https://{name}").rstrip("/")
    if kind == "github":
        default_api = "https://api.github.com" if name == "github.com" else f"{web_url}/api/v3"
    elif kind == "gitlab":
        default_api = f"{web_url}/api/v4"
    else:
        default_api = ""
    if kind == "git" and not config.get("url"):
        raise HostConfigError(
            f"git host {name!r} needs url, e.g. https://{name}/{{owner}}/{{repo}}.git"
        )
    return GitHost(
        name=name,
        kind=kind,
        api_url=(config.get("apiUrl") or default_api).rstrip("/"),
        web_url=web_url,
        url_template=config.get("url", ""),
    )


def hosts_of_kind(settings: Settings, kind: str) -> list[GitHost]:
    found = []
    for name in settings.scaffolder_git_hosts:
        try:
            host = configured_host(settings, name)
        except HostConfigError:
            continue
        if host.kind == kind:
            found.append(host)
    return found


def git_contents_url(clone_url: str, branch: str) -> str:
    """Where the files of a plain git remote are read back (repo_checkout understands it)."""
    return f"git+{clone_url}#{branch}"
