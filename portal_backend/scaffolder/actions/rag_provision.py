"""rag:provision: deploy a generated repository to its target.

The target (``provisioning.targets.choose``): a Kubernetes cluster (the deploy/k8s bundle
applied and waited for), the local runtime (the service started as supervised processes
on this machine, waited for until it answers), or a plan (rendered, validated and
recorded, nothing applied). Dry runs only render and validate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from portal_backend.provisioning import records, targets
from portal_backend.provisioning.local.runtime import (
    LocalRequest,
    LocalRuntime,
    LocalRuntimeCancelled,
    LocalRuntimeError,
)
from portal_backend.provisioning.plan import SERVICE_NAME
from portal_backend.provisioning.repo_checkout import CheckoutError, export_tree, head_commit
from portal_backend.provisioning.service import (
    Provisioner,
    ProvisioningCancelled,
    ProvisioningError,
    ProvisionRequest,
)
from portal_backend.scaffolder.actions.base import (
    Action,
    ActionContext,
    ActionError,
    FieldError,
    TaskCancelled,
    register,
)
from portal_backend.scaffolder.actions.fs import inside
from portal_backend.settings import Settings


def _repo_from_url(url: str, ctx: ActionContext) -> tuple[Path, str]:
    """The published repository (whole: its CI says which images exist) and its commit."""
    try:
        commit = head_commit(url, ctx.settings)
        root = export_tree(url, ctx.workspace / ".provision" / ctx.step_id, ctx.settings)
    except CheckoutError as exc:
        raise ActionError(str(exc)) from exc
    return root, commit


def flag(value: Any) -> bool:
    # Template expressions render to strings: "false" must stay false.
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


@register
class RagProvisionAction(Action):
    id = "rag:provision"
    description = (
        "Deploys a generated repository. To a Kubernetes cluster: applies the deploy/k8s "
        "bundle with server-side apply (field manager rag-portal) in dependency order, "
        "creates its secrets from the portal's secret store, checks GPU capacity and waits "
        "until every workload is ready. To the local runtime (the default without a "
        "cluster): runs the LLM server on CPU, the ingestion and the API as supervised "
        "processes and waits until the API answers. As a plan: renders, validates and "
        "records the objects only."
    )
    input_schema = {
        "type": "object",
        "required": ["service"],
        "properties": {
            "service": {"type": "string", "description": "service name (= namespace)"},
            "target": {
                "type": "string",
                "enum": list(targets.TARGET_NAMES),
                "default": targets.AUTO,
                "description": "auto: the environment's deploy target, else the default "
                "cluster, else the local runtime",
            },
            "cluster": {"type": "string", "description": "configured cluster; default if unset"},
            "environment": {
                "type": "string",
                "description": "overlay under deploy/k8s/overlays (e.g. dev, prod)",
            },
            "repoContentsUrl": {"type": "string"},
            "path": {
                "type": "string",
                "description": "folder in the workspace holding deploy/ (default: workspace root)",
            },
            "allowCpuFallback": {"type": ["boolean", "string"], "default": False},
            "gpuClass": {"type": "string"},
            "entityRef": {"type": "string"},
        },
    }
    output_schema = {
        "type": "object",
        "properties": {
            "state": {"type": "string"},
            "target": {"type": "string"},
            "endpoint": {"type": ["string", "null"]},
            "cluster": {"type": ["string", "null"]},
            "namespace": {"type": "string"},
            "objects": {"type": "array"},
            "fallback": {"type": "array"},
            "apiCalls": {"type": "integer"},
            "message": {"type": "string"},
        },
    }

    def precheck(self, input: dict[str, Any], settings: Settings) -> list[FieldError]:
        errors = []
        service = str(input.get("service") or "")
        if not SERVICE_NAME.match(service):
            errors.append(
                FieldError(
                    "service",
                    f"{service!r} is not a Kubernetes namespace name: lowercase letters, digits "
                    "and '-', at most 63 characters, starting and ending alphanumeric",
                )
            )
        cluster = input.get("cluster")
        if cluster and cluster not in settings.clusters:
            known = ", ".join(sorted(settings.clusters)) or "none configured"
            errors.append(FieldError("cluster", f"unknown cluster {cluster!r} ({known})"))
        else:
            try:
                targets.choose(
                    settings,
                    environment=input.get("environment"),
                    target=input.get("target"),
                    cluster=cluster,
                )
            except ProvisioningError as exc:
                errors.append(FieldError("target", exc.message))
        return errors

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        problems = self.precheck(input, ctx.settings)
        if problems:
            raise ActionError("; ".join(f"{p.path}: {p.message}" for p in problems))
        target = targets.choose(
            ctx.settings,
            environment=input.get("environment"),
            target=input.get("target"),
            cluster=input.get("cluster"),
        )
        ctx.log(f"deploying to {target.describe()}")
        if target.kind == records.LOCAL and not ctx.dry_run:
            return self._run_local(ctx, input)
        # A dry run publishes nothing, so its repoContentsUrl points nowhere: the rendered
        # workspace holds the same bundle.
        repo_dir: Path | None = None
        commit: str | None = None
        if input.get("repoContentsUrl") and not input.get("path") and not ctx.dry_run:
            repo_dir, commit = _repo_from_url(str(input["repoContentsUrl"]), ctx)
            k8s_dir = repo_dir / "deploy" / "k8s"
        else:
            path = str(input.get("path") or "").strip("/")
            base = inside(ctx.workspace, path) if path not in ("", ".") else ctx.workspace
            k8s_dir = base / "deploy" / "k8s"
        if not k8s_dir.is_dir():
            raise ActionError(f"no deploy/k8s bundle at {k8s_dir.relative_to(ctx.workspace)}")
        request = ProvisionRequest(
            service=str(input["service"]),
            bundle_dir=k8s_dir,
            environment=input.get("environment"),
            cluster=target.cluster,
            plan_only=target.kind == records.PLAN,
            plan_reason=target.reason or "no Kubernetes cluster is configured",
            allow_cpu_fallback=flag(input.get("allowCpuFallback", False)),
            gpu_class=input.get("gpuClass"),
            entity_ref=input.get("entityRef"),
            repo_dir=repo_dir,
            commit=commit,
        )
        provisioner = Provisioner(
            ctx.settings, ctx.session_factory, log=ctx.log, is_cancelled=ctx.is_cancelled
        )
        try:
            if ctx.dry_run:
                objects = provisioner.render(request)
                ctx.log(f"dry run: {len(objects)} objects rendered and valid; nothing applied")
                return {
                    "state": "Planned",
                    "cluster": None,
                    "namespace": request.service,
                    "objects": [
                        {"kind": o["kind"], "name": o["metadata"]["name"]} for o in objects
                    ],
                    "message": "dry run",
                }
            outcome = provisioner.provision(request)
        except ProvisioningCancelled as exc:
            raise TaskCancelled() from exc
        except ProvisioningError as exc:
            raise ActionError(exc.message) from exc
        return outcome.as_dict()

    def _run_local(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        url = input.get("repoContentsUrl")
        if not url:
            raise ActionError(
                "the local runtime deploys a published repository: give repoContentsUrl "
                "(the publish step's output)"
            )
        runtime = LocalRuntime(
            ctx.settings, ctx.session_factory, log=ctx.log, is_cancelled=ctx.is_cancelled
        )
        request = LocalRequest(
            service=str(input["service"]),
            repo_contents_url=str(url),
            environment=input.get("environment"),
            entity_ref=input.get("entityRef"),
        )
        try:
            return runtime.provision(request)
        except LocalRuntimeCancelled as exc:
            raise TaskCancelled() from exc
        except LocalRuntimeError as exc:
            raise ActionError(str(exc)) from exc
