"""The kustomizations list every file they ship, and render the same with kubectl and with
the portal's own renderer (portal_backend.provisioning.bundle)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from portal_backend.provisioning.bundle import render_kustomization

from .conftest import OVERLAYS, Rendered


def _kustomization(directory: Path) -> dict:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def _files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if p.is_file()} - {"kustomization.yaml"}


def test_base_lists_every_manifest(rendered: Rendered) -> None:
    base = rendered.root / "deploy" / "k8s" / "base"
    listed = _kustomization(base)["resources"]
    assert len(listed) == len(set(listed))
    assert set(listed) == _files(base)


def test_overlays_use_every_patch_they_ship(rendered: Rendered) -> None:
    for env in OVERLAYS:
        overlay = rendered.root / "deploy" / "k8s" / "overlays" / env
        spec = _kustomization(overlay)
        assert spec["resources"] == ["../../base"]
        assert spec["namespace"] == rendered.name
        assert {p["path"] for p in spec["patches"]} == _files(overlay)


def test_monitoring_lists_every_file(rendered: Rendered) -> None:
    monitoring = rendered.root / "monitoring"
    spec = _kustomization(monitoring)
    generated = {f for g in spec["configMapGenerator"] for f in g["files"]}
    shipped = {str(p.relative_to(monitoring)) for p in monitoring.rglob("*") if p.is_file()}
    # prometheus-rules.yaml is the promtool-checkable form of prometheusrule.yaml's spec.
    assert shipped - {"kustomization.yaml"} == set(spec["resources"]) | generated | {
        "prometheus-rules.yaml"
    }


def _key(obj: dict) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def test_kubectl_and_the_portal_render_the_same_objects(rendered: Rendered) -> None:
    targets = [rendered.root / "deploy" / "k8s" / "overlays" / env for env in OVERLAYS]
    targets.append(rendered.root / "monitoring")
    kubectl = shutil.which("kubectl")
    for target in targets:
        ours = render_kustomization(target)
        assert len(ours) == len({_key(o) for o in ours}) > 0
        if kubectl is None:
            continue  # nothing to compare against on this machine; ours rendered above
        out = subprocess.run(
            [kubectl, "kustomize", str(target)], capture_output=True, text=True, check=True
        )
        theirs = [d for d in yaml.safe_load_all(out.stdout) if d]
        assert {_key(o): o for o in ours} == {_key(o): o for o in theirs}, target


def test_validate_deploy_script(rendered: Rendered) -> None:
    """`make validate-deploy` in the generated repository."""
    result = subprocess.run(
        ["deploy/validate.sh"], cwd=rendered.root, capture_output=True, text=True, check=False
    )
    if shutil.which("kubectl") is None:
        assert result.returncode == 2 and "needs kubectl" in result.stderr
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


def test_catalog_endpoint_annotation_names_the_deployed_api_service(rendered: Rendered) -> None:
    """The endpoint the catalog shows (and the portal links to) is the API Service that the
    bundle actually creates, on its port."""
    from urllib.parse import urlsplit

    documents = [
        d for d in yaml.safe_load_all((rendered.root / "catalog-info.yaml").read_text()) if d
    ]
    component = next(d for d in documents if d["kind"] == "Component")
    endpoint = urlsplit(component["metadata"]["annotations"]["rag-portal.io/endpoint"])
    service_name, namespace = endpoint.hostname.split(".")[:2]
    for env in OVERLAYS:
        services = rendered.by_kind(env, "Service")
        assert service_name in services, f"{env}: no Service {service_name}"
        service = services[service_name]
        assert service["metadata"]["namespace"] == namespace
        assert endpoint.port in {p["port"] for p in service["spec"]["ports"]}
