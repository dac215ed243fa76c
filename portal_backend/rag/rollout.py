"""Rolling a RAG service to another version of its model or of one of its LoRA adapters
(docs/models.md): one commit in the service's repository, on a branch or, when the owner
asks, on the default branch (then re-provisioned by the task's next step), and the
switch recorded on the service's entity. A rollback is the same roll to the previous
version.

The commit changes two files: ``serving/vllm-args.json`` (the adapter's ``--lora-modules``
entry, or the base model's ``--model``) and ``catalog-info.yaml`` (the Component's
``dependsOn`` names the new version instead of the old). Every check runs before
anything is written: an adapter trained on another base model, or of a rank above the
service's ``--max-lora-rank``, is refused naming both sides (``adapters.fit_problems``).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import ConflictError, ErrorDetail, InputError, NotFoundError
from catalog.model_specs import ADAPTER_TYPE, MODEL_TYPE, family_of
from catalog.refs import RefError, parse_ref, ref_of
from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.provisioning.repo_checkout import CheckoutError, parse_contents_url
from portal_backend.rag import adapters
from portal_backend.rag.adapters import ServingSlots
from portal_backend.rag.operations import entity_of, repo_contents_url, service_name
from portal_backend.settings import Settings

BRANCH_PREFIX = "rag-portal/roll-"
TRAILER = "Rag-Portal-Roll"
STATUS_SECTION = "modelVersions"
VLLM_ARGS = "serving/vllm-args.json"
# The Kubernetes Deployment holds a copy of the same arguments (rendered from vllm-args.json).
VLLM_DEPLOYMENT = "deploy/k8s/base/vllm-deployment.yaml"
CATALOG_INFO = "catalog-info.yaml"
HISTORY = 20


class RollError(Exception):
    """The repository could not be read or written (git, remote host)."""


def _ref(value: str, namespace: str = "default") -> str | None:
    try:
        return str(parse_ref(value, default_kind="resource", default_namespace=namespace))
    except RefError:
        return None


@dataclass
class RollPlan:
    """What a roll writes, decided before anything is written."""

    service: str
    kind: str  # llm-model or lora-adapter
    family: str
    old_ref: str | None
    new_ref: str
    old_version: str | None
    new_version: str
    files: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        before = f"v{self.old_version}" if self.old_version else "none"
        return f"{self.family} {before} -> v{self.new_version}"


def served_versions(session: Session, component: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The llm-model and lora-adapter versions the Component ``dependsOn``."""
    namespace = (component.get("metadata") or {}).get("namespace") or "default"
    refs = [_ref(str(r), namespace) for r in (component.get("spec") or {}).get("dependsOn") or []]
    found = CatalogService(session).get_by_refs([r for r in refs if r])
    return [
        e
        for e in found
        if e is not None and (e.get("spec") or {}).get("type") in (MODEL_TYPE, ADAPTER_TYPE)
    ]


def _lora_entries(args: list[str]) -> list[int]:
    """Indexes of the ``name=source`` entries after ``--lora-modules``."""
    if "--lora-modules" not in args:
        return []
    start = args.index("--lora-modules") + 1
    indexes = []
    for index in range(start, len(args)):
        if args[index].startswith("--"):
            break
        indexes.append(index)
    return indexes


def _swap_adapter(
    args: list[str], old: Mapping[str, Any] | None, new: Mapping[str, Any], service: str
) -> list[str]:
    new_source = str(new["spec"]["source"])
    old_source = str((old or {}).get("spec", {}).get("source", "")) if old else ""
    names = {family_of(dict(new))}
    if old is not None:
        names |= {str(old["metadata"]["name"]).lower(), family_of(dict(old))}
    entries = _lora_entries(args)
    hit = next((i for i in entries if old_source and args[i].partition("=")[2] == old_source), None)
    if hit is None:
        hit = next((i for i in entries if args[i].partition("=")[0].lower() in names), None)
    if hit is None:
        served = ", ".join(args[i] for i in entries) or "none"
        raise ConflictError(
            f"service {service} serves no version of adapter {family_of(dict(new))} "
            f"(its --lora-modules: {served}); add the adapter with the service's form, "
            "then roll it",
            [ErrorDetail("adapter", "not served by the service")],
        )
    changed = list(args)
    changed[hit] = f"{args[hit].partition('=')[0]}={new_source}"
    return changed


def _swap_model(args: list[str], new: Mapping[str, Any]) -> list[str]:
    changed = list(args)
    if "--model" not in changed[:-1]:
        raise ConflictError("serving/vllm-args.json names no --model to change")
    changed[changed.index("--model") + 1] = str(new["spec"]["source"])
    return changed


def _dump_args(args: list[str]) -> str:
    """The vllm-args.json layout the template writes: one argument per line."""
    return "[\n" + ",\n".join(f"  {json.dumps(a)}" for a in args) + "\n]\n"


def _swap_catalog_ref(text: str, old_ref: str | None, new_ref: str) -> str:
    """``catalog-info.yaml`` with the Component's dependsOn naming ``new_ref`` instead of
    ``old_ref`` (added to its first dependsOn list when it named no version before)."""
    if old_ref:
        pattern = re.compile(rf"(?<![-\w.]){re.escape(old_ref)}(?![-\w.])", re.IGNORECASE)
        if pattern.search(text):
            return pattern.sub(new_ref, text)
    match = re.search(r"^(\s*)dependsOn:\s*\n", text, re.MULTILINE)
    if match:
        indent = match.group(1).strip("\n") + "  "
        return text[: match.end()] + f"{indent}- {new_ref}\n" + text[match.end() :]
    spec = re.search(r"^spec:\s*\n", text, re.MULTILINE)
    if spec is None:
        raise ConflictError(f"{CATALOG_INFO} has no spec: to record {new_ref} in")
    return text[: spec.end()] + f"  dependsOn:\n    - {new_ref}\n" + text[spec.end() :]


def plan_roll(
    session: Session,
    component: Mapping[str, Any],
    slots: ServingSlots,
    target_ref: str,
    vllm_args: list[str],
    catalog_info: str,
    deployment: str | None = None,
) -> RollPlan:
    """The files a roll to ``target_ref`` writes; ConflictError (naming both sides) when
    the version cannot be served by the service. Writes nothing."""
    catalog = CatalogService(session)
    wanted = _ref(target_ref)
    target = catalog.get_by_ref(wanted) if wanted else None
    kind = (target or {}).get("spec", {}).get("type")
    if target is None or kind not in (MODEL_TYPE, ADAPTER_TYPE):
        raise NotFoundError(f"{target_ref} is not an llm-model or lora-adapter version")
    family = family_of(target)
    served = served_versions(session, component)
    current = next(
        (e for e in served if e["spec"].get("type") == kind and family_of(e) == family),
        None,
    )
    if current is not None and ref_of(current) == ref_of(target):
        raise ConflictError(
            f"service {slots.service} already serves {ref_of(target)}",
            [ErrorDetail("version", "the service's current version")],
        )
    if kind == ADAPTER_TYPE:
        namespace = target["metadata"].get("namespace") or "default"
        base_ref = _ref(str(target["spec"].get("baseModel", "")), namespace)
        base = catalog.get_by_ref(base_ref) if base_ref else None
        problems = adapters.fit_problems(slots, target, base)
        if problems:
            raise ConflictError(
                f"{ref_of(target)} cannot be served by {slots.service}, nothing was changed: "
                + "; ".join(p.message for p in problems),
                problems,
            )
        args = _swap_adapter(vllm_args, current, target, slots.service)
    else:
        model = next((e for e in served if e["spec"].get("type") == MODEL_TYPE), None)
        if model is not None and family_of(model) != family:
            raise ConflictError(
                f"{ref_of(target)} is a version of {family}, but service {slots.service} "
                f"serves {ref_of(model)} ({family_of(model)}): another model needs the "
                "service's sizing again (create or upgrade it with the new model)",
                [ErrorDetail("version", "another model family")],
            )
        stranded = [
            e
            for e in served
            if e["spec"].get("type") == ADAPTER_TYPE
            and _ref(
                str(e["spec"].get("baseModel", "")), e["metadata"].get("namespace") or "default"
            )
            != ref_of(target)
        ]
        if stranded:
            raise ConflictError(
                f"service {slots.service} also serves "
                + ", ".join(
                    f"{ref_of(e)} (trained on {e['spec'].get('baseModel')})" for e in stranded
                )
                + f", which would not fit {ref_of(target)}: roll those adapters to versions "
                "trained on it first, nothing was changed",
                [ErrorDetail("adapters", ref_of(e)) for e in stranded],
            )
        args = _swap_model(vllm_args, target)
    plan = RollPlan(
        service=slots.service,
        kind=str(kind),
        family=family,
        old_ref=ref_of(current) if current else None,
        new_ref=ref_of(target),
        old_version=str(current["spec"].get("version")) if current else None,
        new_version=str(target["spec"].get("version")),
    )
    plan.files[VLLM_ARGS] = _dump_args(args)
    plan.files[CATALOG_INFO] = _swap_catalog_ref(catalog_info, plan.old_ref, plan.new_ref)
    if deployment is not None:
        plan.files[VLLM_DEPLOYMENT] = _swap_deployment_args(deployment, vllm_args, args)
    return plan


def _swap_deployment_args(text: str, before: list[str], after: list[str]) -> str:
    """The Deployment's copy of the arguments, changed as vllm-args.json was: each changed
    argument replaced where it stands (``"--model", "<id>"`` or a quoted lora entry)."""
    for index, (old, new) in enumerate(zip(before, after, strict=True)):
        if old == new:
            continue
        flag = before[index - 1] if index else ""
        if flag.startswith("--"):
            pattern = re.compile(
                rf"({re.escape(json.dumps(flag))},\s*){re.escape(json.dumps(old))}"
            )
            replacement = "\\g<1>" + json.dumps(new).replace("\\", "\\\\")
            changed, count = pattern.subn(replacement, text)
        else:
            changed, count = (
                text.replace(json.dumps(old), json.dumps(new)),
                text.count(json.dumps(old)),
            )
        if count == 0:
            raise ConflictError(
                f"{VLLM_DEPLOYMENT} does not hold {old!r} as serving/vllm-args.json does: "
                "bring the two in line, then roll"
            )
        text = changed
    return text


def _record(
    session: Session, entity_ref: str, plan: RollPlan, result: dict[str, Any], user_ref: str
) -> None:
    catalog = CatalogService(session)
    entity = catalog.get_by_ref(entity_ref)
    if entity is None:
        return
    status = dict(((entity.get("status") or {}).get(STATUS_SECTION)) or {})
    switch = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "by": user_ref,
        "kind": plan.kind,
        "family": plan.family,
        "from": plan.old_ref,
        "to": plan.new_ref,
        "branch": result["branch"],
        "commit": result["commit"],
        "onDefaultBranch": result["onDefaultBranch"],
    }
    history = [switch, *(status.get("switches") or [])][:HISTORY]
    serving = dict(status.get("serving") or {})
    if result["onDefaultBranch"]:
        serving[plan.family] = plan.new_ref
    catalog.set_status(entity_ref, STATUS_SECTION, {"switches": history, "serving": serving})


def roll(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    entity_ref: str,
    target_ref: str,
    on_default_branch: bool,
    user_ref: str,
    log: Callable[[str], None] = lambda _line: None,
) -> dict[str, Any]:
    """Commit the roll to ``target_ref`` in the service's repository and record it on the
    entity. Returns the branch, the commit and the contents URL a deploy reads."""
    from portal_backend.scaffolder.three_way import MergeError, UpgradeRepository

    ref = str(parse_ref(entity_ref, default_kind="component"))
    with session_scope(factory) as session:
        component = entity_of(session, ref)
        service = service_name(component)
        url = repo_contents_url(session, service, component)
        model_ref = adapters.served_model_ref(session, component)
    try:
        published = parse_contents_url(url, settings)
    except CheckoutError as exc:
        raise RollError(str(exc)) from exc
    with tempfile.TemporaryDirectory(prefix="ragportal-roll-") as scratch:
        try:
            repo = UpgradeRepository.open(Path(scratch), published, settings)
            head = repo.fetch(published.ref)
            if head is None:
                raise RollError(f"{url}: the branch {published.ref} does not exist")
            args_text = repo.read(head, VLLM_ARGS)
            info_text = repo.read(head, CATALOG_INFO)
            deployment_text = repo.read(head, VLLM_DEPLOYMENT)
        except MergeError as exc:
            raise RollError(str(exc)) from exc
        if args_text is None or info_text is None:
            raise ConflictError(
                f"{service}'s repository has no {VLLM_ARGS if args_text is None else CATALOG_INFO}"
                ": it was not made from the rag-service template"
            )
        try:
            args = json.loads(args_text)
        except ValueError as exc:
            raise ConflictError(f"{service}: {VLLM_ARGS} is not JSON ({exc})") from exc
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ConflictError(f"{service}: {VLLM_ARGS} is not a list of strings")
        slots = ServingSlots.from_vllm_args(service, args, model_ref)
        with session_scope(factory) as session:
            plan = plan_roll(
                session, component, slots, target_ref, args, info_text, deployment_text
            )
        log(f"rolling {service}: {plan.label}")
        branch = (
            published.ref
            if on_default_branch
            else f"{BRANCH_PREFIX}{plan.family}-v{plan.new_version}"
        )
        message = (
            f"Roll {plan.family} to version {plan.new_version}"
            + (f" (from {plan.old_version})" if plan.old_version else "")
            + f"\n\n{plan.old_ref or 'none'} -> {plan.new_ref}\n"
            + f"Requested by {user_ref} in rag-portal.\n\n{TRAILER}: {plan.new_ref}\n"
        )
        try:
            tree = repo.tree_of(head)
            for path, content in plan.files.items():
                tree = repo.with_file(tree, path, content)
            commit = repo.commit(tree, message, head)
            expected = head if on_default_branch else repo.fetch(branch)
            repo.push(commit, branch, expected)
        except MergeError as exc:
            raise RollError(str(exc)) from exc
    log(f"pushed {commit[:12]} to {branch}")
    result: dict[str, Any] = {
        "service": service,
        "branch": branch,
        "commit": commit,
        "onDefaultBranch": on_default_branch,
        "from": plan.old_ref,
        "to": plan.new_ref,
        "repoContentsUrl": url,
    }
    with session_scope(factory) as session:
        _record(session, ref, plan, result, user_ref)
    if on_default_branch:
        _refresh(settings, factory, ref, url, log)
    return result


def _refresh(
    settings: Settings,
    factory: sessionmaker[Session],
    ref: str,
    url: str,
    log: Callable[[str], None],
) -> None:
    """Re-read the Component's catalog-info.yaml, so the catalog's dependsOn names the new
    version now rather than at the next refresh (a failure is logged: the commit and the
    status record stand). A published repository's entities are upserted as
    catalog:register did; a registered location is refreshed."""
    from catalog.errors import PortalError
    from portal_backend.scaffolder.actions.base import ActionError
    from portal_backend.scaffolder.actions.catalog import register_published

    try:
        with session_scope(factory) as session:
            catalog = CatalogService(session)
            location_id = catalog.location_id_of(ref)
            if location_id:
                catalog.refresh_location(location_id)
        if not location_id:
            register_published(f"{url.rstrip('/')}/{CATALOG_INFO}", url, settings, factory)
        log(f"the catalog shows the new version on {ref}")
    except (PortalError, ActionError) as exc:
        log(f"the catalog will show the new version at its next refresh ({exc})")


def check_target(value: Any) -> str:
    if not isinstance(value, str) or _ref(value) is None:
        raise InputError(
            "version must name an llm-model or lora-adapter version (resource:default/<name>)",
            [ErrorDetail("version", "an entity ref")],
        )
    return str(_ref(value))


def preview(
    settings: Settings, factory: sessionmaker[Session], entity_ref: str, target_ref: str
) -> RollPlan:
    """The roll's plan, read from the published default branch: a refusal (ConflictError
    naming both sides) comes back to the request before a task is submitted."""
    from portal_backend.provisioning.repo_checkout import read_text

    ref = str(parse_ref(entity_ref, default_kind="component"))
    with session_scope(factory) as session:
        component = entity_of(session, ref)
        service = service_name(component)
        url = repo_contents_url(session, service, component).rstrip("/")
        try:
            args = json.loads(read_text(f"{url}/{VLLM_ARGS}", settings))
            info = read_text(f"{url}/{CATALOG_INFO}", settings)
            try:
                deployment: str | None = read_text(f"{url}/{VLLM_DEPLOYMENT}", settings)
            except CheckoutError:
                deployment = None
        except (CheckoutError, ValueError) as exc:
            raise ConflictError(f"cannot read {service}'s repository: {exc}") from exc
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ConflictError(f"{service}: {VLLM_ARGS} is not a list of strings")
        slots = ServingSlots.from_vllm_args(
            service, args, adapters.served_model_ref(session, component)
        )
        return plan_roll(session, component, slots, target_ref, args, info, deployment)


def roll_template() -> Any:
    """The task: roll (commit, record), then re-provision when it went to the default
    branch (a branch waits for its merge, then a deploy)."""
    from portal_backend.provisioning import targets
    from portal_backend.rag.operations import _template

    return _template(
        "roll-rag-service",
        "Roll RAG service to another model or adapter version",
        {
            "service": {"type": "string", "required": 1},
            "entityRef": {"type": "string", "required": 1},
            "version": {"type": "string", "required": 1},
            "onDefaultBranch": {"type": "boolean", "default": False},
            "target": {"type": "string", "enum": list(targets.TARGET_NAMES), "default": "auto"},
            "cluster": {"type": "string", "default": ""},
            "environment": {"type": "string", "default": "prod"},
        },
        [
            {
                "id": "roll",
                "name": "Commit the new version",
                "action": "rag:roll-version",
                "input": {
                    "entityRef": "${{ parameters.entityRef }}",
                    "version": "${{ parameters.version }}",
                    "onDefaultBranch": "${{ parameters.onDefaultBranch }}",
                },
            },
            {
                "id": "provision",
                "name": "Re-provision",
                "if": "${{ parameters.onDefaultBranch }}",
                "action": "rag:provision",
                "input": {
                    "service": "${{ parameters.service }}",
                    "entityRef": "${{ parameters.entityRef }}",
                    "repoContentsUrl": "${{ steps.roll.output.repoContentsUrl }}",
                    "target": "${{ parameters.target }}",
                    "environment": "${{ parameters.environment }}",
                    "cluster": "${{ parameters.cluster }}",
                },
            },
        ],
    )


def submit_roll(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    entity_ref: str,
    version: str,
    on_default_branch: bool,
    target: str | None,
    cluster: str | None,
    environment: str | None,
    user_ref: str,
    dispatch: Any,
) -> tuple[str, RollPlan]:
    """Check the roll (refused here, before a task exists, when the version does not fit),
    then submit it as a task."""
    from portal_backend.scaffolder import engine

    ref = str(parse_ref(entity_ref, default_kind="component"))
    target_ref = check_target(version)
    plan = preview(settings, factory, ref, target_ref)
    values = {
        "service": plan.service,
        "entityRef": ref,
        "version": target_ref,
        "onDefaultBranch": on_default_branch,
        "target": target or "auto",
        "cluster": cluster or "",
        "environment": environment or "prod",
    }
    task_id = engine.submit_template(
        settings,
        factory,
        template=roll_template(),
        values=values,
        secrets=None,
        user_ref=user_ref,
        dispatch=dispatch,
    )
    return task_id, plan
