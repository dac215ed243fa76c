"""charts/rag-portal rendered with embedded Helm (helm-python-sdk), validated strictly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from cookiecutter.main import cookiecutter

from portal_backend.provisioning.bundle import render_bundle
from portal_backend.provisioning.kube import KINDS
from portal_backend.provisioning.validate import validate_objects

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "rag-portal"
PRODUCTION = yaml.safe_load((CHART / "ci" / "production-values.yaml").read_text())


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values, name="portal", namespace="rag-portal")
    objects = []
    for path, text in manifests.items():
        if path.endswith(".yaml"):
            objects.extend(d for d in yaml.safe_load_all(text) if d)
    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_chart_lints_clean() -> None:
    result = helm.lint(str(CHART))
    assert result["errors"] == []
    assert not [m for m in result["messages"] if m["severity"] > 1], result["messages"]


@pytest.mark.parametrize("values_name", ["default", "production"])
@pytest.mark.parametrize("kubernetes", ["1.29.0", "1.33.0"])
def test_every_rendered_object_validates_strictly(values_name: str, kubernetes: str) -> None:
    objects = render({} if values_name == "default" else PRODUCTION)
    assert len(objects) >= 10
    assert validate_objects(objects, kubernetes) == []


def test_default_values_install_everything_the_portal_needs() -> None:
    objects = render({})
    deployments = by_kind(objects, "Deployment")
    assert set(deployments) == {
        "portal-rag-portal-api",
        "portal-rag-portal-worker",
        "portal-rag-portal-beat",
    }
    api = deployments["portal-rag-portal-api"]
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["serve"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert probe in container
    assert container["resources"]["limits"] and container["resources"]["requests"]
    assert deployments["portal-rag-portal-beat"]["spec"]["replicas"] == 1
    assert (
        "livenessProbe"
        in deployments["portal-rag-portal-worker"]["spec"]["template"]["spec"]["containers"][0]
    )

    job = by_kind(objects, "Job")["portal-rag-portal-migrations"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]
    secret = by_kind(objects, "Secret")["portal-rag-portal-connections"]
    # The Secret exists before the migration hook runs.
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    env = env_of(api)
    assert env["DATABASE_URL"]["secretKeyRef"]["name"] == "portal-rag-portal-connections"
    assert env["REDIS_URL"]["secretKeyRef"]["key"] == "REDIS_URL"
    assert json.loads(env["RAGPORTAL_CLUSTERS"]) == {"in-cluster": {"in_cluster": True}}
    assert set(by_kind(objects, "PodDisruptionBudget")) == {
        "portal-rag-portal-api",
        "portal-rag-portal-worker",
    }
    assert by_kind(objects, "Ingress") == {}
    assert "portal-rag-portal" in by_kind(objects, "Service")
    assert by_kind(objects, "ServiceAccount")


def test_production_values_use_existing_secrets_clusters_and_ingress() -> None:
    objects = render(PRODUCTION)
    assert by_kind(objects, "Secret") == {}
    ingress = by_kind(objects, "Ingress")["portal-rag-portal"]
    assert ingress["spec"]["tls"][0]["secretName"] == "rag-portal-tls"
    worker = by_kind(objects, "Deployment")["portal-rag-portal-worker"]
    env = env_of(worker)
    assert env["DATABASE_URL"]["secretKeyRef"]["name"] == "rag-portal-connections"
    clusters = json.loads(env["RAGPORTAL_CLUSTERS"])
    assert clusters["gpu-east"] == {
        "kubeconfig": "/etc/rag-portal/kubeconfigs/east.yaml",
        "context": "gpu-east-admin",
    }
    assert env["RAGPORTAL_DEFAULT_CLUSTER"] == "gpu-east"
    volumes = {v["name"]: v for v in worker["spec"]["template"]["spec"]["volumes"]}
    assert volumes["kubeconfigs"]["secret"]["secretName"] == "rag-portal-kubeconfigs"
    assert worker["spec"]["replicas"] == 4


def test_cluster_role_is_least_privilege_and_covers_the_generated_bundle(
    tmp_path: Path,
) -> None:
    role = by_kind(render({}), "ClusterRole")["portal-rag-portal-provisioner"]
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert "rbac.authorization.k8s.io" not in rule["apiGroups"]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted[(group, resource)] = set(rule["verbs"])
    assert "delete" not in granted[("", "pods")] and "create" not in granted[("", "nodes")]
    generated = Path(
        cookiecutter(
            str(ROOT / "scaffolder_templates" / "rag-service" / "skeleton"),
            no_input=True,
            output_dir=str(tmp_path),
            extra_context={"service_name": "chart-check"},
        )
    )
    kinds = {o["kind"] for o in render_bundle(generated / "deploy" / "k8s", "prod")}
    from portal_backend.provisioning.service import TEARDOWN_KINDS

    for kind in TEARDOWN_KINDS + ("Namespace",):  # teardown lists and deletes each of them
        rtype = KINDS[kind]
        assert {"list", "delete"} <= granted[
            (rtype.api_version.rpartition("/")[0], rtype.plural)
        ], kind
    for kind in kinds | {"Secret"}:
        rtype = KINDS[kind]
        group = rtype.api_version.rpartition("/")[0]
        assert {"get", "list", "create", "patch", "delete"} <= granted[(group, rtype.plural)], kind


def _volumes(pod_owner: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_owner["spec"]["template"]["spec"]["volumes"]}


def test_default_values_share_one_data_volume_between_every_pod() -> None:
    """Local bare repositories (the default git host) are created by one worker and read
    by the API and the other workers: every pod mounts the same ReadWriteMany claim."""
    objects = render({})
    claim = by_kind(objects, "PersistentVolumeClaim")["portal-rag-portal-data"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for deployment in by_kind(objects, "Deployment").values():
        data = _volumes(deployment)["data"]
        assert data == {
            "name": "data",
            "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]},
        }
        assert env_of(deployment)["RAGPORTAL_SCAFFOLDER_DEFAULT_GIT_HOST"] == "local"
    # The migration hook runs before the chart's claim exists: it must not wait for it.
    job = by_kind(objects, "Job")["portal-rag-portal-migrations"]
    assert _volumes(job)["data"] == {"name": "data", "emptyDir": {}}


def test_production_values_publish_to_github_and_need_no_shared_volume() -> None:
    objects = render(PRODUCTION)
    assert by_kind(objects, "PersistentVolumeClaim") == {}
    worker = by_kind(objects, "Deployment")["portal-rag-portal-worker"]
    assert _volumes(worker)["data"] == {"name": "data", "emptyDir": {}}
    env = env_of(worker)
    assert env["RAGPORTAL_SCAFFOLDER_DEFAULT_GIT_HOST"] == "github.com"
    hosts = json.loads(env["RAGPORTAL_SCAFFOLDER_GIT_HOSTS"])
    assert hosts == {"github.com": {"type": "github"}}
    # What the pods read is what the portal's settings parse.
    from portal_backend.settings import Settings

    with pytest.MonkeyPatch.context() as patch:
        for name in ("RAGPORTAL_SCAFFOLDER_GIT_HOSTS", "RAGPORTAL_SCAFFOLDER_DEFAULT_GIT_HOST"):
            patch.setenv(name, env[name])
        parsed = Settings()
    assert parsed.scaffolder_git_hosts == hosts
    assert parsed.scaffolder_default_git_host == "github.com"


@pytest.mark.parametrize(
    ("values", "says"),
    [
        # Several pods, each with its own emptyDir, and repositories kept in it.
        ({"persistence": {"enabled": False}}, "persistence.enabled is false"),
        (
            {"worker": {"replicas": 1}, "api": {"replicas": 1}, "persistence": {"enabled": False}},
            "persistence.enabled is false",
        ),
        ({"persistence": {"accessModes": ["ReadWriteOnce"]}}, "ReadWriteMany"),
        ({"git": {"defaultHost": "github.com"}}, "not in git.hosts"),
    ],
)
def test_values_that_split_the_data_folder_fail_at_template_time(
    values: dict[str, Any], says: str
) -> None:
    with pytest.raises(helm.errors.HelmRenderError) as refused:
        render(values)
    assert says in str(refused.value)
