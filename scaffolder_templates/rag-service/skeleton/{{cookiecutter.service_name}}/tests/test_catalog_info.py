"""catalog-info.yaml: the entities rag-portal registers, and the API's OpenAPI."""

from __future__ import annotations

import yaml

from app.main import create_app
from app.settings import REPO_ROOT, SERVICE_NAME


def entities() -> dict[str, dict]:
    docs = list(yaml.safe_load_all((REPO_ROOT / "catalog-info.yaml").read_text()))
    return {f"{d['kind'].lower()}:{d['metadata']['name']}": d for d in docs}


def test_component_resources_and_api():
    found = entities()
    component = found[f"component:{SERVICE_NAME}"]
    assert component["spec"]["type"] == "rag-service"
    annotations = component["metadata"]["annotations"]
    assert annotations["backstage.io/source-template"] == "template:default/rag-service"
    assert annotations["rag-portal.io/service"] == SERVICE_NAME
    assert all(isinstance(v, str) for v in annotations.values())
    for suffix in ("model-server", "vector-collection", "ingestion"):
        assert f"resource:{SERVICE_NAME}-{suffix}" in found
        assert f"resource:default/{SERVICE_NAME}-{suffix}" in component["spec"]["dependsOn"]
    assert component["spec"]["providesApis"] == [f"api:default/{SERVICE_NAME}-api"]


def test_api_definition_matches_the_app():
    api = entities()[f"api:{SERVICE_NAME}-api"]
    definition = yaml.safe_load(api["spec"]["definition"])
    assert definition["openapi"].startswith("3.")
    app_paths = set(create_app().openapi()["paths"])
    assert set(definition["paths"]) == app_paths
