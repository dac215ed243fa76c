"""The real generated bundle (scaffolder_templates/rag-service, rendered by cookiecutter)
through the rag:provision action: from a workspace and from a published local repository."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from cookiecutter.main import cookiecutter

from portal_backend.metadata_keys import SERVICE as SERVICE_LABEL
from portal_backend.provisioning.bundle import render_bundle
from portal_backend.provisioning.validate import validate_objects
from portal_backend.scaffolder.actions import load_actions
from portal_backend.scaffolder.actions.base import ActionContext, ActionError, get_action
from portal_backend.settings import Settings
from tests.k8s_emulator import EmulatedCluster
from tests.provisioning.conftest import HF_TOKEN, entity_status, register_service_entity

load_actions()
SKELETON = Path(__file__).resolve().parents[2] / "scaffolder_templates" / "rag-service" / "skeleton"
SERVICE = "docs-bot"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = cookiecutter(
        str(SKELETON),
        no_input=True,
        output_dir=str(tmp_path_factory.mktemp("generated")),
        # A registry, as the portal's image_registry setting gives it (unset: refused).
        extra_context={"service_name": SERVICE, "image_registry": "registry.example.test/rag"},
    )
    return Path(out)


def _context(
    settings: Settings,
    session_factory,
    workspace: Path,
    logs: list[str],  # type: ignore[no-untyped-def]
    dry_run: bool = False,
) -> ActionContext:
    return ActionContext(
        task_id="task-1",
        step_id="provision",
        workspace=workspace,
        settings=settings,
        session_factory=session_factory,
        user_ref="user:default/alice",
        log=logs.append,
        dry_run=dry_run,
    )


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_renderer_matches_kubectl_kustomize_and_validates(
    generated: Path, environment: str
) -> None:
    k8s = generated / "deploy" / "k8s"
    objects = render_bundle(k8s, environment)
    assert validate_objects(objects) == []
    assert all(o["metadata"]["labels"][SERVICE_LABEL] == SERVICE for o in objects)
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with kustomize) is part of the test machine's tools"
    reference = [
        d
        for d in yaml.safe_load_all(
            subprocess.run(
                [kubectl, "kustomize", str(k8s / "overlays" / environment)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        if d
    ]
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert {key(o): o for o in objects} == {key(o): o for o in reference}


def test_action_provisions_the_generated_bundle_from_the_workspace(
    k8s_settings,
    session_factory,
    provisioner,
    cluster: EmulatedCluster,
    generated: Path,  # type: ignore[no-untyped-def]
) -> None:
    ref = register_service_entity(session_factory, SERVICE)
    logs: list[str] = []
    action = get_action("rag:provision")
    assert action is not None
    output = action.run(
        _context(k8s_settings, session_factory, generated, logs),
        {"service": SERVICE, "environment": "prod", "gpuClass": "L4", "entityRef": ref},
    )
    assert output["state"] == "Healthy", output
    assert output["apiCalls"] > 0
    live = cluster.labelled(f"{SERVICE_LABEL}={SERVICE}")
    kinds = {o["kind"] for o in live}
    assert {
        "Namespace",
        "StatefulSet",
        "Deployment",
        "Job",
        "CronJob",
        "NetworkPolicy",
        "HorizontalPodAutoscaler",
        "Secret",
    } <= kinds
    hf = cluster.get("secrets", SERVICE, f"{SERVICE}-hf-token")
    assert base64.b64decode(hf["data"]["token"]).decode() == HF_TOKEN
    assert cluster.get("secrets", SERVICE, f"{SERVICE}-qdrant")["data"]["api-key"]
    assert cluster.get("secrets", SERVICE, f"{SERVICE}-portal-ingest")["data"]["token"]
    assert HF_TOKEN not in "\n".join(logs)
    assert entity_status(session_factory, ref)["deployment"]["state"] == "Healthy"

    again = action.run(
        _context(k8s_settings, session_factory, generated, logs),
        {"service": SERVICE, "environment": "prod", "gpuClass": "L4", "entityRef": ref},
    )
    assert {o["action"] for o in again["objects"]} == {"unchanged"}

    # The HPA scales the API out: not drift, and a re-apply leaves its choice alone.
    cluster.edit("deployments", SERVICE, f"{SERVICE}-rag-api", {"spec": {"replicas": 5}})
    cluster.set_status(
        "deployments",
        SERVICE,
        f"{SERVICE}-rag-api",
        {
            "observedGeneration": 9,
            "replicas": 5,
            "readyReplicas": 5,
            "availableReplicas": 5,
            "updatedReplicas": 5,
        },
    )
    assert provisioner.reconcile(SERVICE)["state"] == "Healthy"
    action.run(
        _context(k8s_settings, session_factory, generated, logs),
        {"service": SERVICE, "environment": "prod", "gpuClass": "L4", "entityRef": ref},
    )
    assert cluster.get("deployments", SERVICE, f"{SERVICE}-rag-api")["spec"]["replicas"] == 5


def test_action_reads_the_published_repository(
    k8s_settings,
    session_factory,
    provisioner,
    cluster: EmulatedCluster,
    generated: Path,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    bare = k8s_settings.data_dir / "repos" / "team-a" / f"{SERVICE}-{tmp_path.name}.git"
    bare.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    work = tmp_path / "work"
    shutil.copytree(generated, work)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=work, check=True)
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], cwd=work, check=True)
    subprocess.run(["git", "push", "-q", str(bare), "main"], cwd=work, check=True)

    workspace = tmp_path / "workspace"
    workspace.mkdir()
    logs: list[str] = []
    output = get_action("rag:provision").run(  # type: ignore[union-attr]
        _context(k8s_settings, session_factory, workspace, logs),
        {
            "service": SERVICE,
            "environment": "dev",
            "gpuClass": "L4",
            "repoContentsUrl": f"file://{bare}/blob/main",
        },
    )
    assert output["state"] == "Healthy"
    assert cluster.get("deployments", SERVICE, f"{SERVICE}-rag-api") is not None


def test_action_without_a_cluster_or_local_runtime_records_the_plan_and_says_so(
    settings,
    session_factory,
    generated: Path,  # type: ignore[no-untyped-def]
) -> None:
    settings = settings.model_copy(update={"runtime_enabled": False})
    ref = register_service_entity(session_factory, SERVICE)
    logs: list[str] = []
    output = get_action("rag:provision").run(  # type: ignore[union-attr]
        _context(settings, session_factory, generated, logs),
        {"service": SERVICE, "environment": "prod", "entityRef": ref},
    )
    assert output["state"] == "Planned" and output["cluster"] is None
    assert len(output["objects"]) == 26
    assert (
        "no Kubernetes cluster is configured and the local runtime is off "
        "(RAGPORTAL_RUNTIME_ENABLED=false), so nothing was applied" in output["message"]
    )
    assert any("deploying to a plan only" in line for line in logs)
    status = entity_status(session_factory, ref)["deployment"]
    assert status["state"] == "Planned" and len(status["objects"]) == 26


def test_action_dry_run_touches_nothing(
    k8s_settings,
    session_factory,
    cluster: EmulatedCluster,
    generated: Path,  # type: ignore[no-untyped-def]
) -> None:
    logs: list[str] = []
    output = get_action("rag:provision").run(  # type: ignore[union-attr]
        _context(k8s_settings, session_factory, generated, logs, dry_run=True),
        {"service": SERVICE, "environment": "prod"},
    )
    assert output["message"] == "dry run" and len(output["objects"]) == 26
    assert cluster.writes == [] and cluster.request_count == 0


def test_action_input_errors_name_the_field(settings: Settings) -> None:
    action = get_action("rag:provision")
    problems = action.precheck({"service": "Not_A_Namespace", "cluster": "nope"}, settings)  # type: ignore[union-attr]
    assert {p.path for p in problems} == {"service", "cluster"}


def test_missing_bundle_is_a_clear_step_failure(
    settings,
    session_factory,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    with pytest.raises(ActionError, match="no deploy/k8s bundle"):
        get_action("rag:provision").run(  # type: ignore[union-attr]
            _context(settings, session_factory, tmp_path, []),
            {"service": SERVICE, "target": "plan"},
        )


def test_the_local_runtime_deploys_only_a_published_repository(
    settings,
    session_factory,
    generated: Path,  # type: ignore[no-untyped-def]
) -> None:
    """With no cluster the default target is the local runtime, which reads what was
    published (any worker, any time later), never a task's workspace."""
    with pytest.raises(ActionError, match="the local runtime deploys a published repository"):
        get_action("rag:provision").run(  # type: ignore[union-attr]
            _context(settings, session_factory, generated, []), {"service": SERVICE}
        )


def test_dry_run_uses_the_workspace_when_nothing_was_published(
    k8s_settings,
    session_factory,
    cluster: EmulatedCluster,
    generated: Path,  # type: ignore[no-untyped-def]
) -> None:
    """In a scaffolder dry run, publish:git hands out a dry-run:// URL: the template's
    provision step passes it on, and the bundle must come from the rendered workspace."""
    logs: list[str] = []
    output = get_action("rag:provision").run(  # type: ignore[union-attr]
        _context(k8s_settings, session_factory, generated, logs, dry_run=True),
        {
            "service": SERVICE,
            "environment": "prod",
            "repoContentsUrl": f"dry-run://local?owner=platform&repo={SERVICE}",
        },
    )
    assert output["state"] == "Planned" and len(output["objects"]) == 26
    assert cluster.request_count == 0
