"""Models and LoRA adapters as versioned catalog entities: their specs' validation and
the relations their versions, base models and services make (docs/models.md)."""

from __future__ import annotations

from typing import Any

import pytest

from catalog.errors import InputError
from catalog.model_specs import family_of
from catalog.relations import RELATION_TYPES, compute_relations
from catalog.service import CatalogService
from catalog.validation import validate_entity
from portal_backend.db import session_scope
from tests.models.adapters import adapter_entity, model_entity


def _adapter(**changes: Any) -> dict[str, Any]:
    entity = adapter_entity(
        "hr-adapter-v3",
        "3",
        "/srv/adapters/hr/v3",
        rank=16,
        alpha=32,
        modules=["q_proj", "v_proj"],
        previous="resource:default/hr-adapter-v2",
        scores={"faithfulness": 0.91},
    )
    for key, value in changes.items():
        if value is None:
            entity["spec"].pop(key, None)
        else:
            entity["spec"][key] = value
    return entity


def test_valid_versions_pass() -> None:
    assert validate_entity(_adapter()) == []
    assert validate_entity(model_entity("llama-3-8b-v1", "1", "meta-llama/Meta-Llama-3-8B")) == []
    model = model_entity("llama-3-8b-v2", "2", "models:/llama-3-8b/2")
    model["spec"]["parameters"] = 8030000000
    assert validate_entity(model) == []


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"version": None}, "spec.version", "required for a lora-adapter"),
        ({"version": 3}, "spec.version", "quote it"),
        ({"source": None}, "spec.source", "required for a lora-adapter"),
        ({"baseModel": None}, "spec.baseModel", "the llm-model version it was trained on"),
        ({"baseModel": "resource:default/Not A Name"}, "spec.baseModel", "not a valid entity"),
        ({"rank": None}, "spec.rank", "positive whole number"),
        ({"rank": 0}, "spec.rank", "positive whole number"),
        ({"rank": "16"}, "spec.rank", "positive whole number"),
        ({"alpha": -1}, "spec.alpha", "positive number"),
        ({"targetModules": "q_proj"}, "spec.targetModules", "list of module names"),
        ({"evalScores": {"faithfulness": "high"}}, "spec.evalScores.faithfulness", "number"),
        ({"previousVersion": ["a"]}, "spec.previousVersion", "must be a string"),
    ],
)
def test_adapter_refusals_name_the_field(changes: dict[str, Any], path: str, words: str) -> None:
    problems = validate_entity(_adapter(**changes))
    assert [p.path for p in problems] == [path], problems
    assert words in problems[0].message


def test_model_refusals() -> None:
    model = model_entity("m-v1", "1", "org/m")
    model["spec"]["parameters"] = "eight billion"
    del model["spec"]["source"]
    paths = {p.path for p in validate_entity(model)}
    assert paths == {"spec.parameters", "spec.source"}
    # Other resource types keep their free-form specs.
    other = model_entity("x", "1", "org/m")
    other["spec"] = {"type": "database", "owner": "team-a", "version": 3}
    assert validate_entity(other) == []


def test_relations_chain_versions_base_model_and_services() -> None:
    rows = set(compute_relations(_adapter()))
    me = "resource:default/hr-adapter-v3"
    assert (me, "hasPreviousVersion", "resource:default/hr-adapter-v2") in rows
    assert ("resource:default/hr-adapter-v2", "hasNextVersion", me) in rows
    assert (me, "adapterOf", "resource:default/tiny-llama-v1") in rows
    assert ("resource:default/tiny-llama-v1", "hasAdapter", me) in rows
    assert {"hasPreviousVersion", "hasNextVersion", "adapterOf", "hasAdapter"} <= set(
        RELATION_TYPES
    )
    # A plain resource does not turn a previousVersion field into a relation.
    plain = _adapter()
    plain["spec"]["type"] = "database"
    assert not any(t == "hasPreviousVersion" for _, t, _ in compute_relations(plain))


def test_family() -> None:
    assert family_of(_adapter()) == "hr-adapter"
    assert family_of(_adapter(family="HR-Tone")) == "hr-tone"
    entity = _adapter(version="2026.1")
    entity["metadata"]["name"] = "hr-adapter-2026.1"
    assert family_of(entity) == "hr-adapter"


def test_catalog_stores_versions_and_answers_who_runs_what(session_factory) -> None:  # type: ignore[no-untyped-def]
    v2 = _adapter(version="2", previousVersion=None)
    v2["metadata"]["name"] = "hr-adapter-v2"
    service = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": "hr-bot"},
        "spec": {
            "type": "rag-service",
            "lifecycle": "production",
            "owner": "group:default/hr",
            "dependsOn": ["resource:default/tiny-llama-v1", "resource:default/hr-adapter-v3"],
        },
    }
    with session_scope(session_factory) as session:
        catalog = CatalogService(session)
        catalog.upsert_entities(
            [model_entity("tiny-llama-v1", "1", "org/tiny"), v2, _adapter(), service]
        )
    with session_scope(session_factory) as session:
        catalog = CatalogService(session)
        # Which services run hr-adapter v3?
        assert catalog.query_refs({"relations.dependson": "resource:default/hr-adapter-v3"}) == [
            "component:default/hr-bot"
        ]
        # Which adapters are trained on the tiny model, and what came after v2?
        assert catalog.query_refs({"relations.adapterof": "resource:default/tiny-llama-v1"}) == [
            "resource:default/hr-adapter-v2",
            "resource:default/hr-adapter-v3",
        ]
        v2_read = catalog.get_by_ref("resource:default/hr-adapter-v2")
        assert v2_read is not None
        assert {"type": "hasNextVersion", "targetRef": "resource:default/hr-adapter-v3"} in [
            {k: r[k] for k in ("type", "targetRef")} for r in v2_read["relations"]
        ]
        with pytest.raises(InputError, match="spec.rank"):
            catalog.upsert_entities([_adapter(rank=-4)])
