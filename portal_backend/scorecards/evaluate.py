"""One service against the check set: each check's state and why, and its level."""

from __future__ import annotations

import operator as op
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portal_backend.scorecards import facts
from portal_backend.scorecards.definitions import CheckDef, CheckSet

PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">=": op.ge, ">": op.gt, "<=": op.le, "<": op.lt, "==": op.eq, "!=": op.ne,
}  # fmt: skip
_UNIT_TEXT = {facts.PERCENT: " %", facts.MS: " ms"}


@dataclass(frozen=True)
class Scorecard:
    level: str | None
    results: list[dict[str, Any]]

    def count(self, state: str) -> int:
        return sum(1 for r in self.results if r["state"] == state)


def _show(value: facts.Value, unit: str) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value).lower() if isinstance(value, bool) else str(value)
    return text + _UNIT_TEXT.get(unit, "")


def check(subject: facts.Subject, definition: CheckDef, level: str) -> dict[str, Any]:
    found = facts.resolve(definition.fact)
    unit = found[0].unit if found else facts.TEXT
    fact = facts.measure(subject, definition.fact)
    result: dict[str, Any] = {
        "id": definition.id,
        "title": definition.title or definition.id,
        "level": level,
        "fact": definition.fact,
        "operator": definition.operator,
        "threshold": definition.threshold,
        "value": fact.value,
        "source": fact.source,
    }
    if definition.operator is None:  # the fact itself must hold
        held = bool(fact.value)
        result["state"] = PASS if held else FAIL
        result["why"] = f"{definition.fact}: {fact.source}"
        return result
    if fact.value is None:
        result["state"] = UNKNOWN
        result["why"] = f"{definition.fact} unknown: {fact.source}"
        return result
    if unit in facts.NUMERIC_UNITS:
        limit = definition.number(unit, fact.target)
        if limit is None:  # threshold "target" of a service that sets none
            result["state"] = UNKNOWN
            result["why"] = (
                f"{definition.fact} is {_show(fact.value, unit)} but the service sets no target"
            )
            return result
        actual: Any = float(fact.value) if not isinstance(fact.value, str) else fact.value
        wanted: Any = limit
        limit_text = _show(limit, unit) + (
            " (its target)" if definition.threshold == "target" else ""
        )
    else:
        actual = str(fact.value).lower()
        wanted = str(definition.threshold).lower()
        limit_text = str(definition.threshold)
    try:
        held = _COMPARE[definition.operator](actual, wanted)
    except TypeError:  # an entity field that is text against a number
        held = False
    result["state"] = PASS if held else FAIL
    result["why"] = (
        f"{definition.fact} is {_show(fact.value, unit)}, "
        f"{'meets' if held else 'needs'} {definition.operator} {limit_text} ({fact.source})"
    )
    return result


def score(subject: facts.Subject, checks: CheckSet) -> Scorecard:
    results = [check(subject, c, checks.level_of(c)) for c in checks.checks]
    reached: str | None = None
    for level in checks.levels:  # lowest first: a level needs every check up to it
        index = checks.levels.index(level)
        needed = [r for r in results if checks.levels.index(r["level"]) <= index]
        if any(r["state"] != PASS for r in needed):
            break
        reached = level
    return Scorecard(reached, results)
