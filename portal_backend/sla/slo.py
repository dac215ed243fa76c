"""SLOs of a service: per-window compliance, error budget, multiwindow burn-rate alerts.

Two SLIs, both as good/bad request counts so the same burn-rate maths applies:
- availability: bad = requests that did not succeed (error, timeout, refused);
  objective = the ``rag-portal.io/slo-success-rate`` annotation (percent);
- latency: bad = requests slower than ``rag-portal.io/slo-p95-latency-ms``;
  objective 95 % (the target is a p95).

Burn rate = bad ratio / (1 - objective). Alert rules (Google SRE workbook, ch. 5):
page when 1h and 5m both burn > 14.4 or 6h and 30m > 6; ticket when 1d and 2h > 3 or
3d and 6h > 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portal_backend.sla.stats import RollupRows, WindowStats

WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
COMPLIANCE_WINDOW = "30d"
LATENCY_OBJECTIVE = 0.95


def window_end(now_ts: int) -> int:
    """Windows end with the current minute, so the latest records count at once."""
    return now_ts - now_ts % 60 + 60


@dataclass(frozen=True)
class BurnRule:
    severity: str
    long_s: int
    short_s: int
    factor: float

    @property
    def label(self) -> str:
        return f"{_fmt(self.long_s)}&{_fmt(self.short_s)}>{self.factor:g}x"


def _fmt(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m"


BURN_RULES = (
    BurnRule("page", 3600, 300, 14.4),
    BurnRule("page", 6 * 3600, 1800, 6.0),
    BurnRule("ticket", 86400, 7200, 3.0),
    BurnRule("ticket", 3 * 86400, 6 * 3600, 1.0),
)


@dataclass(frozen=True)
class Targets:
    success_rate: float | None  # fraction, e.g. 0.95
    p95_latency_ms: float | None

    @property
    def any(self) -> bool:
        return self.success_rate is not None or self.p95_latency_ms is not None


def bad_and_objective(stats: WindowStats, sli: str, targets: Targets) -> tuple[int, float]:
    if sli == "availability":
        assert targets.success_rate is not None
        return stats.requests - stats.successes, targets.success_rate
    assert targets.p95_latency_ms is not None
    return stats.slower_than(targets.p95_latency_ms), LATENCY_OBJECTIVE


def slis(targets: Targets) -> list[str]:
    out = []
    if targets.success_rate is not None:
        out.append("availability")
    if targets.p95_latency_ms is not None:
        out.append("latency")
    return out


def burn_rate(stats: WindowStats, sli: str, targets: Targets) -> float:
    if stats.requests == 0:
        return 0.0
    bad, objective = bad_and_objective(stats, sli, targets)
    allowed = 1.0 - objective
    return (bad / stats.requests) / allowed if allowed > 0 else float("inf") if bad else 0.0


def window_report(stats: WindowStats, targets: Targets) -> dict[str, Any]:
    """What the API shows for one window."""
    p95 = stats.latency_quantile(0.95)
    report: dict[str, Any] = {
        "requests": stats.requests,
        "successes": stats.successes,
        "errors": stats.errors,
        "timeouts": stats.timeouts,
        "refused": stats.refused,
        "successRate": stats.success_rate,
        "latencyMs": {
            "p50": stats.latency_quantile(0.5),
            "p95": p95,
            "p99": stats.latency_quantile(0.99),
            "mean": stats.latency_sum_ms / stats.requests if stats.requests else None,
        },
        "ttftP95Ms": stats.ttft_quantile(0.95),
        "tokens": {
            "prompt": stats.prompt_tokens,
            "completion": stats.completion_tokens,
            "total": stats.prompt_tokens + stats.completion_tokens,
        },
        "errorBudgetRemaining": {},
        "compliant": None,
    }
    if stats.requests == 0 or not targets.any:
        return report
    compliant = True
    for sli in slis(targets):
        bad, objective = bad_and_objective(stats, sli, targets)
        allowed = (1 - objective) * stats.requests
        report["errorBudgetRemaining"][sli] = 1 - bad / allowed if allowed else None
    if targets.success_rate is not None and (stats.success_rate or 0) < targets.success_rate:
        compliant = False
    if targets.p95_latency_ms is not None and p95 is not None and p95 > targets.p95_latency_ms:
        compliant = False
    report["compliant"] = compliant
    return report


@dataclass(frozen=True)
class BurnCondition:
    sli: str
    severity: str
    firing: bool
    rules: list[str]  # which rule(s) fired
    burn_rates: dict[str, float]


def burn_conditions(rows: RollupRows, now_ts: int, targets: Targets) -> list[BurnCondition]:
    """One condition per (SLI, severity): firing when any of its rules fires."""
    end = window_end(now_ts)
    cache: dict[int, WindowStats] = {}

    def stats(seconds: int) -> WindowStats:
        if seconds not in cache:
            cache[seconds] = rows.window(end - seconds, end)
        return cache[seconds]

    out = []
    for sli in slis(targets):
        for severity in ("page", "ticket"):
            fired, rates = [], {}
            for rule in (r for r in BURN_RULES if r.severity == severity):
                long_rate = burn_rate(stats(rule.long_s), sli, targets)
                short_rate = burn_rate(stats(rule.short_s), sli, targets)
                rates[_fmt(rule.long_s)] = long_rate
                rates[_fmt(rule.short_s)] = short_rate
                if long_rate > rule.factor and short_rate > rule.factor:
                    fired.append(rule.label)
            out.append(BurnCondition(sli, severity, bool(fired), fired, rates))
    return out


def burn_windows(now_ts: int) -> list[tuple[int, int]]:
    end = window_end(now_ts)
    spans = {r.long_s for r in BURN_RULES} | {r.short_s for r in BURN_RULES}
    return [(end - s, end) for s in sorted(spans)]


def slo_state(conditions: list[BurnCondition], compliance: dict[str, Any], targets: Targets) -> str:
    """ok | warning | breached | unknown, for the catalog summary (status.slo.state)."""
    if not targets.any or not compliance.get("requests"):
        return "unknown"
    if compliance.get("compliant") is False or any(
        c.firing and c.severity == "page" for c in conditions
    ):
        return "breached"
    remaining = [v for v in compliance.get("errorBudgetRemaining", {}).values() if v is not None]
    if any(c.firing for c in conditions) or any(v < 0.25 for v in remaining):
        return "warning"
    return "ok"
