"""Addresses as a browser can follow them.

Repositories this portal hosts are named by ``file://`` URLs (their clone and contents
URLs), which a browser on an http page cannot open: they are shown as the portal's own
repository browser pages instead. A service's in-cluster address
(``*.svc.cluster.local``) only answers inside its cluster, so it is shown as text.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from catalog.errors import NotFoundError
from portal_backend.git_hosts import repo_browser
from portal_backend.settings import Settings


def repo_page(owner: str, name: str, view: str = "", ref: str = "", path: str = "") -> str:
    base = f"/repos/{quote(owner)}/{quote(name)}"
    if not view:
        return base
    tail = "/".join(quote(p) for p in path.split("/") if p)
    return f"{base}/{view}/{quote(ref, safe='')}" + (f"/{tail}" if tail else "")


def browser_url(settings: Settings, url: str) -> str:
    """``url``, or the repository browser page for a repository of this portal."""
    if not url.startswith("file://"):
        return url
    found = repo_browser.repo_of_url(settings, url)
    if found is None:
        return url
    repo, ref, path = found
    if not ref:
        return repo_page(repo.owner, repo.name)
    try:
        view = "blob" if path and not repo_browser.is_dir(repo, ref, path) else "tree"
    except NotFoundError:
        return repo_page(repo.owner, repo.name)
    return repo_page(repo.owner, repo.name, view, ref, path)


def is_cluster_internal(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host.endswith((".svc.cluster.local", ".svc", ".cluster.local"))
