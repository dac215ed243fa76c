"""catalog:register, catalog:write and catalog:fetch.

catalog:register reads the generated ``catalog-info.yaml`` from where publish:* put it
(a repository this portal published, local or remote, is read with git through
``provisioning.repo_checkout``; other http(s) URLs go through the catalog's own location
reader) and upserts the entities under that location, so running
it again updates instead of duplicating.
"""

from __future__ import annotations

import subprocess
from typing import Any

import yaml

from catalog.errors import ConflictError, PortalError
from catalog.refs import RefError, parse_ref
from portal_backend.db import session_scope
from portal_backend.git_hosts import local_repos
from portal_backend.provisioning.repo_checkout import CheckoutError, parse_contents_url, read_text
from portal_backend.scaffolder import catalog_port
from portal_backend.scaffolder.actions.base import (
    Action,
    ActionContext,
    ActionError,
    FieldError,
    register,
)
from portal_backend.scaffolder.actions.fs import inside
from portal_backend.settings import Settings

LOCATION = "backstage.io/managed-by-location"
ORIGIN = "backstage.io/managed-by-origin-location"


def catalog_info_url(input: dict[str, Any]) -> str:
    if input.get("catalogInfoUrl"):
        return str(input["catalogInfoUrl"])
    if not input.get("repoContentsUrl"):
        raise ActionError("catalog:register needs catalogInfoUrl, or repoContentsUrl")
    path = str(input.get("catalogInfoPath") or "/catalog-info.yaml").lstrip("/")
    return f"{str(input['repoContentsUrl']).rstrip('/')}/{path}"


def read_local(url: str, settings: Settings) -> str:
    try:
        tree = local_repos.parse_contents_url(url, settings)
    except local_repos.ForeignRepositoryError as exc:
        raise ActionError(str(exc)) from exc
    if tree is None or not tree.path:
        raise ActionError(f"cannot read {url}: not a file://<repo>.git/blob/<ref>/<path> URL")
    result = subprocess.run(
        ["git", "--git-dir", str(tree.repo), "show", f"{tree.ref}:{tree.path}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise ActionError(f"cannot read {url}: {result.stderr.strip()}")
    return result.stdout


def _published(url: str, settings: Settings) -> bool:
    """A repository a publish action wrote (local, git+ remote, configured GitHub/GitLab
    host): read with git and the secret store's credentials, not as a web page."""
    if url.startswith("file://"):
        return True
    try:
        parse_contents_url(url, settings)
    except CheckoutError:
        return False
    return True


def _read_published(url: str, settings: Settings) -> str:
    if url.startswith("file://"):
        return read_local(url, settings)
    try:
        return read_text(url, settings)
    except CheckoutError as exc:
        raise ActionError(str(exc)) from exc


def _documents(text: str, url: str) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise ActionError(f"{url} is not valid YAML: {exc}") from exc
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise ActionError(f"{url} holds no entities")
    return docs


def _main_ref(entities: list[dict[str, Any]]) -> str:
    preferred = [e for e in entities if e.get("kind") not in ("Location",)]
    return catalog_port.entity_ref((preferred or entities)[0])


def _check_not_taken(session: Any, ref: str) -> None:
    if catalog_port.get_by_ref(session, ref) is not None:
        raise ConflictError(f"entity {ref} already exists in the catalog")


@register
class CatalogRegister(Action):
    id = "catalog:register"
    description = (
        "Registers a catalog-info.yaml (repoContentsUrl + catalogInfoPath, or catalogInfoUrl) "
        "in the catalog; entityRef (optional) is the entity it is expected to define, checked "
        "for collisions at submit time."
    )
    input_schema = {
        "type": "object",
        "properties": {
            "catalogInfoUrl": {"type": "string"},
            "repoContentsUrl": {"type": "string"},
            "catalogInfoPath": {"type": "string"},
            "optional": {"type": "boolean"},
            "entityRef": {"type": "string"},
        },
    }
    output_schema = {
        "type": "object",
        "properties": {"entityRef": {"type": "string"}, "catalogInfoUrl": {"type": "string"}},
    }
    precheck_partial_input = True

    def precheck(self, input: dict[str, Any], settings: Settings) -> list[FieldError]:
        if input.get("entityRef") and catalog_port.catalog_available():
            with session_scope(catalog_port.factory_for(settings)) as session:
                _check_not_taken(session, str(input["entityRef"]).lower())
        return []

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        url = catalog_info_url(input)
        if ctx.dry_run:
            ctx.log(f"dry run: would register {url}")
            return {"entityRef": input.get("entityRef", ""), "catalogInfoUrl": url}
        try:
            if _published(url, ctx.settings):
                entities = _documents(_read_published(url, ctx.settings), url)
                location = f"url:{url}"
                for entity in entities:
                    annotations = entity.setdefault("metadata", {}).setdefault("annotations", {})
                    annotations[LOCATION] = location
                    annotations[ORIGIN] = location
                with session_scope(ctx.session_factory) as session:
                    # The catalog refuses entities another location manages (409), and
                    # re-running for the same location updates in place.
                    stored = catalog_port.upsert(session, entities, location_key=location)
                ref = _main_ref(stored or entities)
            else:
                with session_scope(ctx.session_factory) as session:
                    result = catalog_port.add_url_location(session, url, ctx.settings)
                ref = _main_ref(result) if result else str(input.get("entityRef", ""))
        except ActionError:
            if input.get("optional"):
                ctx.log(f"optional registration of {url} skipped")
                return {"catalogInfoUrl": url}
            raise
        except PortalError as exc:
            detail = "; ".join(f"{d.path}: {d.message}" for d in exc.details)
            raise ActionError(f"catalog refused {url}: {exc.message} {detail}".strip()) from exc
        ctx.log(f"registered {ref} from {url}")
        return {"entityRef": ref, "catalogInfoUrl": url}


@register
class CatalogWrite(Action):
    id = "catalog:write"
    description = "Writes an entity as catalog-info.yaml (filePath) into the workspace."
    input_schema = {
        "type": "object",
        "required": ["entity"],
        "properties": {"filePath": {"type": "string"}, "entity": {"type": "object"}},
    }

    def precheck(self, input: dict[str, Any], settings: Settings) -> list[FieldError]:
        entity = input.get("entity")
        if isinstance(entity, dict) and catalog_port.catalog_available():
            with session_scope(catalog_port.factory_for(settings)) as session:
                _check_not_taken(session, catalog_port.entity_ref(entity))
        return []

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        path = inside(ctx.workspace, input.get("filePath") or "catalog-info.yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(input["entity"], sort_keys=False), encoding="utf-8")
        ctx.log(f"wrote {path.relative_to(ctx.workspace.resolve())}")
        return {}


# How many registered entities a refusal lists as choices (the form's picker has them all).
CHOICES_SHOWN = 20


def _fetch(session: Any, input: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The entity ``input`` names, or None and what is wrong with it and how to fix it.
    Registered choices are only listed on failure: the catalog may hold many."""
    allowed = [str(k) for k in input.get("allowedKinds") or []]
    wanted = " or ".join(allowed) or "entity"
    try:
        ref = parse_ref(
            str(input.get("entityRef") or ""),
            default_kind=input.get("defaultKind") or None,
            default_namespace=input.get("defaultNamespace") or "default",
        )
    except RefError as exc:
        return None, f"{exc}; {_fix(wanted, _choices(session, allowed))}"
    if allowed and ref.kind not in {k.lower() for k in allowed}:
        return None, f"{ref} is not a {wanted}; {_fix(wanted, _choices(session, allowed))}"
    entity = catalog_port.get_by_ref(session, str(ref))
    if entity is None:
        choices = _choices(session, allowed)
        none_yet = f" and no {wanted} is yet" if allowed and not choices else ""
        return None, f"{ref} is not registered in the catalog{none_yet}; {_fix(wanted, choices)}"
    return entity, ""


def _choices(session: Any, allowed: list[str]) -> list[str]:
    return [r for kind in allowed for r in catalog_port.refs_of_kind(session, kind)]


def _fix(wanted: str, choices: list[str]) -> str:
    register_first = (
        f"register the {wanted.lower()} first (POST /api/catalog/locations with its "
        "catalog-info.yaml)"
    )
    if not choices:
        return register_first
    pick = ", ".join(choices[:CHOICES_SHOWN]) + (", ..." if len(choices) > CHOICES_SHOWN else "")
    return f"{register_first} or pick one of: {pick}"


@register
class CatalogFetch(Action):
    """Backstage's catalog:fetch for one entity, plus ``allowedKinds``: a template asks
    for an existing owner Group (the form's OwnerPicker) and a missing or wrong-kind
    entity refuses the task at submit (400 on the form field), not halfway through."""

    id = "catalog:fetch"
    description = (
        "Fetches an entity from the catalog (entityRef; defaultKind and defaultNamespace "
        "complete a short ref; allowedKinds restricts its kind). Unless optional, a missing "
        "entity refuses the task at submit time."
    )
    input_schema = {
        "type": "object",
        "required": ["entityRef"],
        "properties": {
            "entityRef": {"type": "string"},
            "defaultKind": {"type": "string"},
            "defaultNamespace": {"type": "string"},
            "allowedKinds": {"type": "array", "items": {"type": "string"}},
            "optional": {"type": "boolean"},
        },
    }
    output_schema = {"type": "object", "properties": {"entity": {"type": ["object", "null"]}}}

    def precheck(self, input: dict[str, Any], settings: Settings) -> list[FieldError]:
        if input.get("optional") or not catalog_port.catalog_available():
            return []
        with session_scope(catalog_port.factory_for(settings)) as session:
            _, problem = _fetch(session, input)
        return [FieldError("input.entityRef", problem)] if problem else []

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        with session_scope(ctx.session_factory) as session:
            entity, problem = _fetch(session, input)
        if entity is None:
            if input.get("optional"):
                ctx.log(f"optional entity not found: {problem}")
                return {"entity": None}
            raise ActionError(problem)
        ctx.log(f"found {catalog_port.entity_ref(entity)}")
        return {"entity": entity}
