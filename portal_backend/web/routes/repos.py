"""Repository browser for the repositories this portal hosts (bare repositories under
its data folder): folders and files, the README rendered, the commit log. It is what a
``file://`` repository link opens, so the link works from a browser."""

from __future__ import annotations

import mimetypes
import posixpath

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from catalog.errors import NotFoundError
from portal_backend.git_hosts import local_repos, repo_browser
from portal_backend.web import links, markdown
from portal_backend.web.security import require_page
from portal_backend.web.templating import render

router = APIRouter()
# Images a README may show; anything else is sent as plain text, never as HTML.
_RAW_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


def _repo(request: Request, owner: str, name: str) -> repo_browser.HostedRepo:
    require_page(request, "read")
    return repo_browser.hosted_repo(request.app.state.settings, owner, name)


def _crumbs(repo: repo_browser.HostedRepo, ref: str, path: str) -> list[tuple[str, str]]:
    crumbs = [(repo.name, links.repo_page(repo.owner, repo.name, "tree", ref))]
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        crumbs.append(
            (part, links.repo_page(repo.owner, repo.name, "tree", ref, "/".join(parts[: i + 1])))
        )
    return crumbs


def _render_markdown(repo: repo_browser.HostedRepo, ref: str, path: str, text: str) -> object:
    folder = posixpath.dirname(path)

    def link(url: str) -> str:
        target = markdown.resolve(folder, url)
        file_path, _, fragment = target.partition("#")
        view = "tree" if not file_path or repo_browser.is_dir(repo, ref, file_path) else "blob"
        page = links.repo_page(repo.owner, repo.name, view, ref, file_path)
        return page + (f"#{fragment}" if fragment else "")

    def image(url: str) -> str:
        return links.repo_page(repo.owner, repo.name, "raw", ref, markdown.resolve(folder, url))

    return markdown.render(text, link, image)


@router.get("/repos")
def repositories(request: Request) -> Response:
    require_page(request, "read")
    settings = request.app.state.settings
    items = []
    for repo in repo_browser.list_repos(settings):
        branch = repo_browser.default_branch(repo)
        last = repo_browser.log(repo, branch, limit=1) if branch else []
        items.append({"repo": repo, "branch": branch, "last": last[0] if last else None})
    return render(request, "repos.html", {"items": items})


def _folder_page(request: Request, repo: repo_browser.HostedRepo, ref: str, path: str) -> Response:
    entries = repo_browser.tree(repo, ref, path)
    readme = repo_browser.readme(entries)
    readme_html = None
    if readme is not None:
        blob = repo_browser.blob(repo, ref, readme.path)
        if blob.text is not None:
            readme_html = _render_markdown(repo, ref, readme.path, blob.text)
    return render(
        request,
        "repo_tree.html",
        {
            "repo": repo,
            "ref": ref,
            "path": path,
            "branches": repo_browser.branches(repo),
            "crumbs": _crumbs(repo, ref, path),
            "entries": entries,
            "readme": readme,
            "readme_html": readme_html,
            "commits": repo_browser.log(repo, ref, limit=5, path=path),
            "clone_url": local_repos.clone_url(repo.path),
        },
    )


@router.get("/repos/{owner}/{name}")
def repository(request: Request, owner: str, name: str) -> Response:
    repo = _repo(request, owner, name)
    branch = repo_browser.default_branch(repo)
    if branch is None:
        return render(
            request,
            "repo_tree.html",
            {"repo": repo, "ref": None, "path": "", "entries": [], "empty": True,
             "clone_url": local_repos.clone_url(repo.path), "branches": [], "crumbs": [],
             "commits": [], "readme": None, "readme_html": None},
        )  # fmt: skip
    return _folder_page(request, repo, branch, "")


@router.get("/repos/{owner}/{name}/tree/{ref}")
def tree_root(request: Request, owner: str, name: str, ref: str) -> Response:
    return _folder_page(request, _repo(request, owner, name), repo_browser.check_ref(ref), "")


@router.get("/repos/{owner}/{name}/tree/{ref}/{path:path}")
def tree(request: Request, owner: str, name: str, ref: str, path: str) -> Response:
    repo = _repo(request, owner, name)
    return _folder_page(request, repo, repo_browser.check_ref(ref), repo_browser.check_path(path))


@router.get("/repos/{owner}/{name}/blob/{ref}/{path:path}")
def blob(request: Request, owner: str, name: str, ref: str, path: str) -> Response:
    repo = _repo(request, owner, name)
    ref, path = repo_browser.check_ref(ref), repo_browser.check_path(path)
    if repo_browser.is_dir(repo, ref, path):
        return RedirectResponse(links.repo_page(owner, name, "tree", ref, path), 303)
    found = repo_browser.blob(repo, ref, path)
    rendered = None
    show_source = request.query_params.get("plain") == "1"
    if found.text is not None and path.lower().endswith(repo_browser.MARKDOWN_SUFFIXES):
        rendered = None if show_source else _render_markdown(repo, ref, path, found.text)
    return render(
        request,
        "repo_blob.html",
        {
            "repo": repo,
            "ref": ref,
            "path": path,
            "crumbs": _crumbs(repo, ref, posixpath.dirname(path)),
            "file": found,
            "rendered": rendered,
            "is_markdown": path.lower().endswith(repo_browser.MARKDOWN_SUFFIXES),
            "raw_url": links.repo_page(owner, name, "raw", ref, path),
            "history": repo_browser.log(repo, ref, limit=10, path=path),
        },
    )


@router.get("/repos/{owner}/{name}/raw/{ref}/{path:path}")
def raw(request: Request, owner: str, name: str, ref: str, path: str) -> Response:
    repo = _repo(request, owner, name)
    content = repo_browser.raw(repo, repo_browser.check_ref(ref), repo_browser.check_path(path))
    guessed = mimetypes.guess_type(path)[0] or ""
    media_type = guessed if guessed in _RAW_TYPES else "text/plain; charset=utf-8"
    return Response(
        content,
        media_type=media_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


@router.get("/repos/{owner}/{name}/commits/{ref}")
def commits(request: Request, owner: str, name: str, ref: str) -> Response:
    repo = _repo(request, owner, name)
    ref = repo_browser.check_ref(ref)
    if not repo_browser.branches(repo):
        raise NotFoundError(f"{repo.slug} has no commits yet")
    return render(
        request,
        "repo_commits.html",
        {
            "repo": repo,
            "ref": ref,
            "commits": repo_browser.log(repo, ref, limit=200),
            "branches": repo_browser.branches(repo),
        },
    )
