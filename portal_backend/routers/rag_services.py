"""RAG services' deployments over HTTP: status, reconcile now, tear down; secret store.

Thin: every operation is ``Provisioner`` domain code.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from catalog.errors import (
    ConflictError,
    ErrorDetail,
    InputError,
    NotFoundError,
    ServiceUnavailableError,
    UnprocessableError,
)
from portal_backend import metadata_keys
from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.deps import AdminPrincipal, ReadPrincipal, WritePrincipal, scaffolder_dispatch
from portal_backend.provisioning import targets
from portal_backend.provisioning.kube import KubeError
from portal_backend.provisioning.local.runtime import LocalRuntime, LocalRuntimeError
from portal_backend.provisioning.plan import SERVICE_NAME
from portal_backend.provisioning.secrets import GLOBAL, SecretStore
from portal_backend.provisioning.service import Provisioner, ProvisioningError
from portal_backend.rag import access, adapters, ask, operations, rollout
from portal_backend.rag.api_models import AskBody

router = APIRouter(prefix="/api/rag", tags=["rag"])
SECRET_NAME = r"^[a-z0-9]([-a-z0-9_.]{0,98}[a-z0-9])?$"


def _provisioner(request: Request) -> Provisioner:
    return Provisioner(request.app.state.settings, request.app.state.session_factory)


def _check_name(namespace: str, name: str) -> None:
    if not SERVICE_NAME.match(name):
        raise InputError(
            f"{name!r} is not a RAG service name",
            [ErrorDetail("name", "lowercase letters, digits and '-', at most 63 characters")],
        )
    if not SERVICE_NAME.match(namespace):
        raise InputError(f"{namespace!r} is not a catalog namespace")


def _check_owner(
    request: Request, principal: Principal, namespace: str, name: str, action: str = "tear down"
) -> None:
    """Non-admin tokens bound to a group may only change what their group owns."""
    with session_scope(request.app.state.session_factory) as session:
        access.check_may_change(session, principal, namespace, name, action)


@router.get("/services/{namespace}/{name}/deployment")
def deployment(
    namespace: str, name: str, request: Request, principal: Principal = ReadPrincipal
) -> dict[str, Any]:
    _check_name(namespace, name)
    record = _provisioner(request).record(name)
    if record is None:
        raise NotFoundError(f"RAG service {namespace}/{name} was never provisioned or planned")
    return record


@router.post("/services/{namespace}/{name}/reconcile")
def reconcile(
    namespace: str, name: str, request: Request, principal: Principal = WritePrincipal
) -> dict[str, Any]:
    """Compare the live objects with the desired bundle now, instead of at the next beat."""
    _check_name(namespace, name)
    _check_owner(request, principal, namespace, name, "reconcile")
    provisioner = _provisioner(request)
    if provisioner.record(name) is None:
        raise NotFoundError(f"RAG service {namespace}/{name} was never provisioned or planned")
    try:
        result = provisioner.reconcile(name)
    except KubeError as exc:
        raise ServiceUnavailableError(f"the cluster did not answer: {exc.message}") from exc
    return provisioner.record(name) or result or {}


@router.delete("/services/{namespace}/{name}")
def teardown(
    namespace: str, name: str, request: Request, principal: Principal = WritePrincipal
) -> dict[str, Any]:
    """Remove the service wherever it runs (every cluster object labelled for it, or its
    local processes, ports and files), then its catalog entities, secrets and tokens.

    Idempotent: a second call finds nothing and says so.
    """
    _check_name(namespace, name)
    _check_owner(request, principal, namespace, name)
    try:
        result = targets.teardown(
            request.app.state.settings, request.app.state.session_factory, name
        )
    except ProvisioningError as exc:
        raise UnprocessableError(exc.message) from exc
    except KubeError as exc:
        if exc.status in (401, 403):
            raise ServiceUnavailableError(
                f"the cluster refused the teardown ({exc.status}): {exc.message}"
            ) from exc
        raise ServiceUnavailableError(f"the cluster did not answer: {exc.message}") from exc
    result["label"] = f"{metadata_keys.SERVICE}={name}"
    return result


@router.post("/services/{namespace}/{name}/ask")
def ask_service(
    namespace: str, name: str, body: AskBody, request: Request, principal: Principal = ReadPrincipal
) -> dict[str, Any]:
    """Ask the running service a question through its own ``/query`` (counted in its SLA):
    the answer with citations, token usage, latency and cost."""
    _check_name(namespace, name)
    return ask.ask(request.app.state.session_factory, name, body.question, adapter=body.adapter)


class DeployBody(BaseModel):
    target: str = Field(default=targets.AUTO, description="auto, local, plan or kubernetes")
    cluster: str | None = Field(default=None, max_length=100)
    environment: str | None = Field(default=None, max_length=63)


@router.post("/services/{namespace}/{name}/deploy", status_code=202)
def deploy(
    namespace: str,
    name: str,
    request: Request,
    body: DeployBody | None = None,
    principal: Principal = WritePrincipal,
) -> dict[str, Any]:
    """Deploy (again) from the published repository, as a scaffolder task with a live log."""
    _check_name(namespace, name)
    _check_owner(request, principal, namespace, name, "deploy")
    body = body or DeployBody()
    if body.target not in targets.TARGET_NAMES:
        raise InputError(
            f"unknown target {body.target!r}",
            [ErrorDetail("target", f"use one of {', '.join(targets.TARGET_NAMES)}")],
        )
    task_id = operations.submit_deploy(
        request.app.state.settings,
        request.app.state.session_factory,
        entity_ref=f"component:{namespace}/{name}",
        target=body.target,
        cluster=body.cluster,
        environment=body.environment,
        user_ref=principal.subject,
        dispatch=scaffolder_dispatch(request),
    )
    return {"taskId": task_id, "taskUrl": f"/tasks/{task_id}"}


@router.post("/services/{namespace}/{name}/stop")
def stop(
    namespace: str, name: str, request: Request, principal: Principal = WritePrincipal
) -> dict[str, Any]:
    """Stop a service on the local runtime, keeping its data (deploy starts it again)."""
    _check_name(namespace, name)
    _check_owner(request, principal, namespace, name, "stop")
    runtime = LocalRuntime(request.app.state.settings, request.app.state.session_factory)
    try:
        return runtime.stop(name)
    except LocalRuntimeError as exc:
        raise ConflictError(str(exc)) from exc


class EvaluateBody(BaseModel):
    judge: bool = Field(default=True, description="also judge the answers (hallucination rate)")


@router.post("/services/{namespace}/{name}/evaluate", status_code=202)
def evaluate(
    namespace: str,
    name: str,
    request: Request,
    body: EvaluateBody | None = None,
    principal: Principal = WritePrincipal,
) -> dict[str, Any]:
    """Run the repository's evaluation set against the running service (a task); the
    scores land on the entity's Evaluation panel."""
    _check_name(namespace, name)
    _check_owner(request, principal, namespace, name, "evaluate")
    task_id = operations.submit_evaluate(
        request.app.state.settings,
        request.app.state.session_factory,
        entity_ref=f"component:{namespace}/{name}",
        judge=(body or EvaluateBody()).judge,
        user_ref=principal.subject,
        dispatch=scaffolder_dispatch(request),
    )
    return {"taskId": task_id, "taskUrl": f"/tasks/{task_id}"}


class SecretValue(BaseModel):
    value: str = Field(min_length=1, max_length=64 * 1024)


@router.put("/secrets/{secret_name}", status_code=204)
def put_secret(
    secret_name: str, body: SecretValue, request: Request, principal: Principal = AdminPrincipal
) -> None:
    """Store a platform-wide secret (e.g. ``hf-token``); the value is never returned."""
    import re

    if not re.match(SECRET_NAME, secret_name):
        raise InputError(
            f"{secret_name!r} is not a secret name",
            [ErrorDetail("secret_name", "lowercase letters, digits, '-', '_' and '.'")],
        )
    with session_scope(request.app.state.session_factory) as session:
        SecretStore(session, request.app.state.settings).set(GLOBAL, secret_name, body.value)


@router.get("/secrets")
def list_secrets(request: Request, principal: Principal = AdminPrincipal) -> dict[str, Any]:
    with session_scope(request.app.state.session_factory) as session:
        names = SecretStore(session, request.app.state.settings).names(GLOBAL)
    return {"items": [{"name": n, "scope": GLOBAL} for n in sorted(names)]}


@router.get("/adapters/{ref:path}/diff")
def adapter_diff(
    ref: str,
    request: Request,
    from_: str | None = Query(
        default=None, alias="from", description="version, name or ref (default: the one before)"
    ),
    to: str | None = Query(
        default=None, description="version, name or ref (default: the one {ref} names, else newest)"
    ),
    principal: Principal = ReadPrincipal,
) -> dict[str, Any]:
    """Configuration and per-layer weight diff of two versions of a LoRA adapter."""
    with session_scope(request.app.state.session_factory) as session:
        return adapters.adapter_diff(session, request.app.state.settings, ref, from_, to)


@router.get("/models/{ref:path}/adapters")
def model_adapters(
    ref: str, request: Request, principal: Principal = ReadPrincipal
) -> dict[str, Any]:
    """The lora-adapter versions trained on ``ref``: an llm-model version (ref or name), a
    model family (every version) or a checkpoint (a version's source); oldest first."""
    with session_scope(request.app.state.session_factory) as session:
        items = adapters.adapters_for_model(session, ref)
    return {"items": items}


@router.get("/services/{namespace}/{name}/adapter-fit")
def adapter_fit(
    namespace: str,
    name: str,
    request: Request,
    adapter: str = Query(description="the lora-adapter version's ref"),
    principal: Principal = ReadPrincipal,
) -> dict[str, Any]:
    """Whether the service can serve ``adapter`` (409 naming both sides when not)."""
    _check_name(namespace, name)
    with session_scope(request.app.state.session_factory) as session:
        slots = adapters.service_slots(
            session, request.app.state.settings, f"component:{namespace}/{name}"
        )
        found, base = adapters.check_fits(session, slots, adapter)
    return {
        "fits": True,
        "adapter": found["metadata"]["name"],
        "baseModel": found["spec"].get("baseModel"),
        "rank": found["spec"].get("rank"),
        "service": {
            "name": slots.service,
            "model": slots.model,
            "modelRef": slots.model_ref,
            "maxLoraRank": slots.max_lora_rank,
        },
    }


class RollBody(BaseModel):
    version: str = Field(
        description="the llm-model or lora-adapter version to serve, e.g. "
        "resource:default/hr-adapter-v3 (the previous one rolls back)"
    )
    onDefaultBranch: bool = Field(
        default=False,
        description="commit on the default branch and re-provision (else a branch to merge)",
    )
    target: str = Field(default="auto", description="deploy target of the re-provision")
    cluster: str | None = None
    environment: str | None = None


@router.post("/services/{namespace}/{name}/roll", status_code=202)
def roll(
    namespace: str,
    name: str,
    body: RollBody,
    request: Request,
    principal: Principal = WritePrincipal,
) -> dict[str, Any]:
    """Roll the service to another model or adapter version (a task: commit, record on
    the entity, re-provision); 409 naming both sides when the version does not fit."""
    _check_name(namespace, name)
    _check_owner(request, principal, namespace, name, "roll")
    if body.target not in targets.TARGET_NAMES:
        raise InputError(
            f"unknown target {body.target!r}",
            [ErrorDetail("target", f"use one of {', '.join(targets.TARGET_NAMES)}")],
        )
    task_id, plan = rollout.submit_roll(
        request.app.state.settings,
        request.app.state.session_factory,
        entity_ref=f"component:{namespace}/{name}",
        version=body.version,
        on_default_branch=body.onDefaultBranch,
        target=body.target,
        cluster=body.cluster,
        environment=body.environment,
        user_ref=principal.subject,
        dispatch=scaffolder_dispatch(request),
    )
    return {
        "taskId": task_id,
        "taskUrl": f"/tasks/{task_id}",
        "from": plan.old_ref,
        "to": plan.new_ref,
    }
