"""``mlflow`` locations: an MLflow model registry as a catalog source.

Against a real MLflow tracking server (PyPI ``mlflow``: ``mlflow server``, SQLite backend,
local artifact store) started once for this module: a base model and an adapter with
three versions registered through mlflow's own client, the location registered over the
portal's HTTP API, then a fourth version registered and the second deleted, and the
location refreshed. Error answers (unreachable, HTTP 500, not an MLflow server, a version
the portal cannot map) come from a stand-in HTTP server, so they need no MLflow.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from catalog import refresh
from catalog.errors import InputError
from catalog.location_registry import LocationRegistry
from catalog.locations import LocationPolicy
from catalog.tables import CatalogEntity, CatalogLocation
from portal_backend.db import session_scope
from tests.catalog.conftest import YamlServer
from tests.conftest import LiveServer, free_port

LOCATIONS = "/api/catalog/locations"
ANNOTATION = "rag-portal.io/mlflow-"
ORPHAN = "backstage.io/orphan"
POLICY = LocationPolicy(allow_private_urls=True, timeout_s=5)
# No usage reports from mlflow (its telemetry; CI has no network anyway).
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


@dataclass
class MlflowServer:
    url: str
    start_s: float
    root: Path


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """``mlflow server`` on a free port (one worker), until /health answers."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = (root / "server.log").open("w")
    started = time.monotonic()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--default-artifact-root",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
        env={**os.environ, "MLFLOW_TRACKING_URI": "", **QUIET},
    )
    url = f"http://127.0.0.1:{port}"
    saved = {key: os.environ.get(key) for key in QUIET}
    os.environ.update(QUIET)  # the tests' own mlflow client
    import mlflow.tracking  # noqa: F401 (imported while the server starts)

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start:\n{(root / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield MlflowServer(url, time.monotonic() - started, root)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _client(server: MlflowServer) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)


def _adapter_version(
    client: Any, experiment: str, model: str, rank: int, scores: dict, **tags: str
) -> str:
    """A run (PEFT's LoraConfig as params, eval metrics) and a version of ``model`` from it."""
    run = client.create_run(experiment)
    run_id = run.info.run_id
    client.log_param(run_id, "r", str(rank))
    client.log_param(run_id, "lora_alpha", str(rank * 2))
    client.log_param(run_id, "target_modules", "{'v_proj', 'q_proj'}")
    for key, value in {**scores, "train_loss": 1.5}.items():
        client.log_metric(run_id, key, value)
    client.set_terminated(run_id)
    version = client.create_model_version(
        model, source=f"{run.info.artifact_uri}/adapter", run_id=run_id, tags=tags
    )
    return str(version.version)


def _entity(admin_client: httpx.Client, name: str) -> dict:
    response = admin_client.get(f"/api/catalog/entities/by-name/resource/default/{name}")
    assert response.status_code == 200, response.text
    return response.json()


def _relations(entity: dict) -> set[tuple[str, str]]:
    return {(r["type"], r["targetRef"]) for r in entity.get("relations", [])}


@pytest.mark.usefixtures("allow_private_urls")
def test_registry_versions_become_entities_and_follow_refresh(
    mlflow_server: MlflowServer, admin_client: httpx.Client, live_server: LiveServer
) -> None:
    client = _client(mlflow_server)
    # Each run of this test (one per database backend) has models of its own in the
    # module's server, and its location reads only them: ?name=<prefix>-*.
    prefix = f"t{uuid.uuid4().hex[:6]}"
    base, adapter = f"{prefix}-Llama-Tiny", f"{prefix}-hr-adapter"
    client.create_registered_model(
        base,
        tags={
            "ragportal.type": "llm-model",
            "ragportal.owner": "group:default/ml-platform",
            "ragportal.parameters": "135M",
            "ragportal.quantization": "bf16",
            "ragportal.format": "safetensors",
        },
        description="a tiny base model",
    )
    experiment = client.create_experiment(f"{prefix}-adapters")
    run = client.create_run(experiment)
    client.create_model_version(
        base, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    client.create_registered_model(
        adapter,
        tags={
            "ragportal.type": "lora-adapter",
            "ragportal.base_model": f"models:/{base}/1",
            "ragportal.dataset": "resource:default/hr-faq-2026q3",
            "ragportal.eval_metrics": "faithfulness,answer_relevance",
        },
    )
    for number, rank in ((1, 8), (2, 8), (3, 8)):
        scores = {"faithfulness": round(0.8 + number / 100, 2), "answer_relevance": 0.7}
        tags = {"ragportal.rank": "16"} if number == 3 else {}
        assert _adapter_version(client, experiment, adapter, rank, scores, **tags) == str(number)
    # A model the portal does not catalog (no ragportal.type): its versions are not read.
    client.create_registered_model(f"{prefix}-churn-classifier")
    client.create_model_version(
        f"{prefix}-churn-classifier", source=f"{run.info.artifact_uri}/sk", run_id=run.info.run_id
    )

    target = f"{mlflow_server.url}?name={prefix}-*&owner=group:default/hr"
    started = time.monotonic()
    created = admin_client.post(LOCATIONS, json={"type": "mlflow", "target": target})
    import_s = time.monotonic() - started
    assert created.status_code == 201, created.text
    location_id = created.json()["location"]["id"]
    model_name, adapter_name = f"{prefix}-llama-tiny", f"{prefix}-hr-adapter"
    refs = sorted(
        f"resource:default/{n}"
        for n in (f"{model_name}-v1", *(f"{adapter_name}-v{i}" for i in (1, 2, 3)))
    )
    assert (
        sorted(f"resource:default/{e['metadata']['name']}" for e in created.json()["entities"])
        == refs
    )

    model = _entity(admin_client, f"{model_name}-v1")
    assert model["spec"] == {
        "type": "llm-model",
        "owner": "group:default/ml-platform",
        "family": model_name,
        "version": "1",
        "source": f"models:/{base}/1",
        "format": "safetensors",
        "parameters": "135M",
        "quantization": "bf16",
    }
    assert model["metadata"]["description"] == "a tiny base model"
    annotations = model["metadata"]["annotations"]
    assert annotations[f"{ANNOTATION}model"] == base
    assert annotations[f"{ANNOTATION}version"] == "1"
    assert annotations["backstage.io/managed-by-location"] == f"mlflow:{target}"

    v3 = _entity(admin_client, f"{adapter_name}-v3")
    assert v3["spec"] == {
        "type": "lora-adapter",
        "owner": "group:default/hr",  # the target's default: the model has no owner tag
        "family": adapter_name,
        "version": "3",
        "previousVersion": f"resource:default/{adapter_name}-v2",
        "source": f"models:/{adapter}/3",
        "baseModel": f"resource:default/{model_name}-v1",
        "rank": 16,  # the version's tag over the run's param r
        "alpha": 16,
        "targetModules": ["q_proj", "v_proj"],
        "dataset": "resource:default/hr-faq-2026q3",
        "evalScores": {"answer_relevance": 0.7, "faithfulness": 0.83},  # not train_loss
    }
    assert v3["metadata"]["annotations"][f"{ANNOTATION}run-id"]
    assert v3["metadata"]["annotations"][f"{ANNOTATION}storage"].endswith("/adapter")
    assert v3["metadata"]["links"][0]["url"] == (
        f"{mlflow_server.url}/#/models/{adapter}/versions/3"
    )
    assert _entity(admin_client, f"{adapter_name}-v1")["spec"]["rank"] == 8
    assert "previousVersion" not in _entity(admin_client, f"{adapter_name}-v1")["spec"]
    relations = _relations(v3)
    assert ("hasPreviousVersion", f"resource:default/{adapter_name}-v2") in relations
    assert ("adapterOf", f"resource:default/{model_name}-v1") in relations
    unchanged_etag = _entity(admin_client, f"{adapter_name}-v1")["metadata"]["etag"]

    # A fourth version registered, the second deleted: a refresh follows the registry.
    _adapter_version(
        client, experiment, adapter, 32, {"faithfulness": 0.9, "answer_relevance": 0.8}
    )
    client.delete_model_version(adapter, "2")
    started = time.monotonic()
    refreshed = admin_client.post(
        "/api/catalog/refresh", json={"entityRef": f"resource:default/{adapter_name}-v1"}
    )
    refresh_s = time.monotonic() - started
    assert refreshed.status_code in (200, 204), refreshed.text
    v4 = _entity(admin_client, f"{adapter_name}-v4")
    assert v4["spec"]["previousVersion"] == f"resource:default/{adapter_name}-v3"
    assert v4["spec"]["rank"] == 32
    assert v4["spec"]["evalScores"] == {"answer_relevance": 0.8, "faithfulness": 0.9}
    v3 = _entity(admin_client, f"{adapter_name}-v3")
    assert v3["spec"]["previousVersion"] == f"resource:default/{adapter_name}-v1"
    assert ORPHAN not in v3["metadata"]["annotations"]
    # Deleted in MLflow: flagged orphan, as an entity that leaves any location is.
    v2 = _entity(admin_client, f"{adapter_name}-v2")
    assert v2["metadata"]["annotations"][ORPHAN] == "true"
    # Unchanged versions are not rewritten.
    assert _entity(admin_client, f"{adapter_name}-v1")["metadata"]["etag"] == unchanged_etag
    [listed] = [
        item for item in admin_client.get(LOCATIONS).json() if item["data"]["id"] == location_id
    ]
    assert listed["status"]["lastRefreshError"] is None
    print(
        f"\nmlflow server start {mlflow_server.start_s:.2f}s, import {import_s:.2f}s, "
        f"refresh {refresh_s:.2f}s"
    )


# ---------------------------------------------------------------- stand-in MLflow


@dataclass
class StandIn:
    """Answers GET /api/2.0/mlflow/<path> with ``answers[path]`` (status, JSON)."""

    url: str
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    # The Authorization header it requires (401 otherwise), and the ones it was sent.
    required_auth: str | None = None
    seen_auth: list[str | None] = field(default_factory=list)


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    state = StandIn("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = urlsplit(self.path).path.removeprefix("/api/2.0/mlflow/")
            status, body = state.answers.get(path, (404, {"error_code": "ENDPOINT_NOT_FOUND"}))
            state.seen_auth.append(self.headers.get("Authorization"))
            if state.required_auth and self.headers.get("Authorization") != state.required_auth:
                status, body = 401, {"error_code": "UNAUTHENTICATED", "message": "credentials"}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def _registry(state: StandIn, model_tags: dict[str, str], version_tags: dict[str, str]) -> None:
    def tags(values: dict[str, str]) -> list[dict[str, str]]:
        return [{"key": k, "value": v} for k, v in values.items()]

    state.answers["registered-models/search"] = (
        200,
        {"registered_models": [{"name": "Base", "tags": tags(model_tags)}]},
    )
    state.answers["model-versions/search"] = (
        200,
        {
            "model_versions": [
                {"name": "Base", "version": "1", "status": "READY", "tags": tags(version_tags)}
            ]
        },
    )


def _count(factory: Any, table: Any) -> int:
    with session_scope(factory) as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def _add(factory: Any, target: str) -> dict:
    with session_scope(factory) as session:
        return LocationRegistry(session, policy=POLICY).add_location("mlflow", target)


def test_unreachable_server_is_a_clear_error_and_writes_nothing(session_factory: Any) -> None:
    target = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(InputError, match="could not reach the MLflow tracking server at"):
        _add(session_factory, target)
    assert _count(session_factory, CatalogLocation) == 0


def test_not_an_mlflow_server(session_factory: Any, yaml_server: YamlServer) -> None:
    with pytest.raises(InputError, match="HTTP 404.*is the target an MLflow tracking server"):
        _add(session_factory, yaml_server.url)
    with pytest.raises(InputError, match="unknown parameter 'filter'"):
        _add(session_factory, f"{yaml_server.url}?filter=x")
    with pytest.raises(InputError, match="carries credentials") as raised:
        _add(session_factory, yaml_server.url.replace("//", "//me:secret@"))
    assert "secret" not in raised.value.message


def test_refresh_error_is_recorded_and_keeps_the_entities(
    session_factory: Any, stand_in: StandIn
) -> None:
    _registry(stand_in, {"ragportal.type": "llm-model", "ragportal.owner": "team-a"}, {})
    added = _add(session_factory, stand_in.url)
    assert [e["metadata"]["name"] for e in added["entities"]] == ["base-v1"]
    location_id = added["location"]["id"]

    stand_in.answers["model-versions/search"] = (
        500,
        {"error_code": "INTERNAL_ERROR", "message": "database is locked"},
    )
    outcome = refresh.refresh_claimed(session_factory, location_id, POLICY)
    assert outcome.state == "failed"
    with session_scope(session_factory) as session:
        location = session.get(CatalogLocation, location_id)
        assert location is not None
        assert location.last_error == (
            f"InputError: MLflow at {stand_in.url} answered HTTP 500 to GET "
            "model-versions/search: INTERNAL_ERROR: database is locked"
        )
        bodies = [json.loads(b) for b in session.scalars(select(CatalogEntity.body))]
    assert [b["metadata"]["name"] for b in bodies] == ["base-v1"]
    assert ORPHAN not in bodies[0]["metadata"]["annotations"]


@pytest.mark.parametrize(
    ("model_tags", "version_tags", "message"),
    [
        ({"ragportal.type": "llm-model"}, {}, "version 1: no owner: tag"),
        ({"ragportal.type": "lora"}, {}, "tag ragportal.type is 'lora'; use one of"),
        (
            {"ragportal.type": "lora-adapter", "ragportal.owner": "team-a"},
            {"ragportal.rank": "8"},
            "an adapter needs its base model: tag ragportal.base_model",
        ),
        (
            {"ragportal.type": "lora-adapter", "ragportal.owner": "team-a"},
            {"ragportal.base_model": "resource:default/llama", "ragportal.rank": "eight"},
            "tag ragportal.rank is 'eight', not an integer",
        ),
    ],
)
def test_versions_that_cannot_be_mapped_are_refused_by_name(
    session_factory: Any,
    stand_in: StandIn,
    model_tags: dict[str, str],
    version_tags: dict[str, str],
    message: str,
) -> None:
    _registry(stand_in, model_tags, version_tags)
    with pytest.raises(InputError, match=message) as raised:
        _add(session_factory, stand_in.url)
    assert "MLflow model 'Base'" in raised.value.message
    assert _count(session_factory, CatalogLocation) == 0
    assert _count(session_factory, CatalogEntity) == 0


def test_credentials_go_to_their_origin_only(session_factory: Any, stand_in: StandIn) -> None:
    _registry(stand_in, {"ragportal.type": "llm-model", "ragportal.owner": "team-a"}, {})
    stand_in.required_auth = "Bearer s3cret"
    with pytest.raises(InputError, match="HTTP 401.*RAGPORTAL_MLFLOW_CREDENTIALS") as raised:
        _add(session_factory, stand_in.url)
    assert stand_in.url in raised.value.message
    # Configured for another origin (here: the same host over https): not sent.
    other = {stand_in.url.replace("http:", "https:"): "Bearer s3cret"}
    with session_scope(session_factory) as session, pytest.raises(InputError, match="HTTP 401"):
        LocationRegistry(session, policy=replace(POLICY, mlflow_auth=other)).add_location(
            "mlflow", stand_in.url
        )
    assert set(stand_in.seen_auth) == {None}
    with session_scope(session_factory) as session:
        registry = LocationRegistry(
            session, policy=replace(POLICY, mlflow_auth={stand_in.url: "Bearer s3cret"})
        )
        added = registry.add_location("mlflow", f"{stand_in.url}/")
    assert [e["metadata"]["name"] for e in added["entities"]] == ["base-v1"]
