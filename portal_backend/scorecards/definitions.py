"""The check set: its YAML format, its validation, and which set is active.

```yaml
levels: [bronze, silver, gold]      # lowest first
checks:
  - id: retrieval-hit-rate          # lowercase words joined by '-'
    title: Retrieval finds the passage
    fact: eval.hit_at_k             # see facts.py
    operator: ">="                  # >= > <= < == != (omitted: the fact must be true)
    threshold: 0.9                  # a number, "80 %", true/false, a word, or "target"
    level: gold                     # the level this check is needed for
```

A service reaches a level when every check of that level and of every level below it
passes. The active set is the one an admin put through the API, else the file named by
``RAGPORTAL_SCORECARD_CHECKS_FILE``, else the shipped ``default_checks.yaml``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.orm import Session

from catalog.errors import ErrorDetail, InputError
from portal_backend.scorecards import facts
from portal_backend.scorecards.tables import ScorecardCheckSet
from portal_backend.settings import Settings

DEFAULT_FILE = Path(__file__).with_name("default_checks.yaml")
Operator = Literal[">=", ">", "<=", "<", "==", "!="]
_PERCENT = re.compile(r"^\s*(?P<number>-?\d+(\.\d+)?)\s*%\s*$")
MAX_CHECKS = 200


class CheckDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=63)
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    fact: str = Field(min_length=1, max_length=200)
    operator: Operator | None = None
    threshold: bool | float | str | None = None
    level: str | None = None  # None: the first level

    def threshold_text(self) -> str:
        return "" if self.threshold is None else str(self.threshold)

    def number(self, unit: str, target: float | None) -> float | None:
        """The threshold as a number in the fact's unit ("80 %" of a ratio is 0.8)."""
        value = self.threshold
        if value == "target":
            return target
        if isinstance(value, str) and (match := _PERCENT.match(value)):
            number = float(match["number"])
            return number / 100 if unit == facts.RATIO else number
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return None


class CheckSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    levels: list[str] = Field(default_factory=lambda: ["bronze", "silver", "gold"], min_length=1)
    checks: list[CheckDef] = Field(min_length=1, max_length=MAX_CHECKS)

    @model_validator(mode="after")
    def _consistent(self) -> CheckSet:
        problems: list[ErrorDetail] = []
        for index, level in enumerate(self.levels):
            if not re.match(r"^[a-z0-9]+(-[a-z0-9]+)*$", level) or len(level) > 63:
                problems.append(
                    ErrorDetail(f"levels[{index}]", f"{level!r}: lowercase words joined by '-'")
                )
        if len(set(self.levels)) != len(self.levels):
            problems.append(ErrorDetail("levels", "each level once"))
        seen: set[str] = set()
        for index, check in enumerate(self.checks):
            problems += _check_problems(index, check, self.levels)
            if check.id in seen:
                problems.append(ErrorDetail(f"checks[{index}].id", f"{check.id!r} is used twice"))
            seen.add(check.id)
        if problems:
            raise CheckSetError(problems)
        return self

    def level_of(self, check: CheckDef) -> str:
        return check.level or self.levels[0]

    def digest(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class CheckSetError(ValueError):
    """Problems found across the set (raised inside pydantic, turned into InputError)."""

    def __init__(self, problems: list[ErrorDetail]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = problems


def _check_problems(index: int, check: CheckDef, levels: list[str]) -> list[ErrorDetail]:
    at = f"checks[{index}]"
    problems = []
    if check.level is not None and check.level not in levels:
        problems.append(
            ErrorDetail(f"{at}.level", f"{check.level!r} is not one of levels: {', '.join(levels)}")
        )
    found = facts.resolve(check.fact)
    if found is None:
        problems.append(
            ErrorDetail(
                f"{at}.fact",
                f"unknown fact {check.fact!r}; use one of {', '.join(facts.known_facts())}",
            )
        )
        return problems
    kind, _ = found
    threshold = check.threshold
    if check.operator is None:
        if threshold is not None:
            problems.append(
                ErrorDetail(f"{at}.operator", "a threshold needs an operator (e.g. '>=')")
            )
        return problems
    if threshold is None:
        problems.append(
            ErrorDetail(f"{at}.threshold", f"operator {check.operator} needs a threshold")
        )
    elif threshold == "target" and not kind.has_target:
        problems.append(
            ErrorDetail(
                f"{at}.threshold",
                f"{check.fact} has no per-service target; give a number",
            )
        )
    elif kind.unit in facts.NUMERIC_UNITS:
        if check.number(kind.unit, 0.0) is None:
            problems.append(
                ErrorDetail(
                    f"{at}.threshold",
                    f"{check.fact} is a number: use a number or 'N %'"
                    + (" or 'target'" if kind.has_target else "")
                    + f", not {threshold!r}",
                )
            )
    elif check.operator not in ("==", "!="):
        problems.append(
            ErrorDetail(f"{at}.operator", f"{check.fact} is not a number: use == or !=")
        )
    return problems


def parse(text: str, *, source: str = "checks") -> CheckSet:
    """A check set from YAML (or JSON) text; InputError naming every bad field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(
            f"{source} is not valid YAML: {exc}", [ErrorDetail("checks", "not valid YAML")]
        ) from None
    return from_data(data, source=source)


def from_data(data: Any, *, source: str = "checks") -> CheckSet:
    if not isinstance(data, dict):
        raise InputError(
            f"{source} must be a mapping with levels and checks",
            [ErrorDetail("checks", "expected {levels: [...], checks: [...]}")],
        )
    try:
        return CheckSet.model_validate(data)
    except ValidationError as exc:
        details: list[ErrorDetail] = []
        for error in exc.errors():
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, CheckSetError):
                details += cause.problems
                continue
            details.append(ErrorDetail(_path(error["loc"]), error["msg"]))
        summary = "; ".join(f"{d.path}: {d.message}" for d in details)
        raise InputError(f"invalid scorecard checks in {source}: {summary}", details) from None


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


@dataclass(frozen=True)
class ActiveSet:
    checks: CheckSet
    source: str  # "admin" or the file's path
    text: str
    updated_at: datetime | None = None
    updated_by: str | None = None


def checks_file(settings: Settings) -> Path:
    return settings.scorecard_checks_file or DEFAULT_FILE


def active(session: Session, settings: Settings) -> ActiveSet:
    """The admin's set if one was put, else the file's (InputError if the file is bad)."""
    row = session.get(ScorecardCheckSet, 1)
    if row is not None:
        return ActiveSet(
            parse(row.source_yaml, source="the admin-set checks"),
            "admin",
            row.source_yaml,
            row.updated_at,
            row.updated_by,
        )
    path = checks_file(settings)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(
            f"cannot read the scorecard checks file {path}: {exc.strerror}",
            [ErrorDetail("RAGPORTAL_SCORECARD_CHECKS_FILE", str(path))],
        ) from None
    return ActiveSet(parse(text, source=str(path)), str(path), text)


def replace(session: Session, text: str, now: datetime, by: str | None) -> ActiveSet:
    """Validate and store the admin's set (nothing is stored when it is invalid)."""
    checks = parse(text, source="the request body")
    row = session.get(ScorecardCheckSet, 1)
    if row is None:
        row = ScorecardCheckSet(id=1, source_yaml=text, updated_at=now, updated_by=by)
        session.add(row)
    else:
        row.source_yaml, row.updated_at, row.updated_by = text, now, by
    session.flush()
    return ActiveSet(checks, "admin", text, now, by)


def reset(session: Session) -> bool:
    """Back to the file's set; False when no admin set was in force."""
    row = session.get(ScorecardCheckSet, 1)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True
