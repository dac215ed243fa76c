"""Evaluate from the portal: the repository's eval/ against the running service (over its
HTTP API, judged by its own LLM), the scores on its entity's Evaluation panel."""

from __future__ import annotations

import json

from portal_backend.db import make_engine, make_session_factory, session_scope
from portal_backend.provisioning.local.runtime import LocalRequest, LocalRuntime
from portal_backend.scaffolder.actions import load_actions
from portal_backend.scaffolder.actions.base import ActionContext, get_action
from portal_backend.settings import Settings
from portal_backend.sla.evaluations import list_evaluations
from tests.provisioning.local.conftest import publish

# Two questions the example corpus answers, one it cannot: a short judged run on 2 cores.
GOLDEN = [
    {
        "question": "Which vector database stores the document chunks?",
        "expected_answer": "Qdrant.",
        "expected_sources": ["architecture.md"],
    },
    {
        "question": "How do I rotate the Qdrant API key?",
        "expected_answer": "Create a new Secret version and restart the API pods.",
        "expected_sources": ["runbook.md"],
    },
    {
        "question": "What is the capital of Mongolia?",
        "expected_answer": "",
        "expected_sources": [],
    },
]


def test_evaluate_runs_the_golden_set_against_the_service_and_records_it(
    runtime_settings: Settings, tmp_path
) -> None:
    golden = "\n".join(json.dumps(item) for item in GOLDEN) + "\n"
    service = publish(
        runtime_settings,
        "eval-bot",
        edit={"eval/golden.jsonl": golden},
        example_corpus=True,
    )
    factory = make_session_factory(make_engine(runtime_settings.database_url))
    LocalRuntime(runtime_settings, factory).provision(
        LocalRequest(service.name, service.contents_url, "prod", "component:default/eval-bot")
    )
    load_actions()
    logs: list[str] = []
    context = ActionContext(
        task_id="t", step_id="evaluate", workspace=tmp_path, settings=runtime_settings,
        session_factory=factory, user_ref="user:default/tester", log=logs.append,
    )  # fmt: skip
    output = get_action("rag:evaluate").run(  # type: ignore[union-attr]
        context, {"service": "eval-bot", "entityRef": "component:default/eval-bot", "judge": True}
    )
    assert output["questions"] == 3
    assert 0 <= output["hit_at_k"] <= 1 and 0 <= output["mrr"] <= 1
    # The judge ran: answers of the two answerable questions were judged.
    assert output["hallucination_rate"] is not None
    with session_scope(factory) as session:
        [recorded] = list_evaluations(session, "component:default/eval-bot")
        assert recorded.metrics["hit_at_k"] == output["hit_at_k"]
        assert recorded.metrics["hallucination_rate"] == output["hallucination_rate"]
        assert recorded.submitted_by == "user:default/tester"
    assert any("recorded: questions 3" in line for line in logs)
