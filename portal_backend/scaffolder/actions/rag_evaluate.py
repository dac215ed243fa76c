"""rag:evaluate: run a service's evaluation set against it and record the scores.

The repository's ``eval/`` runs against the running service (retrieval hit@k and MRR,
and with ``judge`` the hallucination rate of its answers, judged by its own LLM); the
scores land on the entity's Evaluation panel like the ones its CI posts.
"""

from __future__ import annotations

from typing import Any

from portal_backend.db import session_scope
from portal_backend.provisioning.local.runtime import (
    LocalRuntime,
    LocalRuntimeCancelled,
    LocalRuntimeError,
)
from portal_backend.scaffolder.actions.base import (
    Action,
    ActionContext,
    ActionError,
    TaskCancelled,
    register,
)
from portal_backend.scaffolder.actions.rag_provision import flag
from portal_backend.sla.clock import utcnow
from portal_backend.sla.evaluations import RATE_METRICS, record_evaluation
from portal_backend.sla.refs import normalize_ref

SUMMARY_KEYS = ("questions", "k", *RATE_METRICS)


@register
class RagEvaluateAction(Action):
    id = "rag:evaluate"
    description = (
        "Runs the repository's evaluation set (python -m eval) against the running service "
        "on the local runtime and records hit@k, MRR and (with judge) the hallucination "
        "rate on its catalog entity."
    )
    input_schema = {
        "type": "object",
        "required": ["service", "entityRef"],
        "properties": {
            "service": {"type": "string"},
            "entityRef": {"type": "string"},
            "judge": {"type": ["boolean", "string"], "default": True},
        },
    }
    output_schema = {"type": "object", "properties": {k: {} for k in SUMMARY_KEYS}}

    def run(self, ctx: ActionContext, input: dict[str, Any]) -> dict[str, Any]:
        runtime = LocalRuntime(
            ctx.settings, ctx.session_factory, log=ctx.log, is_cancelled=ctx.is_cancelled
        )
        if ctx.dry_run:
            ctx.log("dry run: the evaluation would run against the service")
            return {}
        try:
            report = runtime.evaluate(str(input["service"]), judge=flag(input.get("judge", True)))
        except LocalRuntimeCancelled as exc:
            raise TaskCancelled() from exc
        except LocalRuntimeError as exc:
            raise ActionError(str(exc)) from exc
        summary = {k: report.get(k) for k in SUMMARY_KEYS if k in report}
        with session_scope(ctx.session_factory) as session:
            record_evaluation(
                session,
                normalize_ref(str(input["entityRef"])),
                {**report, "dataset": report.get("dataset") or "eval/golden.jsonl"},
                utcnow(),
                ctx.user_ref,
            )
        ctx.log("recorded: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
        return summary
