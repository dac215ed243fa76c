"""Provision, tear down and reconcile one RAG service (domain code: no Celery, no HTTP).

``Provisioner.provision`` renders the bundle, validates it, checks GPU capacity, creates
the secrets from the portal's store, applies every object with server-side apply in
dependency order and waits for readiness; with no cluster configured it records the
plan instead. The outcome lands on the ``provisioned_services`` row and on the catalog
entity as ``status.deployment``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from portal_backend import metadata_keys
from portal_backend.db import session_scope
from portal_backend.provisioning import bundle_secrets, records
from portal_backend.provisioning.bundle import BundleError, render_bundle
from portal_backend.provisioning.capacity import CapacityReport, check_gpu_capacity
from portal_backend.provisioning.images import pin_repository_images
from portal_backend.provisioning.kube import KubeClient, KubeError, api_client_for
from portal_backend.provisioning.models import ProvisionedService
from portal_backend.provisioning.plan import (
    STAGES,
    WORKLOAD_KINDS,
    PlannedObject,
    check_service_objects,
    gpu_workloads,
    order_objects,
    pod_spec,
    release_autoscaled_replicas,
    use_cpu_fallback,
)
from portal_backend.provisioning.secrets import SecretStore
from portal_backend.provisioning.status import (
    ObjectStatus,
    failure_reason,
    object_status,
    overall_state,
    readiness,
)
from portal_backend.provisioning.validate import validate_objects
from portal_backend.settings import Settings

# Stages after which the provisioner waits for what it applied so far to become ready.
WAIT_AFTER = {"models", "api", "ingestion"}
# Kinds teardown looks for by label, workloads first so nothing restarts mid-way.
TEARDOWN_KINDS = (
    "CronJob",
    "Job",
    "HorizontalPodAutoscaler",
    "Deployment",
    "StatefulSet",
    "PodDisruptionBudget",
    "Service",
    "NetworkPolicy",
    "Ingress",
    "ServiceMonitor",
    "PrometheusRule",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
    "ServiceAccount",
)


class ProvisioningError(Exception):
    """Provisioning failed; ``object`` and ``reason`` say where and why (cluster's words)."""

    def __init__(self, message: str, *, object: str | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.message, self.object, self.reason = message, object, reason


class ProvisioningCancelled(Exception):
    pass


@dataclass
class ProvisionRequest:
    service: str
    bundle_dir: Path
    environment: str | None = None
    cluster: str | None = None
    allow_cpu_fallback: bool = False
    gpu_class: str | None = None
    entity_ref: str | None = None
    # Record the plan even where a cluster is configured; the reason says why.
    plan_only: bool = False
    plan_reason: str = "no Kubernetes cluster is configured"
    # The published repository and the commit deployed: the repository's own images are
    # pinned to that commit and checked against what its CI pushes (provisioning/images).
    repo_dir: Path | None = None
    commit: str | None = None

    @property
    def ref(self) -> str:
        return self.entity_ref or f"component:default/{self.service}"


@dataclass
class ProvisionOutcome:
    service: str
    state: str
    cluster: str | None
    namespace: str
    objects: list[dict[str, Any]] = field(default_factory=list)
    fallback: list[str] = field(default_factory=list)
    capacity: dict[str, Any] | None = None
    api_calls: int = 0
    retries: int = 0
    duration_s: float = 0.0
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "state": self.state,
            "cluster": self.cluster,
            "namespace": self.namespace,
            "objects": self.objects,
            "fallback": self.fallback,
            "capacity": self.capacity,
            "apiCalls": self.api_calls,
            "retries": self.retries,
            "durationSeconds": round(self.duration_s, 3),
            "message": self.message,
        }


def cluster_name(settings: Settings, requested: str | None) -> str | None:
    """The cluster to use; None means no cluster is configured."""
    name = requested or settings.default_cluster
    if name is None and len(settings.clusters) == 1:
        name = next(iter(settings.clusters))
    if name is None:
        if settings.clusters:
            raise ProvisioningError(
                "several clusters are configured and none is the default: name one "
                f"(cluster input) from {', '.join(sorted(settings.clusters))}"
            )
        return None
    if name not in settings.clusters:
        known = ", ".join(sorted(settings.clusters)) or "none"
        raise ProvisioningError(
            f"cluster {name!r} is not configured (configured: {known}); add it to "
            "RAGPORTAL_CLUSTERS"
        )
    return name


def _now() -> datetime:
    return datetime.now(UTC)


def _strip_secret_values(obj: dict[str, Any]) -> dict[str, Any]:
    if obj.get("kind") != "Secret":
        return obj
    return {k: v for k, v in obj.items() if k not in ("data", "stringData")}


class Provisioner:
    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        *,
        log: Callable[[str], None] = lambda _m: None,
        is_cancelled: Callable[[], bool] = lambda: False,
        kube_factory: Callable[[str], KubeClient] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.log = log
        self.is_cancelled = is_cancelled
        self.kube_factory = kube_factory or self._default_kube
        self.sleep = sleep
        self._awaited_images: frozenset[str] = frozenset()

    # ------------------------------------------------------------------ clusters
    def _default_kube(self, cluster: str) -> KubeClient:
        return KubeClient(
            api_client_for(self.settings.clusters[cluster]),
            request_timeout_s=self.settings.provision_request_timeout_s,
            max_attempts=self.settings.provision_max_attempts,
            on_retry=self.log,
        )

    def cluster_name(self, requested: str | None) -> str | None:
        return cluster_name(self.settings, requested)

    # ------------------------------------------------------------------ rendering
    def render(self, req: ProvisionRequest) -> list[dict[str, Any]]:
        """Rendered and validated objects of the bundle, or ProvisioningError with all problems."""
        try:
            objects = render_bundle(req.bundle_dir, req.environment)
        except BundleError as exc:
            raise ProvisioningError(f"cannot render the bundle: {exc}") from exc
        problems = check_service_objects(objects, req.service)
        problems += validate_objects(objects)
        if problems:
            raise ProvisioningError(
                f"the bundle has {len(problems)} problem(s): " + "; ".join(problems[:20])
            )
        return objects

    # ------------------------------------------------------------------ provision
    def provision(self, req: ProvisionRequest) -> ProvisionOutcome:
        started = time.monotonic()
        cluster = None if req.plan_only else self.cluster_name(req.cluster)
        objects = self.render(req)
        self.log(
            f"rendered {len(objects)} objects from {req.bundle_dir.name}/"
            f"{'overlays/' + req.environment if req.environment else ''}; all valid"
        )
        if req.repo_dir is not None:
            # Before anything is applied: an image no build produces never reaches a cluster.
            problems = pin_repository_images(
                objects, req.repo_dir, req.commit or "", req.service, cluster=cluster is not None
            )
            if problems:
                raise ProvisioningError(
                    f"{len(problems)} image(s) cannot be pulled: " + "; ".join(problems)
                )
            self.log(f"the repository's images are pinned to commit {(req.commit or '')[:12]}")
            # Its CI may still be building them (the repository was just published): a
            # pull error of these is waited out for provision_image_wait_s, not fatal.
            self._awaited_images = frozenset(
                str(c.get("image"))
                for o in objects
                for c in (pod_spec(o) or {}).get("containers", [])
                + (pod_spec(o) or {}).get("initContainers", [])
                if str(c.get("image", "")).endswith(f":{req.commit}")
            )
        if cluster is None:
            return self._record_plan(req, objects, started)

        kube = self.kube_factory(cluster)
        outcome = ProvisionOutcome(req.service, "Progressing", cluster, req.service)
        ordered: list[PlannedObject] | None = None
        try:
            objects = self._capacity(kube, req, objects, outcome)
            objects, released = release_autoscaled_replicas(objects)
            if released:
                self.log(f"replicas left to the autoscaler for {', '.join(released)}")
            objects = objects + self._secret_objects(req, objects)
            ordered = order_objects(objects)
            # Visible in the catalog while a large model loads (which can take many minutes).
            self._save(
                req,
                cluster,
                ordered,
                "Progressing",
                [ObjectStatus(p.kind, p.name, "Progressing") for p in ordered],
                None,
            )
            self._apply_and_wait(kube, req, ordered, outcome)
            outcome.state = "Healthy"
            outcome.message = (
                f"{req.service} is Healthy on cluster {cluster}: "
                f"{sum(o['action'] == 'created' for o in outcome.objects)} created, "
                f"{sum(o['action'] == 'configured' for o in outcome.objects)} configured, "
                f"{sum(o['action'] == 'unchanged' for o in outcome.objects)} unchanged"
            )
            statuses = [
                ObjectStatus(
                    o["kind"], o["name"], "Ready" if o["kind"] in WORKLOAD_KINDS else "Present"
                )
                for o in outcome.objects
            ]
            self._save(req, cluster, ordered, "Healthy", statuses, None)
        except ProvisioningError as exc:
            outcome.state = "Down" if exc.reason == "Capacity" else "Degraded"
            kind, _, name = (exc.object or "").partition("/")  # "Kind/name"
            failed = (
                [ObjectStatus(kind, name, "Failed", exc.message, exc.reason)] if exc.object else []
            )
            self._save(req, cluster, ordered, outcome.state, failed, exc.message)
            raise
        finally:
            outcome.api_calls, outcome.retries = kube.calls, kube.retries
            outcome.duration_s = time.monotonic() - started
            kube.close()
        self.log(outcome.message)
        return outcome

    def _record_plan(
        self, req: ProvisionRequest, objects: list[dict[str, Any]], started: float
    ) -> ProvisionOutcome:
        ordered = order_objects(release_autoscaled_replicas(objects)[0])
        outcome = ProvisionOutcome(req.service, "Planned", None, req.service)
        outcome.objects = [{**p.summary(), "action": "planned"} for p in ordered]
        gpus = gpu_workloads(objects)
        outcome.message = (
            f"{req.plan_reason}, so nothing was applied: the bundle was "
            f"rendered and validated and the plan ({len(ordered)} objects"
            + (f", {len(gpus)} GPU workload(s)" if gpus else "")
            + ") is recorded on the task and the catalog entity. Deploy it to the local "
            "runtime or a cluster (RAGPORTAL_CLUSTERS) to run it."
        )
        statuses = [ObjectStatus(p.kind, p.name, "Planned") for p in ordered]
        self._save(
            req,
            None,
            ordered,
            "Planned",
            statuses,
            f"{req.plan_reason}: plan recorded, nothing applied",
        )
        outcome.duration_s = time.monotonic() - started
        self.log(outcome.message)
        return outcome

    def _capacity(
        self,
        kube: KubeClient,
        req: ProvisionRequest,
        objects: list[dict[str, Any]],
        outcome: ProvisionOutcome,
    ) -> list[dict[str, Any]]:
        workloads = gpu_workloads(objects)
        if not workloads:
            return objects
        report: CapacityReport = check_gpu_capacity(
            kube,
            workloads,
            service=req.service,
            gpu_class=req.gpu_class,
            class_label=self.settings.provision_gpu_class_label,
        )
        outcome.capacity = {
            "fits": report.fits,
            "needed": report.needed,
            "nodes": report.nodes,
            "message": report.message,
        }
        self.log(report.message)
        if report.fits:
            return objects
        if not req.allow_cpu_fallback:
            raise ProvisioningError(
                report.message + ". Choose a smaller model or quantization, fewer replicas, "
                "another GPU class, or allow the CPU fallback.",
                reason="Capacity",
            )
        fallback, changes = use_cpu_fallback(objects)
        if not changes:
            raise ProvisioningError(
                report.message + "; the CPU fallback is allowed but the bundle has no CPU "
                "fallback Deployment",
                reason="Capacity",
            )
        outcome.fallback = changes
        self.log("using the CPU fallback: " + "; ".join(changes))
        return fallback

    # ------------------------------------------------------------------ secrets
    def _secret_objects(
        self, req: ProvisionRequest, objects: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        try:
            return bundle_secrets.secret_objects(
                self.session_factory, self.settings, req.service, req.ref, objects, self.log
            )
        except bundle_secrets.MissingSecretError as exc:
            raise ProvisioningError(str(exc), reason="MissingSecret") from exc

    # ------------------------------------------------------------------ apply + wait
    def _apply_and_wait(
        self,
        kube: KubeClient,
        req: ProvisionRequest,
        ordered: list[PlannedObject],
        outcome: ProvisionOutcome,
    ) -> None:
        pending: list[PlannedObject] = []
        for stage in STAGES:
            for planned in (p for p in ordered if p.stage == stage):
                self._check_cancelled()
                action = self._apply_one(kube, planned)
                outcome.objects.append({**planned.summary(), "action": action})
                self.log(f"{stage}: {planned.ref} {action}")
                if planned.kind in WORKLOAD_KINDS:
                    pending.append(planned)
            if stage in WAIT_AFTER and pending:
                self._wait_ready(kube, pending)
                pending = []

    def _apply_one(self, kube: KubeClient, planned: PlannedObject) -> str:
        for _attempt in range(5):
            existing = kube.get(planned.kind, planned.name, planned.namespace)
            if existing is not None and existing["metadata"].get("deletionTimestamp"):
                self._wait_gone(kube, planned)
                existing = None
            try:
                result = kube.apply(planned.obj)
            except KubeError as exc:
                if exc.status == 409:
                    # Someone else changed or is deleting it: re-read and apply again.
                    self.log(f"{planned.ref}: conflict ({exc.message}); re-reading")
                    continue
                raise ProvisioningError(
                    f"{planned.ref}: the cluster refused it"
                    + (f" ({exc.status})" if exc.status else "")
                    + f": {exc.message}",
                    object=planned.ref,
                    reason=exc.reason or str(exc.status),
                ) from exc
            if existing is None:
                return "created"
            before = existing["metadata"].get("resourceVersion")
            after = (result.get("metadata") or {}).get("resourceVersion")
            return "unchanged" if before == after else "configured"
        raise ProvisioningError(
            f"{planned.ref}: still conflicting after re-reading 5 times",
            object=planned.ref,
            reason="Conflict",
        )

    def _wait_gone(self, kube: KubeClient, planned: PlannedObject) -> None:
        deadline = time.monotonic() + self.settings.provision_ready_timeout_s
        self.log(f"{planned.ref} is being deleted; waiting for it to go before re-creating")
        while kube.get(planned.kind, planned.name, planned.namespace) is not None:
            if time.monotonic() > deadline:
                raise ProvisioningError(
                    f"{planned.ref} stayed in deletion", object=planned.ref, reason="Terminating"
                )
            self._check_cancelled()
            self.sleep(self.settings.provision_poll_interval_s)

    def _timeout_for(self, planned: PlannedObject) -> float:
        annotated = (planned.obj["metadata"].get("annotations") or {}).get(
            metadata_keys.READY_TIMEOUT_SECONDS
        )
        if annotated:
            return float(annotated)
        if planned.kind == "Job":
            return self.settings.provision_job_timeout_s
        if gpu_workloads([planned.obj]):
            return self.settings.provision_gpu_ready_timeout_s
        return self.settings.provision_ready_timeout_s

    def _wait_ready(self, kube: KubeClient, workloads: list[PlannedObject]) -> None:
        start = time.monotonic()
        waiting = {p.ref: p for p in workloads}
        last_line: dict[str, str] = {}
        self.log(f"waiting for {', '.join(waiting)}")
        while waiting:
            self._check_cancelled()
            elapsed = time.monotonic() - start
            for ref, planned in list(waiting.items()):
                live = kube.get(planned.kind, planned.name, planned.namespace)
                if live is None:
                    raise ProvisioningError(
                        f"{ref} disappeared while waiting", object=ref, reason="Missing"
                    )
                ready, progress = readiness(live)
                if last_line.get(ref) != progress:
                    last_line[ref] = progress
                    self.log(f"{ref}: {progress}")
                if ready:
                    self.log(f"{ref} ready after {elapsed:.1f}s")
                    del waiting[ref]
                    continue
                awaiting = elapsed < self.settings.provision_image_wait_s
                failed = failure_reason(
                    kube,
                    live,
                    unschedulable_is_fatal=elapsed >= self.settings.provision_unschedulable_grace_s,
                    awaited_images=self._awaited_images if awaiting else frozenset(),
                )
                if failed:
                    raise ProvisioningError(
                        f"{ref} failed: {failed[1]}", object=ref, reason=failed[0]
                    )
                if elapsed > self._timeout_for(planned):
                    raise ProvisioningError(
                        f"{ref} not ready after {self._timeout_for(planned):.0f}s ({progress})",
                        object=ref,
                        reason="Timeout",
                    )
            if waiting:
                self.sleep(self.settings.provision_poll_interval_s)

    def _check_cancelled(self) -> None:
        if self.is_cancelled():
            raise ProvisioningCancelled("provisioning cancelled")

    # ------------------------------------------------------------------ state
    def _save(
        self,
        req: ProvisionRequest,
        cluster: str | None,
        ordered: list[PlannedObject] | None,
        state: str,
        statuses: list[ObjectStatus],
        error: str | None,
    ) -> None:
        now = _now()
        with session_scope(self.session_factory) as session:
            row = records.get_or_create(session, req.service, state)
            row.cluster, row.environment, row.entity_ref = cluster, req.environment, req.ref
            row.target = records.KUBERNETES if cluster else records.PLAN
            row.endpoint = None
            if ordered is not None:
                row.desired = [_strip_secret_values(copy.deepcopy(p.obj)) for p in ordered]
            row.state, row.updated_at, row.last_error = state, now, error
            row.detail = [s.as_dict() for s in statuses]
            value = records.deployment_status(row)
            ref = row.entity_ref
        self._set_catalog_status(ref, value)

    def _set_catalog_status(self, ref: str | None, value: dict[str, Any]) -> None:
        records.publish_status(self.session_factory, ref, value, self.log)

    def record(self, service: str) -> dict[str, Any] | None:
        with session_scope(self.session_factory) as session:
            row = session.get(ProvisionedService, service)
            return None if row is None else records.record_of(row)

    # ------------------------------------------------------------------ reconcile
    def reconcile(self, service: str) -> dict[str, Any] | None:
        """Compare live objects with the desired bundle; update the status when it changed."""
        with session_scope(self.session_factory) as session:
            row = session.get(ProvisionedService, service)
            if row is None or row.cluster is None:
                return None
            desired, cluster, ref = list(row.desired or []), row.cluster, row.entity_ref
            before = (row.state, row.detail)
        if cluster not in self.settings.clusters:
            return None
        kube = self.kube_factory(cluster)
        try:
            statuses = []
            for obj in desired:
                meta = obj["metadata"]
                live = kube.get(obj["kind"], meta["name"], meta.get("namespace"))
                statuses.append(object_status(kube, obj, live))
        finally:
            kube.close()
        state = overall_state(statuses)
        detail = [s.as_dict() for s in statuses]
        if (state, detail) == before:
            return {"service": service, "state": state, "changed": False}
        with session_scope(self.session_factory) as session:
            row = session.get(ProvisionedService, service)
            if row is None:
                return None
            row.state, row.detail, row.updated_at = state, detail, _now()
            row.last_error = None if state == "Healthy" else row.last_error
            value = records.deployment_status(row)
        self._set_catalog_status(ref, value)
        return {"service": service, "state": state, "changed": True, "objects": detail}

    def reconcile_all(self) -> list[dict[str, Any]]:
        with session_scope(self.session_factory) as session:
            names = list(
                session.scalars(
                    select(ProvisionedService.service).where(
                        ProvisionedService.cluster.is_not(None)
                    )
                )
            )
        results = []
        for name in names:
            try:
                result = self.reconcile(name)
            except KubeError as exc:  # one unreachable cluster must not stop the others
                result = {"service": name, "error": exc.message}
            if result:
                results.append(result)
        return results

    # ------------------------------------------------------------------ teardown
    def teardown(
        self, service: str, cluster: str | None = None, *, on_cluster: bool = True
    ) -> dict[str, Any]:
        """Delete every cluster object labelled for ``service`` (unless ``on_cluster`` is
        False: it never ran on one), then its catalog entities, secrets and tokens."""
        with session_scope(self.session_factory) as session:
            row = session.get(ProvisionedService, service)
            row_cluster = row.cluster if row else None
            entity_ref = row.entity_ref if row else None
        cluster = (cluster or row_cluster or self.cluster_name(None)) if on_cluster else None
        selector = f"{metadata_keys.SERVICE}={service}"
        deleted: list[str] = []
        remaining: list[str] = []
        if cluster is not None:
            kube = self.kube_factory(cluster)
            try:
                for kind in TEARDOWN_KINDS + ("Namespace",):
                    for obj in self._list_or_empty(kube, kind, selector):
                        meta = obj["metadata"]
                        if kube.delete(kind, meta["name"], meta.get("namespace")):
                            deleted.append(f"{kind}/{meta['name']}")
                            self.log(f"deleted {kind}/{meta['name']}")
                for kind in TEARDOWN_KINDS + ("Namespace",):
                    for obj in self._list_or_empty(kube, kind, selector):
                        remaining.append(f"{kind}/{obj['metadata']['name']}")
            finally:
                kube.close()
        entities = self._delete_entities(service, entity_ref)
        with session_scope(self.session_factory) as session:
            SecretStore(session, self.settings).delete_scope(service)
            self._revoke_ingest_tokens(session, entity_ref or f"component:default/{service}")
            row = session.get(ProvisionedService, service)
            if row is not None:
                session.delete(row)
        return {
            "service": service,
            "cluster": cluster,
            "deletedObjects": deleted,
            # A real cluster finishes namespace deletion asynchronously (Terminating).
            "remainingObjects": remaining,
            "deletedEntities": entities,
        }

    @staticmethod
    def _list_or_empty(kube: KubeClient, kind: str, selector: str) -> list[dict[str, Any]]:
        try:
            return kube.list(kind, label_selector=selector)
        except KubeError as exc:
            # 404: no such API here (no Prometheus operator CRDs); 403: the portal's role
            # does not cover the kind, so it cannot have created any either.
            if exc.status in (403, 404):
                return []
            raise

    def _delete_entities(self, service: str, entity_ref: str | None) -> list[str]:
        from catalog.service import CatalogService

        with session_scope(self.session_factory) as session:
            catalog = CatalogService(session)
            refs = set(
                catalog.query_refs({f"metadata.annotations.{metadata_keys.SERVICE}": service})
            )
            component = entity_ref or f"component:default/{service}"
            refs.add(component)
            # The generated Resources and API are named after the service.
            for suffix in ("model-server", "vector-collection", "ingestion"):
                refs.add(f"resource:default/{service}-{suffix}")
            refs.add(f"api:default/{service}-api")
            return sorted(ref for ref in refs if catalog.delete_by_ref(ref))

    @staticmethod
    def _revoke_ingest_tokens(session: Session, service_ref: str) -> None:
        from portal_backend.auth.models import ApiToken

        for token in session.scalars(
            select(ApiToken).where(
                ApiToken.service_ref == service_ref,
                ApiToken.purpose == "ingest",
                ApiToken.revoked_at.is_(None),
            )
        ):
            token.revoked_at = _now()
