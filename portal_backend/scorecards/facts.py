"""What a check can measure about a service, all from the portal's own data.

A fact is a name (``eval.hit_at_k``, ``slo.success_rate_7d``, ...) resolved per service
to a ``Fact``: its value, or None when there is nothing to measure yet (no evaluation, no
traffic, no budget), with a sentence saying where the value came from or why it is
missing. Names are patterns, so a platform team can check any evaluation metric
(``eval.passage_hit_at_k``) or entity field (``entity.spec.lifecycle``) without code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.service import CatalogService
from portal_backend import metadata_keys
from portal_backend.scaffolder import version_store, versions
from portal_backend.sla import costs, services, slo, stats
from portal_backend.sla.alerts import list_alerts
from portal_backend.sla.refs import group_ref
from portal_backend.sla.tables import Evaluation, SlaService

Value = float | bool | str | None
# Units: how a threshold written as "N %" is read (a ratio is 0..1, a percent 0..100).
RATIO, PERCENT, COUNT, MS, BOOL, TEXT = "ratio", "percent", "count", "ms", "bool", "text"
NUMERIC_UNITS = (RATIO, PERCENT, COUNT, MS)


@dataclass(frozen=True)
class Fact:
    value: Value
    source: str  # where the value came from, or why there is none
    target: float | None = None  # the service's own target, for threshold "target"


@dataclass
class Subject:
    """One service being scored, with what several facts share read once."""

    session: Session
    entity: dict[str, Any]
    now: datetime
    _memo: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        meta = self.entity["metadata"]
        kind = str(self.entity["kind"]).lower()
        return f"{kind}:{meta.get('namespace', 'default')}/{meta['name']}".lower()

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def sla_service(self) -> SlaService | None:
        found = self.memo("sla", lambda: services.find(self.session, self.ref, self.now))
        return cast(SlaService | None, found)

    def latest_evaluation(self) -> Evaluation | None:
        found = self.memo(
            "evaluation",
            lambda: self.session.scalars(
                select(Evaluation)
                .where(Evaluation.service_ref == self.ref)
                .order_by(Evaluation.created_at.desc(), Evaluation.id.desc())
                .limit(1)
            ).first(),
        )
        return cast(Evaluation | None, found)

    def slo_windows(self) -> dict[str, dict[str, Any]]:
        def compute() -> dict[str, dict[str, Any]]:
            service = self.sla_service()
            targets = services.targets_of(service) if service else slo.Targets(None, None)
            end = slo.window_end(int(self.now.timestamp()))
            spans = {name: (end - seconds, end) for name, seconds in slo.WINDOWS.items()}
            rows = stats.fetch(self.session, self.ref, list(spans.values()))
            return {
                name: slo.window_report(rows.window(*span), targets) for name, span in spans.items()
            }

        windows: dict[str, dict[str, Any]] = self.memo("slo", compute)
        return windows


@dataclass(frozen=True)
class FactKind:
    pattern: str  # a regular expression over the fact's name
    unit: str
    description: str
    measure: Callable[[Subject, re.Match[str]], Fact]
    has_target: bool = False


def _evaluation(subject: Subject, match: re.Match[str]) -> Fact:
    metric = match["metric"]
    evaluation = subject.latest_evaluation()
    if evaluation is None:
        return Fact(None, "no evaluation recorded: run Evaluate on the service page")
    when = f"evaluation of {evaluation.created_at:%Y-%m-%d %H:%M}"
    if evaluation.dataset:
        when += f" on {evaluation.dataset}"
    value = (evaluation.metrics or {}).get(metric)
    if value is None:
        return Fact(None, f"the latest {when} has no {metric}")
    return Fact(float(value), when)


def _success_rate(subject: Subject, match: re.Match[str]) -> Fact:
    window = match["window"]
    report = subject.slo_windows()[window]
    service = subject.sla_service()
    rate = service.slo_success_rate if service else None
    target = rate / 100 if rate is not None else None
    if not report["requests"]:
        return Fact(None, f"no requests in the last {window}", target)
    return Fact(
        float(report["successRate"]), f"{report['requests']} requests in the last {window}", target
    )


def _p95_latency(subject: Subject, match: re.Match[str]) -> Fact:
    window = match["window"]
    report = subject.slo_windows()[window]
    service = subject.sla_service()
    target = service.slo_p95_latency_ms if service else None
    p95 = report["latencyMs"]["p95"]
    if not report["requests"] or p95 is None:
        return Fact(None, f"no requests in the last {window}", target)
    return Fact(float(p95), f"{report['requests']} requests in the last {window}", target)


def _budget(subject: Subject, match: re.Match[str]) -> Fact:
    service = subject.sla_service()
    budget = services.budget_of(subject.session, service) if service else None
    if not budget:
        return Fact(
            None,
            f"no monthly budget: set the {metadata_keys.MONTHLY_BUDGET_USD} annotation "
            "or PUT /api/sla/budgets/component/<namespace>/<name>",
        )
    figures = costs.month_figures(subject.session, subject.ref, subject.now)
    key = "mtdUsd" if match["figure"] == "month_to_date" else "projectedUsd"
    spent = figures[key]
    what = "spent this month" if key == "mtdUsd" else "projected for the month"
    return Fact(round(100 * spent / budget, 1), f"${spent:.2f} {what} of a ${budget:.2f} budget")


def _template_behind(subject: Subject, match: re.Match[str]) -> Fact:
    annotations = subject.entity["metadata"].get("annotations") or {}
    template = str(annotations.get(metadata_keys.SOURCE_TEMPLATE) or "").lower()
    if not template:
        return Fact(None, "not generated from a template (no backstage.io/source-template)")
    recorded = [v.version for v in version_store.list_versions(subject.session, template)]
    if not recorded:
        return Fact(None, f"{template} has no recorded version")
    latest = recorded[-1]
    raw = annotations.get(metadata_keys.TEMPLATE_VERSION)
    try:
        version = versions.normalize(str(raw)) if raw else None
    except versions.VersionError:
        version = None
    if version is None:
        return Fact(None, f"the version of {template} it was generated at is not known")
    behind = len(versions.between(recorded, version, latest))
    return Fact(float(behind), f"on {template} {version}, latest {latest}")


def _owner_exists(subject: Subject, match: re.Match[str]) -> Fact:
    owner = (subject.entity.get("spec") or {}).get("owner")
    if not owner:
        return Fact(False, "spec.owner is not set")
    try:
        ref = group_ref(str(owner))
    except Exception:  # an owner that is not a ref at all
        return Fact(False, f"spec.owner {owner!r} is not an entity ref")
    if ref is None:
        return Fact(False, "spec.owner is not set")
    if CatalogService(subject.session).get_by_ref(ref) is None:
        return Fact(False, f"{ref} is not in the catalog")
    return Fact(True, f"{ref} is in the catalog")


def _alerts_firing(subject: Subject, match: re.Match[str]) -> Fact:
    firing = list_alerts(subject.session, state="firing", service_ref=subject.ref)
    names = sorted({a.alertname for a in firing})
    return Fact(float(len(firing)), f"firing: {', '.join(names)}" if names else "none firing")


def _status_text(path: tuple[str, ...]) -> Callable[[Subject, re.Match[str]], Fact]:
    def measure(subject: Subject, match: re.Match[str]) -> Fact:
        value: Any = subject.entity.get("status") or {}
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            return Fact(None, f"status.{'.'.join(path)} is not set")
        return Fact(str(value), f"status.{'.'.join(path)}")

    return measure


def _entity_field(subject: Subject, match: re.Match[str]) -> Fact:
    value: Any = subject.entity
    for part in match["path"].split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None or value == "" or value == [] or value == {}:
        return Fact(None, f"{match['path']} is not set")
    if isinstance(value, bool | int | float):
        return Fact(value if isinstance(value, bool) else float(value), match["path"])
    return Fact(str(value), match["path"])


WINDOW = r"(?P<window>1h|24h|7d|30d)"
KINDS: tuple[FactKind, ...] = (
    FactKind(
        r"eval\.(?P<metric>[a-z][a-z0-9_]*)",
        RATIO,
        "a metric of the latest evaluation (hit_at_k, mrr, refusal_recall, "
        "hallucination_rate, passage_hit_at_k, ...)",
        _evaluation,
    ),
    FactKind(
        rf"slo\.success_rate_{WINDOW}",
        RATIO,
        "share of successful requests over the window; target: the service's SLO",
        _success_rate,
        has_target=True,
    ),
    FactKind(
        rf"slo\.p95_latency_ms_{WINDOW}",
        MS,
        "95th percentile latency over the window; target: the service's SLO",
        _p95_latency,
        has_target=True,
    ),
    FactKind(
        r"slo\.state",
        TEXT,
        "status.slo.state: ok, warning, breached",
        _status_text(("slo", "state")),
    ),
    FactKind(
        r"budget\.(?P<figure>month_to_date|projected)",
        PERCENT,
        "spend this month (or projected to month end) as a percent of the monthly budget",
        _budget,
    ),
    FactKind(
        r"template\.behind",
        COUNT,
        "template versions released since the one the service was generated at",
        _template_behind,
    ),
    FactKind(r"owner\.exists", BOOL, "spec.owner names an entity in the catalog", _owner_exists),
    FactKind(
        r"alerts\.firing", COUNT, "the service's firing SLO and budget alerts", _alerts_firing
    ),
    FactKind(
        r"deployment\.state",
        TEXT,
        "status.deployment.state: Healthy, Degraded, Planned, ...",
        _status_text(("deployment", "state")),
    ),
    FactKind(
        r"entity\.(?P<path>[A-Za-z][A-Za-z0-9_\-/.]*)",
        TEXT,
        "any field of the entity (entity.metadata.description, entity.spec.lifecycle)",
        _entity_field,
    ),
)
_COMPILED = [(re.compile(f"^{kind.pattern}$"), kind) for kind in KINDS]


def resolve(name: str) -> tuple[FactKind, re.Match[str]] | None:
    for pattern, kind in _COMPILED:
        if match := pattern.match(name):
            return kind, match
    return None


def known_facts() -> list[str]:
    """The fact names, as the error message for an unknown one lists them."""
    return [
        "eval.<metric>",
        "slo.success_rate_<1h|24h|7d|30d>",
        "slo.p95_latency_ms_<1h|24h|7d|30d>",
        "slo.state",
        "budget.month_to_date",
        "budget.projected",
        "template.behind",
        "owner.exists",
        "alerts.firing",
        "deployment.state",
        "entity.<dotted path>",
    ]


def measure(subject: Subject, name: str) -> Fact:
    found = resolve(name)
    if found is None:  # definitions are validated; a fact removed since is unknown
        return Fact(None, f"unknown fact {name}")
    kind, match = found
    return kind.measure(subject, match)
