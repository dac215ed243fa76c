"""Deleting a RAG service for good, repository included when the user says so.

Teardown (``provisioning.targets.teardown``) stops the service wherever it runs and
removes its catalog entities, secrets and tokens, but its repository stays: and a new
service of the same name is refused while the repository exists. So the delete asks
what to do with the repository: keep it, archive it (moved aside with its history, out
of the repositories folder) or remove it. Only repositories this portal hosts can be
archived or removed here; one on GitHub/GitLab is kept and the answer says so.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import ConflictError, ErrorDetail, InputError
from portal_backend.db import session_scope
from portal_backend.git_hosts import local_repos
from portal_backend.provisioning import targets
from portal_backend.rag.operations import repo_contents_url, service_name
from portal_backend.settings import Settings

KEEP, ARCHIVE, REMOVE = "keep", "archive", "remove"
REPOSITORY_CHOICES = (KEEP, ARCHIVE, REMOVE)


def hosted_repository(
    settings: Settings, factory: sessionmaker[Session], entity: dict[str, Any]
) -> tuple[str, str] | None:
    """(owner, name) of the service's repository when this portal hosts it."""
    with session_scope(factory) as session:
        try:
            url = repo_contents_url(session, service_name(entity), entity)
        except ConflictError:
            return None
    try:
        tree = local_repos.parse_contents_url(url, settings)
    except local_repos.ForeignRepositoryError:
        return None
    if tree is None or not tree.repo.exists():
        return None
    return tree.repo.parent.name, tree.repo.name.removesuffix(".git")


def delete_service(
    settings: Settings,
    factory: sessionmaker[Session],
    entity: dict[str, Any],
    repository: str = KEEP,
) -> dict[str, Any]:
    """Tear the service down, then keep, archive or remove its repository. Bad input is
    refused before anything is touched."""
    if repository not in REPOSITORY_CHOICES:
        raise InputError(
            f"repository must be one of {', '.join(REPOSITORY_CHOICES)}",
            [ErrorDetail("repository", "keep, archive or remove")],
        )
    hosted = hosted_repository(settings, factory, entity)
    if repository != KEEP and hosted is None:
        raise InputError(
            "the repository is not hosted by this portal, so it cannot be archived or removed "
            "here: keep it, and delete or rename it on its git host to reuse the name",
            [ErrorDetail("repository", "keep")],
        )
    result = targets.teardown(settings, factory, service_name(entity))
    if hosted is None:
        result["repository"] = {"action": KEEP}
        return result
    owner, name = hosted
    if repository == ARCHIVE:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        moved = local_repos.archive_repo(settings, owner, name, stamp)
        result["repository"] = {"action": ARCHIVE, "name": f"{owner}/{name}", "path": str(moved)}
    elif repository == REMOVE:
        local_repos.remove_repo(settings, owner, name)
        result["repository"] = {"action": REMOVE, "name": f"{owner}/{name}"}
    else:
        result["repository"] = {"action": KEEP, "name": f"{owner}/{name}"}
    return result
