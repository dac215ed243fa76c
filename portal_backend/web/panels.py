"""RAG service panels of the entity page: deployment, SLA, cost, evaluation, links.

Everything here is read from the domain services (catalog status written by the
provisioner and the SLA/cost collector, the SLA/cost service for windows and daily
cost); this module only picks what the page shows.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from portal_backend import metadata_keys
from portal_backend.rag.operations import service_name
from portal_backend.settings import Settings
from portal_backend.sla import costs, reports, services
from portal_backend.sla.clock import utcnow
from portal_backend.sla.costs import DAY

WINDOWS = ("1h", "24h", "7d", "30d")
COST_DAYS = 30


def is_rag_service(entity: dict[str, Any]) -> bool:
    return str(entity.get("kind", "")).lower() == "component" and (
        (entity.get("spec") or {}).get("type") == metadata_keys.RAG_SERVICE_TYPE
    )


def _annotations(entity: dict[str, Any]) -> dict[str, str]:
    return (entity.get("metadata") or {}).get("annotations") or {}


def rag_panels(
    session: Session, entity: dict[str, Any], window: str, *, reports: bool = True
) -> dict[str, Any] | None:
    """What the RAG tabs show; ``reports=False`` skips the SLA/cost report (the tabs that
    do not show it stay fast)."""
    if not is_rag_service(entity):
        return None
    annotations = _annotations(entity)
    status = entity.get("status") or {}
    window = window if window in WINDOWS else "24h"
    report = _report(session, entity, window) if reports else None
    name = service_name(entity)
    return {
        "name": name,
        "window": window,
        "windows": WINDOWS,
        "model": annotations.get(metadata_keys.MODEL),
        "gpu_class": annotations.get(metadata_keys.GPU_CLASS),
        "gpus": annotations.get(metadata_keys.GPUS),
        "replicas": annotations.get(metadata_keys.REPLICAS),
        # Where it answers now (the local runtime's address), else where it will in its
        # cluster (the annotation the template wrote).
        "endpoint": (status.get("deployment") or {}).get("endpoint")
        or annotations.get(metadata_keys.ENDPOINT),
        "namespace": annotations.get(metadata_keys.NAMESPACE) or name,
        "slo_p95_ms": annotations.get(metadata_keys.SLO_P95_LATENCY_MS),
        "slo_success": annotations.get(metadata_keys.SLO_SUCCESS_RATE),
        "budget_usd": annotations.get(metadata_keys.MONTHLY_BUDGET_USD),
        "deployment": status.get("deployment") or None,
        "slo_status": status.get("slo") or None,
        "cost_status": status.get("cost") or None,
        "sla": _sla(report, window),
        "cost": _cost(session, entity, report),
        "evaluations": (report or {}).get("evaluations") or [],
        "alerts": (report or {}).get("alerts") or [],
    }


def _service_ref(entity: dict[str, Any]) -> str:
    meta = entity.get("metadata") or {}
    return f"component:{meta.get('namespace') or 'default'}/{meta['name']}".lower()


def _report(session: Session, entity: dict[str, Any], window: str) -> dict[str, Any] | None:
    """The SLA/cost service's report for this entity (the same one /api/sla returns)."""
    now = utcnow()
    service = services.find(session, _service_ref(entity), now)
    if service is None:
        return None
    return reports.service_report(session, service, window, now)


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else 100.0 * fraction


def _sla(report: dict[str, Any] | None, window: str) -> dict[str, Any] | None:
    if report is None:
        return None
    selected = report["slo"]
    latency = selected.get("latencyMs") or {}
    remaining = [v for v in (selected.get("errorBudgetRemaining") or {}).values() if v is not None]
    step_format = "%m-%d" if window == "30d" else "%m-%d %H:%M"
    return {
        "state": selected.get("state"),
        "requests": selected.get("requests") or 0,
        "success_rate": _percent(selected.get("successRate")),
        "p50_ms": latency.get("p50"),
        "p95_ms": latency.get("p95"),
        "ttft_p95_ms": selected.get("ttftP95Ms"),
        "error_budget_remaining": min(remaining) if remaining else None,
        "tokens": (selected.get("tokens") or {}).get("total", 0),
        "compliant": selected.get("compliant"),
        "series": [
            {
                "t": datetime.fromtimestamp(point["t"], UTC).strftime(step_format),
                "p95_ms": point.get("p95LatencyMs"),
                "success_rate": _percent(point.get("successRate")),
                "requests": point.get("requests"),
            }
            for point in report.get("series") or []
        ],
    }


def _cost(session: Session, entity: dict[str, Any], report: dict[str, Any] | None) -> Any:
    if report is None:
        return None
    cost = report["cost"]
    today = int(datetime.now(UTC).timestamp()) // DAY * DAY
    start = today - (COST_DAYS - 1) * DAY
    per_day = costs.daily_costs(session, start, today + DAY, refs=[_service_ref(entity)])
    daily = next(iter(per_day.values()), {})
    days = [
        {
            "day": datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d"),
            "usd": round(daily.get(ts, 0.0), 4),
        }
        for ts in range(start, today + DAY, DAY)
    ]
    budget = cost.get("budgetUsd")
    return {
        "days": days if any(d["usd"] for d in days) else [],
        "window_usd": cost.get("windowUsd"),
        "mtd_usd": cost.get("mtdUsd"),
        "projected_usd": cost.get("projectedUsd"),
        "budget_usd": budget,
        "budget_burn": (cost["mtdUsd"] / budget) if budget else None,
        "projected_burn": (cost["projectedUsd"] / budget) if budget else None,
        "per_1k_tokens_usd": cost.get("per1kTokensUsd"),
        "per_prompt_usd": cost.get("perPromptUsd"),
    }


def deploy_choices(settings: Settings) -> list[tuple[str, str]]:
    """(form value, label) of every place a service can be deployed to from its page."""
    choices = [(f"kubernetes:{name}", f"Cluster {name}") for name in sorted(settings.clusters)]
    if settings.runtime_enabled:
        choices.append(("local", "Local runtime (this machine, CPU)"))
    choices.append(("plan", "Plan only (render and validate, apply nothing)"))
    return choices


def current_target(deployment: dict[str, Any] | None) -> str | None:
    """The deploy form value of where the service was last deployed (for Re-provision)."""
    if not deployment:
        return None
    if deployment.get("cluster"):
        return f"kubernetes:{deployment['cluster']}"
    return deployment.get("target") or None


def preferred_target(choices: list[tuple[str, str]], current: str | None) -> str:
    """What the Deploy form offers first: where it runs now, else the first place that
    runs it (a plan only when nothing else is configured)."""
    values = [value for value, _label in choices]
    if current and current != "plan" and current in values:
        return current
    return next((v for v in values if v != "plan"), "plan")


def next_steps(deployment: dict[str, Any] | None, settings: Settings) -> dict[str, Any]:
    """What a person can do about where the service stands, in words: why it is in this
    state and the way forward (the Deployment tab's call to action)."""
    deployment = deployment or {}
    state = deployment.get("state")
    runs_somewhere = bool(settings.clusters) or settings.runtime_enabled
    if state is None:
        return {
            "why": "It has not been deployed yet.",
            "todo": "Deploy it to run it." if runs_somewhere else _ENABLE_TARGET,
        }
    if state == "Planned":
        reason = plan_reason(str(deployment.get("message") or ""))
        return {
            "why": "Nothing runs, only a plan was recorded" + (f": {reason}." if reason else "."),
            "todo": (
                "Deploy it to the local runtime or a cluster to run it, or re-provision to "
                "record the plan again."
                if runs_somewhere
                else _ENABLE_TARGET
            ),
        }
    if state == "Stopped":
        return {
            "why": "It was stopped on request and costs nothing while stopped.",
            "todo": "Deploy it to start it again.",
        }
    if state in ("Degraded", "Down", "Drifted"):
        return {
            "why": str(deployment.get("message") or _failing_objects(deployment)),
            "todo": "Re-provision to apply it again, or look at the objects below.",
        }
    if state == "Progressing":
        return {"why": "It is being deployed.", "todo": "The task log shows the progress."}
    return {"why": "", "todo": ""}


def plan_reason(message: str) -> str:
    """Why only a plan was made: the provisioner says "<reason>, so nothing was applied:
    ..." (or "<reason>: plan recorded, nothing applied"); the reason is what a person
    needs, the rest says what a plan is."""
    return re.split(r", so nothing was applied|: plan recorded", message)[0].strip()


def _failing_objects(deployment: dict[str, Any]) -> str:
    """What the objects say when the deployment has no message of its own."""
    failing = [
        f"{o.get('kind')}/{o.get('name')}: "
        + " ".join(str(p) for p in (o.get("reason"), o.get("message")) if p)
        for o in deployment.get("objects") or []
        if o.get("state") not in ("Ready", "Planned") and (o.get("reason") or o.get("message"))
    ]
    return "; ".join(failing) if failing else "Something in it is not healthy."


_ENABLE_TARGET = (
    "This portal has nowhere to run it: turn the local runtime on "
    "(RAGPORTAL_RUNTIME_ENABLED=true, the default) or add a cluster (RAGPORTAL_CLUSTERS), "
    "restart the portal, then deploy it from here."
)
