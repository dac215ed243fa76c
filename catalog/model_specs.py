"""Specs of model and LoRA adapter versions: Resources of ``spec.type: llm-model`` and
``spec.type: lora-adapter`` (docs/models.md).

Each version is its own entity (``hr-adapter-v3``) with ``spec.version``; the
references (``previousVersion``, ``baseModel``) become relations through
``catalog.relations.TYPE_RULES``. The rules here are the fields' shapes; whether an
adapter fits a service is decided where the service is changed (portal_backend.rag).
"""

from __future__ import annotations

import re
from typing import Any

from catalog.errors import ErrorDetail

MODEL_TYPE = "llm-model"
ADAPTER_TYPE = "lora-adapter"
VERSIONED_TYPES = (MODEL_TYPE, ADAPTER_TYPE)

# "8B", "1.5B", "135M", "70b": a parameter count written the way model cards write it.
PARAMETERS_RE = re.compile(r"^\d+(\.\d+)?\s*[KMBTkmbt]$")
_VERSION_SUFFIX = re.compile(r"-v?\d[-A-Za-z0-9_.]*$")


def spec_type(entity: dict[str, Any]) -> str:
    spec = entity.get("spec")
    value = spec.get("type") if isinstance(spec, dict) else None
    return value.lower() if isinstance(value, str) else ""


def is_versioned(entity: dict[str, Any]) -> bool:
    return str(entity.get("kind", "")).lower() == "resource" and spec_type(entity) in (
        VERSIONED_TYPES
    )


def family_of(entity: dict[str, Any]) -> str:
    """The version-less line a version belongs to: ``spec.family``, else the entity name
    without a trailing ``-v<version>`` (``hr-adapter-v3`` -> ``hr-adapter``)."""
    spec = entity.get("spec") or {}
    family = spec.get("family")
    if isinstance(family, str) and family:
        return family.lower()
    name = str((entity.get("metadata") or {}).get("name", ""))
    version = spec.get("version")
    if isinstance(version, str) and version:
        for suffix in (f"-v{version}", f"-{version}"):
            if name.lower().endswith(suffix.lower()) and len(name) > len(suffix):
                return name[: -len(suffix)].lower()
    stripped = _VERSION_SUFFIX.sub("", name)
    return (stripped or name).lower()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check(kind_type: str, spec: dict[str, Any], problems: list[ErrorDetail]) -> None:
    """Append the problems of a model or adapter version's ``spec`` (``kind_type`` is its
    lowercase spec.type; other types are not checked here)."""
    if kind_type not in VERSIONED_TYPES:
        return
    what = "an llm-model" if kind_type == MODEL_TYPE else "a lora-adapter"
    for field in ("version", "source"):
        value = spec.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool) and field == "version":
            problems.append(
                ErrorDetail("spec.version", f'spec.version must be a string; quote it: "{value}"')
            )
        elif not isinstance(value, str) or not value.strip():
            problems.append(
                ErrorDetail(f"spec.{field}", f"spec.{field} is required for {what} (a string)")
            )
    for field in ("family", "format", "quantization", "previousVersion", "dataset"):
        if spec.get(field) is not None and not isinstance(spec[field], str):
            problems.append(ErrorDetail(f"spec.{field}", "must be a string"))
    family = spec.get("family")
    if isinstance(family, str) and not re.match(r"^[A-Za-z0-9][-A-Za-z0-9_.]*$", family):
        problems.append(
            ErrorDetail("spec.family", f"invalid family {family!r}: an entity-name-like word")
        )
    if kind_type == MODEL_TYPE:
        parameters = spec.get("parameters")
        if parameters is not None and not (
            (isinstance(parameters, int) and not isinstance(parameters, bool) and parameters > 0)
            or (isinstance(parameters, str) and PARAMETERS_RE.match(parameters.strip()))
        ):
            problems.append(
                ErrorDetail(
                    "spec.parameters",
                    f"invalid parameters {parameters!r}: a count (8030000000) or a number "
                    "with K, M, B or T (8B, 135M)",
                )
            )
        return
    base = spec.get("baseModel")
    if not isinstance(base, str) or not base:
        problems.append(
            ErrorDetail(
                "spec.baseModel",
                "spec.baseModel is required for a lora-adapter: the llm-model version it was "
                "trained on (resource:default/<model>-v<n>)",
            )
        )
    rank = spec.get("rank")
    if not (isinstance(rank, int) and not isinstance(rank, bool) and rank > 0):
        problems.append(
            ErrorDetail(
                "spec.rank",
                f"spec.rank is required for a lora-adapter: a positive whole number (r), "
                f"not {rank!r}",
            )
        )
    alpha = spec.get("alpha")
    if alpha is not None and not (_is_number(alpha) and alpha > 0):
        problems.append(ErrorDetail("spec.alpha", f"must be a positive number, not {alpha!r}"))
    modules = spec.get("targetModules")
    if modules is not None and not (
        isinstance(modules, list) and all(isinstance(m, str) and m for m in modules)
    ):
        problems.append(ErrorDetail("spec.targetModules", "must be a list of module names"))
    scores = spec.get("evalScores")
    if scores is not None:
        if not isinstance(scores, dict):
            problems.append(
                ErrorDetail("spec.evalScores", "must be an object of metric name to number")
            )
        else:
            for key, value in scores.items():
                if not isinstance(key, str) or not _is_number(value):
                    problems.append(
                        ErrorDetail(f"spec.evalScores.{key}", f"must be a number, not {value!r}")
                    )
