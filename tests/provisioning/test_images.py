"""Images a deployment pulls are images the repository's CI pushes: the generated CI
pushes both images tagged with the commit, provisioning pins the repository's images to
the commit it deploys and refuses, before applying anything, any image no CI job pushes
and (on a cluster) a registry that was never configured."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter

from portal_backend.provisioning.bundle import render_bundle
from portal_backend.provisioning.images import ci_pushed_images, pin_repository_images
from portal_backend.provisioning.service import ProvisioningError, ProvisionRequest
from tests.k8s_emulator import EmulatedCluster

ROOT = Path(__file__).resolve().parents[2]
SKELETON = ROOT / "scaffolder_templates" / "rag-service" / "skeleton"
SERVICE = "img-check"
COMMIT = "3f2c5b1e9a0d4c7b8e6f1a2b3c4d5e6f7a8b9c0d"


def _render(tmp_path: Path, registry: str | None) -> Path:
    extra = {"service_name": SERVICE}
    if registry is not None:
        extra["image_registry"] = registry
    return Path(
        cookiecutter(str(SKELETON), no_input=True, output_dir=str(tmp_path), extra_context=extra)
    )


def _images(objects: list[dict]) -> set[str]:
    found = set()
    for obj in objects:
        spec = obj.get("spec") or {}
        if obj["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        pod = (spec.get("template") or {}).get("spec") or {}
        found |= {
            c["image"] for key in ("initContainers", "containers") for c in pod.get(key) or []
        }
    return found


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_generated_ci_pushes_exactly_the_images_the_manifests_pull(
    tmp_path: Path, environment: str
) -> None:
    repo = _render(tmp_path, "ghcr.io/acme")
    assert ci_pushed_images(repo) == {
        f"ghcr.io/acme/{SERVICE}-api:<commit>",
        f"ghcr.io/acme/{SERVICE}-ingestion:<commit>",
    }
    objects = render_bundle(repo / "deploy" / "k8s", environment)
    assert pin_repository_images(objects, repo, COMMIT, SERVICE, cluster=True) == []
    own = {i for i in _images(objects) if i.startswith("ghcr.io/acme/")}
    assert own == {
        f"ghcr.io/acme/{SERVICE}-api:{COMMIT}",
        f"ghcr.io/acme/{SERVICE}-ingestion:{COMMIT}",
    }
    # Third-party images stay as pinned.
    assert any(i.startswith("vllm/vllm-openai:v") for i in _images(objects))
    # ghcr.io: the workflow logs in with the repository's own GITHUB_TOKEN.
    workflow = (repo / ".github" / "workflows" / "ci.yml").read_text()
    assert "docker login ghcr.io" in workflow and "secrets.GITHUB_TOKEN" in workflow


def test_other_registries_log_in_with_the_repository_secrets(tmp_path: Path) -> None:
    repo = _render(tmp_path, "registry.example.com/platform")
    workflow = (repo / ".github" / "workflows" / "ci.yml").read_text()
    assert "docker login registry.example.com" in workflow
    assert "secrets.REGISTRY_PASSWORD" in workflow and "GITHUB_TOKEN" not in workflow
    assert ci_pushed_images(repo) == {
        f"registry.example.com/platform/{SERVICE}-{image}:<commit>"
        for image in ("api", "ingestion")
    }


def test_an_image_no_build_produces_is_refused(tmp_path: Path) -> None:
    repo = _render(tmp_path, "ghcr.io/acme")
    deployment = repo / "deploy" / "k8s" / "base" / "rag-api-deployment.yaml"
    text = deployment.read_text().replace(
        f"ghcr.io/acme/{SERVICE}-api:unreleased", f"ghcr.io/example/{SERVICE}-api:0.1.0"
    )
    deployment.write_text(text)
    objects = render_bundle(repo / "deploy" / "k8s", "prod")
    [problem] = pin_repository_images(objects, repo, COMMIT, SERVICE, cluster=False)
    assert f"ghcr.io/example/{SERVICE}-api is built by no CI job" in problem
    assert f"ghcr.io/acme/{SERVICE}-api" in problem  # what CI does push

    # A CI that stops pushing (build only) leaves every own image unbuilt.
    workflow = repo / ".github" / "workflows" / "ci.yml"
    workflow.write_text(
        "\n".join(x for x in workflow.read_text().splitlines() if "docker push" not in x)
    )
    objects = render_bundle(repo / "deploy" / "k8s", "prod")
    problems = pin_repository_images(objects, repo, COMMIT, SERVICE, cluster=False)
    assert problems and all("built by no CI job" in p for p in problems)


def test_an_unconfigured_registry_is_refused_on_a_cluster_only(tmp_path: Path) -> None:
    repo = _render(tmp_path, None)  # the template's value when image_registry is unset
    objects = render_bundle(repo / "deploy" / "k8s", "prod")
    problems = pin_repository_images(objects, repo, COMMIT, SERVICE, cluster=True)
    assert problems and all("RAGPORTAL_IMAGE_REGISTRY" in p for p in problems)
    assert (
        pin_repository_images(
            render_bundle(repo / "deploy" / "k8s", "prod"), repo, COMMIT, SERVICE, cluster=False
        )
        == []
    )


def _published(repo: Path, tmp_path: Path) -> str:
    work = tmp_path / "work"
    shutil.copytree(repo, work)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=work, check=True)
    subprocess.run(["git", "add", "-A"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], cwd=work, check=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_provisioning_refuses_before_applying_anything(
    provisioner,
    cluster: EmulatedCluster,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    repo = _render(tmp_path, None)
    request = ProvisionRequest(
        service=SERVICE,
        bundle_dir=repo / "deploy" / "k8s",
        environment="prod",
        gpu_class="L4",
        repo_dir=repo,
        commit=COMMIT,
    )
    with pytest.raises(ProvisioningError, match="RAGPORTAL_IMAGE_REGISTRY"):
        provisioner.provision(request)
    assert cluster.writes == []


def test_provisioning_deploys_the_commit_it_was_given(
    provisioner,
    cluster: EmulatedCluster,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    repo = _render(tmp_path, "ghcr.io/acme")
    commit = _published(repo, tmp_path)
    outcome = provisioner.provision(
        ProvisionRequest(
            service=SERVICE,
            bundle_dir=repo / "deploy" / "k8s",
            environment="dev",
            gpu_class="L4",
            repo_dir=repo,
            commit=commit,
        )
    )
    assert outcome.state == "Healthy"
    api = cluster.get("deployments", SERVICE, f"{SERVICE}-rag-api")
    assert api["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"ghcr.io/acme/{SERVICE}-api:{commit}"
    )


def test_a_first_deploy_waits_for_ci_to_push_the_commits_images(
    provisioner,
    cluster: EmulatedCluster,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Right after publishing, the repository's CI is still building: its images at the
    commit cannot be pulled yet. That is waited out (provision_image_wait_s), not a
    failure; once the image is there the workload becomes ready."""
    import threading

    repo = _render(tmp_path, "ghcr.io/acme")
    commit = _published(repo, tmp_path)
    request = ProvisionRequest(
        service=SERVICE,
        bundle_dir=repo / "deploy" / "k8s",
        environment="dev",
        gpu_class="L4",
        repo_dir=repo,
        commit=commit,
    )
    cluster.behaviours[f"{SERVICE}-rag-api"] = "image-pull"

    def ci_pushed() -> None:  # the kubelet's next pull succeeds
        for _ in range(200):
            if cluster.get("deployments", SERVICE, f"{SERVICE}-rag-api") is not None:
                break
            threading.Event().wait(0.05)
        threading.Event().wait(1.5)
        live = cluster.get("deployments", SERVICE, f"{SERVICE}-rag-api")
        cluster.set_status(
            "deployments", SERVICE, f"{SERVICE}-rag-api",
            {"observedGeneration": live["metadata"].get("generation", 1), "replicas": 1,
             "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1},
        )  # fmt: skip

    pusher = threading.Thread(target=ci_pushed, daemon=True)
    pusher.start()
    assert provisioner.provision(request).state == "Healthy"
    pusher.join(timeout=10)


def test_an_image_ci_will_never_push_still_fails_after_the_wait(
    provisioner,
    cluster: EmulatedCluster,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    repo = _render(tmp_path, "ghcr.io/acme")
    commit = _published(repo, tmp_path)
    provisioner.settings = provisioner.settings.model_copy(update={"provision_image_wait_s": 0})
    cluster.behaviours[f"{SERVICE}-rag-api"] = "image-pull"
    with pytest.raises(ProvisioningError, match="image pull error"):
        provisioner.provision(
            ProvisionRequest(
                service=SERVICE, bundle_dir=repo / "deploy" / "k8s", environment="dev",
                gpu_class="L4", repo_dir=repo, commit=commit,
            )
        )  # fmt: skip
