"""Adapter version diffs: configuration and per-layer weights, read from the safetensors
files of real peft adapters (a tiny Llama from a config, no download).

The oracle is peft itself: each layer's ``get_delta_weight`` (the dense change the adapter
makes to the base weight), and the norm of their difference between two versions.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from catalog.errors import UnprocessableError
from catalog.locations import LocationPolicy
from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.rag import adapter_weights, adapters
from tests.models.adapters import Made, adapter_entity, make_adapter, model_entity

Q0 = "model.layers.0.self_attn.q_proj"
MODULES = ["q_proj", "v_proj"]


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Made]:
    root = tmp_path_factory.mktemp("adapters")
    v1 = make_adapter(root / "v1", rank=8, alpha=16, modules=MODULES, seed=1)
    # v2: v1's weights, one layer's lora_B moved by a known amount.
    v2 = make_adapter(
        root / "v2", rank=8, alpha=16, modules=MODULES, seed=1, start_from=v1.path,
        nudge={Q0: 0.25},
    )  # fmt: skip
    # v3: retrained at rank 16 on three modules, saved in bfloat16.
    v3 = make_adapter(
        root / "v3", rank=16, alpha=32, modules=[*MODULES, "k_proj"], seed=3,
        dtype=torch.bfloat16,
    )  # fmt: skip
    return {"1": v1, "2": v2, "3": v3}


def _policy(*roots: Path) -> LocationPolicy:
    return LocationPolicy(file_roots=tuple(r.resolve() for r in roots))


@pytest.fixture
def allow_roots(live_server, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Set the live portal's RAGPORTAL_ALLOWED_FILE_ROOTS for one test: weights are read
    only under them (the test adapters live outside the portal's data folder)."""

    def allow(*roots: Path) -> None:
        settings = live_server.app.state.settings.model_copy(
            update={"allowed_file_roots": list(roots)}
        )
        monkeypatch.setattr(live_server.app.state, "settings", settings)

    return allow


def _entities(made: dict[str, Made]) -> list[dict[str, Any]]:
    rows = [model_entity("tiny-llama-v1", "1", "/models/tiny-llama")]
    specs = {"1": (8, 16, MODULES), "2": (8, 16, MODULES), "3": (16, 32, [*MODULES, "k_proj"])}
    for version, (rank, alpha, modules) in specs.items():
        previous = f"resource:default/hr-adapter-v{int(version) - 1}" if version != "1" else None
        source = str(made[version].path)
        if version == "2":
            source = made[version].path.as_uri()  # file: URLs work as well as paths
        rows.append(
            adapter_entity(
                f"hr-adapter-v{version}", version, source, rank=rank, alpha=alpha,
                modules=modules, previous=previous,
                scores={"faithfulness": {"1": 0.85, "2": 0.9, "3": 0.95}[version]},
            )
        )  # fmt: skip
    return rows


def _oracle(old: Made, new: Made, module: str) -> float:
    return float(torch.linalg.norm(new.deltas[module] - old.deltas[module]))


def test_known_change_is_found_in_its_layer_only(versions: dict[str, Made]) -> None:
    old = adapter_weights.read_weights(versions["1"].path / "adapter_model.safetensors")
    new = adapter_weights.read_weights(versions["2"].path / "adapter_model.safetensors")
    config = adapter_weights.read_config(versions["1"].path / "adapter_config.json")
    diff = adapter_weights.layer_diff(old, new, old_config=config, new_config=config)
    rows = {r["module"]: r for r in diff["layers"]}
    assert len(rows) == 4  # 2 layers x (q_proj, v_proj)
    assert rows[Q0]["status"] == "changed"
    assert rows[Q0]["change_norm"] == pytest.approx(
        _oracle(versions["1"], versions["2"], Q0), rel=1e-5
    )
    assert rows[Q0]["from"]["rank"] == 8 and rows[Q0]["from"]["lora_A"] == [8, 64]
    assert rows[Q0]["from"]["delta_norm"] == pytest.approx(
        float(torch.linalg.norm(versions["1"].deltas[Q0])), rel=1e-5
    )
    others = [r for m, r in rows.items() if m != Q0]
    assert all(r["status"] == "unchanged" and r["change_norm"] < 1e-9 for r in others)
    assert diff["summary"]["changed"] == 1 and diff["summary"]["largest_change"] == Q0


def test_rank_change_bf16_and_new_modules(versions: dict[str, Made]) -> None:
    old = adapter_weights.read_weights(versions["2"].path / "adapter_model.safetensors")
    new = adapter_weights.read_weights(versions["3"].path / "adapter_model.safetensors")
    assert set(new.dtypes.values()) == {"BF16"}
    diff = adapter_weights.layer_diff(
        old,
        new,
        old_config=adapter_weights.read_config(versions["2"].path / "adapter_config.json"),
        new_config=adapter_weights.read_config(versions["3"].path / "adapter_config.json"),
    )
    rows = {r["module"]: r for r in diff["layers"]}
    assert diff["summary"]["added"] == 2  # k_proj of both layers
    k0 = rows["model.layers.0.self_attn.k_proj"]
    assert k0["status"] == "added" and k0["to"]["rank"] == 16
    for module in (Q0, "model.layers.1.self_attn.v_proj"):
        assert rows[module]["from"]["rank"] == 8 and rows[module]["to"]["rank"] == 16
        assert rows[module]["change_norm"] == pytest.approx(
            _oracle(versions["2"], versions["3"], module), rel=1e-4
        )


def test_diff_over_http_names_versions_and_config(
    versions: dict[str, Made],
    session_factory,
    admin_client,
    allow_roots,  # type: ignore[no-untyped-def]
) -> None:
    allow_roots(versions["1"].path.parent)
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(_entities(versions))
    # The family, defaulting to the newest version and the one before it.
    body = admin_client.get("/api/rag/adapters/hr-adapter/diff").json()
    assert body["from"]["version"] == "2" and body["to"]["version"] == "3"
    assert body["versions"] == ["1", "2", "3"]
    fields = {row["field"]: row for row in body["config"]}
    assert (
        fields["rank"]["from"] == 8 and fields["rank"]["to"] == 16 and fields["rank"]["delta"] == 8
    )
    assert fields["targetModules"]["added"] == ["k_proj"]
    assert fields["evalScores.faithfulness"]["delta"] == pytest.approx(0.05)
    assert {r["field"] for r in body["adapter_config"]} >= {"r", "lora_alpha", "target_modules"}
    assert body["weights"]["available"] is True and body["weights"]["summary"]["added"] == 2

    # A version's ref and explicit versions.
    response = admin_client.get(
        "/api/rag/adapters/resource:default/hr-adapter-v2/diff", params={"from": "v1"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["from"]["name"] == "hr-adapter-v1" and body["to"]["name"] == "hr-adapter-v2"
    assert [(r["field"], r["from"], r["to"]) for r in body["config"]] == [
        ("evalScores.faithfulness", 0.85, 0.9),
        ("previousVersion", None, "resource:default/hr-adapter-v1"),
        ("source", str(versions["1"].path), versions["2"].path.as_uri()),
        ("version", "1", "2"),
    ]
    assert body["adapter_config"] == []  # same r, alpha, modules: only the weights moved
    changed = [r for r in body["weights"]["layers"] if r["status"] == "changed"]
    assert [r["module"] for r in changed] == [Q0]

    # Errors: unknown adapter, unknown version, the first version has no previous one.
    assert admin_client.get("/api/rag/adapters/nope/diff").status_code == 404
    missing = admin_client.get("/api/rag/adapters/hr-adapter/diff", params={"to": "9"})
    assert missing.status_code == 404 and "1, 2, 3" in missing.json()["error"]["message"]
    first = admin_client.get("/api/rag/adapters/hr-adapter-v1/diff")
    assert first.status_code == 400 and "first version" in first.json()["error"]["message"]


def test_weights_elsewhere_give_the_config_diff_and_the_reason(session_factory) -> None:  # type: ignore[no-untyped-def]
    old = adapter_entity("a-v1", "1", "org/a-adapter", rank=8, alpha=16, modules=MODULES)
    new = adapter_entity("a-v2", "2", "models:/a/2", rank=8, alpha=8, modules=MODULES)
    diff = adapters.diff_versions(old, new, policy=_policy(Path("/")))
    assert diff["weights"]["available"] is False
    assert (
        "models:/a/2" in diff["weights"]["reason"] and "org/a-adapter" in diff["weights"]["reason"]
    )
    assert [r["field"] for r in diff["config"]] == ["alpha", "source", "version"]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "huge-header"])
def test_unreadable_safetensors_are_a_clear_422(
    damage: str,
    versions: dict[str, Made],
    tmp_path: Path,
    session_factory,
    admin_client,
    allow_roots,  # type: ignore[no-untyped-def]
) -> None:
    allow_roots(versions["1"].path.parent, tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(versions["2"].path, broken)
    weights = broken / "adapter_model.safetensors"
    data = weights.read_bytes()
    if damage == "truncated":
        weights.write_bytes(data[: len(data) * 2 // 3])
    elif damage == "garbage":
        weights.write_bytes(b"not a safetensors file at all, just some text" * 10)
    elif damage == "empty":
        weights.write_bytes(b"")
    else:
        weights.write_bytes((2**40).to_bytes(8, "little") + data[8:])
    with pytest.raises(UnprocessableError, match=str(weights)):
        adapter_weights.read_weights(weights)

    entities = _entities(versions)
    entities[2]["spec"]["source"] = str(broken)
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(entities)
    response = admin_client.get("/api/rag/adapters/hr-adapter-v2/diff")
    assert response.status_code == 422, response.text
    message = response.json()["error"]["message"]
    assert str(weights) in message and "not a readable safetensors file" in message
    if damage == "truncated":
        assert "truncated" in message


def test_entity_page_shows_the_diff_and_problems(
    versions: dict[str, Made],
    tmp_path: Path,
    settings,
    session_factory,  # type: ignore[no-untyped-def]
) -> None:
    from fastapi.testclient import TestClient

    from portal_backend.app import create_app

    entities = _entities(versions)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes((versions["1"].path / "adapter_model.safetensors").read_bytes()[:100])
    entities.append(
        adapter_entity(
            "hr-adapter-v4", "4", str(broken), rank=16, alpha=32, modules=MODULES,
            previous="resource:default/hr-adapter-v3",
        )
    )  # fmt: skip
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(entities)
    roots = [versions["1"].path.parent, tmp_path]
    client = TestClient(
        create_app(
            settings.model_copy(update={"anonymous_read": True, "allowed_file_roots": roots})
        )
    )
    # The entity page's Overview loads the diff (htmx) for adapter versions only.
    entity_page = client.get("/catalog/default/resource/hr-adapter-v2")
    assert entity_page.status_code == 200
    assert 'hx-get="/catalog/default/resource/hr-adapter-v2/adapter-diff"' in entity_page.text
    model_page = client.get("/catalog/default/resource/tiny-llama-v1")
    assert model_page.status_code == 200 and "adapter-diff" not in model_page.text
    page = client.get("/catalog/default/resource/hr-adapter-v2/adapter-diff")
    assert page.status_code == 200
    assert "<html" in page.text and Q0 in page.text
    assert "4 layers: 1 changed, 3 unchanged" in page.text
    fragment = client.get(
        "/catalog/default/resource/hr-adapter-v3/adapter-diff",
        params={"from": "1"},
        headers={"HX-Request": "true"},
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "hr-adapter-v1" in fragment.text and "added" in fragment.text
    # A broken file and a first version are said on the page, not a crash.
    bad = client.get("/catalog/default/resource/hr-adapter-v4/adapter-diff")
    assert bad.status_code == 200 and "not a readable safetensors file" in bad.text
    first = client.get("/catalog/default/resource/hr-adapter-v1/adapter-diff")
    assert "first version" in first.text


def test_mlflow_registered_versions_diff_from_their_local_storage(
    versions: dict[str, Made],
) -> None:
    """A version an MLflow location made (source models:/..., the run's artifacts in a
    local store) is diffed from the storage the registry recorded."""
    old = adapter_entity("hr-v1", "1", "models:/hr/1", rank=8, alpha=16, modules=MODULES)
    new = adapter_entity("hr-v2", "2", "models:/hr/2", rank=8, alpha=16, modules=MODULES)
    old["metadata"]["annotations"] = {"rag-portal.io/mlflow-storage": versions["1"].path.as_uri()}
    new["metadata"]["annotations"] = {"rag-portal.io/mlflow-storage": str(versions["2"].path)}
    diff = adapters.diff_versions(old, new, policy=_policy(versions["1"].path.parent))
    assert diff["weights"]["available"] is True
    assert diff["weights"]["summary"]["largest_change"] == Q0


def test_weights_outside_the_allowed_roots_are_not_read(
    versions: dict[str, Made],
    tmp_path: Path,
    session_factory,
    admin_client,
    allow_roots,  # type: ignore[no-untyped-def]
) -> None:
    """A version's spec.source or MLflow storage comes from a remote catalog file or
    tracking server: the portal reads weights only under RAGPORTAL_ALLOWED_FILE_ROOTS.
    Outside them the diff is the configuration and the reason, and says nothing about the
    path (not even whether it exists); a link under the roots is followed to where it
    leads."""
    inside = tmp_path / "inside"
    inside.mkdir()
    allow_roots(inside)  # the adapters are elsewhere (tmp_path_factory's "adapters")
    linked = inside / "v2-link"
    linked.symlink_to(versions["2"].path, target_is_directory=True)
    missing = versions["1"].path.parent / "nowhere" / "adapter_model.safetensors"
    entities = _entities(versions)
    entities.append(
        adapter_entity(
            "hr-adapter-v4", "4", str(linked), rank=8, alpha=16, modules=MODULES,
            previous="resource:default/hr-adapter-v3",
        )
    )  # fmt: skip
    entities.append(
        adapter_entity(
            "hr-adapter-v5", "5", str(missing), rank=8, alpha=16, modules=MODULES,
            previous="resource:default/hr-adapter-v4",
        )
    )  # fmt: skip
    mlflow_made = adapter_entity(
        "hr-adapter-v6", "6", "models:/hr/6", rank=8, alpha=16, modules=MODULES,
        previous="resource:default/hr-adapter-v5",
    )  # fmt: skip
    mlflow_made["metadata"]["annotations"] = {
        "rag-portal.io/mlflow-storage": versions["3"].path.as_uri()
    }
    entities.append(mlflow_made)
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(entities)

    def diff(to: str, from_: str) -> dict[str, Any]:
        response = admin_client.get(
            "/api/rag/adapters/hr-adapter/diff", params={"from": from_, "to": to}
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    body = diff("2", "1")  # both plain paths outside the roots
    assert body["weights"]["available"] is False
    reason = body["weights"]["reason"]
    assert reason.count("outside the portal's allowed file roots") == 2
    assert "RAGPORTAL_ALLOWED_FILE_ROOTS" in reason and str(inside) not in reason
    assert "adapter_config" not in body  # its adapter_config.json is not read either
    assert [r["field"] for r in body["config"]][0] == "evalScores.faithfulness"
    # A link under the roots that leads out of them is refused as its target would be.
    assert "outside the portal's allowed file roots" in diff("4", "2")["weights"]["reason"]
    # A missing file outside the roots is the same answer as an existing one (no 422
    # "no such file" telling what exists on the portal's disk).
    assert "outside the portal's allowed file roots" in diff("5", "4")["weights"]["reason"]
    # The storage an MLflow server recorded, outside the roots.
    storage = diff("6", "5")["weights"]["reason"]
    assert "its MLflow storage" in storage and "outside the portal's allowed file roots" in storage

    # With the adapters' folder allowed, the same request reads the weights.
    allow_roots(inside, versions["1"].path.parent)
    body = diff("2", "1")
    assert body["weights"]["available"] is True and body["adapter_config"] == []
    assert diff("4", "2")["weights"]["available"] is True
