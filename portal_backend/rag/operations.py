"""Operations on an existing RAG service, run as scaffolder tasks.

Deploying a service again (to the local runtime, a cluster, or as a plan) and evaluating
a running one take from seconds to many minutes; as tasks they get what a create gets:
a live log, a history in the task list, cancel and retry. Their templates are built
here, not registered in the catalog, so they never show up among the "Create" choices.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import ConflictError, NotFoundError
from catalog.refs import parse_ref
from portal_backend import metadata_keys
from portal_backend.db import session_scope
from portal_backend.provisioning import targets
from portal_backend.provisioning.models import ProvisionedService
from portal_backend.scaffolder import engine
from portal_backend.scaffolder.templates import Template
from portal_backend.settings import Settings

NAMESPACE = "rag-portal"
LOCATION = "backstage.io/managed-by-location"
CATALOG_FILE = "/catalog-info.yaml"


def _template(
    name: str, title: str, properties: dict[str, Any], steps: list[dict[str, Any]]
) -> Template:
    entity = {
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": {"name": name, "namespace": NAMESPACE, "title": title},
        "spec": {
            "type": "operation",
            "parameters": [
                {"required": sorted(k for k, v in properties.items() if v.pop("required", 0)),
                 "properties": properties}
            ],
            "steps": steps,
        },
    }  # fmt: skip
    return Template(f"template:{NAMESPACE}/{name}", entity, None, False)


def deploy_template() -> Template:
    return _template(
        "deploy-rag-service",
        "Deploy RAG service",
        {
            "service": {"type": "string", "required": 1},
            "entityRef": {"type": "string", "required": 1},
            "repoContentsUrl": {"type": "string", "required": 1},
            "target": {"type": "string", "enum": list(targets.TARGET_NAMES), "default": "auto"},
            "cluster": {"type": "string", "default": ""},
            "environment": {"type": "string", "default": "prod"},
        },
        [
            {
                "id": "provision",
                "name": "Deploy",
                "action": "rag:provision",
                "input": {
                    "service": "${{ parameters.service }}",
                    "entityRef": "${{ parameters.entityRef }}",
                    "repoContentsUrl": "${{ parameters.repoContentsUrl }}",
                    "target": "${{ parameters.target }}",
                    "environment": "${{ parameters.environment }}",
                    "cluster": "${{ parameters.cluster }}",
                },
            }
        ],
    )


def evaluate_template() -> Template:
    return _template(
        "evaluate-rag-service",
        "Evaluate RAG service",
        {
            "service": {"type": "string", "required": 1},
            "entityRef": {"type": "string", "required": 1},
            "judge": {"type": "boolean", "default": True},
        },
        [
            {
                "id": "evaluate",
                "name": "Evaluate",
                "action": "rag:evaluate",
                "input": {
                    "service": "${{ parameters.service }}",
                    "entityRef": "${{ parameters.entityRef }}",
                    "judge": "${{ parameters.judge }}",
                },
            }
        ],
    )


def repo_contents_url(session: Session, service: str, entity: dict[str, Any]) -> str:
    """Where the service's repository was published: the deployment record, else the
    location its Component was registered from (catalog-info.yaml at the repo's root)."""
    row = session.get(ProvisionedService, service)
    if row is not None and row.repo_contents_url:
        return row.repo_contents_url
    location: str = ((entity.get("metadata") or {}).get("annotations") or {}).get(LOCATION, "")
    target = location.removeprefix("url:")
    if target.endswith(CATALOG_FILE):
        return target[: -len(CATALOG_FILE)]
    raise ConflictError(
        f"cannot tell where the repository of {service} was published (no deployment record, "
        f"and the entity's {LOCATION} is {location or 'missing'}): create the service again"
    )


def entity_of(session: Session, entity_ref: str) -> dict[str, Any]:
    from catalog.service import CatalogService

    entity = CatalogService(session).get_by_ref(entity_ref)
    if entity is None:
        raise NotFoundError(f"{entity_ref} is not in the catalog")
    return entity


def service_name(entity: dict[str, Any]) -> str:
    annotations = (entity.get("metadata") or {}).get("annotations") or {}
    name: str = annotations.get(metadata_keys.SERVICE) or entity["metadata"]["name"]
    return name


def submit_deploy(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    entity_ref: str,
    target: str | None,
    cluster: str | None,
    environment: str | None,
    user_ref: str,
    dispatch: engine.Dispatch,
) -> str:
    ref = str(parse_ref(entity_ref, default_kind="component"))
    with session_scope(factory) as session:
        entity = entity_of(session, ref)
        service = service_name(entity)
        url = repo_contents_url(session, service, entity)
    values = {
        "service": service,
        "entityRef": ref,
        "repoContentsUrl": url,
        "target": target or targets.AUTO,
        "cluster": cluster or "",
        "environment": environment or "prod",
    }
    return engine.submit_template(
        settings,
        factory,
        template=deploy_template(),
        values=values,
        secrets=None,
        user_ref=user_ref,
        dispatch=dispatch,
    )


def submit_evaluate(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    entity_ref: str,
    judge: bool,
    user_ref: str,
    dispatch: engine.Dispatch,
) -> str:
    ref = str(parse_ref(entity_ref, default_kind="component"))
    with session_scope(factory) as session:
        service = service_name(entity_of(session, ref))
    return engine.submit_template(
        settings,
        factory,
        template=evaluate_template(),
        values={"service": service, "entityRef": ref, "judge": judge},
        secrets=None,
        user_ref=user_ref,
        dispatch=dispatch,
    )
