"""Upgrading a generated repository to a newer version of its template.

``submit_upgrade`` works out, before any task exists, everything a person could get
wrong: which service, which template and version it is on (its answers file, else its
Component's annotations, else the request's ``fromVersion``: adoption), which version
it goes to, and the answers for that version (questions the new version no longer asks
are dropped; new ones take the request's values or their defaults, validated against
the new form). Problems are 400s naming the field; a service already on the version is
answered ``up-to-date`` with no task; a service with an upgrade still running is a 409.
The work itself is the task's ``template:upgrade`` step (actions/upgrade.py).

The per-service lock is the upgrade row's ``active_ref`` (unique): written before the
task, so two requests at once cannot both start one; taken over once the holder's task
has ended.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import ConflictError, ErrorDetail, InputError, NotFoundError, PortalError
from catalog.refs import RefError, parse_ref
from portal_backend import metadata_keys
from portal_backend.db import session_scope
from portal_backend.provisioning.repo_checkout import (
    CheckoutError,
    PublishedTree,
    parse_contents_url,
    read_text,
)
from portal_backend.scaffolder import answers, catalog_port, engine, store, version_store, versions
from portal_backend.scaffolder.actions.catalog import register_published
from portal_backend.scaffolder.tables import ScaffolderStep, ScaffolderTask
from portal_backend.scaffolder.templates import Template, validate_values, with_defaults
from portal_backend.scaffolder.three_way import branch_name
from portal_backend.scaffolder.upgrade_tables import TemplateUpgrade
from portal_backend.settings import Settings

NAMESPACE = "rag-portal"
LOCATION = "backstage.io/managed-by-location"
CATALOG_FILE = "catalog-info.yaml"
# A lock row whose task was never created (the submitting process died in between).
ORPHAN_LOCK_AFTER = timedelta(minutes=2)


@dataclass
class UpgradePlan:
    entity_ref: str
    service: str
    location_url: str  # the Component's catalog-info.yaml, on the default branch
    published: PublishedTree
    template_ref: str
    from_version: str
    to_version: str
    from_values: dict[str, Any]
    to_values: dict[str, Any]
    dropped: list[str] = field(default_factory=list)
    adopted: bool = False  # no answers file yet: the upgrade branch adds one
    annotated_version: str | None = None  # what the Component's annotation says

    @property
    def up_to_date(self) -> bool:
        return not self.adopted and self.from_version == self.to_version


def upgrade_template() -> Template:
    """The operation's template (built here, not in the catalog: never a Create choice)."""
    properties = {
        "upgradeId": {"type": "string"},
        "entityRef": {"type": "string"},
        "locationUrl": {"type": "string"},
        "templateRef": {"type": "string"},
        "fromVersion": {"type": "string"},
        "toVersion": {"type": "string"},
        "fromValues": {"type": "object"},
        "toValues": {"type": "object"},
        "droppedQuestions": {"type": "array", "items": {"type": "string"}},
        "adopted": {"type": "boolean"},
    }
    entity = {
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": {"name": "upgrade-from-template", "namespace": NAMESPACE,
                     "title": "Upgrade from template"},
        "spec": {
            "type": "operation",
            "parameters": [{"required": sorted(properties), "properties": properties}],
            "steps": [
                {
                    "id": "upgrade",
                    "name": "Merge the template's changes into a branch",
                    "action": "template:upgrade",
                    "input": {k: "${{ parameters." + k + " }}" for k in properties},
                }
            ],
            "output": {
                "text": [{"title": "Upgrade", "content": "${{ steps['upgrade'].output.summary }}"}]
            },
        },
    }  # fmt: skip
    return Template(f"template:{NAMESPACE}/upgrade-from-template", entity, None, False)


def entity_of(session: Session, entity_ref: str) -> tuple[str, dict[str, Any]]:
    try:
        ref = str(parse_ref(entity_ref, default_kind="component"))
    except RefError as exc:
        raise InputError(str(exc), [ErrorDetail("entityRef", str(exc))]) from exc
    entity = catalog_port.get_by_ref(session, ref)
    if entity is None:
        raise NotFoundError(f"{ref} is not in the catalog")
    if entity.get("kind") != "Component":
        raise InputError(
            f"{ref} is a {entity.get('kind')}; upgrades apply to generated Components",
            [ErrorDetail("entityRef", "give a component:<namespace>/<name> ref")],
        )
    return ref, entity


def _annotations(entity: dict[str, Any]) -> dict[str, str]:
    return dict((entity.get("metadata") or {}).get("annotations") or {})


def _location(
    entity_ref: str, entity: dict[str, Any], settings: Settings
) -> tuple[str, PublishedTree]:
    """Where the Component's catalog-info.yaml lives: a repository this portal published."""
    location = _annotations(entity).get(LOCATION, "")
    url = location.removeprefix("url:")
    try:
        tree = parse_contents_url(url, settings)
    except CheckoutError as exc:
        raise ConflictError(
            f"{entity_ref} was not registered from a repository this portal can write to "
            f"({LOCATION} is {location or 'missing'}): {exc}"
        ) from exc
    if tree.path != CATALOG_FILE:
        raise ConflictError(
            f"{entity_ref}: upgrades handle repositories whose {CATALOG_FILE} is at the root "
            f"(this one is {tree.path})"
        )
    return url, tree


def _read_answers(location_url: str, settings: Settings) -> answers.Answers | None:
    url = location_url[: -len(CATALOG_FILE)] + answers.PATH
    try:
        text = read_text(url, settings)
    except CheckoutError as exc:
        if "does not exist" in str(exc) or "exists on disk, but not in" in str(exc):
            return None
        raise ConflictError(f"cannot read {answers.PATH} of the repository: {exc}") from exc
    try:
        return answers.parse(text)
    except answers.AnswersFileError as exc:
        raise ConflictError(f"{exc}; fix it on the default branch, then upgrade again") from exc


def creating_task_values(
    session: Session, template_ref: str, entity_ref: str
) -> dict[str, Any] | None:
    """The answers of the task that created ``entity_ref`` (for a repository generated
    before answers files existed), if its row is still there."""
    rows = session.execute(
        select(ScaffolderTask.values, ScaffolderStep.output)
        .join(ScaffolderStep, ScaffolderStep.task_id == ScaffolderTask.id)
        .where(
            ScaffolderTask.template_ref == template_ref,
            ScaffolderTask.status == "completed",
            ScaffolderStep.action == "catalog:register",
            ScaffolderStep.status == "completed",
        )
        .order_by(ScaffolderTask.created_at.desc())
    ).all()
    for values, output in rows:
        if str((output or {}).get("entityRef", "")).lower() == entity_ref:
            return dict(values or {})
    return None


def _recorded(session: Session, template_ref: str) -> list[str]:
    known = [v.version for v in version_store.list_versions(session, template_ref)]
    if not known:
        raise ConflictError(
            f"no version of {template_ref} is recorded: give its template.yaml a spec.version "
            "and register it (it is recorded at start-up and when a task of it is submitted)"
        )
    return known


def _version_field(value: str | None, name: str, known: list[str]) -> str | None:
    if value in (None, ""):
        return None
    try:
        version = versions.normalize(str(value))
    except versions.VersionError as exc:
        raise InputError(str(exc), [ErrorDetail(name, str(exc))]) from exc
    if version not in known:
        message = f"version {version} is not recorded (recorded: {', '.join(known)})"
        raise InputError(message, [ErrorDetail(name, message)])
    return version


def _validate(template: Template, values: dict[str, Any], what: str) -> dict[str, Any]:
    filled = with_defaults(template, values)
    try:
        validate_values(template, filled)
    except InputError as exc:
        raise InputError(
            f"the answers do not fit {what}: give the missing or changed ones in values "
            f"({exc.message})",
            exc.details,
        ) from exc
    return filled


def plan_upgrade(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    entity_ref: str,
    to_version: str | None = None,
    values: dict[str, Any] | None = None,
    from_version: str | None = None,
) -> UpgradePlan:
    if values is not None and not isinstance(values, dict):
        raise InputError("values must be an object", [ErrorDetail("values", "expected an object")])
    with session_scope(factory) as session:
        ref, entity = entity_of(session, entity_ref)
    location_url, published = _location(ref, entity, settings)
    recorded = _read_answers(location_url, settings)
    notes = _annotations(entity)
    adopted = recorded is None
    template_ref = recorded.template if recorded else notes.get(metadata_keys.SOURCE_TEMPLATE)
    if not template_ref:
        raise ConflictError(
            f"{ref} has no {answers.PATH} and its Component no "
            f"{metadata_keys.SOURCE_TEMPLATE} annotation: the portal cannot tell which "
            "template generated it"
        )
    template_ref = template_ref.lower()
    with session_scope(factory) as session:
        known = _recorded(session, template_ref)
        asked_from = _version_field(from_version, "fromVersion", known)
        asked_to = _version_field(to_version, "toVersion", known)
        base_values = dict(recorded.values) if recorded else None
        if base_values is None:
            base_values = creating_task_values(session, template_ref, ref) or {}
    current = (recorded.version if recorded else None) or notes.get(metadata_keys.TEMPLATE_VERSION)
    if current:
        current = _version_field(current, "fromVersion", known)
        if asked_from and asked_from != current:
            message = f"the repository is on {current} (its answers file or Component says so)"
            raise InputError(message, [ErrorDetail("fromVersion", message)])
    current = current or asked_from
    if current is None:
        message = (
            f"cannot tell which version of {template_ref} {ref} was generated from (no "
            f"{answers.PATH}, no {metadata_keys.TEMPLATE_VERSION} annotation): give "
            f"fromVersion, one of {', '.join(known)}"
        )
        raise InputError(message, [ErrorDetail("fromVersion", message)])
    target = asked_to or versions.latest(known) or current
    if versions.parse(target) < versions.parse(current):
        message = f"{ref} is on {current}; an upgrade cannot go back to {target}"
        raise InputError(message, [ErrorDetail("toVersion", message)])
    extra = dict(values or {})
    old = version_store.materialize(settings, factory, template_ref, current)
    if adopted:
        base_values = {**base_values, **extra}  # the original answers are unknown: asked
    base_values = _validate(old, base_values, f"version {current} of {template_ref}")
    new = version_store.materialize(settings, factory, template_ref, target)
    kept, dropped = answers.for_new_version(new.spec.get("parameters"), base_values)
    target_values = _validate(new, {**kept, **extra}, f"version {target} of {template_ref}")
    return UpgradePlan(
        entity_ref=ref,
        service=str(entity["metadata"]["name"]),
        location_url=location_url,
        published=published,
        template_ref=template_ref,
        from_version=current,
        to_version=target,
        from_values=answers.recordable(old.spec.get("parameters"), base_values),
        to_values=answers.recordable(new.spec.get("parameters"), target_values),
        dropped=dropped,
        adopted=adopted,
        annotated_version=notes.get(metadata_keys.TEMPLATE_VERSION),
    )


def _holder_finished(session: Session, holder: TemplateUpgrade) -> bool:
    if holder.task_id is None:
        created = holder.created_at
        if created.tzinfo is None:  # SQLite hands back naive UTC
            created = created.replace(tzinfo=UTC)
        return datetime.now(UTC) - created > ORPHAN_LOCK_AFTER
    task = store.get_task(session, holder.task_id)
    return task is None or task.status in store.TERMINAL


def _acquire(
    factory: sessionmaker[Session], plan: UpgradePlan, user_ref: str, fleet_id: str | None
) -> str:
    """Write the upgrade row holding the service's lock; 409 while another one runs."""
    for _attempt in range(3):
        upgrade_id = str(uuid.uuid4())
        try:
            with session_scope(factory) as session:
                session.add(
                    TemplateUpgrade(
                        id=upgrade_id,
                        entity_ref=plan.entity_ref,
                        template_ref=plan.template_ref,
                        from_version=plan.from_version,
                        to_version=plan.to_version,
                        fleet_id=fleet_id,
                        active_ref=plan.entity_ref,
                        created_by=user_ref,
                        created_at=datetime.now(UTC),
                    )
                )
            return upgrade_id
        except IntegrityError:
            with session_scope(factory) as session:
                holder = session.scalars(
                    select(TemplateUpgrade).where(TemplateUpgrade.active_ref == plan.entity_ref)
                ).first()
                if holder is None:
                    continue  # released meanwhile
                if not _holder_finished(session, holder):
                    raise ConflictError(
                        f"an upgrade of {plan.entity_ref} is already running (task "
                        f"{holder.task_id or 'being created'}, {holder.from_version} -> "
                        f"{holder.to_version}): wait for it to finish, or cancel it"
                    ) from None
                session.execute(
                    update(TemplateUpgrade)
                    .where(
                        TemplateUpgrade.id == holder.id,
                        TemplateUpgrade.active_ref == plan.entity_ref,
                    )
                    .values(active_ref=None)
                )
    raise ConflictError(f"an upgrade of {plan.entity_ref} is being started by another request")


def release(factory: sessionmaker[Session], upgrade_id: str, **values: Any) -> None:
    with session_scope(factory) as session:
        session.execute(
            update(TemplateUpgrade)
            .where(TemplateUpgrade.id == upgrade_id)
            .values(active_ref=None, **values)
        )


def submit_upgrade(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    entity_ref: str,
    user_ref: str,
    dispatch: engine.Dispatch,
    to_version: str | None = None,
    values: dict[str, Any] | None = None,
    from_version: str | None = None,
    fleet_id: str | None = None,
) -> dict[str, Any]:
    """Start the upgrade task of one service (or answer that it is up to date)."""
    plan = plan_upgrade(
        settings,
        factory,
        entity_ref=entity_ref,
        to_version=to_version,
        values=values,
        from_version=from_version,
    )
    answer: dict[str, Any] = {
        "entityRef": plan.entity_ref,
        "templateRef": plan.template_ref,
        "fromVersion": plan.from_version,
        "toVersion": plan.to_version,
    }
    if plan.annotated_version != plan.from_version and not plan.adopted:
        # A team merged an earlier upgrade branch: the catalog learns the version now.
        register_published(
            plan.location_url, plan.location_url.rsplit("/", 1)[0], settings, factory
        )
    if plan.up_to_date:
        return {**answer, "status": "up-to-date", "id": None}
    upgrade_id = _acquire(factory, plan, user_ref, fleet_id)
    task_values = {
        "upgradeId": upgrade_id,
        "entityRef": plan.entity_ref,
        "locationUrl": plan.location_url,
        "templateRef": plan.template_ref,
        "fromVersion": plan.from_version,
        "toVersion": plan.to_version,
        "fromValues": plan.from_values,
        "toValues": plan.to_values,
        "droppedQuestions": plan.dropped,
        "adopted": plan.adopted,
    }
    try:
        task_id = engine.submit_template(
            settings,
            factory,
            template=upgrade_template(),
            values=task_values,
            secrets=None,
            user_ref=user_ref,
            dispatch=dispatch,
        )
    except (PortalError, Exception):
        with session_scope(factory) as session:  # nothing half-written: no lock left
            row = session.get(TemplateUpgrade, upgrade_id)
            if row is not None:
                session.delete(row)
        raise
    with session_scope(factory) as session:
        session.execute(
            update(TemplateUpgrade).where(TemplateUpgrade.id == upgrade_id).values(task_id=task_id)
        )
    return {
        **answer,
        "status": "submitted",
        "id": task_id,
        "taskUrl": f"/tasks/{task_id}",
        "branch": branch_name(plan.to_version),
        "adopted": plan.adopted,
        "droppedQuestions": plan.dropped,
    }
